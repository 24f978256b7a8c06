/**
 * A record kind's kernel side kept in bpffs (src/ebpf/installation.ts), so that it outlives the collector:
 *
 *   open    adopts the installation of this collector's layout, or installs it; then retires the kind's other
 *           installations: their programs stop recording (stopRecording, where the object can), their links are
 *           unpinned (their programs stop), what their rings still hold is read before this one's ring, their last
 *           drops are reported, then their pins are removed.
 *   read    the ring from where the previous reader stopped (the consumer position lives in the ring): records
 *           written while no collector ran come first, up to the ring's size; the kernel counted what did not fit
 *           (ringbuf_full), and that is reported once, by whichever collector reads it first (ReportedTotals); so are
 *           the runs of its tracing programs the kernel skipped (program_skipped).
 *   close   releases this process's fds only: the programs keep tracking, the ring keeps what they write for the
 *           next collector. `sidecarless collector --uninstall` removes the pins, which stops them.
 */
import { u32Codec, u64Codec } from '../ebpf/codecs.js';
import { waitForProgramRuns } from '../ebpf/grace-period.js';
import { Installation, type InstallationSpec } from '../ebpf/installation.js';
import type { ConnIdRun } from '../ebpf/conn-epoch.js';
import type { PinDirectory } from '../ebpf/pins.js';
import { KERNEL_DROP_REASONS } from '../ebpf/records/header.js';
import { dropCounters, ReportedTotals, skippedRuns } from '../ebpf/reported-drops.js';
import { MappedRingReader, type RecordHandler, type RingMapRef, type RingReader } from '../ebpf/ringbuf.js';
import type { KernelSource } from './record-kind.js';

/** The map of bpf/include/retire.h, in every kind's object. */
const RETIRED_WORD = 'retired';

export interface InstalledSourceSpec extends InstallationSpec {
  /** The ring map the programs write (one of `maps`, as is `drops`). */
  ring: string;
  kernelDropRemedies: Readonly<Record<KernelDropReason, string>>;
  /** The run of the conn ids its records carry, and where this reader joins it (src/ebpf/conn-epoch.ts). */
  connIds(installation: Installation): ConnIdRun;
  /**
   * Makes the installation (installed or adopted) do what this collector's configuration says: which cgroups it
   * traces, where its cgroup programs are attached. Runs before other layouts are retired, so that one installation
   * is always live and no connection starts or ends unseen during an upgrade.
   */
  configure(installation: Installation): void;
}

/** The runs of an installation's pinned programs (spec.programs) that the kernel skipped. */
export const PROGRAM_SKIPPED = 'program_skipped';
export type KernelDropReason = (typeof KERNEL_DROP_REASONS)[number] | typeof PROGRAM_SKIPPED;
const REASONS: readonly KernelDropReason[] = [...KERNEL_DROP_REASONS, PROGRAM_SKIPPED];

/** What an installation counted and this collector has not reported yet, by index of REASONS. */
class InstallationDrops {
  private readonly drops: ReportedTotals;
  private readonly skipped: ReportedTotals;

  constructor(installation: Installation, programs: readonly string[]) {
    this.drops = new ReportedTotals(installation, dropCounters(installation));
    this.skipped = new ReportedTotals(installation, skippedRuns(installation, programs));
  }

  /** By index of REASONS; an older layout with fewer drop reasons counts 0 for the ones it lacks. */
  take(): bigint[] {
    const drops = this.drops.take();
    return [...KERNEL_DROP_REASONS.map((_, index) => drops[index] ?? 0n), ...this.skipped.take()];
  }
}

/** An installation of another layout, its programs stopped: read to the end, then removed. */
interface Retiring {
  installation: Installation;
  reader: MappedRingReader;
  drops: InstallationDrops;
}

export class InstalledSource implements KernelSource {
  readonly kernelDropRemedies: Readonly<Record<string, string>>;
  readonly epoch: string;
  readonly firstConnId: bigint;
  readonly reader: Pick<RingReader, 'drain' | 'wait'>;
  readonly fill: () => number;
  readonly ring: RingMapRef;
  private readonly drops: InstallationDrops;
  private readonly retiring: Retiring[] = [];
  /** Drops of retired installations, not yet reported. */
  private readonly retiredDrops = REASONS.map(() => 0n);

  private constructor(
    readonly installation: Installation,
    spec: InstalledSourceSpec,
  ) {
    this.kernelDropRemedies = spec.kernelDropRemedies;
    const connIds = spec.connIds(installation);
    this.epoch = connIds.epoch;
    this.firstConnId = connIds.next;
    this.drops = new InstallationDrops(installation, spec.programs ?? []);
    // Mapped: its fill is what the CPU policy watches.
    const current = new MappedRingReader(installation.map(spec.ring));
    installation.own(current);
    this.reader = {
      drain: (handler, maxRecords) => this.drain(current, handler, maxRecords),
      wait: (timeoutMs) => (this.retiring.length > 0 ? Promise.resolve(true) : current.wait(timeoutMs)),
    };
    this.fill = () => current.fill();
    this.ring = current.ring;
  }

  static open(pins: PinDirectory, spec: InstalledSourceSpec): InstalledSource {
    // Every kind's object has the retired word (bpf/include/retire.h); it is pinned with the maps user space reads.
    const installation = Installation.open(pins, { ...spec, maps: [...spec.maps, RETIRED_WORD] });
    let source: InstalledSource | undefined;
    try {
      source = new InstalledSource(installation, spec);
      keepRecording(installation);
      spec.configure(installation);
      for (const other of installation.others()) source.retire(other, spec);
      return source;
    } catch (error) {
      source?.close();
      installation.close();
      throw error;
    }
  }

  get status(): KernelSource['status'] {
    return { layout: this.installation.layout, adopted: !this.installation.installedNow, retiring: this.retiring.map((old) => old.installation.layout) };
  }

  takeKernelDrops(): Array<[reason: string, count: number]> {
    const totals = this.drops.take().map((count, index) => count + this.retiredDrops[index]!);
    this.retiredDrops.fill(0n);
    return REASONS.flatMap((reason, index) => (totals[index]! > 0n ? [[reason, Number(totals[index])] as [string, number]] : []));
  }

  /** Releases this process's fds; every pin stays (an installation still being retired is retired by the next one). */
  close(): void {
    for (const old of this.retiring.splice(0)) old.installation.close();
    this.installation.close();
  }

  private retire(other: Installation, spec: InstalledSourceSpec): void {
    stopRecording(other);
    other.detach();
    if (!other.findMap(spec.ring) || !other.findMap('drops')) {
      other.remove(); // an install that did not finish: nothing to read
      return;
    }
    // The old layout's own programs may differ; those of this spec it does not have pinned count 0.
    // Mapped, whatever the current reader is: retiring needs to know when the ring is read to its end (empty()).
    const reader = new MappedRingReader(other.map(spec.ring));
    other.own(reader);
    this.retiring.push({ installation: other, reader, drops: new InstallationDrops(other, spec.programs ?? []) });
  }

  /** The retiring installations' rings first, each to its end (their programs are stopped), then the current one. */
  private drain(current: RingReader, handler: RecordHandler, maxRecords?: number): number {
    while (this.retiring.length > 0) {
      const old = this.retiring[0]!;
      const read = old.reader.drain(handler, maxRecords);
      if (read > 0) return read;
      // A record still being written (an old program ending its run on another CPU): read it on the next drain,
      // before anything of the current ring, which holds later records of the same connections.
      if (!old.reader.empty()) return 0;
      old.drops.take().forEach((count, index) => (this.retiredDrops[index]! += count));
      this.retiring.shift();
      old.installation.remove();
    }
    return current.drain(handler, maxRecords);
  }
}

/**
 * Stops an installation's programs before its links go (bpf/include/retire.h: bit 0 of its `retired` word):
 * unpinning a link detaches the program later, from a kernel worker, so the ring could take records after it has
 * been read to its end and removed. Once the bit is set and every run that read it unset has ended, the ring holds
 * all it ever will; the programs of this collector's layout, attached beside them, handle every event the old ones
 * no longer do.
 */
function stopRecording(installation: Installation): void {
  const word = installation.findMap(RETIRED_WORD)?.typed(u32Codec, u64Codec);
  if (word === undefined) return; // a layout from before the flag
  word.update(0, (word.lookup(0) ?? 0n) | 1n);
  waitForProgramRuns();
}

/**
 * Writes this collector's own installation's word: its id (the kernel's id of the map, in bits 1-63), and the
 * retired bit cleared. That bit is set on an installation still complete only when a collector of another layout
 * stopped between setting it and unpinning the links (a crash, a failed unpin); a rollback to this layout then
 * adopts it, and its programs must record again.
 */
function keepRecording(installation: Installation): void {
  const map = installation.findMap(RETIRED_WORD);
  map?.typed(u32Codec, u64Codec).update(0, BigInt(map.id) << 1n);
}
