/**
 * Inserts rows into one ClickHouse table, idempotently.
 *
 * Exactly once, across crashes and replays: every insert carries a deduplication token naming its batch (the
 * batch ledger's batchToken), and a replay repeats the very same insert, so the server ignores what it already holds,
 * part by part. The materialized views fed by the table (the edge rollup) deduplicate their own parts by that token
 * too (deduplicate_blocks_in_dependent_materialized_views, set on every insert: older servers default it off).
 * optimize_on_insert is off: the rollup's view already groups each insert by its table's whole sorting key, so the
 * engine's merge of equal keys within the inserted part finds none, yet copies every aggregate state (its t-digest)
 * to look: ~12% of an insert of joined rows through the view (bench/enrich-join). `flows` is a plain MergeTree, which
 * that setting does not touch.
 * Every row also carries its Kafka topic/partition/offset, for whoever reads the table.
 *
 * Rows travel as RowBinary (src/enricher/row-binary.ts): over HTTP as the request body; into the embedded engine as
 * a file the INSERT reads with file(), because chdb's client connection turns an insert body into text, which
 * corrupts binary formats, and its text formats cost the engine ~4x more to parse (bench/enricher). The token is
 * set on each INSERT itself (a URL parameter over HTTP, a SETTINGS clause embedded), never on the session: chdb
 * keeps session settings for later queries, so a token set there would swallow the next, different insert.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { embeddedEngine, type EmbeddedEngine } from '../common/clickhouse/client.js';
import { describeError } from '../common/errors.js';
import type { SinkResult } from '../common/pipeline.js';
import { encodeFlowRows, FLOW_COLUMNS, type FlowRow } from './flow-row.js';
import { RowBinaryRows, type Columns } from './row-binary.js';

/** Errors that say the data is wrong: retrying the same rows cannot help. */
const DATA_ERROR_CODES = new Set(['6', '26', '27', '38', '41', '53', '69', '70', '72', '117', '130', '131', '135']);


/** A ClickHouse string literal. */
function quote(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** The ClickHouse error code: a field over HTTP, "Code: N." in the message from the embedded engine. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) return String(code);
  return /\bCode: (\d+)\./.exec(describeError(error))?.[1] ?? '';
}

let fileSequence = 0;

export class ClickHouseSink {
  private readonly engine: EmbeddedEngine | undefined;
  private fileDirectory: Promise<string> | undefined;
  /** The insert's column list, and the file's structure (names and the types its bytes are written as). */
  private readonly columnList: string;
  private readonly structure: string;

  /**
   * `columns`: those the rows are written with (the table's EventTable.columns: FLOW_COLUMNS, what FlowRows
   * writes, unless given); bench/enrich-join's baseline gives the columns of `flows` as it was before the identity
   * columns.
   */
  constructor(
    private readonly client: ClickHouseClient,
    readonly table: string,
    columns: Columns = FLOW_COLUMNS,
  ) {
    this.engine = embeddedEngine(client);
    this.columnList = columns.map(([name]) => name).join(', ');
    this.structure = columns.map(([name, type]) => `${name} ${type}`).join(', ');
  }

  /** Rows already written as RowBinary (what the enricher builds), or flows row objects to write here. */
  async insert(rows: RowBinaryRows<unknown> | readonly FlowRow[], deduplicationToken: string): Promise<SinkResult> {
    if (rows.length === 0) return { ok: true };
    let payload: Buffer;
    try {
      payload = rows instanceof RowBinaryRows ? rows.bytes() : encodeFlowRows(rows);
    } catch (error) {
      return { ok: false, error: describeError(error), retriable: false };
    }
    try {
      if (this.engine) await this.insertEmbedded(this.engine, payload, deduplicationToken);
      else await this.insertOverHttp(payload, deduplicationToken);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: describeError(error), retriable: !DATA_ERROR_CODES.has(errorCode(error)) };
    }
  }

  private async insertOverHttp(payload: Buffer, token: string): Promise<void> {
    const result = await this.client.exec({
      query: `INSERT INTO ${this.table} (${this.columnList}) FORMAT RowBinary`,
      values: Readable.from([payload], { objectMode: false }),
      // wait_end_of_query: an error while the server writes comes back as an error status, not a 200.
      clickhouse_settings: {
        insert_deduplicate: 1,
        insert_deduplication_token: token,
        deduplicate_blocks_in_dependent_materialized_views: 1,
        optimize_on_insert: 0,
        wait_end_of_query: 1,
      },
    });
    result.stream.resume();
    await new Promise<void>((resolve, reject) => result.stream.once('end', resolve).once('error', reject));
  }

  /** The payload goes to a file of its own next to the engine's data, read by the INSERT and removed after it. */
  private async insertEmbedded(engine: EmbeddedEngine, payload: Buffer, token: string): Promise<void> {
    const directory = join(engine.session.path, 'sidecarless-inserts');
    this.fileDirectory ??= mkdir(directory, { recursive: true }).then(
      () => directory,
      (error: unknown) => {
        this.fileDirectory = undefined; // try again on the next insert
        throw error;
      },
    );
    const path = join(await this.fileDirectory, `${process.pid}-${++fileSequence}.rowbinary`);
    try {
      await writeFile(path, payload);
      await engine.queryAsync(
        `INSERT INTO ${this.table} (${this.columnList}) SETTINGS insert_deduplicate = 1, insert_deduplication_token = ${quote(token)}, ` +
          'deduplicate_blocks_in_dependent_materialized_views = 1, optimize_on_insert = 0 ' +
          `SELECT * FROM file(${quote(path)}, 'RowBinary', ${quote(this.structure)})`,
      );
    } finally {
      await rm(path, { force: true });
    }
  }
}
