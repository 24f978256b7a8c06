/**
 * The CPU policy's watcher (./cpu-policy.ts), on a thread of its own that stays at the normal policy: it sleeps in
 * epoll on the rings and, when it finds a ring at least the policy's raise fill, returns every other thread of the
 * process to the normal policy at once. The kernel wakes it with the collector's reader: at the first record after
 * the reader caught up (about once per drain cycle per ring) and early, as a ring passes a quarter, a half and three
 * quarters full (ring_wakeup_bytes in bpf/include/common.bpf.h); it also looks after an epoll timeout of a second,
 * the most it sleeps, so a missed wake-up is made up for and a process exit never waits on it for longer. A ring
 * that passes half full has a reader that did not drain it in time, whether starved or merely slow; both call for
 * the CPU. (Raising only for a reader that had not read at all since the last look let a starved reader's rare
 * slivers of CPU pass for progress: in one wrk run the raise then came at a full ring, 344,426 records lost.)
 *
 * Why a thread: an idle (SCHED_IDLE) collector on a node whose CPUs are busy gets almost no CPU, so its own check
 * before a drain came when the ring was already full (measured: wrk at 43,000 requests/s against nginx in two lab
 * pods on this 2-CPU machine, the collector's first check at 89 % full, 71,539 records lost before it caught up).
 * This thread is woken by the kernel, not scheduled behind the workloads, and its work on a wake-up is a few reads
 * and, when called for, a sched_setscheduler per thread.
 *
 * It shares with the main thread one Int32Array over a SharedArrayBuffer: [0] 1 while the collector runs at the
 * normal policy, 0 while idle, [1] this thread's id while it runs. It raises whenever a ring is that full, whatever
 * [0] says (a main thread half way through yielding may not have cleared it yet; raising twice is harmless), and
 * reports a raise only when it set [0] from 0. Its messages: { watching: thread id } once it watches, { raised:
 * fill } after a raise it reports, { refused: fill } once when the kernel refused (no CAP_SYS_NICE), { failed: text }
 * when it cannot watch. The main thread stops it by writing stopFd.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lastErrno, libcCalls, linux } from '../ebpf/native.js';
import { RingEpoll, RingPositions, type RingMapRef } from '../ebpf/ringbuf.js';
import { setThreadPolicies } from './thread-policy.js';

export interface RingWatchData {
  rings: RingMapRef[];
  raiseFill: number;
  /** [0]: 1 normal, 0 idle; [1]: this thread's id. */
  shared: Int32Array;
  /** An eventfd the main thread writes to stop this thread. */
  stopFd: number;
}

const { SCHED_OTHER } = linux;
const WAIT_MS = 1_000;

const { rings, raiseFill, shared, stopFd } = workerData as RingWatchData;
const self = libcCalls.gettid() as number;

function watch(positions: RingPositions[]): void {
  const epoll = new RingEpoll(rings.map(({ fd }) => fd), 'ring watch', stopFd);
  try {
    parentPort!.postMessage({ watching: self });
    let refused = false;
    for (;;) {
      const outcome = epoll.waitBlocking(WAIT_MS);
      if (outcome === 'stop') return;
      const fill = Math.max(...positions.map((ring) => ring.fill()));
      if (fill < raiseFill) continue;
      if (setThreadPolicies(SCHED_OTHER, self, self)) {
        if (Atomics.exchange(shared, 0, 1) === 0) parentPort!.postMessage({ raised: fill });
      } else if (!refused) {
        refused = true;
        parentPort!.postMessage({ refused: fill });
      }
    }
  } finally {
    epoll.release();
  }
}

const positions: RingPositions[] = [];
try {
  // Published before this thread leaves the idle policy it may have been made: a main thread yielding from then on
  // skips it, and one that yielded before is undone here.
  Atomics.store(shared, 1, self);
  if (libcCalls.schedSetScheduler(0, SCHED_OTHER, new Int32Array(1)) !== 0) throw new Error(`cannot run at the normal policy (errno ${lastErrno()})`);
  for (const ring of rings) positions.push(new RingPositions(ring));
  watch(positions);
} catch (error) {
  parentPort!.postMessage({ failed: String(error) });
} finally {
  Atomics.store(shared, 1, 0);
  for (const ring of positions) ring.release();
}
