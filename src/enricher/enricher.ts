/**
 * The enricher's pipeline for one Kafka batch (one partition) of one event topic (flows, http, verdicts): decode ->
 * rows -> ClickHouse, dead letters aside. One Enricher per topic, each with its table (EventTable: flow-row.ts,
 * http-row.ts, verdict-row.ts).
 *
 *   1. Where the partition stands comes from the batch ledger (batch-ledger.ts): its generation, the last offset
 *      recorded, and that last batch, whose insert may have been cut short.
 *   2. A batch that reaches back to or below that offset (a restart or rebalance before the commit, an offset reset,
 *      a recreated topic) is verified first (verify): the message at a recorded batch boundary compared with its
 *      fingerprint, or the log found to end below the stored offset. Other messages than those stored: the topic
 *      was deleted and recreated (or truncated); that is logged once as an error and the partition starts its next
 *      generation, storing every message of it. The same messages: those before the last recorded batch are
 *      skipped, and that batch is replayed whole (held until a refetch delivers all of it, uncommitted meanwhile)
 *      with its own token, so ClickHouse writes exactly the parts it lacks.
 *   3. New messages: their batch is recorded in the ledger before anything else, so a crash at any later point is
 *      replayed exactly.
 *   4. The batch waits at the metadata gate (metadata-gate.ts) until the Kubernetes metadata of its time is known,
 *      or its hold expires; nothing is stored or committed meanwhile, so a crash while it is held replays it (the
 *      ledger already names it: step 2 takes it again whole, with the same token).
 *   5. Each message is decoded (Avro FlowBatch, HttpBatch or VerdictBatch, any compatible writer version), each
 *      event joined with the identities of its two ends at its table's join time (a flow's start, a request's start,
 *      a decision's time), and written as a row (RowBinary, as they come: row-binary.ts);
 *      a message that does not decode, or holds a row the table cannot take, becomes a dead letter with the
 *      reason, and the rest go on.
 *   6. Dead letters are produced first, then the rows are inserted with the batch's token (the edge rollup's view
 *      deduplicates by it as well); a retriable failure is retried with back-off until it succeeds or the consumer
 *      stops (then nothing is committed and the batch comes again).
 *   7. Returns what the consumer may commit: the offset after the batch once it is stored.
 *
 * What a recreated topic can still hide (without topic ids, see batch-ledger.ts):
 * - a running consumer fetches from its own position, above everything stored; if the new topic has grown past it
 *   before that fetch, the fetch succeeds and the new topic's messages below it are never seen, nor anything told;
 * - a recreated topic already longer than the stored position, fetched where no recorded batch begins or ends (the
 *   rows of its first batches expired: the old topic lived longer than clickhouse.ttlDays) is unverified: warned
 *   about, and its messages up to the position are taken as stored.
 * And one false alarm: right after a leader failover the high watermark can lag the log for a moment; an overlapping
 * fetch with no recorded boundary in it then looks like a shorter log, and is stored again as a new generation.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Meter } from '@opentelemetry/api';
import { describeError, SidecarlessError } from '../common/errors.js';
import type { DeadLetter } from '../common/kafka/dead-letter.js';
import type { Logger } from '../common/logger.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { SinkResult } from '../common/pipeline.js';
import { batchToken, fingerprint, replayable, type Ledger, type RecordedBatch } from './batch-ledger.js';
import type { FlowJoin, MetadataGate } from './metadata-gate.js';
import type { EventTable, RowBinaryRows } from './row-binary.js';

export interface KafkaMessage {
  offset: string;
  /** As the broker stores it (milliseconds): part of the message's fingerprint. */
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface KafkaBatch {
  topic: string;
  partition: number;
  /** The partition's log end as the fetch saw it (kafkajs batch.highWatermark): the next offset to be written. */
  highWatermark: string;
  messages: readonly KafkaMessage[];
}

export interface EnricherDeps<Event> {
  /** One message value -> its events (the topic contract's codec). */
  decode(value: Buffer): readonly Event[];
  /**
   * The events' table: its rows (bench/enrich-join's baseline gives flows rows without the identity columns, as they
   * were before the join) and when an event's ends are named.
   */
  table: EventTable<Event>;
  sink: { insert(rows: RowBinaryRows<Event>, token: string): Promise<SinkResult> };
  ledger: Ledger;
  /** When a batch may be joined with the metadata of its time, and the join. */
  gate: Pick<MetadataGate, 'open'>;
  deadLetters: { send(letters: readonly DeadLetter[]): Promise<void> };
  logger: Logger;
  meter: Meter;
  /** False once the consumer is stopping: retries give up and the batch is not committed. */
  isRunning(): boolean;
}

/** The outcome of a batch the consumer goes past: the offset to commit, or none while a replay waits for the rest. */
export interface Handled {
  commit: string | undefined;
}

const MAX_BACKOFF_MS = 5000;

/** The consumer-group session a batch was fetched in (kafkajs eachBatch's heartbeat and isStale). */
export interface ConsumerSession {
  heartbeat(): Promise<void>;
  isStale(): boolean;
}

const IDLE_SESSION: ConsumerSession = { heartbeat: async () => {}, isStale: () => false };

/** Where a partition stands, from the ledger at its first batch and kept up to date after. */
interface PartitionState {
  generation: number;
  /** The last offset recorded in the ledger (-1 when none): at or below it, messages are stored or being stored. */
  position: bigint;
  /** The batch recorded at `position`: the one a restart replays. */
  latest: RecordedBatch | undefined;
  /** Messages of `latest` fetched so far, while a refetch delivers it in pieces. */
  held: KafkaMessage[];
  /** The last offset of the previous batch handled (in this process, since the partition was assigned). */
  handledThrough: bigint | undefined;
}

type Verdict = 'same' | 'other messages' | 'unverified';

/** What leads the enricher to skip messages it cannot prove stored, and what to do about it. */
const UNCERTAIN_REMEDIES = {
  replay_incomplete:
    'the last recorded batch could not be replayed whole because Kafka no longer holds all of it: keep topic retention longer than the longest enricher outage',
  unverified_overlap:
    'messages at or below the stored position could not be checked against the batch ledger (its rows expired, or the topic was recreated and grew past the position): keep clickhouse.ttlDays longer than topic retention; compare the topic with the table',
} as const;

export class Enricher<Event> {
  private readonly partitions = new Map<string, PartitionState>();
  private readonly counters;
  /** Messages skipped as stored without proof that they are: possibly lost, so counted as drops with a reason. */
  private readonly uncertain: DropCounter;

  constructor(private readonly deps: EnricherDeps<Event>) {
    const meter = deps.meter;
    this.uncertain = createDropCounter(meter, deps.logger, { name: 'enricher.uncertain', remedies: UNCERTAIN_REMEDIES });
    this.counters = {
      rows: meter.createCounter('sidecarless.enricher.rows_inserted', { description: 'Rows stored in ClickHouse', unit: '{row}' }),
      skipped: meter.createCounter('sidecarless.enricher.messages_already_stored', { description: 'Replayed messages found already stored', unit: '{message}' }),
      deadLetters: meter.createCounter('sidecarless.enricher.dead_letters', { description: 'Messages sent to the dead-letter topic', unit: '{message}' }),
      retries: meter.createCounter('sidecarless.enricher.insert_retries', { description: 'Failed inserts retried', unit: '{insert}' }),
      generations: meter.createCounter('sidecarless.enricher.recreated_partitions', { description: 'Topic partitions found deleted and recreated (or truncated)', unit: '{partition}' }),
    };
  }

  /** Forget where partitions stand (after a rebalance another member may have written more). */
  forgetPartitions(): void {
    this.partitions.clear();
  }

  /**
   * Stores the batch; resolves to what may be committed, or undefined when stopped before it was stored (then the
   * consumer fetches it again). `session` keeps the consumer's group membership alive while an insert is retried
   * (a ClickHouse outage can last longer than the session timeout) and says when the partition was taken away.
   */
  async handle(batch: KafkaBatch, session: ConsumerSession = IDLE_SESSION): Promise<Handled | undefined> {
    const last = batch.messages.at(-1);
    if (!last) return undefined;
    const arrivedAtMs = Date.now();
    const state = await this.partition(batch.topic, batch.partition);
    const first = BigInt(batch.messages[0]!.offset);
    // Fetches go forward; one that starts at or before the previous batch's end is a refetch or an offset reset
    // (a restart, a rebalance, a recreated topic), looked at afresh. Others go on from the previous batch.
    let verdict: Verdict = 'same';
    if (state.handledThrough === undefined || first <= state.handledThrough) {
      state.held = [];
      if (first <= state.position) verdict = await this.verify(batch, state);
      if (verdict === 'other messages') this.nextGeneration(batch, state);
    }

    const fresh: KafkaMessage[] = [];
    let skipped = 0;
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (offset > state.position) fresh.push(message);
      else if (state.latest !== undefined && replayable(state.latest) && offset >= state.latest.first) state.held.push(message);
      else skipped++;
    }
    if (state.held.length > 0) {
      const replay = state.latest!;
      const held = state.held;
      const fromStart = BigInt(held[0]!.offset) === replay.first;
      if (fromStart && BigInt(held.at(-1)!.offset) === replay.last) {
        state.held = [];
        if ((await this.store(batch, held, replay, session, arrivedAtMs)) === 'stopped') return undefined;
      } else if (fromStart && fresh.length === 0) {
        // The refetch ended inside the batch: the rest comes with the next fetch, and nothing is committed until then.
        state.handledThrough = BigInt(last.offset);
        return { commit: undefined };
      } else {
        this.deps.logger.warn(
          { topic: batch.topic, partition: batch.partition, first: replay.first.toString(), last: replay.last.toString(), fetched: `${held[0]!.offset}-${held.at(-1)!.offset}` },
          'the last recorded batch cannot be replayed whole: Kafka no longer holds all of its messages (retention); treating it as stored, though a crash may have cut its insert short',
        );
        this.uncertain.add('replay_incomplete', held.length);
        state.held = [];
      }
    }
    if (skipped > 0 && verdict === 'unverified') this.uncertain.add('unverified_overlap', skipped);
    else if (skipped > 0) this.counters.skipped.add(skipped);

    if (fresh.length > 0) {
      const record: RecordedBatch = {
        topic: batch.topic,
        partition: batch.partition,
        generation: state.generation,
        first: BigInt(fresh[0]!.offset),
        last: BigInt(last.offset),
        firstFingerprint: fingerprint(fresh[0]!),
        lastFingerprint: fingerprint(last),
      };
      // Recorded before the insert: from here on, a restart replays exactly this batch.
      if ((await this.withRetry(() => this.deps.ledger.record(record), batchToken(record), session)) !== 'stored') return undefined;
      state.position = record.last;
      state.latest = record;
      if ((await this.store(batch, fresh, record, session, arrivedAtMs)) === 'stopped') return undefined;
    }
    state.handledThrough = BigInt(last.offset);
    return { commit: nextOffset(last.offset) };
  }

  private async partition(topic: string, partition: number): Promise<PartitionState> {
    const key = `${topic}/${partition}`;
    let state = this.partitions.get(key);
    if (state === undefined) {
      const latest = await this.deps.ledger.latest(topic, partition);
      state = { generation: latest?.generation ?? 0, position: latest?.last ?? -1n, latest, held: [], handledThrough: undefined };
      this.partitions.set(key, state);
    }
    return state;
  }

  /**
   * Does the partition still hold the messages stored up to `state.position`? Conclusive evidence, in order:
   *   1. a batch boundary recorded among the batch's offsets up to the position: the message there has the
   *      recorded fingerprint, or not. A refetch after a restart or rebalance starts at a committed offset, which
   *      is always where a recorded batch begins; a recreated topic starts where the first recorded batch began
   *      (offset 0, while its row is kept);
   *   2. the log ends at or below the position: a log only grows, so this is another one (typically a recreated
   *      topic that is still shorter than the one stored).
   * Neither (a reset to an offset whose batch rows have expired, a recreated topic already longer than the stored
   * position with no recorded boundary among its first offsets): treated as the same log, with a warning.
   */
  private async verify(batch: KafkaBatch, state: PartitionState): Promise<Verdict> {
    const from = BigInt(batch.messages[0]!.offset);
    const lastOffset = BigInt(batch.messages.at(-1)!.offset);
    const to = lastOffset < state.position ? lastOffset : state.position;
    const recorded = await this.deps.ledger.boundaryWithin(batch.topic, batch.partition, state.generation, from, to);
    if (recorded !== undefined) {
      for (const [offset, recordedFingerprint] of [[recorded.first, recorded.firstFingerprint], [recorded.last, recorded.lastFingerprint]] as const) {
        if (offset < from || offset > to) continue;
        const message = batch.messages.find((m) => BigInt(m.offset) === offset);
        if (message !== undefined) return fingerprint(message) === recordedFingerprint ? 'same' : 'other messages';
      }
    }
    if (BigInt(batch.highWatermark) <= state.position) return 'other messages';
    this.deps.logger.warn(
      { topic: batch.topic, partition: batch.partition, generation: state.generation, storedThrough: state.position.toString(), from: from.toString() },
      'cannot verify that the partition still holds the messages stored from it (no recorded batch boundary among the offsets fetched, and the log reaches beyond them): treating them as stored',
    );
    return 'unverified';
  }

  /** The partition's log is another one than was stored: its messages are all new, under the next generation. */
  private nextGeneration(batch: KafkaBatch, state: PartitionState): void {
    const generation = state.generation + 1;
    this.counters.generations.add(1);
    this.deps.logger.error(
      {
        topic: batch.topic,
        partition: batch.partition,
        generation,
        storedThrough: state.position.toString(),
        from: batch.messages[0]!.offset,
        highWatermark: batch.highWatermark,
      },
      `topic ${batch.topic} partition ${batch.partition} holds other messages at offsets already stored (up to ${state.position}): ` +
        `the topic was deleted and recreated (or its log truncated); storing its messages from offset ${batch.messages[0]!.offset} on as generation ${generation}`,
    );
    state.generation = generation;
    state.position = -1n;
    state.latest = undefined;
  }

  /**
   * Waits at the gate, then dead letters, then the rows of `messages` (the whole recorded batch `record`) under the
   * batch's token.
   */
  private async store(
    batch: KafkaBatch,
    messages: readonly KafkaMessage[],
    record: RecordedBatch,
    session: ConsumerSession,
    arrivedAtMs: number,
  ): Promise<'stored' | 'stopped'> {
    const keepAlive = async (): Promise<boolean> => {
      if (!this.deps.isRunning() || session.isStale()) return false;
      // A failed heartbeat means a rebalance: give the batch up so that the consumer can rejoin at once.
      return session.heartbeat().then(
        () => true,
        () => false,
      );
    };
    let boundNs = timestampBound(messages);
    let joined: JoinedRows<Event> | undefined;
    while (joined === undefined) {
      const join = await this.deps.gate.open(arrivedAtMs, boundNs, keepAlive);
      if (join === undefined) return 'stopped';
      const pass = this.joinRows(batch, messages, join);
      if ('beyondNs' in pass) boundNs = pass.beyondNs;
      else joined = pass;
    }
    const { rows, letters, decoded } = joined;
    await this.sendDeadLetters(letters);
    if (rows.length === 0) return released(rows, 'stored');
    const outcome = await this.withRetry(() => this.deps.sink.insert(rows, batchToken(record)), batchToken(record), session);
    if (outcome === 'stopped') return 'stopped';
    if (outcome === 'stored') this.counters.rows.add(rows.length);
    else await this.sendDeadLetters(decoded.map((message) => this.letter(batch, message, `ClickHouse refused the rows: ${outcome.rejected}`)));
    return released(rows, 'stored');
  }

  /**
   * Decodes and joins the messages into rows (as they come: each message's events can go at once), or says how
   * far the batch's events reach beyond what the join may name yet.
   */
  private joinRows(batch: KafkaBatch, messages: readonly KafkaMessage[], join: FlowJoin): JoinedRows<Event> | { beyondNs: bigint } {
    const { table } = this.deps;
    const rows = table.rows(rowBytesEstimate(messages));
    const letters: DeadLetter[] = [];
    const decoded: KafkaMessage[] = [];
    let beyondNs: bigint | undefined;
    for (const message of messages) {
      const checkpoint = rows.checkpoint();
      try {
        if (message.value === null) throw new SidecarlessError('empty message value (a tombstone on an event topic)');
        const position = { topic: batch.topic, partition: batch.partition, offset: message.offset };
        for (const event of this.deps.decode(message.value)) {
          const atNs = table.joinTimeNs(event);
          const identities = join.identities(table.ends(event), atNs);
          if (identities !== undefined) rows.add(event, identities, position);
          else if (beyondNs === undefined || atNs > beyondNs) beyondNs = atNs;
        }
        decoded.push(message);
      } catch (error) {
        // Undecodable, or a row the table cannot hold (RejectedValueError): the whole message goes to the dead letters.
        rows.restore(checkpoint);
        letters.push(this.letter(batch, message, describeError(error)));
      }
    }
    return beyondNs === undefined ? { rows, letters, decoded } : released(rows, { beyondNs });
  }

  private letter(batch: KafkaBatch, message: KafkaMessage, reason: string): DeadLetter {
    return { topic: batch.topic, partition: batch.partition, offset: message.offset, key: message.key, value: message.value, reason };
  }

  private async sendDeadLetters(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.deps.deadLetters.send(letters);
    this.counters.deadLetters.add(letters.length);
    const { topic, partition, reason } = letters[0]!;
    this.deps.logger.warn({ topic, partition, offsets: letters.map((l) => l.offset), reason }, 'sent messages to the dead-letter topic');
  }

  /** A refusal that retrying cannot fix (the rows themselves are wrong) is returned for the dead letters. */
  private async withRetry(attempt: () => Promise<SinkResult>, token: string, session: ConsumerSession): Promise<'stored' | 'stopped' | { rejected: string }> {
    let backoffMs = 100;
    for (;;) {
      const result = await attempt();
      if (result.ok) return 'stored';
      if (!result.retriable) return { rejected: result.error };
      this.counters.retries.add(1);
      this.deps.logger.warn({ error: result.error, token, backoffMs }, 'insert failed; retrying');
      // Stopping, or the partition went to another member: give up without committing; the batch comes again.
      if (!this.deps.isRunning() || session.isStale()) return 'stopped';
      await session.heartbeat().catch(() => {}); // a failed heartbeat means a rebalance: isStale() tells next time
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
  }
}

interface JoinedRows<Event> {
  rows: RowBinaryRows<Event>;
  letters: DeadLetter[];
  /** The messages whose rows are in `rows`. */
  decoded: KafkaMessage[];
}

/**
 * Room for the rows of the messages, so that their buffer is rarely grown (each growth copies every row so far, and
 * a 32 MiB batch grew through eight of them): a row takes about 1.5 times its Avro event's bytes (fixed-width
 * numbers, addresses as 16 bytes), about 3 to 3.5 times with the names and labels of both ends (bench/enricher,
 * bench/enrich-join), so room for 4 times: pages of the buffer that are never written are never mapped.
 */
function rowBytesEstimate(messages: readonly KafkaMessage[]): number {
  let bytes = 0;
  for (const message of messages) bytes += message.value?.length ?? 0;
  return 4 * bytes + 64 * 1024;
}

/**
 * No event of the messages is later than this (ns): the newest message timestamp (ms, rounded down by Kafka), to
 * the end of its millisecond. A producer stamps a message after the events it packs; one that does not is caught
 * when its events are joined (FlowJoin.identities).
 */
function timestampBound(messages: readonly KafkaMessage[]): bigint {
  let newestMs = 0n;
  for (const message of messages) {
    const ms = BigInt(message.timestamp);
    if (ms > newestMs) newestMs = ms;
  }
  return (newestMs + 1n) * 1_000_000n - 1n;
}

/** Gives the rows' buffer back for the next batch's rows (RowBinaryRows.release) once they are done with; returns `result`. */
function released<T>(rows: RowBinaryRows<unknown>, result: T): T {
  rows.release();
  return result;
}

function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}
