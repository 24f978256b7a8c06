/**
 * The kernel side of flows: bpf/flows.bpf.c loaded, attached to its five tracepoints, told which cgroups to
 * trace, and read for its drop counters. Everything else about flows happens in user space.
 */
import { ConfigError, describeError } from '../../common/errors.js';
import { u64Codec } from '../../ebpf/codecs.js';
import { Cgroup, cgroupOfProcess } from '../../ebpf/cgroup.js';
import type { BpfMap, Codec, PerCpuCounters } from '../../ebpf/map.js';
import { BpfObject, objectPath } from '../../ebpf/object.js';
import { checkKernel } from '../../ebpf/preflight.js';
import { KERNEL_DROP_REASONS } from '../../ebpf/records/header.js';
import type { Detachable } from '../../ebpf/program.js';
import { openRingReader, type RingReader } from '../../ebpf/ringbuf.js';
import type { KernelSource } from '../record-kind.js';

export interface FlowProbeOptions {
  /** cgroup v2 directories to trace (absolute, or below the cgroup v2 root). */
  cgroups: readonly string[];
  ringBytes: number;
  /** Capacity of the tracking table (open traced connections, both sides). */
  maxConnections: number;
  activeTimeoutMs: number;
}

const presence: Codec<number> = { size: 1, encode: (v, b) => void b.writeUInt8(v), decode: (b, o) => b.readUInt8(o) };

/** What governs each kernel drop of flows (enum sl_drop_reason). */
const KERNEL_DROP_REMEDIES: Record<(typeof KERNEL_DROP_REASONS)[number], string> = {
  ringbuf_full: 'the collector drains the ring too slowly for the burst: raise collector.ringBytes',
  conn_table_full: 'more open traced connections than the tracking table holds: raise collector.maxConnections',
};

/**
 * The ids of the cgroups to trace, checked before anything is loaded: a path that does not exist or lies outside
 * the cgroup v2 mount, or an empty list (nothing would ever be traced), stops the collector naming collector.cgroups.
 */
function tracedCgroupIds(paths: readonly string[]): bigint[] {
  if (paths.length === 0) {
    throw new ConfigError('collector.cgroups', 'is empty, so nothing would be traced: list the cgroup v2 directories of the workloads to trace (e.g. kubepods.slice)');
  }
  return paths.map((cgroupPath) => {
    try {
      return Cgroup.at(cgroupPath).id;
    } catch (error) {
      throw new ConfigError('collector.cgroups', describeError(error));
    }
  });
}

export class FlowProbe implements KernelSource {
  readonly kernelDropRemedies = KERNEL_DROP_REMEDIES;
  readonly reader: RingReader;
  private readonly traced: BpfMap<bigint, number>;
  private readonly drops: PerCpuCounters;
  private readonly links: Detachable[] = [];
  private readonly lastDrops = KERNEL_DROP_REASONS.map(() => 0n);

  private constructor(private readonly object: BpfObject) {
    this.reader = openRingReader(object, 'flow_ring');
    this.traced = object.map('traced_cgroups').typed(u64Codec, presence);
    // Looked up once: read on every flush tick.
    this.drops = object.map('drops').perCpuCounters();
  }

  static load(options: FlowProbeOptions): FlowProbe {
    checkKernel(['btf', 'bpf', 'perfmon', 'cgroup2', 'tracefs']);
    const cgroupIds = tracedCgroupIds(options.cgroups);
    const object = BpfObject.load(objectPath('flows'), {
      rodata: {
        // Our own sockets (Kafka, ClickHouse, metrics) must never become flow records.
        agent_cgroup_id: cgroupOfProcess().id,
        active_timeout_ns: BigInt(options.activeTimeoutMs) * 1_000_000n,
        // The collector, once woken, lets records gather for collector.flushMs before it drains: a quarter of the
        // ring unread wakes it early, which leaves three quarters for the burst until it drains.
        ring_wakeup_bytes: BigInt(options.ringBytes / 4),
      },
      maxEntries: { flow_ring: options.ringBytes, conns: options.maxConnections },
    });
    try {
      const probe = new FlowProbe(object);
      for (const id of cgroupIds) probe.traced.update(id, 1);
      probe.links.push(
        object.program('flow_state_change').attachTracepoint('sock', 'inet_sock_set_state'),
        object.program('flow_interim').attachTracepoint('tcp', 'tcp_probe'),
        object.program('flow_retransmit').attachTracepoint('tcp', 'tcp_retransmit_skb'),
        object.program('flow_reset_received').attachTracepoint('tcp', 'tcp_receive_reset'),
        object.program('flow_reset_sent').attachTracepoint('tcp', 'tcp_send_reset'),
      );
      return probe;
    } catch (error) {
      object.close();
      throw error;
    }
  }

  /** Detaches the programs: no record is written after this; the ring and maps stay readable until close(). */
  stop(): void {
    for (const link of this.links.splice(0)) link.detach();
  }

  /** Kernel drops since the previous call, by reason. */
  takeKernelDrops(): Array<[reason: string, count: number]> {
    const totals = this.drops.readAll();
    const deltas: Array<[string, number]> = [];
    KERNEL_DROP_REASONS.forEach((reason, index) => {
      const total = totals[index] ?? 0n;
      if (total > this.lastDrops[index]!) deltas.push([reason, Number(total - this.lastDrops[index]!)]);
      this.lastDrops[index] = total;
    });
    return deltas;
  }

  close(): void {
    this.object.close();
  }
}
