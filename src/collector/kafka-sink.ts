/**
 * Produces sealed messages to one topic. Returns a result instead of throwing (DESIGN rule 7): the caller keeps
 * the messages and retries on `retriable`. The producer is idempotent, so a retry after a lost acknowledgement
 * does not write a message twice.
 */
import kafkajs, { type Kafka, type Producer } from 'kafkajs';
import { describeError } from '../common/errors.js';
import type { OutMessage } from './outbox.js';

const { Partitioners } = kafkajs;

export type SinkResult = { ok: true } | { ok: false; error: string; retriable: boolean };

export class KafkaSink {
  private readonly producer: Producer;
  private connected = false;

  constructor(
    kafka: Kafka,
    readonly topic: string,
    private readonly key: string,
  ) {
    // Few internal retries: the collector's loop owns retrying, so a broker outage surfaces quickly as a result.
    // Partitions are chosen by the packer (src/collector/partitioner.ts); the partitioner given here is never used.
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  async send(messages: OutMessage[]): Promise<SinkResult> {
    try {
      if (!this.connected) {
        await this.producer.connect();
        this.connected = true;
      }
      await this.producer.send({
        topic: this.topic,
        acks: -1,
        messages: messages.map((message) => ({
          key: this.key,
          value: message.value,
          partition: message.partition,
          headers: { 'sidecarless-events': String(message.events) },
        })),
      });
      return { ok: true };
    } catch (error) {
      const retriable = (error as { retriable?: boolean }).retriable !== false;
      return { ok: false, error: describeError(error), retriable };
    }
  }

  async shutdown(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }
}
