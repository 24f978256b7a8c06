/**
 * The scheduling policy of this process's threads, set thread by thread (the policy is per thread): what the CPU
 * policy (./cpu-policy.ts) and its ring watcher (./ring-watch-worker.ts) both do.
 */
import { readdirSync } from 'node:fs';
import { lastErrno, libcCalls, linux } from '../ebpf/native.js';

/**
 * Sets `policy` on every thread of the process but `skip`, and on `last` after all the others (the calling thread
 * going idle last: it cannot be starved half way through). False when the kernel refuses (EPERM: leaving SCHED_IDLE
 * takes CAP_SYS_NICE); a thread that ended since the directory was read is no refusal.
 */
export function setThreadPolicies(policy: number, skip: number, last: number): boolean {
  const param = new Int32Array(1);
  const tasks = readdirSync('/proc/self/task').map(Number).filter((task) => task !== skip && task !== last);
  if (last !== skip) tasks.push(last);
  for (const task of tasks) {
    if (libcCalls.schedSetScheduler(task, policy, param) !== 0 && lastErrno() === linux.EPERM) return false;
  }
  return true;
}
