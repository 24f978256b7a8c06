/**
 * Waiting until no run of a BPF program that started before now is still going: the kernel runs tracing programs
 * (__bpf_trace_run) and cgroup programs such as sock_ops (bpf_prog_run_array_cg) inside an RCU read-side section, so
 * one RCU grace period is enough. membarrier(2)'s
 * MEMBARRIER_CMD_GLOBAL waits for exactly that (synchronize_rcu(): milliseconds, blocking this thread); kernels with
 * nohz_full CPUs refuse that command, and a pause far longer than a grace period stands in.
 */
import { libcCalls } from './native.js';

const SYS_MEMBARRIER = 324; // x86-64, the only architecture the programs are built for (bpf/Makefile)
const MEMBARRIER_CMD_GLOBAL = 1;
const FALLBACK_WAIT_MS = 100;

/** Returns once every BPF program run that was in progress when called has ended. */
export function waitForProgramRuns(): void {
  const result = Number(libcCalls.syscall(SYS_MEMBARRIER, 'int', MEMBARRIER_CMD_GLOBAL, 'unsigned int', 0, 'int', 0));
  if (result !== 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FALLBACK_WAIT_MS);
}
