/**
 * The dead-letter topic: records that could not be decoded or applied, kept byte for byte under their original
 * key inside a DeadLetterEvent (src/events/deadletter.ts: where from, why, who gave up), with the same facts in
 * headers for tools that route on them, so nothing bad is silently skipped and an operator can replay it.
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

/** A letter as the topic's value (src/events/deadletter.ts, deadLetterEnvelope): common does not import contracts. */
export type DeadLetterEnvelope = (letter: DeadLetter, timeNs: bigint) => Buffer;

export class DeadLetterProducer {
  private readonly producer: LazyProducer;

  constructor(
    kafka: Kafka,
    readonly topic: string,
    private readonly envelope: DeadLetterEnvelope,
  ) {
    this.producer = new LazyProducer(kafka);
  }

  /** Throws on failure: the caller must not commit past records it could not dead-letter. */
  async send(letters: readonly DeadLetter[], nowMs = Date.now()): Promise<void> {
    if (letters.length === 0) return;
    const timeNs = BigInt(nowMs) * 1_000_000n;
    // Keyed by the original key, so a letter lands where any client would put that key.
    await this.producer.send(
      this.topic,
      letters.map((letter) => ({
        key: letter.key,
        value: this.envelope(letter, timeNs),
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
