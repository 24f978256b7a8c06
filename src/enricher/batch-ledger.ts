/**
 * The record of the batches the enricher stores (`<database>.kafka_batches`, schemas/clickhouse/0002): one row per
 * batch, written before its insert. It answers two questions a restart (or a rebalance) asks of a partition:
 *
 * - How far is it stored, and what was the last batch? That batch may be stored in part only: ClickHouse commits
 *   an insert as one part per table partition (per day of `flows`), so a crash can leave the first day's rows
 *   without the second's. Its boundaries were recorded before the insert, so the replay takes exactly the same
 *   messages into exactly the same rows under the same deduplication token (batchToken), and the server skips the
 *   parts it already holds and writes the others.
 * - Is it still the log that was stored? A topic deleted and recreated starts its offsets again: offsets at or
 *   below the stored position then hold other messages. A batch's first and last message leave a fingerprint here,
 *   so the messages at those offsets can be compared (the enricher's verify). The Kafka topic id would say it at
 *   once, but kafkajs speaks Metadata up to v6, which has no topic ids.
 *
 * A generation counts the times a topic partition was found recreated; it keeps each generation's positions and
 * tokens apart (a recreated topic's first batch has the same offsets as the first one's, and ClickHouse would take
 * it for a repeat of that insert).
 *
 * Why a ledger rather than one insert per table partition with a position per day: the enricher would have to know
 * the server's day boundaries (its time zone, the table's PARTITION BY), and a replay would still need the same
 * batch boundaries to repeat the same tokens. The ledger also replaces the scan of max(kafka_offset) over the whole
 * flows table that each partition assignment cost: its rows are found by their sort key.
 */
import { createHash } from 'node:crypto';
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { describeError } from '../common/errors.js';
import type { SinkResult } from '../common/pipeline.js';

export interface RecordedBatch {
  topic: string;
  partition: number;
  generation: number;
  first: bigint;
  last: bigint;
  /** Fingerprints of the messages at `first` and `last`; '' when unknown (rows migration 3 made from `flows`). */
  firstFingerprint: string;
  lastFingerprint: string;
}

/** What the enricher needs of the record; BatchLedger keeps it in ClickHouse. */
export interface Ledger {
  /** The latest batch recorded for the partition (highest generation, then offset), or undefined when none. */
  latest(topic: string, partition: number): Promise<RecordedBatch | undefined>;
  /** A batch of the generation with fingerprints and its first or last offset within [from, to], if one is recorded. */
  boundaryWithin(topic: string, partition: number, generation: number, from: bigint, to: bigint): Promise<RecordedBatch | undefined>;
  record(batch: RecordedBatch): Promise<SinkResult>;
}

/** The fields of a Kafka message that make it this message and no other one at its offset. */
export interface FingerprintedMessage {
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

/** sha256 of the timestamp, key and value (lengths first: no two messages share the hashed bytes), first 128 bits. */
export function fingerprint(message: FingerprintedMessage): string {
  const { timestamp, key, value } = message;
  return createHash('sha256')
    .update(`${timestamp}/${key?.length ?? -1}/${value?.length ?? -1}/`)
    .update(key ?? Buffer.alloc(0))
    .update(value ?? Buffer.alloc(0))
    .digest('hex')
    .slice(0, 32);
}

/** The deduplication token of a batch's insert: the same for its replay, another one for every other batch. */
export function batchToken(batch: RecordedBatch): string {
  return `${batch.topic}/${batch.partition}/${batch.generation}/${batch.first}-${batch.last}`;
}

/** A row migration 3 made from `flows`: it says how far the partition is stored, not which batch came last. */
export function replayable(batch: RecordedBatch): boolean {
  return batch.firstFingerprint !== '';
}

interface LedgerRow {
  generation: number | string;
  first: string;
  last: string;
  first_fingerprint: string;
  last_fingerprint: string;
}

/** Offsets as text, under other names: an alias named like its column would stand for it in WHERE as well. */
const COLUMNS = 'generation, toString(first_offset) AS first, toString(last_offset) AS last, first_fingerprint, last_fingerprint';

/**
 * On a cluster (clickhouse.cluster) a restart may read the ledger from another replica than the one that recorded
 * the last batch. Its record is acknowledged only once a majority of its shard's replicas hold it, and read only
 * from a replica that holds every acknowledged record: a replica that lags would hide the batch to replay, and the
 * enricher would store those messages again in batches of other boundaries, under other tokens. Sequential reads
 * need each record's quorum to complete before the next (insert_quorum_parallel 0): a record that meets another
 * one's quorum in progress fails and is retried. The quorum waits less than the client's 30 s request timeout, so
 * ClickHouse's answer, not the client's, says why it failed. A read asks only the shard of the partition
 * (optimize_skip_unused_shards: the sharding key is in its WHERE), so another shard down or lagging does not stop it.
 * The price: a shard of two replicas with one down takes no records until it is back (a majority of two is two);
 * three replicas a shard keep it writable.
 */
export const CLUSTER_LEDGER_SETTINGS: { record: ClickHouseSettings; read: ClickHouseSettings } = {
  record: { insert_quorum: 'auto', insert_quorum_parallel: 0, insert_quorum_timeout: 20_000 },
  read: { select_sequential_consistency: '1', optimize_skip_unused_shards: 1 },
};

export class BatchLedger implements Ledger {
  private readonly recordSettings: ClickHouseSettings | undefined;
  private readonly readSettings: ClickHouseSettings | undefined;

  constructor(
    private readonly client: ClickHouseClient,
    readonly table: string,
    layout: 'server' | 'cluster' = 'server',
  ) {
    this.recordSettings = layout === 'cluster' ? CLUSTER_LEDGER_SETTINGS.record : undefined;
    this.readSettings = layout === 'cluster' ? CLUSTER_LEDGER_SETTINGS.read : undefined;
  }

  async latest(topic: string, partition: number): Promise<RecordedBatch | undefined> {
    return this.one(
      topic,
      partition,
      `SELECT ${COLUMNS} FROM ${this.table} WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:UInt32}
       ORDER BY generation DESC, last_offset DESC LIMIT 1`,
      {},
    );
  }

  async boundaryWithin(topic: string, partition: number, generation: number, from: bigint, to: bigint): Promise<RecordedBatch | undefined> {
    return this.one(
      topic,
      partition,
      `SELECT ${COLUMNS} FROM ${this.table}
       WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:UInt32} AND generation = {generation:UInt32}
         AND first_fingerprint != '' AND (first_offset BETWEEN {from:UInt64} AND {to:UInt64} OR last_offset BETWEEN {from:UInt64} AND {to:UInt64})
       ORDER BY last_offset DESC LIMIT 1`,
      { generation, from: from.toString(), to: to.toString() },
    );
  }

  /** Any failure is retriable: the row is made here and always fits the table. A repeated row is harmless. */
  async record(batch: RecordedBatch): Promise<SinkResult> {
    const row = {
      kafka_topic: batch.topic,
      kafka_partition: batch.partition,
      generation: batch.generation,
      first_offset: batch.first.toString(),
      last_offset: batch.last.toString(),
      first_fingerprint: batch.firstFingerprint,
      last_fingerprint: batch.lastFingerprint,
    };
    try {
      await this.client.insert({ table: this.table, values: [row], format: 'JSONEachRow', clickhouse_settings: this.recordSettings });
      return { ok: true };
    } catch (error) {
      return { ok: false, error: `cannot record the batch in ${this.table}: ${describeError(error)}`, retriable: true };
    }
  }

  private async one(topic: string, partition: number, query: string, params: Record<string, unknown>): Promise<RecordedBatch | undefined> {
    const result = await this.client.query({ query, query_params: { topic, partition, ...params }, format: 'JSONEachRow', clickhouse_settings: this.readSettings });
    const [row] = await result.json<LedgerRow>();
    if (row === undefined) return undefined;
    return {
      topic,
      partition,
      generation: Number(row.generation),
      first: BigInt(row.first),
      last: BigInt(row.last),
      firstFingerprint: row.first_fingerprint,
      lastFingerprint: row.last_fingerprint,
    };
  }
}
