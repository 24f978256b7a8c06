/**
 * The kernel side of flows: bpf/flows.bpf.c loaded, its sock_ops program attached to the traced cgroups and its
 * raw tracepoints attached, told which cgroups to trace, and read for its drop counters (the drops map, and the
 * invocations the kernel skipped). Everything else about flows happens in user space.
 */
import { ConfigError, describeError } from '../../common/errors.js';
import { u64Codec, u8Codec } from '../../ebpf/codecs.js';
import { Cgroup, cgroupOfProcess } from '../../ebpf/cgroup.js';
import type { BpfMap } from '../../ebpf/map.js';
import { BpfObject, objectPath } from '../../ebpf/object.js';
import { checkKernel } from '../../ebpf/preflight.js';
import { KERNEL_DROP_REASONS } from '../../ebpf/records/header.js';
import type { BpfProgram, Detachable } from '../../ebpf/program.js';
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

/** The invocations of flows' raw tracepoint programs the kernel skipped (their recursion_misses). */
const PROGRAM_SKIPPED = 'program_skipped';

/** What governs each kernel drop of flows (enum sl_drop_reason, and skipped programs). */
const KERNEL_DROP_REMEDIES: Record<(typeof KERNEL_DROP_REASONS)[number] | typeof PROGRAM_SKIPPED, string> = {
  ringbuf_full: 'the collector drains the ring too slowly for the burst: raise collector.ringBytes',
  conn_table_full: 'more open traced connections than the tracking table holds: raise collector.maxConnections',
  program_skipped:
    'the kernel skipped a flows tracepoint program that fired while it was already running on that CPU (softirq nesting under load): ' +
    'an owner, an interim record or a reset flag may be missing or late; connections and final records are not affected',
};

/** Raw tracepoint programs of bpf/flows.bpf.c by the event they attach to. */
const RAW_TRACEPOINTS = {
  flow_interim: 'tcp_probe',
  flow_owner_read: 'tcp_rcv_space_adjust',
  flow_owner_write: 'tcp_sendmsg_locked',
  flow_reset_sent: 'tcp_send_reset',
} as const;

/**
 * The cgroups to trace, checked before anything is loaded: a path that does not exist or lies outside the cgroup v2
 * mount, or an empty list (nothing would ever be traced), stops the collector naming collector.cgroups.
 */
function tracedCgroups(paths: readonly string[]): Cgroup[] {
  if (paths.length === 0) {
    throw new ConfigError('collector.cgroups', 'is empty, so nothing would be traced: list the cgroup v2 directories of the workloads to trace (e.g. kubepods.slice)');
  }
  return paths.map((cgroupPath) => {
    try {
      return Cgroup.at(cgroupPath);
    } catch (error) {
      throw new ConfigError('collector.cgroups', describeError(error));
    }
  });
}

/**
 * The cgroups the sock_ops program is attached to: a program attached to a cgroup runs for its descendants too,
 * so a traced cgroup below another traced one is left out (attached to both, it would run twice per callback).
 */
function outermost(cgroups: readonly Cgroup[]): Cgroup[] {
  const below = (inner: Cgroup, outer: Cgroup) => inner.path.startsWith(outer.path.endsWith('/') ? outer.path : `${outer.path}/`);
  const distinct = cgroups.filter((cgroup, index) => cgroups.findIndex((other) => other.path === cgroup.path) === index);
  return distinct.filter((cgroup) => !distinct.some((other) => other !== cgroup && below(cgroup, other)));
}

export class FlowProbe implements KernelSource {
  readonly kernelDropRemedies = KERNEL_DROP_REMEDIES;
  readonly reader: RingReader;
  private readonly traced: BpfMap<bigint, number>;
  private readonly links: Detachable[] = [];
  private readonly lastDrops = KERNEL_DROP_REASONS.map(() => 0n);
  private readonly tracingPrograms: BpfProgram[];
  private lastSkipped = 0n;

  private constructor(private readonly object: BpfObject) {
    this.reader = openRingReader(object, 'flow_ring');
    this.traced = object.map('traced_cgroups').typed(u64Codec, u8Codec);
    this.tracingPrograms = Object.keys(RAW_TRACEPOINTS).map((name) => object.program(name));
  }

  static load(options: FlowProbeOptions): FlowProbe {
    // sock_ops on cgroups needs CAP_NET_ADMIN; raw tracepoints CAP_PERFMON; neither needs tracefs.
    checkKernel(['btf', 'bpf', 'perfmon', 'net_admin', 'cgroup2']);
    const cgroups = tracedCgroups(options.cgroups);
    const object = BpfObject.load(objectPath('flows'), {
      rodata: {
        // Our own sockets (Kafka, ClickHouse, metrics) must never become flow records.
        agent_cgroup_id: cgroupOfProcess().id,
        active_timeout_ns: BigInt(options.activeTimeoutMs) * 1_000_000n,
      },
      maxEntries: { flow_ring: options.ringBytes, conns: options.maxConnections },
    });
    try {
      const probe = new FlowProbe(object);
      for (const cgroup of cgroups) probe.traced.update(cgroup.id, 1);
      const sockOps = object.program('flow_sock_ops');
      probe.links.push(
        ...outermost(cgroups).map((cgroup) => sockOps.attachCgroup(cgroup.path)),
        ...Object.entries(RAW_TRACEPOINTS).map(([name, event]) => object.program(name).attachRawTracepoint(event)),
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
    const totals = this.object.map('drops').perCpuCounters().readAll();
    const deltas: Array<[string, number]> = [];
    KERNEL_DROP_REASONS.forEach((reason, index) => {
      const total = totals[index] ?? 0n;
      if (total > this.lastDrops[index]!) deltas.push([reason, Number(total - this.lastDrops[index]!)]);
      this.lastDrops[index] = total;
    });
    const skipped = this.tracingPrograms.reduce((sum, program) => sum + program.recursionMisses(), 0n);
    if (skipped > this.lastSkipped) deltas.push([PROGRAM_SKIPPED, Number(skipped - this.lastSkipped)]);
    this.lastSkipped = skipped;
    return deltas;
  }

  close(): void {
    this.object.close();
  }
}
