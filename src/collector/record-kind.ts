/**
 * What one kind of ring record brings to the generic collector (src/collector/collector.ts): its kernel side,
 * how a record becomes an event, and the topic contract the events follow. One folder per kind
 * (src/collector/flows/, later http/ and verdicts/) exports one RecordKind; src/collector/kinds.ts lists them.
 */
import type { PackedTopicContract } from '../events/contract.js';
import type { Config } from '../common/config.js';
import type { RingReader } from '../ebpf/ringbuf.js';

/** Who is collecting, passed to every transform: events name their node and carry wall-clock times. */
export interface CollectorContext {
  nodeName: string;
  /** Distinguishes this collector run: kernel connection ids restart when the programs are loaded again. */
  epoch: string;
  /** Kernel monotonic ns -> wall-clock ns since the epoch. */
  toWallNs(monotonicNs: bigint): bigint;
}

/** The loaded and attached kernel programs of one kind, and the ring they write. */
export interface KernelSource {
  readonly reader: Pick<RingReader, 'drain' | 'wait'>;
  /** Kernel drops since the previous call, by reason. */
  takeKernelDrops(): Array<[reason: string, count: number]>;
  /** Per kernel drop reason, the setting or cause that governs it (logged with the drops). */
  readonly kernelDropRemedies: Readonly<Record<string, string>>;
  /** Stops the kernel from writing more records; the ring stays readable until close(). */
  stop(): void;
  close(): void;
}

export interface RecordKind<Event, Value = unknown> {
  /** As in metrics (`record_kind`) and logs: `flows`. */
  readonly name: string;
  readonly contract: PackedTopicContract<Event, Value>;
  /** Loads and attaches the kind's kernel programs; throws a KernelError or ConfigError naming what is wrong. */
  load(config: Config['collector']): KernelSource;
  /** One ring record -> its event. Pure; throws a DecodeError on a record it cannot read. */
  toEvent(view: DataView, offset: number, size: number, context: CollectorContext): Event;
}
