/**
 * A contract between roles: what one topic carries and how it is keyed. Producers and consumers both import the
 * contract (src/events/<topic>.ts), never each other, so a role can be replaced or added without touching the rest.
 *
 * Event topics pack several events into one Kafka message (a "batch" record in Avro): per-message overhead
 * dominates the producer's cost (bench/collector: packed messages cost about a fifth per event of one event per
 * message), so one event per message would cost several times more.
 * The partition of each event is chosen from its partition key exactly as Kafka's default partitioner would choose
 * it from that key, so every event of one connection lands in one partition, in order, whichever role wrote it.
 */
import type { BatchBuilder, Registry } from '../common/avro.js';

export interface PackedTopicContract<Event, Value> {
  /** Topic name after the configurable prefix (kafka.topicPrefix), e.g. `flows.v1`. */
  readonly topic: string;
  /** Avro subject of the message value in schemas/catalog.json. */
  readonly subject: string;
  /** What the message key holds (documentation for consumers; the producer sets it). */
  readonly messageKey: string;
  /** The key whose murmur2 hash picks an event's partition. */
  partitionKey(event: Event): string;
  /** Several events → one message value. */
  pack(events: Event[]): Value;
  /** One message value → its events. */
  unpack(value: Value): readonly Event[];
}

/** A contract bound to the Avro catalog: events ⇄ framed message bytes. */
export interface PackedCodec<Event> {
  /** A message built event by event: each is encoded as it is added (the value `pack` gives, without holding them). */
  builder(): BatchBuilder<Event>;
  /** Decodes with any writer version the catalog holds into the contract's version (Avro schema resolution). */
  decode(frame: Buffer): readonly Event[];
}

export function bindCodec<Event, Value>(registry: Registry, contract: PackedTopicContract<Event, Value>): PackedCodec<Event> {
  const codec = registry.codec<Value>(contract.subject);
  return {
    builder: () => codec.batchBuilder<Event>(),
    decode: (frame) => contract.unpack(registry.resolve<Value>(contract.subject, frame).value),
  };
}

/** Events that belong to one connection (flows, HTTP exchanges): their partition key. */
export interface ConnectionEvent {
  connection_id: string;
}

/**
 * The contract of a collector's event topic: events packed `{ events }` per message under the writing collector's
 * node name, each in the partition of its connection id: every event of a connection is in one partition, in
 * order, and in the same partition number on each such topic (they have as many partitions: kafka.partitions).
 */
export function collectorEventContract<Event extends ConnectionEvent>(topic: string, subject: string): PackedTopicContract<Event, { events: Event[] }> {
  return {
    topic,
    subject,
    messageKey: 'the node name of the collector that wrote the message',
    partitionKey: (event) => event.connection_id,
    pack: (events) => ({ events }),
    unpack: (batch) => batch.events,
  };
}
