/**
 * The kernel side of flows installed from the test process, without Kafka: the flows programs tracing some pods
 * (pinned in a pin directory of its own), its ring drained in the background into decoded records, its kernel drops
 * summed by reason. The test process itself is the agent (its cgroup is never traced).
 */
import { randomBytes } from 'node:crypto';
import { loadFlowProbe } from '../../src/collector/flows/kernel.js';
import type { InstalledSource } from '../../src/collector/installed-source.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { decodeFlowRecord, FlowKind, FlowSide, type FlowRecord } from '../../src/ebpf/records/flow.js';
import type { Pod } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';

export type Side = 'client' | 'server';

export class FlowTap {
  readonly records: FlowRecord[] = [];
  readonly drops: Record<string, number> = {};
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  private constructor(
    private readonly probe: InstalledSource,
    private readonly pins: PinDirectory,
  ) {
    this.timer = setInterval(() => this.poll(), 50);
  }

  static start(pods: readonly Pod[], options: { activeTimeoutMs?: number } = {}): FlowTap {
    const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-tap-${process.pid}-${randomBytes(3).toString('hex')}`);
    pins.prepare();
    try {
      const probe = loadFlowProbe(
        { cgroups: pods.map((pod) => pod.cgroup.path), ringBytes: 16 * 1024 * 1024, maxConnections: 65536, activeTimeoutMs: options.activeTimeoutMs ?? 10_000 },
        pins,
      );
      return new FlowTap(probe, pins);
    } catch (error) {
      pins.remove();
      throw error;
    }
  }

  /** Records of one server port, optionally of one side and kind. */
  of(port: number, side?: Side, kind?: 'final' | 'interim'): FlowRecord[] {
    const sideValue = side && FlowSide[side];
    const kindValue = kind && FlowKind[kind];
    return this.records.filter(
      (record) => record.serverPort === port && (sideValue === undefined || record.side === sideValue) && (kindValue === undefined || record.kind === kindValue),
    );
  }

  /** Waits until `count` final records of the port arrived. */
  async waitForFinals(port: number, count: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => this.of(port, undefined, 'final').length >= count, { timeoutMs, what: `${count} final records for port ${port}` });
  }

  /** Detaches the programs, drains what they wrote, reads the drops a last time and removes the pins. Safe twice. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    try {
      this.probe.installation.detach();
      this.poll();
    } finally {
      this.probe.close();
      this.pins.remove();
    }
  }

  private poll(): void {
    this.probe.reader.drain((view, offset, size) => this.records.push(decodeFlowRecord(view, offset, size)));
    for (const [reason, count] of this.probe.takeKernelDrops()) this.drops[reason] = (this.drops[reason] ?? 0) + count;
  }
}
