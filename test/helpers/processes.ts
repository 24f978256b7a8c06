/**
 * Programs the tests start in lab pods: the Python interpreter to run, the wait for the line a server prints once
 * it listens, and a client run to its end.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { Pod } from '../../src/lab/pods.js';

/** The interpreter itself, not a shim script (pyenv's) that would run it as another process. */
export const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

/**
 * Resolves at the first line of `stream` (the child's stdout unless given) that `matches` ('ready' unless given);
 * rejects if the child exits first.
 */
export function lineFrom(child: ChildProcess, what: string, matches: (line: string) => boolean = (line) => line === 'ready', stream: Readable = child.stdout!): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    createInterface({ input: stream }).on('line', (line) => matches(line) && resolve());
    child.once('exit', (code, signal) => reject(new Error(`${what} exited (${code ?? signal}) before it was ready`)));
  });
}

/** What a program run to its end printed, and how it ended. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program in the pod to its end without blocking this process (the tests' taps keep draining their rings
 * meanwhile); throws unless it exits with one of `okCodes` (0 unless given).
 */
export async function runIn(pod: Pod, command: string, args: readonly string[], okCodes: readonly number[] = [0]): Promise<Finished> {
  const child = pod.spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code === null || !okCodes.includes(code)) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr}`);
  return { code, stdout, stderr };
}
