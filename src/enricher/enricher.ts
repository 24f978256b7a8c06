/**
 * The enricher's pipeline for one Kafka batch (one partition): decode -> rows -> ClickHouse, dead letters aside.
 *
 *   1. Skip messages at or below the offset the table already holds for the partition (a replay after a crash
 *      between insert and commit).
 *   2. Decode each message (Avro FlowBatch, any compatible writer version) and write its rows (RowBinary, as they
 *      come: src/enricher/flow-row.ts); a message that does not decode, or holds a row the table cannot take,
 *      becomes a dead letter with the reason, and the rest go on.
 *   3. Dead letters are produced first, then the rows are inserted with a token naming the offset range; a
 *      retriable failure is retried with back-off until it succeeds or the consumer stops (then nothing is
 *      committed and the batch comes again).
 *   4. Returns the offset to commit: the batch is stored.
 * Node-level for now: Kubernetes metadata joins come with the metadata topic.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Meter } from '@opentelemetry/api';
import type { FlowEvent } from '../events/flows.js';
import { describeError, SidecarlessError } from '../common/errors.js';
import type { DeadLetter } from '../common/kafka/dead-letter.js';
import type { Logger } from '../common/logger.js';
import type { SinkResult } from '../common/pipeline.js';
import { FlowRows } from './flow-row.js';

export interface KafkaMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface KafkaBatch {
  topic: string;
  partition: number;
  messages: readonly KafkaMessage[];
}

export interface EnricherDeps {
  /** One message value -> its events (the flows contract's codec). */
  decode(value: Buffer): readonly FlowEvent[];
  sink: { storedOffset(topic: string, partition: number): Promise<bigint>; insert(rows: FlowRows, token: string): Promise<SinkResult> };
  deadLetters: { send(letters: readonly DeadLetter[]): Promise<void> };
  logger: Logger;
  meter: Meter;
  /** False once the consumer is stopping: retries give up and the batch is not committed. */
  isRunning(): boolean;
}

const MAX_BACKOFF_MS = 5000;

/** The consumer-group session a batch was fetched in (kafkajs eachBatch's heartbeat and isStale). */
export interface ConsumerSession {
  heartbeat(): Promise<void>;
  isStale(): boolean;
}

const IDLE_SESSION: ConsumerSession = { heartbeat: async () => {}, isStale: () => false };

export class Enricher {
  private readonly stored = new Map<string, bigint>();
  private readonly counters;

  constructor(private readonly deps: EnricherDeps) {
    const meter = deps.meter;
    this.counters = {
      rows: meter.createCounter('sidecarless.enricher.rows_inserted', { description: 'Rows stored in ClickHouse', unit: '{row}' }),
      skipped: meter.createCounter('sidecarless.enricher.messages_already_stored', { description: 'Replayed messages found already stored', unit: '{message}' }),
      deadLetters: meter.createCounter('sidecarless.enricher.dead_letters', { description: 'Messages sent to the dead-letter topic', unit: '{message}' }),
      retries: meter.createCounter('sidecarless.enricher.insert_retries', { description: 'Failed inserts retried', unit: '{insert}' }),
    };
  }

  /** Forget stored offsets (after a rebalance another member may have written more). */
  forgetPartitions(): void {
    this.stored.clear();
  }

  /** Stores the batch; resolves to the offset to commit, or undefined when stopped before it was stored. */
  /**
   * `session` keeps the consumer's group membership alive while an insert is retried (a ClickHouse outage can last
   * longer than the session timeout) and says when the partition was taken away meanwhile.
   */
  async handle(batch: KafkaBatch, session: ConsumerSession = IDLE_SESSION): Promise<string | undefined> {
    const last = batch.messages.at(-1);
    if (!last) return undefined;
    const partitionKey = `${batch.topic}/${batch.partition}`;
    let stored = this.stored.get(partitionKey);
    if (stored === undefined) {
      stored = await this.deps.sink.storedOffset(batch.topic, batch.partition);
      this.stored.set(partitionKey, stored);
    }

    // Rows are written as they are decoded (src/enricher/flow-row.ts): each message's events can go at once.
    const rows = new FlowRows();
    const letters: DeadLetter[] = [];
    const decoded: KafkaMessage[] = [];
    let first: string | undefined;
    let skipped = 0;
    for (const message of batch.messages) {
      if (BigInt(message.offset) <= stored) {
        skipped++;
        continue;
      }
      first ??= message.offset;
      const checkpoint = rows.checkpoint();
      try {
        if (message.value === null) throw new SidecarlessError('empty message value (a tombstone on an event topic)');
        const position = { topic: batch.topic, partition: batch.partition, offset: message.offset };
        for (const event of this.deps.decode(message.value)) rows.add(event, position);
        decoded.push(message);
      } catch (error) {
        // Undecodable, or a row the table cannot hold (RejectedValueError): the whole message goes to the dead letters.
        rows.restore(checkpoint);
        letters.push(this.letter(batch, message, describeError(error)));
      }
    }
    if (skipped > 0) this.counters.skipped.add(skipped);
    if (first === undefined) return nextOffset(last.offset);

    await this.sendDeadLetters(letters);
    if (rows.length > 0) {
      const outcome = await this.insertWithRetry(rows, `${partitionKey}/${first}-${last.offset}`, session);
      if (outcome === 'stopped') return undefined;
      if (outcome === 'stored') this.counters.rows.add(rows.length);
      else await this.sendDeadLetters(decoded.map((message) => this.letter(batch, message, outcome.rejected)));
    }
    this.stored.set(partitionKey, BigInt(last.offset));
    return nextOffset(last.offset);
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

  /** A refusal that retrying cannot fix (the rows themselves are wrong) sends the batch to the dead letters. */
  private async insertWithRetry(rows: FlowRows, token: string, session: ConsumerSession): Promise<'stored' | 'stopped' | { rejected: string }> {
    let backoffMs = 100;
    for (;;) {
      const result = await this.deps.sink.insert(rows, token);
      if (result.ok) return 'stored';
      if (!result.retriable) return { rejected: `ClickHouse refused the rows: ${result.error}` };
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

function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}
