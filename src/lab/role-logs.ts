/**
 * A role started as a child process by the lab: its JSON log lines (stderr) collected as they come, and when it is
 * running (it logged `runningMessage`) or why it never was (it exited first, or `timeoutMs` passed).
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RoleLogs {
  /** Every line so far, parsed (a line that is not JSON as `{ msg: line }`). */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Resolves once it logged `runningMessage`; rejects, naming its last lines, if it exits or times out first. */
  readonly running: Promise<void>;
}

export function followRoleLogs(child: ChildProcess, role: string, runningMessage: string, timeoutMs?: number): RoleLogs {
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
      if (entry.msg === runningMessage) resolve();
    });
    void exited.then(() => reject(new Error(`${role} exited before running: ${JSON.stringify(logs.slice(-3))}`)));
    if (timeoutMs !== undefined) setTimeout(() => reject(new Error(`${role} not running within ${timeoutMs} ms: ${JSON.stringify(logs.slice(-3))}`)), timeoutMs).unref();
  });
  return { logs, exited, running };
}
