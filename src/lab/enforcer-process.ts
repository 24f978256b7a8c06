/**
 * `sidecarless enforcer` as a separate process in a cgroup of its own, as on a node (role-process.ts), for tests
 * that kill it and for benchmarks that measure it: started with the caller's environment (at log level info: its
 * lines say when it runs and applies), its JSON log lines kept (to wait for "enforcer running" and count "policy
 * state applied"), stopped with SIGTERM or killed with SIGKILL (a crash: nothing of it runs any more, only its pins
 * enforce).
 */
import type { ChildProcess } from 'node:child_process';
import type { Cgroup } from '../ebpf/cgroup.js';
import { startRoleProcess } from './role-process.js';

export interface EnforcerProcess {
  child: ChildProcess;
  pid: number;
  cgroup: Cgroup;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** How many states it applied so far. */
  applies(): number;
  /** SIGKILL; resolves once it exited. Safe twice. */
  kill(): Promise<void>;
  /** SIGTERM; resolves once it exited, rejects (naming its last lines) if it has not within timeoutMs (default 30 s). */
  stop(timeoutMs?: number): Promise<void>;
}

export async function startEnforcerProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<EnforcerProcess> {
  const role = await startRoleProcess({ role: 'enforcer', env: () => env, runningMessage: 'enforcer running', timeoutMs });
  const { child, logs } = role;
  return {
    child,
    pid: role.pid,
    cgroup: role.cgroup,
    logs,
    applies: () => logs.filter((entry) => entry.msg === 'policy state applied').length,
    kill: () => role.signal('SIGKILL'),
    stop: (stopMs = 30_000) =>
      Promise.race([
        role.signal('SIGTERM'),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`enforcer still running ${stopMs} ms after SIGTERM: ${JSON.stringify(logs.slice(-3))}`)), stopMs).unref()),
      ]),
  };
}
