/**
 * The kernel's verdict ring (bpf/policy.bpf.c `verdict_ring`) read as Decisions: each record decoded
 * (src/ebpf/records/verdict.ts), its numbers named and its time made wall-clock. A record that does not decode is
 * counted by the caller (`undecodable`), never thrown: one bad record must not stop the others.
 */
import { BootClock } from '../../ebpf/clock.js';
import type { Installation } from '../../ebpf/installation.js';
import { PolicyDirection } from '../../ebpf/records/policy-keys.js';
import { decodeVerdictRecord, PolicyHook, Verdict } from '../../ebpf/records/verdict.js';
import { KERNEL_DROP_REASONS } from '../../ebpf/records/header.js';
import { openRingReader, type RingReader } from '../../ebpf/ringbuf.js';
import { dropCounters, ReportedTotals } from '../../ebpf/reported-drops.js';
import type { Decision } from '../verdict-naming.js';

const VERDICT_NAMES = new Map<number, Decision['verdict']>([
  [Verdict.allow, 'allow'],
  [Verdict.deny, 'deny'],
  [Verdict.auditDeny, 'audit_deny'],
  [Verdict.auditAllow, 'audit_allow'],
]);
const HOOK_NAMES = new Map<number, Decision['hook']>([
  [PolicyHook.connect, 'connect'],
  [PolicyHook.sendmsg, 'sendmsg'],
  [PolicyHook.ingress, 'ingress'],
]);

const RINGBUF_FULL = KERNEL_DROP_REASONS.indexOf('ringbuf_full');

export class VerdictReader {
  private readonly ring: RingReader;
  private readonly clock = new BootClock();
  /** The programs' `drops` counters, as far as an enforcer reported them (kept in the installation's pins). */
  private readonly drops: ReportedTotals;

  /** The ring of `installation`: the running one's, or that of a layout being retired (PolicyKernel.takeOverVerdicts). */
  constructor(installation: Installation) {
    this.ring = openRingReader(installation, 'verdict_ring');
    this.drops = new ReportedTotals(installation, dropCounters(installation));
  }

  /** Verdicts the programs could not put in the full ring since the last call (also while no enforcer ran). */
  takeRingFull(): number {
    return Number(this.drops.take()[RINGBUF_FULL] ?? 0n);
  }

  /** Up to `max` records waiting in the ring; `undecodable` counts those that are not verdict records. */
  drain(max: number, undecodable: () => void): Decision[] {
    const decisions: Decision[] = [];
    this.ring.drain((view, offset, size) => {
      try {
        const record = decodeVerdictRecord(view, offset, size);
        const verdict = VERDICT_NAMES.get(record.verdict);
        const hook = HOOK_NAMES.get(record.hook);
        if (verdict === undefined || hook === undefined) return undecodable();
        decisions.push({
          timeNs: this.clock.toWallNs(record.monotonicNs),
          cgroupId: record.cgroupId,
          subject: record.subject,
          peer: record.peer,
          sourceAddress: record.srcAddress,
          sourcePort: record.srcPort,
          destinationAddress: record.dstAddress,
          destinationPort: record.dstPort,
          protocol: record.protocol,
          verdict,
          direction: record.direction === PolicyDirection.ingress ? 'ingress' : 'egress',
          hook,
          generation: record.generation,
        });
      } catch {
        undecodable();
      }
    }, max);
    return decisions;
  }

  /** Unmaps the ring (its installation's pins keep it). */
  close(): void {
    this.ring.detach();
  }

  /** Keeps the wall-clock offset exact as the clocks drift. */
  resync(): void {
    this.clock.resync();
  }
}
