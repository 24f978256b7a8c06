/**
 * The kernel side of flows and of HTTP capture installed from the test process in one pin directory of their own
 * (so they share connection tracking as in the collector), both rings drained in the background: flow records,
 * chunk records (their bytes copied out of the ring), and the exchanges an HttpCapture pairs from the chunks, fed
 * each flow's final record as the collector wiring does. The test process is the agent (never traced).
 */
import { randomBytes } from 'node:crypto';
import { loadFlowProbe } from '../../src/collector/flows/kernel.js';
import { HttpCapture, type CapturedExchange } from '../../src/collector/http/capture.js';
import { loadHttpCapture } from '../../src/collector/http/kernel.js';
import type { InstalledSource } from '../../src/collector/installed-source.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { decodeFlowRecord, FlowKind, type FlowRecord } from '../../src/ebpf/records/flow.js';
import { decodeHttpChunkEnds, decodeHttpChunkRecord, type HttpChunkEnds, type HttpChunkRecord } from '../../src/ebpf/records/http-chunk.js';
import type { Pod } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';

const MAX_CONNECTIONS = 65536;
const RING_BYTES = 16 * 1024 * 1024;

function loadFlows(pods: readonly Pod[], pins: PinDirectory): InstalledSource {
  return loadFlowProbe({ cgroups: pods.map((pod) => pod.cgroup.path), ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, activeTimeoutMs: 60_000 }, pins);
}

function loadHttp(pins: PinDirectory, captureBytes: number): InstalledSource {
  return loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes, maxCallsInFlight: 16384 }, pins);
}

export class HttpTap {
  readonly flows: FlowRecord[] = [];
  /** Each chunk record with the ends it carried. */
  readonly chunks: Array<HttpChunkRecord & { ends: HttpChunkEnds }> = [];
  readonly exchanges: CapturedExchange[] = [];
  readonly drops: Record<string, number> = {};
  readonly capture: HttpCapture;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  private constructor(
    private flowSource: InstalledSource,
    private httpSource: InstalledSource,
    private readonly pins: PinDirectory,
    private readonly captureBytes: number,
  ) {
    this.capture = new HttpCapture({ maxConnections: MAX_CONNECTIONS, idleNs: 60_000_000_000n, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 200, maxRouteServices: 1000 }, (exchange) =>
      this.exchanges.push(exchange),
    );
    this.timer = setInterval(() => this.poll(), 50);
  }

  static start(pods: readonly Pod[], options: { captureBytes?: number } = {}): HttpTap {
    const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-http-${process.pid}-${randomBytes(3).toString('hex')}`);
    pins.prepare();
    const captureBytes = options.captureBytes ?? 256;
    let flows: InstalledSource | undefined;
    try {
      flows = loadFlows(pods, pins);
      return new HttpTap(flows, loadHttp(pins, captureBytes), pins, captureBytes);
    } catch (error) {
      flows?.close();
      pins.remove();
      throw error;
    }
  }

  /**
   * What a collector restarted with other cgroups does: both kinds adopted from the pins (the same layouts), flows
   * told the new traced cgroups, http's remembered answers emptied. Returns whether both were adopted.
   */
  retrace(pods: readonly Pod[]): boolean {
    this.poll();
    this.httpSource.close();
    this.flowSource.close();
    this.flowSource = loadFlows(pods, this.pins);
    this.httpSource = loadHttp(this.pins, this.captureBytes);
    return this.flowSource.status.adopted && this.httpSource.status.adopted;
  }

  /** Chunk records of one process. */
  chunksOf(pid: number): HttpChunkRecord[] {
    return this.chunks.filter((chunk) => chunk.pid === pid);
  }

  async until(what: string, done: () => boolean, timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => done(), { timeoutMs, what });
  }

  /** Detaches the programs, drains what they wrote, and removes the pins. Safe twice. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    try {
      this.httpSource.installation.detach();
      this.flowSource.installation.detach();
      this.poll();
    } finally {
      this.httpSource.close();
      this.flowSource.close();
      this.pins.remove();
    }
  }

  private poll(): void {
    this.httpSource.reader.drain((view, offset, size) => {
      const chunk = decodeHttpChunkRecord(view, offset, size);
      const ends = decodeHttpChunkEnds(view, offset);
      this.capture.add(chunk, () => ends);
      this.chunks.push({ ...chunk, data: Buffer.from(chunk.data), ends }); // the ring's memory is reused after the drain
    });
    this.flowSource.reader.drain((view, offset, size) => {
      const flow = decodeFlowRecord(view, offset, size);
      this.flows.push(flow);
      if (flow.kind === FlowKind.final) this.capture.connectionClosed(flow.connId);
    });
    this.capture.tick(process.hrtime.bigint()); // CLOCK_MONOTONIC, the kernel's bpf_ktime_get_ns
    for (const source of [this.httpSource, this.flowSource]) {
      for (const [reason, count] of source.takeKernelDrops()) this.drops[reason] = (this.drops[reason] ?? 0) + count;
    }
    for (const [reason, count] of this.capture.takeDrops()) this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }
}
