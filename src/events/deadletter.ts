/**
 * The dead-letter topic (`deadletter.v1`, time-retained): messages of other topics that a role could not decode or
 * apply (schemas/avro/deadletter.v1.avsc, record dev.sidecarless.DeadLetterEvent), one per message, keyed by the
 * original key, the original bytes inside with where they came from and why.
 *
 * Writers: the enricher (flows it cannot decode or ClickHouse refuses), the enforcer (policies it cannot validate,
 * compile or fit in its maps). Readers: operators, and their tools.
 */
import type { Registry } from '../common/avro.js';
import type { DeadLetter, DeadLetterEnvelope } from '../common/kafka/dead-letter.js';

export interface DeadLetterEvent {
  time_ns: bigint;
  writer: string;
  source_topic: string;
  source_partition: number;
  source_offset: bigint;
  source_key: Buffer | null;
  source_value: Buffer | null;
  reason: string;
}

export const DEADLETTER = {
  topic: 'deadletter.v1',
  subject: 'sidecarless.deadletter.v1',
  messageKey: 'the original message key',
} as const;

export interface DeadLetterCodec {
  encode(event: DeadLetterEvent): Buffer;
  decode(value: Buffer): DeadLetterEvent;
}

export function bindDeadLetterCodec(registry: Registry): DeadLetterCodec {
  const codec = registry.codec<DeadLetterEvent>(DEADLETTER.subject);
  return {
    encode: (event) => codec.encode(event),
    decode: (value) => registry.resolve<DeadLetterEvent>(DEADLETTER.subject, value).value,
  };
}

/** The DeadLetterProducer's envelope: each letter as a DeadLetterEvent written by `writer` (`<role>/<node>`, `<role>`). */
export function deadLetterEnvelope(registry: Registry, writer: string): DeadLetterEnvelope {
  const codec = bindDeadLetterCodec(registry);
  return (letter: DeadLetter, timeNs: bigint) =>
    codec.encode({
      time_ns: timeNs,
      writer,
      source_topic: letter.topic,
      source_partition: letter.partition,
      source_offset: BigInt(letter.offset),
      source_key: letter.key,
      source_value: letter.value,
      reason: letter.reason,
    });
}
