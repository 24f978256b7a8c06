/**
 * The CPU policy's watcher (./cpu-policy.ts), on a thread of its own that stays at the normal policy: it sleeps in
 * epoll on the rings and, when one of the kernel's early wake-ups (a ring a quarter, a half, three quarters full:
 * ring_wakeup_bytes in bpf/include/common.bpf.h) finds a ring more than the policy's raise fill while the collector
 * is idle, returns every other thread of the process to the normal policy at once.
 *
 * Why a thread: an idle (SCHED_IDLE) collector on a node whose CPUs are busy gets almost no CPU, so its own check
 * before a drain came when the ring was already full (measured: wrk at 43,000 requests/s against nginx in two lab
 * pods on this 2-CPU machine, the collector's first check at 89 % full, 71,539 records lost before it caught up).
 * This thread is woken by the kernel, not scheduled behind the workloads, and its work on a wake-up is a few reads
 * and, when called for, a sched_setscheduler per thread.
 *
 * It shares with the main thread one Int32Array over a SharedArrayBuffer: [0] 1 while the collector runs at the
 * normal policy, 0 while idle (each side sets it when it changes the policy), [1] this thread's id once it runs.
 * Its messages: { watching: thread id } once it watches, { raised: fill } after it raised, { refused: fill } when the
 * kernel refused (no CAP_SYS_NICE), { failed: text } when it could not watch. The main thread stops it by writing
 * stopFd.
 */
import { readdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { lastErrno, libcCalls, linux } from '../ebpf/native.js';
import { RingPositions, type RingMapRef } from '../ebpf/ringbuf.js';

export interface RingWatchData {
  rings: RingMapRef[];
  raiseFill: number;
  /** [0]: 1 normal, 0 idle; [1]: this thread's id. */
  shared: Int32Array;
  /** An eventfd the main thread writes to stop this thread. */
  stopFd: number;
}

const { SCHED_OTHER, EPERM, EPOLL_CTL_ADD, EPOLLIN, EPOLLET, EPOLL_CLOEXEC } = linux;
const STOP_EVENT = 0;

const { rings, raiseFill, shared, stopFd } = workerData as RingWatchData;
const self = libcCalls.gettid() as number;

/** Every other thread of the process to the normal policy; false when the kernel refuses. */
function raiseOthers(): boolean {
  const param = new Int32Array(1);
  for (const task of readdirSync('/proc/self/task')) {
    if (Number(task) === self) continue;
    // A thread that ended since the directory was read fails with ESRCH: nothing to raise.
    if (libcCalls.schedSetScheduler(Number(task), SCHED_OTHER, param) !== 0 && lastErrno() === EPERM) return false;
  }
  return true;
}

function watch(positions: RingPositions[]): void {
  const epfd = libcCalls.epollCreate(EPOLL_CLOEXEC) as number;
  if (epfd < 0) throw new Error(`epoll_create1 failed (errno ${lastErrno()})`);
  try {
    // Edge-triggered: woken by each of the kernel's wake-ups of a ring, not for as long as it holds records.
    for (const [index, { fd }] of rings.entries()) {
      if ((libcCalls.epollCtl(epfd, EPOLL_CTL_ADD, fd, { events: EPOLLIN | EPOLLET, data: index + 1 }) as number) < 0) throw new Error(`epoll_ctl failed (errno ${lastErrno()})`);
    }
    if ((libcCalls.epollCtl(epfd, EPOLL_CTL_ADD, stopFd, { events: EPOLLIN, data: STOP_EVENT }) as number) < 0) throw new Error(`epoll_ctl failed (errno ${lastErrno()})`);
    parentPort!.postMessage({ watching: self });
    const events = [...rings, stopFd].map(() => ({ events: 0, data: 0 }));
    let refused = false;
    for (;;) {
      const count = libcCalls.epollWait(epfd, events, events.length, -1) as number;
      if (count < 0) continue; // EINTR
      if (events.slice(0, count).some((event) => Number(event.data) === STOP_EVENT)) return;
      if (Atomics.load(shared, 0) === 1) continue;
      const fill = Math.max(...positions.map((ring) => ring.fill()));
      if (fill <= raiseFill) continue;
      if (raiseOthers()) {
        Atomics.store(shared, 0, 1);
        parentPort!.postMessage({ raised: fill });
      } else if (!refused) {
        refused = true;
        parentPort!.postMessage({ refused: fill });
      }
    }
  } finally {
    libcCalls.close(epfd);
  }
}

const positions: RingPositions[] = [];
try {
  // Created by a thread that may already be idle, it would be idle too: this one thread stays at the normal policy.
  if (libcCalls.schedSetScheduler(0, SCHED_OTHER, new Int32Array(1)) !== 0) throw new Error(`cannot run at the normal policy (errno ${lastErrno()})`);
  Atomics.store(shared, 1, self);
  for (const ring of rings) positions.push(new RingPositions(ring));
  watch(positions);
} catch (error) {
  parentPort!.postMessage({ failed: String(error) });
} finally {
  for (const ring of positions) ring.release();
}
