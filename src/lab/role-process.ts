/**
 * A role (`sidecarless <role>`) as a separate process in a cgroup of its own, as on a node: its CPU time is that
 * cgroup's cpu.stat (every thread and child), tests can list the cgroup as traced, and benchmarks measure it from
 * outside like any other agent. Its JSON log lines are kept (role-logs.ts); it is running once it logged
 * `runningMessage`. The cgroup goes when the process has exited.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cgroup } from '../ebpf/cgroup.js';
import { spawnInCgroup } from './cgroup-spawn.js';
import { followRoleLogs } from './role-logs.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

export interface RoleProcessOptions {
  role: string;
  /** Node's own flags, before the script. */
  nodeFlags?: readonly string[];
  /** The role's environment over this process's; given the role's cgroup (a collector may be told to trace it). */
  env: (cgroup: Cgroup) => Record<string, string>;
  runningMessage: string;
  /** How long it may take to log runningMessage; default: as long as it runs. */
  timeoutMs?: number;
}

export interface RoleProcess {
  child: ChildProcess;
  pid: number;
  cgroup: Cgroup;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Sends `signal` unless it has exited; resolves once it has, and its cgroup is gone. Safe to call twice. */
  signal(signal: NodeJS.Signals): Promise<void>;
}

/** Starts the role; resolves once it runs, else kills it and rejects with its last log lines. */
export async function startRoleProcess(options: RoleProcessOptions): Promise<RoleProcess> {
  const cgroup = Cgroup.create(`sidecarless-agent-${randomBytes(4).toString('hex')}`);
  const env = { ...process.env, ...options.env(cgroup), SIDECARLESS_LOG_LEVEL: 'info' };
  const child = spawnInCgroup(cgroup, process.execPath, [...(options.nodeFlags ?? []), bin, options.role], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const { logs, exited, running } = followRoleLogs(child, options.role, options.runningMessage, options.timeoutMs);
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
  return { child, pid: child.pid!, cgroup, logs, signal };
}
