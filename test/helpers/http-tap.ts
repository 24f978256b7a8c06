/**
 * The kernel side of flows and of HTTP capture installed from the test process in one pin directory of their own
 * (so they share connection tracking as in the collector), both rings drained in the background: flow records,
 * chunk records (their bytes copied out of the ring), and the exchanges an HttpCapture pairs from the chunks, fed
 * each flow's final record as the collector wiring does. The test process is the agent (never traced).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { loadFlowProbe } from '../../src/collector/flows/kernel.js';
import { HttpCapture, type CapturedExchange } from '../../src/collector/http/capture.js';
import { loadHttpCapture, type HttpCaptureOptions } from '../../src/collector/http/kernel.js';
import type { InstalledSource } from '../../src/collector/installed-source.js';
import { loadConfig } from '../../src/common/config.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { decodeFlowRecord, FlowKind, FlowSide, type FlowRecord } from '../../src/ebpf/records/flow.js';
import { decodeHttpChunkEnds, decodeHttpChunkRecord, type HttpChunkEnds, type HttpChunkRecord } from '../../src/ebpf/records/http-chunk.js';
import type { Pod } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';

const MAX_CONNECTIONS = 65536;
const RING_BYTES = 16 * 1024 * 1024;

function loadFlows(pods: readonly Pod[], pins: PinDirectory): InstalledSource {
  return loadFlowProbe({ cgroups: pods.map((pod) => pod.cgroup.path), ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, activeTimeoutMs: 60_000 }, pins);
}

/** The copy sizes a collector with the default settings makes (http.captureBytes, http.headBytes). */
export type CopySizes = Pick<HttpCaptureOptions, 'captureBytes' | 'headBytes'>;
export const DEFAULT_COPY_SIZES: CopySizes = loadConfig({ env: {}, argv: [] }).http;

function loadHttp(pins: PinDirectory, copies: CopySizes): InstalledSource {
  return loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes: copies.captureBytes, headBytes: copies.headBytes }, pins);
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
    private readonly copies: CopySizes,
  ) {
    this.capture = new HttpCapture({ maxConnections: MAX_CONNECTIONS, idleNs: 60_000_000_000n, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 200, maxRouteServices: 1000, firstConnId: httpSource.firstConnId }, (exchange) =>
      this.exchanges.push(exchange),
    );
    this.timer = setInterval(() => this.poll(), 50);
  }

  static start(pods: readonly Pod[], options: Partial<CopySizes> = {}): HttpTap {
    const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-http-${process.pid}-${randomBytes(3).toString('hex')}`);
    pins.prepare();
    const copies = { ...DEFAULT_COPY_SIZES, ...options };
    let flows: InstalledSource | undefined;
    try {
      flows = loadFlows(pods, pins);
      return new HttpTap(flows, loadHttp(pins, copies), pins, copies);
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
    this.httpSource = loadHttp(this.pins, this.copies);
    return this.flowSource.status.adopted && this.httpSource.status.adopted;
  }

  /** Chunk records of one process. */
  chunksOf(pid: number): HttpChunkRecord[] {
    return this.chunks.filter((chunk) => chunk.pid === pid);
  }

  /** Chunk records of one socket in one direction (HttpDirection), in order. */
  chunksOn(connId: bigint, direction: number): HttpChunkRecord[] {
    return this.chunks.filter((chunk) => chunk.connId === connId && chunk.direction === direction);
  }

  exchangesOf(connId: bigint): CapturedExchange[] {
    return this.exchanges.filter((exchange) => exchange.connId === connId);
  }

  /**
   * Waits for both final flow records of the connection from `clientPort` to `serverPort` and for the capture to
   * have ended both sides' parsers (nothing more can come of it); returns each side's conn id, after checking that
   * every chunk record and exchange of that conn id carries the flow record's cgroup, side, addresses and ports.
   */
  async connection(serverPort: number, clientPort: number): Promise<{ client: bigint; server: bigint }> {
    const finals = () => this.flows.filter((flow) => flow.serverPort === serverPort && flow.clientPort === clientPort && flow.kind === FlowKind.final);
    await this.until(`both final flow records of ${clientPort} -> ${serverPort}, and their parsers ended`, () => {
      const connIds = finals().map((flow) => flow.connId);
      return connIds.length === 2 && connIds.every((connId) => !this.capture.hasConnection(connId));
    });
    return { client: this.connIdOf(serverPort, clientPort, 'client'), server: this.connIdOf(serverPort, clientPort, 'server') };
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

  private connIdOf(serverPort: number, clientPort: number, side: 'client' | 'server'): bigint {
    const finals = this.flows.filter(
      (flow) => flow.serverPort === serverPort && flow.clientPort === clientPort && flow.side === FlowSide[side] && flow.kind === FlowKind.final,
    );
    assert.equal(finals.length, 1, `one final ${side} flow record for ${clientPort} -> ${serverPort}`);
    const { connId, cgroupId, clientAddress, serverAddress } = finals[0]!;
    const chunks = this.chunks.filter((chunk) => chunk.connId === connId);
    assert.ok(chunks.length > 0, `chunk records of the ${side} side`);
    assert.deepEqual(new Set(chunks.map((chunk) => chunk.cgroupId)), new Set([cgroupId]));
    const ends = { side: FlowSide[side], clientAddress, clientPort, serverAddress, serverPort };
    assert.deepEqual(new Set(chunks.map((chunk) => JSON.stringify(chunk.ends))), new Set([JSON.stringify(ends)]));
    assert.deepEqual(new Set(this.exchangesOf(connId).map((exchange) => exchange.cgroupId)), new Set([cgroupId]));
    return connId;
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
