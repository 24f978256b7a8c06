/**
 * The collector's place on the CPU: behind the node's workloads, unless it falls behind the kernel.
 *
 * A request's latency is made by the workload's wake-ups. A collector at the normal policy that is running when
 * a server's thread wakes keeps the CPU until its own time slice ends (the scheduler protects a running task's
 * slice, up to a few hundred µs), so its drain bursts (every collector.flushMs) become the request's tail: measured
 * with bench http-live, the p99 a traced request gains. A thread under SCHED_IDLE is preempted at once by any
 * waking thread of another policy, so the collector only uses what the workloads leave idle.
 *
 * Idle has a cost when the node is saturated: the collector then gets almost no CPU and its rings fill. So the
 * policy watches the rings: above RAISE_FILL of any ring it returns every thread to the normal policy, and once
 * all rings stayed below RELAX_FILL for RELAX_AFTER_MS it yields again. Leaving SCHED_IDLE takes CAP_SYS_NICE (or
 * an RLIMIT_NICE allowing nice 0); without it the collector stays idle, logs what to grant, and what the rings
 * cannot take is counted as their ring_full drops, as always.
 *
 * When: the read loops call check() before each drain (CollectorDeps.beforeDrain), when a ring is at its fullest,
 * rather than a timer: a starved collector runs neither, so a timer saw nothing sooner, and its 4 wake-ups a second
 * were a third of an idle collector's CPU (0.0012 of 0.0038 cores, measured with the collector alone on a node).
 * An idle ring still wakes its loop once a second, so calm rings are seen as they stay calm.
 *
 * Threads: the policy is per thread, so each thread of the process is set (/proc/self/task); threads created
 * later (libuv's pool, koffi's workers) inherit it from the thread that creates them.
 */
import { readdirSync } from 'node:fs';
import type { Logger } from '../common/logger.js';
import { libcCalls, lastErrno } from '../ebpf/native.js';

export type CpuPolicyMode = 'idle' | 'normal';

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const EPERM = 1;
/** A ring more than half full: the collector did not get to drain after the kernel's quarter-full wake-up. */
const RAISE_FILL = 0.5;
const RELAX_FILL = 0.1;
const RELAX_AFTER_MS = 2_000;

/** How full a ring is, 0..1 (RingReader.fill). */
export interface RingFill {
  fill(): number;
}

export interface CpuPolicyStats {
  /** Times the collector left SCHED_IDLE because a ring filled. */
  raised: number;
  /** Whether it runs at the normal policy now. */
  normal: boolean;
}

export class CpuPolicy {
  private normal = true;
  private calmSince: number | undefined;
  private watching = false;
  private raiseRefused = false;
  private raised = 0;

  constructor(
    private readonly mode: CpuPolicyMode,
    private readonly rings: readonly RingFill[],
    private readonly logger: Logger,
  ) {}

  /** Yields to the workloads (mode idle), and check() watches the rings from then on; a no-op at mode normal. */
  start(): void {
    if (this.mode !== 'idle') return;
    this.setAll(SCHED_IDLE);
    this.watching = true;
  }

  get stats(): CpuPolicyStats {
    return { raised: this.raised, normal: this.normal };
  }

  /** Reads the rings' fill and changes the policy if it calls for it; a few memory reads when nothing changes. */
  check(): void {
    if (!this.watching) return;
    const fullest = Math.max(...this.rings.map((ring) => ring.fill()));
    if (!this.normal && fullest > RAISE_FILL) {
      if (this.setAll(SCHED_OTHER)) {
        this.raised++;
        this.logger.info({ ring_fill: fullest }, 'collector behind the kernel: left the idle CPU policy until it catches up');
      }
      this.calmSince = undefined;
      return;
    }
    if (!this.normal) return;
    if (fullest >= RELAX_FILL) {
      this.calmSince = undefined;
      return;
    }
    const now = performance.now();
    this.calmSince ??= now;
    if (now - this.calmSince >= RELAX_AFTER_MS) this.setAll(SCHED_IDLE);
  }

  /** Sets every thread's policy; false (and, once, a log naming the remedy) if the kernel refuses it. */
  private setAll(policy: number): boolean {
    const param = new Int32Array(1);
    for (const task of readdirSync('/proc/self/task')) {
      if (libcCalls.schedSetScheduler(Number(task), policy, param) === 0) continue;
      const errno = lastErrno();
      // A thread that ended since the directory was read.
      if (errno !== EPERM) continue;
      if (!this.raiseRefused) {
        this.raiseRefused = true;
        this.logger.warn(
          { ring_fill: Math.max(...this.rings.map((ring) => ring.fill())) },
          'collector behind the kernel but not allowed to leave the idle CPU policy: grant it CAP_SYS_NICE, or set collector.cpuPolicy to normal; until then what its rings cannot take is counted as ring_full drops',
        );
      }
      return false;
    }
    this.normal = policy === SCHED_OTHER;
    this.calmSince = undefined;
    return true;
  }
}
