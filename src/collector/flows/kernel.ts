/**
 * The kernel side of flows: bpf/flows.bpf.c installed on its five tracepoints (or adopted, as the previous collector
 * left it running: src/collector/installed-source.ts), told which cgroups to trace and which one is ours.
 * Everything else about flows happens in user space.
 */
import { ConfigError, describeError } from '../../common/errors.js';
import { u64Codec, u8Codec } from '../../ebpf/codecs.js';
import { Cgroup, cgroupOfProcess } from '../../ebpf/cgroup.js';
import { connIdEpoch } from '../../ebpf/conn-epoch.js';
import { objectPath } from '../../ebpf/object.js';
import type { PinDirectory } from '../../ebpf/pins.js';
import { checkKernel } from '../../ebpf/preflight.js';
import { CgroupMark } from '../../ebpf/records/conn-state.js';
import type { KERNEL_DROP_REASONS } from '../../ebpf/records/header.js';
import { InstalledSource } from '../installed-source.js';

export interface FlowProbeOptions {
  /** cgroup v2 directories to trace (absolute, or below the cgroup v2 root). */
  cgroups: readonly string[];
  ringBytes: number;
  /** Capacity of the tracking table (open traced connections, both sides). */
  maxConnections: number;
  activeTimeoutMs: number;
}

/** What governs each kernel drop of flows (enum sl_drop_reason). */
const KERNEL_DROP_REMEDIES: Record<(typeof KERNEL_DROP_REASONS)[number], string> = {
  ringbuf_full: 'the collector drains the ring too slowly for the burst, or none ran for a while (a restart): raise collector.ringBytes',
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

/**
 * Installs (or adopts) the flows programs, then makes `traced_cgroups` say what this collector's configuration says:
 * its cgroups traced, its own cgroup marked as the agent's (a new collector runs in a new cgroup), nothing else, so
 * that cgroups an earlier configuration traced, and an earlier collector's own cgroup, are forgotten.
 */
export function loadFlowProbe(options: FlowProbeOptions, pins: PinDirectory): InstalledSource {
  checkKernel(['btf', 'bpf', 'perfmon', 'cgroup2', 'tracefs']);
  const cgroupIds = tracedCgroupIds(options.cgroups);
  const source = InstalledSource.open(pins, {
    kind: 'flows',
    objectFile: objectPath('flows'),
    load: {
      rodata: { active_timeout_ns: BigInt(options.activeTimeoutMs) * 1_000_000n },
      maxEntries: { flow_ring: options.ringBytes, conns: options.maxConnections },
    },
    maps: ['flow_ring', 'drops'],
    links: {
      flow_state_change: { tracepoint: 'sock/inet_sock_set_state' },
      flow_interim: { tracepoint: 'tcp/tcp_probe' },
      flow_retransmit: { tracepoint: 'tcp/tcp_retransmit_skb' },
      flow_reset_received: { tracepoint: 'tcp/tcp_receive_reset' },
      flow_reset_sent: { tracepoint: 'tcp/tcp_send_reset' },
    },
    ring: 'flow_ring',
    kernelDropRemedies: KERNEL_DROP_REMEDIES,
    epoch: (installation) => connIdEpoch(installation.map('conn_ids')),
  });
  try {
    const marks = new Map<bigint, number>(cgroupIds.map((id) => [id, CgroupMark.traced]));
    // Our own sockets (Kafka, ClickHouse, metrics) must never become flow records, even below a traced cgroup.
    marks.set(cgroupOfProcess().id, CgroupMark.agent);
    const traced = source.installation.map('traced_cgroups').typed(u64Codec, u8Codec);
    for (const [id, mark] of marks) traced.update(id, mark);
    for (const id of [...traced.keys()]) if (!marks.has(id)) traced.delete(id);
    return source;
  } catch (error) {
    source.close();
    throw error;
  }
}
