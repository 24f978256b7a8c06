/**
 * A long-running role (`sidecarless <role>`) as a separate process, as on a node, for tests that kill it and for
 * benchmarks: started with the caller's environment (at log level info: its lines say when it runs and what it
 * does), its JSON log lines kept (to wait for its running message and count what it did), stopped with SIGTERM or
 * killed with SIGKILL (a crash: nothing of it runs any more).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { followRoleLogs } from './role-logs.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

export interface RoleProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** SIGKILL; resolves once it exited. Safe twice. */
  kill(): Promise<void>;
  /** SIGTERM; resolves once it exited, rejects (naming its last lines) if it has not within timeoutMs (default 30 s). */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `sidecarless <role>` and resolves once it logged `runningMessage` (killed and rejected if it does not within
 * timeoutMs). `launcher` runs it (a command that execs its arguments, e.g. setpriv with the capabilities a pod grants).
 */
export async function startRoleProcess(role: string, runningMessage: string, env: Record<string, string>, timeoutMs = 60_000, launcher: readonly string[] = []): Promise<RoleProcess> {
  const [command, ...args] = [...launcher, process.execPath, bin, role];
  const child = spawn(command!, args, { env: { ...process.env, ...env, SIDECARLESS_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const { logs, exited, running } = followRoleLogs(child, role, runningMessage, timeoutMs);
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  try {
    await running;
  } catch (error) {
    await signal('SIGKILL');
    throw error;
  }
  return {
    child,
    logs,
    kill: () => signal('SIGKILL'),
    stop: (stopMs = 30_000) =>
      Promise.race([
        signal('SIGTERM'),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${role} still running ${stopMs} ms after SIGTERM: ${JSON.stringify(logs.slice(-3))}`)), stopMs).unref()),
      ]),
  };
}
