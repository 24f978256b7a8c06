/**
 * The kernel side of HTTP capture: bpf/http.bpf.c installed (or adopted, src/collector/installed-source.ts) with its
 * raw tracepoints on sockets' sends and receives, sharing the flows programs' connection tracking (`conns`,
 * `traced_cgroups`, `conn_ids` in the node's pin directory), so that its records carry the conn ids of the flows
 * records and trace the cgroups the flows kind marked. It therefore loads after flows (src/collector/kinds.ts lists flows first). Its programs adopt
 * connections open before tracing into `conns`, which flows' programs then end (bpf/include/conn.h).
 */
import { ConfigError } from '../../common/errors.js';
import { connIdRun } from '../../ebpf/conn-epoch.js';
import { rawTracepointLinks } from '../../ebpf/installation.js';
import { possibleCpus } from '../../ebpf/map.js';
import { objectPath } from '../../ebpf/object.js';
import type { PinDirectory } from '../../ebpf/pins.js';
import { checkKernel } from '../../ebpf/preflight.js';
import { HTTP_CAPTURE_MAX } from '../../ebpf/records/http-chunk.js';
import { InstalledSource, type KernelDropReason } from '../installed-source.js';

export interface HttpCaptureOptions {
  ringBytes: number;
  /** Must equal the flows kind's: the shared `conns` map is refused at load when its size differs. */
  maxConnections: number;
  /** Bytes copied of each call, at most HTTP_CAPTURE_MAX. */
  captureBytes: number;
  /** Bytes copied of a call that begins a message, at most HTTP_CAPTURE_MAX (bpf/http.bpf.c: head_bytes). */
  headBytes: number;
}

const KERNEL_DROP_REMEDIES: Record<KernelDropReason, string> = {
  ringbuf_full: 'the collector drains the HTTP ring too slowly for the burst, or none ran for a while (a restart): raise collector.ringBytes, or lower http.captureBytes or http.headBytes',
  conn_table_full: 'not counted by the HTTP programs (flows counts connections it could not track; their calls are not captured)',
  tracking_failed: 'not counted by the HTTP programs',
  call_table_full: 'counted only by HTTP programs older than 2026-12-03 (a call they could not follow from its entry to its return has no record); the current ones time a send whose start they could not note at its end',
  copy_failed: 'the kernel could not read the bytes of a call from user memory (memory unmapped by another thread meanwhile): the record is sent with what was copied, marked cut',
  program_skipped:
    'the kernel skipped an HTTP tracepoint program because it fired while it already ran on that CPU: that call has no record, so the exchange it belonged to may be lost (counted by the parser)',
};

/** Where each program of bpf/http.bpf.c attaches: raw tracepoints (bpf/http.bpf.c says why these). */
const RAW_TRACEPOINTS = { http_send_start: 'tcp_sendmsg_locked', http_sent: 'sock_send_length', http_received: 'sock_recv_length' } as const;

export function loadHttpCapture(options: HttpCaptureOptions, pins: PinDirectory): InstalledSource {
  for (const [name, value] of [['http.captureBytes', options.captureBytes], ['http.headBytes', options.headBytes]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > HTTP_CAPTURE_MAX) throw new ConfigError(name, `must be an integer from 0 to ${HTTP_CAPTURE_MAX}, got ${value}`);
  }
  // Raw tracepoints need CAP_PERFMON and no tracefs.
  checkKernel(['btf', 'bpf', 'perfmon', 'cgroup2']);
  return InstalledSource.open(pins, {
    kind: 'http',
    objectFile: objectPath('http'),
    load: {
      rodata: {
        capture_bytes: options.captureBytes,
        head_bytes: options.headBytes,
        // As for flows: the collector lets records gather for flushMs once woken; a quarter of the ring wakes it early.
        ring_wakeup_bytes: BigInt(options.ringBytes / 4),
      },
      // chunk_buffers: a record's buffer per CPU (bpf/http.bpf.c), indexed by the CPU's number.
      maxEntries: { http_ring: options.ringBytes, conns: options.maxConnections, chunk_buffers: possibleCpus },
    },
    maps: ['http_ring', 'drops'],
    links: rawTracepointLinks(RAW_TRACEPOINTS),
    programs: Object.keys(RAW_TRACEPOINTS),
    ring: 'http_ring',
    kernelDropRemedies: KERNEL_DROP_REMEDIES,
    connIds: (installation) => connIdRun(installation.map('conn_ids')),
    // Nothing of http is attached to cgroups, and the flows kind (loaded first) has marked the traced cgroups and
    // emptied the shared answers remembered from them.
    configure() {},
  });
}
