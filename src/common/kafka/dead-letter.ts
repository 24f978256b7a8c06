/**
 * The dead-letter topic: records that could not be decoded or applied, kept byte for byte under their original
 * key, with why and where from in headers, so nothing bad is silently skipped and an operator can replay it.
 */
import type { Kafka } from 'kafkajs';
import { LazyProducer } from './producer.js';

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  reason: string;
}

export class DeadLetterProducer {
  private readonly producer: LazyProducer;

  constructor(
    kafka: Kafka,
    readonly topic: string,
  ) {
    this.producer = new LazyProducer(kafka);
  }

  /** Throws on failure: the caller must not commit past records it could not dead-letter. */
  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    // Keyed by the original key, so a letter lands where any client would put that key.
    await this.producer.send(
      this.topic,
      letters.map((letter) => ({
        key: letter.key,
        value: letter.value,
        headers: {
          'sidecarless-error': letter.reason,
          'sidecarless-source-topic': letter.topic,
          'sidecarless-source-partition': String(letter.partition),
          'sidecarless-source-offset': letter.offset,
        },
      })),
    );
  }

  shutdown(): Promise<void> {
    return this.producer.shutdown();
  }
}
