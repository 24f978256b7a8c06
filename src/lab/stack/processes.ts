/**
 * Background processes of the local stack, tracked by pid files so that `stack up`, `stack status` and
 * `stack down` can run as separate invocations.
 *
 * A pid file alone is not proof: after a reboot or a crash the pid may belong to an unrelated process. Every
 * process is therefore started with a marker in its command line (its config file path, which also names this
 * checkout's .stack directory), and a pid counts as ours only while /proc/<pid>/cmdline still contains it.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SidecarlessError } from '../../common/errors.js';

/**
 * The .stack directory of this checkout. The compiled module sits at dist/src/cli/stack/, four levels below the
 * repository root; SIDECARLESS_STACK_DIR moves it elsewhere.
 */
export const stackDir = process.env.SIDECARLESS_STACK_DIR ?? fileURLToPath(new URL('../../../../.stack', import.meta.url));

export function logFile(name: string): string {
  return join(stackDir, 'logs', `${name}.log`);
}

/** A path as the user should read it in messages: relative to the working directory when that is shorter. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length < path.length && !rel.startsWith('..') ? rel : path;
}

function pidFile(name: string): string {
  return join(stackDir, 'pids', `${name}.pid`);
}

/** True while the pid exists, is not a zombie, and its command line contains the marker. */
function isOurProcess(pid: number, marker: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    if (!cmdline.includes(marker)) return false;
    // A zombie has exited but keeps its cmdline until reaped; field 3 of /proc/<pid>/stat is the state.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The pid of the named process when it runs; removes a stale pid file. */
export function runningPid(name: string, marker: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(name), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (Number.isInteger(pid) && pid > 0 && isOurProcess(pid, marker)) return pid;
  rmSync(pidFile(name), { force: true });
  return undefined;
}

export interface SpawnSpec {
  name: string;
  command: string;
  args: string[];
  /** Must appear in the command line (see the module comment). */
  marker: string;
  cwd?: string;
}

/**
 * Starts the process in its own session (so it outlives the CLI and a Ctrl-C in the terminal does not reach it),
 * appending stdout and stderr to .stack/logs/<name>.log, and records its pid.
 */
export function spawnDetached(spec: SpawnSpec): void {
  if (!spec.args.some((arg) => arg.includes(spec.marker)) && !spec.command.includes(spec.marker)) {
    throw new Error(`${spec.name}: marker ${spec.marker} is not part of the command line`);
  }
  mkdirSync(join(stackDir, 'logs'), { recursive: true });
  mkdirSync(join(stackDir, 'pids'), { recursive: true });
  const out = openSync(logFile(spec.name), 'a');
  try {
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd ?? stackDir, detached: true, stdio: ['ignore', out, out] });
    // A command that cannot start (ENOENT) leaves pid undefined and also emits 'error', which would crash the
    // CLI unless listened to; the throw reports it.
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`${spec.name}: could not start ${spec.command}`);
    child.unref();
    awaitExec(child.pid, spec.marker);
    writeFileSync(pidFile(spec.name), `${child.pid}\n`);
  } finally {
    closeSync(out);
  }
}

/** How long spawnDetached waits at most for its child's exec to show (microseconds, unless the machine is loaded). */
const EXEC_WAIT_MS = 5_000;

/**
 * spawn() can return before the child's exec has replaced its command line: /proc/<pid>/cmdline then reads empty
 * (15 of 200 spawns of /bin/sleep read so right after spawn() returned, on this 2-CPU machine), and a pid whose
 * command line lacks the marker counts as not ours. A start that checked it then took a starting kube-apiserver
 * for one that had exited, removed its pid file and left it running, out of `stack down`'s reach. So this waits
 * for the marker, or the child's end (which the callers then see), before the pid is recorded.
 */
function awaitExec(pid: number, marker: string): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + EXEC_WAIT_MS;
  while (Date.now() < deadline) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return; // exited
    }
    if (cmdline.includes(marker)) return;
    Atomics.wait(pause, 0, 0, 1);
  }
}

/**
 * Runs a one-off step (such as formatting storage) to completion with its output appended to the service's log,
 * so a failure is read in the same file as the service's own start-up messages.
 */
export function runLogged(name: string, command: string, args: string[], timeoutMs: number): Promise<void> {
  mkdirSync(join(stackDir, 'logs'), { recursive: true });
  const out = openSync(logFile(name), 'a');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { cwd: stackDir, stdio: ['ignore', out, out], timeout: timeoutMs });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with ${signal ?? `code ${code}`}`));
    });
  }).finally(() => closeSync(out));
}

/**
 * SIGTERM, then SIGKILL once graceMs has passed. Returns false when nothing of ours was running.
 * Kafka needs the grace period: a clean shutdown spares it log recovery on the next start.
 */
export async function stopProcess(name: string, marker: string, graceMs: number): Promise<boolean> {
  const pid = runningPid(name, marker);
  if (pid === undefined) return false;
  signal(pid, 'SIGTERM');
  const gone = () => Promise.resolve(!isOurProcess(pid, marker));
  try {
    await waitFor(gone, { timeoutMs: graceMs, what: `${name} (pid ${pid}) to exit after SIGTERM` });
  } catch {
    signal(pid, 'SIGKILL');
    await waitFor(gone, { timeoutMs: 10_000, what: `${name} (pid ${pid}) to exit after SIGKILL` });
  }
  rmSync(pidFile(name), { force: true });
  return true;
}

/** kill(2) that tolerates the process having exited since it was checked. */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export interface WaitOptions {
  timeoutMs: number;
  /** What is awaited, for the timeout message ("Kafka to accept admin requests"). */
  what: string;
  intervalMs?: number;
}

/**
 * Polls until check() resolves true. A check that throws stops the wait at once (use it for "the process died");
 * one that resolves false is retried until the deadline.
 */
export async function waitFor(check: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 200;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** True when something accepts TCP connections on host:port (used to refuse starting over a foreign listener). */
export function acceptsConnections(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Refuses to start a service whose ports another process holds, naming the variables that move them. */
export async function ensurePortsFree(service: string, host: string, ports: Record<string, number>): Promise<void> {
  for (const [variable, port] of Object.entries(ports)) {
    if (await acceptsConnections(host, port)) {
      throw new SidecarlessError(`${host}:${port} is already taken by another process; stop it or move the stack with ${variable}`, {
        context: { component: service },
      });
    }
  }
}
