/**
 * The dead-letter topic: records that could not be decoded or applied, kept byte for byte under their original
 * key, with why and where from in headers, so nothing bad is silently skipped and an operator can replay it.
 */
import kafkajs, { type Kafka, type Producer } from 'kafkajs';

const { Partitioners } = kafkajs;

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  reason: string;
}

export class DeadLetterProducer {
  private readonly producer: Producer;
  private connected = false;

  constructor(
    kafka: Kafka,
    readonly topic: string,
  ) {
    // Keyed by the original key: the Java-compatible partitioner puts a key where any other client would.
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  }

  /** Throws on failure: the caller must not commit past records it could not dead-letter. */
  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: letters.map((letter) => ({
        key: letter.key,
        value: letter.value,
        headers: {
          'sidecarless-error': letter.reason,
          'sidecarless-source-topic': letter.topic,
          'sidecarless-source-partition': String(letter.partition),
          'sidecarless-source-offset': letter.offset,
        },
      })),
    });
  }

  async shutdown(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }
}
