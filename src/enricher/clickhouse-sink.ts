/**
 * Inserts rows into one ClickHouse table, idempotently, and tells how far a Kafka partition is already stored.
 *
 * Exactly once, across crashes and replays: every row carries its Kafka topic/partition/offset. Before a partition's
 * first batch, the enricher asks `storedOffset` and skips what is already there (a crash between insert and commit
 * replays a batch that is stored). Each insert also carries a deduplication token made of that range, so a retry
 * of an insert whose acknowledgement was lost is ignored by the server.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { describeError } from '../common/errors.js';

export type InsertResult = { ok: true } | { ok: false; error: string; retriable: boolean };

/** Errors that say the data is wrong: retrying the same rows cannot help. */
const DATA_ERROR_CODES = new Set(['6', '26', '27', '38', '41', '53', '69', '70', '72', '117', '130', '131', '135']);

export class ClickHouseSink {
  constructor(
    private readonly client: ClickHouseClient,
    readonly table: string,
  ) {}

  /** The highest Kafka offset stored for this partition, or -1 when none. */
  async storedOffset(topic: string, partition: number): Promise<bigint> {
    const result = await this.client.query({
      query: `SELECT toString(max(kafka_offset)) AS offset, count() AS rows FROM ${this.table} WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:UInt32}`,
      query_params: { topic, partition },
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ offset: string; rows: string | number }>();
    return row && Number(row.rows) > 0 ? BigInt(row.offset) : -1n;
  }

  async insert(rows: readonly object[], deduplicationToken: string): Promise<InsertResult> {
    try {
      await this.client.insert({
        table: this.table,
        values: rows as object[],
        format: 'JSONEachRow',
        clickhouse_settings: { insert_deduplication_token: deduplicationToken, insert_deduplicate: 1 },
      });
      return { ok: true };
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? '');
      return { ok: false, error: describeError(error), retriable: !DATA_ERROR_CODES.has(code) };
    }
  }
}
