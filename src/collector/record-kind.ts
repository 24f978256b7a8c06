/**
 * What one kind of ring record brings to the generic collector (src/collector/collector.ts): its kernel side,
 * how a record becomes an event, and the topic contract the events follow. One folder per kind
 * (src/collector/flows/, src/collector/http/) exports one RecordKind; src/collector/kinds.ts lists them. Verdicts
 * are not a collector kind: the enforcer reads its own verdict ring (docs/ARCHITECTURE.md, "The enforcer role").
 */
import type { AvroWriter } from '../common/avro-writer.js';
import type { Registry } from '../common/avro.js';
import type { PackedTopicContract } from '../events/contract.js';
import type { Config } from '../common/config.js';
import type { PinDirectory } from '../ebpf/pins.js';
import type { RingMapRef, RingReader } from '../ebpf/ringbuf.js';
import type { ConnectionEnds } from './connection-ends.js';
import type { ItemPacking } from './packer.js';

/** Who is collecting, passed to every transform: events name their node and carry wall-clock times. */
export interface CollectorContext {
  nodeName: string;
  /** Which run of the kernel's conn id counter the records' conn ids come from (KernelSource.epoch). */
  epoch: string;
  /** Kernel monotonic ns -> wall-clock ns since the epoch. */
  toWallNs(monotonicNs: bigint): bigint;
  /** KernelSource.firstConnId of the kind's source. */
  firstConnId: bigint;
  /** The final flow records of this run, as the flows kind reads them (src/collector/connection-ends.ts). */
  connectionEnds: ConnectionEnds;
}

/** The id every event of one socket carries, whatever its topic: <node>/<epoch>/<kernel conn id>. */
export function connectionId(context: Pick<CollectorContext, 'nodeName' | 'epoch'>, connId: bigint): string {
  return `${connectionIdPrefix(context)}${connId}`;
}

/** What every connection id of this collector run starts with: <node>/<epoch>/. */
export function connectionIdPrefix(context: Pick<CollectorContext, 'nodeName' | 'epoch'>): string {
  return `${context.nodeName}/${context.epoch}/`;
}

/**
 * How a kind turns ring records into events during one collector run. A kind whose event is one record (flows)
 * emits one per record; a kind whose events span records (HTTP: an exchange from the calls of a request and its
 * response) keeps state, emits none or several per record, and may emit on tick.
 */
export interface RecordTransform {
  /** One ring record; throws a DecodeError on a record it cannot read. */
  record(view: DataView, offset: number, size: number): void;
  /** After each read cycle of the ring (the ring drained): time-based work of a stateful kind. */
  tick?(): void;
  /** The transform's own drops since the last call, by reason (HTTP: bytes that did not become an exchange). */
  takeDrops?(): Array<[reason: string, count: number]>;
  /** Per reason of takeDrops, the setting or cause that governs it. */
  readonly dropRemedies?: Readonly<Record<string, string>>;
}

/**
 * The kernel programs of one kind, and the ring they write. They outlive the collector (pinned in bpffs, see
 * src/collector/installed-source.ts): a collector stops by closing the source, and the programs go on tracking.
 */
export interface KernelSource {
  readonly reader: Pick<RingReader, 'drain' | 'wait'>;
  /**
   * Names the run of the kernel's conn id counter (src/ebpf/conn-epoch.ts): the same across collector restarts while
   * the counter goes on, so a connection keeps one connection id.
   */
  readonly epoch: string;
  /**
   * The conn id the kernel was to hand out next when this source was opened: connections with lower ids were open
   * before this collector run, so their first records read now may be in the middle of a message.
   */
  readonly firstConnId: bigint;
  /** For the start-up log: the layout running now, whether it was adopted, which other layouts are being retired. */
  readonly status: { layout: string; adopted: boolean; retiring: readonly string[] };
  /** How much of the ring holds records not read yet, 0..1: the collector's CPU policy watches it (./cpu-policy.ts). */
  fill(): number;
  /** The ring's map, which the CPU policy's watcher thread maps for itself; absent for a ring not in the kernel. */
  readonly ring?: RingMapRef;
  /** Kernel drops since the previous call, by reason. */
  takeKernelDrops(): Array<[reason: string, count: number]>;
  /** Per kernel drop reason, the setting or cause that governs it (logged with the drops). */
  readonly kernelDropRemedies: Readonly<Record<string, string>>;
  /** Releases this process's hold on the kernel side; the programs keep running and writing the ring. */
  close(): void;
}

/**
 * A kind's records become `Item`s, which the collector packs into messages of the kind's topic: an Item need not be
 * the contract's Event. Flows emits the ring record itself, which its packing writes as the Avro of its FlowEvent;
 * HTTP emits the exchange its parser paired, written as the Avro of its HttpEvent: event objects never made
 * (src/collector/flows/, src/collector/http/).
 */
export interface RecordKind<Item, Event = Item, Value = unknown> {
  /** As in metrics (`record_kind`) and logs: `flows`. */
  readonly name: string;
  readonly contract: PackedTopicContract<Event, Value>;
  /** Whether this configuration runs the kind (omitted: always). */
  enabled?(config: Config): boolean;
  /**
   * Adopts the kind's kernel programs running on this node, or loads and attaches them; throws a KernelError or
   * ConfigError naming what is wrong. Kinds load in the order of src/collector/kinds.ts.
   */
  load(config: Config, pins: PinDirectory): KernelSource;
  /**
   * The kind's transform for one run, emitting each item through `emit`. No I/O. An item need not outlive the call
   * to `emit` (flows hands the ring record in place): the collector packs it before `emit` returns.
   */
  transform(context: CollectorContext, emit: (item: Item) => void, config: Config): RecordTransform;
  /** How this run's items become messages of `partitions` partitions of the contract's topic. */
  packing(context: CollectorContext, registry: Registry, partitions: number): ItemPacking<Item>;
  /**
   * The cgroup of the socket an item is about: its identity reaches Kafka before the item's event does
   * (src/collector/identity/), so that the enricher can name the pod.
   */
  cgroupId(item: Item): bigint;
}

/** Writes a kind's items as the Avro of its events, and picks their partitions (FlowEventWriter, HttpEventWriter). */
export interface EventWriter<Item> {
  partitionOf(item: Item, partitions: number): number;
  write(item: Item, out: AvroWriter): void;
}

/** The packing of a kind whose items are written as its batch schema's items by `writer`. */
export function writerPacking<Item>(registry: Registry, subject: string, writer: EventWriter<Item>, partitions: number): ItemPacking<Item> {
  const codec = registry.codec(subject);
  return {
    partitionOf: (item) => writer.partitionOf(item, partitions),
    messageBuilder: () => codec.batchBuilder<Item>((item, out) => writer.write(item, out)),
  };
}
