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
 * rather than a timer: a timer's 4 wake-ups a second were a third of an idle collector's CPU (0.0012 of 0.0038
 * cores, measured with the collector alone on a node). An idle ring still wakes its loop once a second, so calm
 * rings are seen as they stay calm. But a starved collector runs neither, so the raise also comes from a watcher
 * thread that stays at the normal policy and is woken by the kernel's early wake-ups of a filling ring
 * (./ring-watch-worker.ts), for the rings whose maps it can map (every kernel source's).
 *
 * The policy in force is one flag shared with the watcher (either side may raise; only check() yields again).
 *
 * Threads: the policy is per thread, so each thread of the process is set (/proc/self/task); threads created
 * later (libuv's pool, koffi's workers) inherit it from the thread that creates them.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../common/logger.js';
import { EVENTFD_ONE, lastErrno, libcCalls, linux } from '../ebpf/native.js';
import type { RingMapRef } from '../ebpf/ringbuf.js';
import type { RingWatchData } from './ring-watch-worker.js';
import { setThreadPolicies } from './thread-policy.js';

export type CpuPolicyMode = 'idle' | 'normal';

const { SCHED_OTHER, SCHED_IDLE, EFD_CLOEXEC } = linux;
/** A ring more than half full: the collector did not get to drain after the kernel's quarter-full wake-up. */
const RAISE_FILL = 0.5;
const RELAX_FILL = 0.1;
const RELAX_AFTER_MS = 2_000;

/** How full a ring is, 0..1 (RingReader.fill); `ring`, the ring's map, when the watcher thread can map it too. */
export interface RingFill {
  fill(): number;
  readonly ring?: RingMapRef;
}

/** Indices of the flag the policy shares with its watcher thread. */
const NORMAL = 0;
const WATCHER_TID = 1;

export interface CpuPolicyStats {
  /** Times the collector left SCHED_IDLE because a ring filled. */
  raised: number;
  /** Whether it runs at the normal policy now. */
  normal: boolean;
}

export class CpuPolicy {
  /** [NORMAL]: 1 at the normal policy, 0 idle; [WATCHER_TID]: the watcher thread's id while it runs, else 0. */
  private readonly shared = new Int32Array(new SharedArrayBuffer(8));
  private calmSince: number | undefined;
  /** Set by the first yield: from then on check() raises and yields again. */
  private watching = false;
  private started = false;
  private raiseRefused = false;
  private raised = 0;
  private watcher: { worker: Worker; stopFd: number; exited: Promise<void>; stopOnExit: () => void } | undefined;

  constructor(
    private readonly mode: CpuPolicyMode,
    private readonly rings: readonly RingFill[],
    private readonly logger: Logger,
  ) {
    Atomics.store(this.shared, NORMAL, 1);
  }

  /**
   * Yields to the workloads (mode idle), and check() watches the rings from then on; a no-op at mode normal. With
   * rings the watcher can map, the yield waits for the watcher thread to run (it must stay out of it).
   */
  start(): void {
    if (this.mode !== 'idle' || this.started) return;
    this.started = true;
    const rings = this.rings.flatMap((ring) => (ring.ring ? [ring.ring] : []));
    if (rings.length === 0) this.firstYield();
    else this.startWatcher(rings);
  }

  /** Ends the watcher thread (a no-op without one). */
  async stop(): Promise<void> {
    const watcher = this.watcher;
    if (watcher === undefined) return;
    this.watcher = undefined;
    process.off('exit', watcher.stopOnExit);
    // Unreferenced while it runs, referenced while it is waited for: the wait keeps the event loop alive.
    watcher.worker.ref();
    watcher.stopOnExit();
    await watcher.exited;
    libcCalls.close(watcher.stopFd);
  }

  get stats(): CpuPolicyStats {
    return { raised: this.raised, normal: this.normal };
  }

  /** The watcher thread's id while it runs (it stays at the normal policy), else undefined. */
  get watcherThread(): number | undefined {
    return Atomics.load(this.shared, WATCHER_TID) || undefined;
  }

  private get normal(): boolean {
    return Atomics.load(this.shared, NORMAL) === 1;
  }

  /** Reads the rings' fill and changes the policy if it calls for it; a few memory reads when nothing changes. */
  check(): void {
    if (!this.watching) return;
    const fullest = Math.max(...this.rings.map((ring) => ring.fill()));
    if (!this.normal && fullest > RAISE_FILL) {
      if (this.setAll(SCHED_OTHER)) this.noteRaised(fullest);
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

  private noteRaised(fill: number): void {
    this.raised++;
    this.logger.info({ ring_fill: fill }, 'collector behind the kernel: left the idle CPU policy until it catches up');
  }

  private noteRefused(fill: number): void {
    if (this.raiseRefused) return;
    this.raiseRefused = true;
    this.logger.warn(
      { ring_fill: fill },
      'collector behind the kernel but not allowed to leave the idle CPU policy: grant it CAP_SYS_NICE, or set collector.cpuPolicy to normal; until then what its rings cannot take is counted as ring_full drops',
    );
  }

  /** The yield at start, once; check() watches from then on. */
  private firstYield(): void {
    if (this.watching) return;
    this.watching = true;
    this.setAll(SCHED_IDLE);
  }

  /**
   * Sets every thread's policy but the watcher's, this thread's last; false (and, once, a log naming the remedy) if
   * the kernel refuses it. The flag changes first when yielding: a watcher that raises meanwhile is not ignored.
   */
  private setAll(policy: number): boolean {
    if (policy === SCHED_IDLE) Atomics.store(this.shared, NORMAL, 0);
    if (!setThreadPolicies(policy, Atomics.load(this.shared, WATCHER_TID), libcCalls.gettid() as number)) {
      this.noteRefused(Math.max(...this.rings.map((ring) => ring.fill())));
      return false;
    }
    if (policy === SCHED_OTHER) Atomics.store(this.shared, NORMAL, 1);
    this.calmSince = undefined;
    return true;
  }

  /** The watcher thread (./ring-watch-worker.ts); the collector yields once it runs, or without it if it cannot. */
  private startWatcher(rings: RingMapRef[]): void {
    const stopFd = libcCalls.eventfd(0, EFD_CLOEXEC) as number;
    if (stopFd < 0) {
      this.withoutWatcher(`eventfd failed (errno ${lastErrno()})`);
      return;
    }
    const data: RingWatchData = { rings, raiseFill: RAISE_FILL, shared: this.shared, stopFd };
    let worker: Worker;
    try {
      worker = new Worker(new URL('./ring-watch-worker.js', import.meta.url), { workerData: data });
    } catch (error) {
      libcCalls.close(stopFd);
      this.withoutWatcher(String(error));
      return;
    }
    // It must not keep the process alive; an exit without stop() ends it too (a process exit waits for its
    // threads, and this one would wait out its epoll timeout).
    worker.unref();
    const stopOnExit = () => void libcCalls.write(stopFd, EVENTFD_ONE, EVENTFD_ONE.length);
    process.once('exit', stopOnExit);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.watcher = { worker, stopFd, exited, stopOnExit };
    // Messages after stop() (a watcher that started or failed as it was stopped) change nothing.
    const current = () => this.watcher?.worker === worker;
    worker.on('message', (message: { watching?: number; raised?: number; refused?: number; failed?: string }) => {
      if (!current()) return;
      if (message.watching !== undefined) {
        this.logger.info({ thread: message.watching }, 'ring watcher running: it leaves the idle CPU policy as soon as a ring is half full');
        this.firstYield();
      } else if (message.raised !== undefined) {
        this.calmSince = undefined;
        this.noteRaised(message.raised);
      } else if (message.refused !== undefined) {
        this.noteRefused(message.refused);
      } else if (message.failed !== undefined) {
        this.withoutWatcher(message.failed);
      }
    });
    worker.on('error', (error) => current() && this.withoutWatcher(String(error)));
  }

  /** The watcher could not run (or stopped running): the collector yields anyway, and raises only when it gets to drain. */
  private withoutWatcher(reason: string): void {
    this.logger.warn({ reason }, 'no ring watcher thread: the idle collector leaves the idle policy only when it gets to drain, so a busy node may fill its rings first');
    this.firstYield();
  }
}
