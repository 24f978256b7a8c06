/**
 * A long-running role (`sidecarless <role>`) as a separate process in a cgroup of its own, as on a node, for tests
 * that kill it and for benchmarks that measure it: its CPU time is that cgroup's cpu.stat (every thread and child),
 * tests can list the cgroup as traced, benchmarks read it from outside like any other agent's. Started with the
 * caller's environment (at log level info: its lines say when it runs and what it does), its JSON log lines kept
 * (role-logs.ts: to wait for its running message and count what it did), stopped with SIGTERM or killed with SIGKILL
 * (a crash: nothing of it runs any more). The cgroup goes once the process has exited.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cgroup } from '../ebpf/cgroup.js';
import { spawnInCgroup } from './cgroup-spawn.js';
import { followRoleLogs } from './role-logs.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

export interface RoleProcessOptions {
  /** How long it may take to log its running message; default 60 s. */
  timeoutMs?: number;
  /** A command that execs its arguments and runs the role (e.g. setpriv with the capabilities a pod grants). */
  launcher?: readonly string[];
  /** Node's own flags, before the script. */
  nodeFlags?: readonly string[];
}

export interface RoleProcess {
  child: ChildProcess;
  pid: number;
  cgroup: Cgroup;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** SIGKILL; resolves once it exited and its cgroup is gone. Safe twice, and after stop(). */
  kill(): Promise<void>;
  /** SIGTERM; resolves once it exited, rejects (naming its last lines) if it has not within timeoutMs (default 30 s). */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `sidecarless <role>` in a fresh cgroup and resolves once it logged `runningMessage` (killed and rejected if
 * it does not within the timeout). `env` may depend on the cgroup (a collector told to trace its own).
 */
export async function startRoleProcess(role: string, runningMessage: string, env: Record<string, string> | ((cgroup: Cgroup) => Record<string, string>), options: RoleProcessOptions = {}): Promise<RoleProcess> {
  const cgroup = Cgroup.create(`sidecarless-agent-${randomBytes(4).toString('hex')}`);
  const roleEnv = typeof env === 'function' ? env(cgroup) : env;
  const [command, ...args] = [...(options.launcher ?? []), process.execPath, ...(options.nodeFlags ?? []), bin, role];
  const child = spawnInCgroup(cgroup, command!, args, { env: { ...process.env, ...roleEnv, SIDECARLESS_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const { logs, exited, running } = followRoleLogs(child, role, runningMessage, options.timeoutMs ?? 60_000);
  // Signalled twice (a test's after() killing whatever a failed test left running), the cgroup is released once.
  let released = false;
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
    if (!released) (released = true), cgroup.remove();
  };
  try {
    await running;
  } catch (error) {
    await signal('SIGKILL');
    throw error;
  }
  return {
    child,
    pid: child.pid!,
    cgroup,
    logs,
    kill: () => signal('SIGKILL'),
    stop: (stopMs = 30_000) =>
      Promise.race([
        signal('SIGTERM'),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${role} still running ${stopMs} ms after SIGTERM: ${JSON.stringify(logs.slice(-3))}`)), stopMs).unref()),
      ]),
  };
}
