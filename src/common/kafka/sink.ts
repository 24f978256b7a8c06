/**
 * Produces batches of messages to one topic: the collector's sealed messages (each with its partition already
 * chosen), or keyed messages of a compacted topic. Returns a SinkResult instead of
 * throwing (DESIGN rule 7): the caller keeps the messages and retries on `retriable`. The producer is idempotent,
 * so a retry after a lost acknowledgement does not write a message twice.
 */
import type { Kafka, Message } from 'kafkajs';
import { describeError } from '../errors.js';
import type { Sink, SinkResult } from '../pipeline.js';
import { LazyProducer } from './producer.js';

/** A sealed message: its value packs `events` events, all of which belong to `partition`. */
export interface OutMessage {
  partition: number;
  value: Buffer;
  events: number;
}

/**
 * Broker answers that say the messages themselves are unacceptable: sending them again cannot succeed. Anything
 * else (connection refused, retries exhausted, leader moved, timeouts) is an outage to ride out. kafkajs marks
 * "retries exhausted" as non-retriable, so its own flag cannot tell the two apart.
 */
const MESSAGE_ERRORS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP']);

/** The broker no longer accepts this producer's sequence numbers: only a new producer id gets through. */
const PRODUCER_STATE_ERRORS = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH']);

/** Whether `error`, or an error it wraps, is of one of the Kafka error types. */
function isKafkaError(error: unknown, types: ReadonlySet<string>): boolean {
  for (let e = error as { type?: string; cause?: unknown; originalError?: unknown } | undefined; e; e = (e.originalError ?? e.cause) as typeof e) {
    if (e.type !== undefined && types.has(e.type)) return true;
  }
  return false;
}

/**
 * Sends each batch as one produce request to one topic, with an idempotent producer and few internal retries: the
 * caller's loop owns retrying, so a broker outage surfaces quickly as a result. Subclasses say how a batch becomes
 * messages.
 */
abstract class ProducerSink<Batch> implements Sink<Batch> {
  private readonly producer: LazyProducer;

  constructor(
    kafka: Kafka,
    readonly topic: string,
  ) {
    this.producer = new LazyProducer(kafka, { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 });
  }

  protected abstract messages(batch: Batch): Message[];

  async send(batch: Batch): Promise<SinkResult> {
    try {
      await this.producer.send(this.topic, this.messages(batch));
      return { ok: true };
    } catch (error) {
      if (isKafkaError(error, PRODUCER_STATE_ERRORS)) await this.producer.reset();
      return { ok: false, error: describeError(error), retriable: !isKafkaError(error, MESSAGE_ERRORS) };
    }
  }

  shutdown(): Promise<void> {
    return this.producer.shutdown();
  }
}

/** Packed events of one partition per message, all under one key (the collector's node name). */
export class KafkaSink extends ProducerSink<OutMessage[]> {
  constructor(
    kafka: Kafka,
    topic: string,
    private readonly key: string,
  ) {
    super(kafka, topic);
  }

  protected messages(batch: OutMessage[]): Message[] {
    // Partitions were chosen by the producer from each event's partition key (src/events/contract.ts).
    return batch.map((message) => ({
      key: this.key,
      value: message.value,
      partition: message.partition,
      headers: { 'sidecarless-events': String(message.events) },
    }));
  }
}

/**
 * One event per message under its own key (a compacted topic's records): Kafka's default partitioner places it by
 * the key. A null value is a tombstone. `timestampMs` is the message timestamp (Kafka keeps milliseconds).
 */
export interface KeyedMessage {
  key: string;
  value: Buffer | null;
  timestampMs: string;
}

export class KeyedKafkaSink extends ProducerSink<KeyedMessage[]> {
  protected messages(batch: KeyedMessage[]): Message[] {
    return batch.map((message) => ({ key: message.key, value: message.value, timestamp: message.timestampMs }));
  }
}
