/**
 * The kernel side of flows: bpf/flows.bpf.c installed (or adopted, as the previous collector left it running:
 * src/collector/installed-source.ts) with its sock_ops program on the traced cgroups and its raw tracepoints, told
 * which cgroups to trace and which one is ours, and read for its drops (the drops map, and the runs of its raw
 * tracepoint programs the kernel skipped). Everything else about flows happens in user space.
 */
import { ConfigError, describeError } from '../../common/errors.js';
import { u32Codec, u64Codec, u8Codec } from '../../ebpf/codecs.js';
import { Cgroup, cgroupOfProcess, outermost } from '../../ebpf/cgroup.js';
import { connIdRun } from '../../ebpf/conn-epoch.js';
import { CgroupAttachType, rawTracepointLinks } from '../../ebpf/installation.js';
import { objectPath } from '../../ebpf/object.js';
import type { PinDirectory } from '../../ebpf/pins.js';
import { checkKernel } from '../../ebpf/preflight.js';
import { CgroupMark } from '../../ebpf/records/conn-state.js';
import { InstalledSource, type KernelDropReason } from '../installed-source.js';

export interface FlowProbeOptions {
  /** cgroup v2 directories to trace (absolute, or below the cgroup v2 root). */
  cgroups: readonly string[];
  ringBytes: number;
  /** Capacity of the tracking table (open traced connections, both sides). */
  maxConnections: number;
  activeTimeoutMs: number;
}

/** What governs each kernel drop of flows (enum sl_drop_reason, and skipped program runs). */
const KERNEL_DROP_REMEDIES: Record<KernelDropReason, string> = {
  ringbuf_full: 'the collector drains the ring too slowly for the burst, or none ran for a while (a restart): raise collector.ringBytes',
  conn_table_full:
    'more open traced connections than the tracking table holds: raise collector.maxConnections ' +
    '(a connection open before tracing began is counted at each segment it receives until the table has room for it)',
  tracking_failed:
    'the kernel refused to track a connection (a tracking-table update other than full, or its state callbacks): ' +
    'another sock_ops program on the cgroup may own its callback flags; the connection has no records',
  call_table_full: 'not counted by the flows programs',
  copy_failed: 'not counted by the flows programs (HTTP capture counts it)',
  program_skipped:
    'the kernel skipped a flows tracepoint program that fired while it was already running on that CPU (softirq nesting under load): ' +
    'an owner, an interim record or a reset flag may be missing or late; connections and final records are not affected',
};

/** Raw tracepoint programs of bpf/flows.bpf.c by the event they attach to. */
const RAW_TRACEPOINTS = {
  flow_interim: 'tcp_probe',
  flow_adopted_state: 'inet_sock_set_state',
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
 * Installs (or adopts) the flows programs, then makes `traced_cgroups` say what this collector's configuration says:
 * its cgroups traced, its own cgroup marked as the agent's (a new collector runs in a new cgroup), nothing else, so
 * that cgroups an earlier configuration traced, and an earlier collector's own cgroup, are forgotten; and attaches
 * the sock_ops program to the outermost traced cgroups, and to those only.
 */
export function loadFlowProbe(options: FlowProbeOptions, pins: PinDirectory): InstalledSource {
  // sock_ops on cgroups needs CAP_NET_ADMIN; raw tracepoints CAP_PERFMON; neither needs tracefs.
  checkKernel(['btf', 'bpf', 'perfmon', 'net_admin', 'cgroup2']);
  const cgroups = tracedCgroups(options.cgroups);
  return InstalledSource.open(pins, {
    kind: 'flows',
    objectFile: objectPath('flows'),
    load: {
      rodata: {
        active_timeout_ns: BigInt(options.activeTimeoutMs) * 1_000_000n,
        // The collector, once woken, lets records gather for collector.flushMs before it drains: a quarter of the
        // ring unread wakes it early, which leaves three quarters for the burst until it drains.
        ring_wakeup_bytes: BigInt(options.ringBytes / 4),
      },
      maxEntries: { flow_ring: options.ringBytes, conns: options.maxConnections },
    },
    maps: ['flow_ring', 'drops'],
    links: rawTracepointLinks(RAW_TRACEPOINTS),
    programs: ['flow_sock_ops', ...Object.keys(RAW_TRACEPOINTS)],
    ring: 'flow_ring',
    kernelDropRemedies: KERNEL_DROP_REMEDIES,
    connIds: (installation) => connIdRun(installation.map('conn_ids')),
    configure(installation) {
      const marks = new Map<bigint, number>(cgroups.map((cgroup) => [cgroup.id, CgroupMark.traced]));
      // Our own sockets (Kafka, ClickHouse, metrics) must never become flow records, even below a traced cgroup.
      marks.set(cgroupOfProcess().id, CgroupMark.agent);
      const traced = installation.map('traced_cgroups').typed(u64Codec, u8Codec);
      for (const [id, mark] of marks) traced.update(id, mark);
      for (const id of [...traced.keys()]) if (!marks.has(id)) traced.delete(id);
      // The programs remember each cgroup's answer (bpf/include/conn.h): those given before this change may be wrong.
      const answers = installation.map('cgroup_answers');
      const slots = answers.typed(u32Codec, u64Codec);
      for (let slot = 0; slot < answers.maxEntries; slot++) slots.update(slot, 0n);
      // A program attached to a cgroup runs for its descendants too: attached to a traced cgroup and to one below
      // it, it would run twice per callback.
      installation.attachToCgroups('flow_sock_ops', CgroupAttachType.sockOps, outermost(cgroups));
    },
  });
}
