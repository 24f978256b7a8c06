/** `sidecarless <command>` as a process of its own, as a user runs it: its exit code and everything it printed. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

export interface CommandRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningCommand {
  child: ChildProcess;
  /** What it printed so far (stderr): to wait for a line before signalling it. */
  stderr(): string;
  done: Promise<CommandRun>;
}

/** Starts the command with `env` as its whole environment, `stdin` written to it and closed. */
export function startCommand(command: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin = ''): RunningCommand {
  const child = spawn(process.execPath, [bin, command, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  child.stdin!.end(stdin);
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, stderr: () => stderr, done };
}
