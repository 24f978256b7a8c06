/**
 * Runs the lab's agents (agents/*.js, small Node scripts) inside pods: parameters as one JSON argument, JSON lines
 * back (agents/protocol.ts). Every agent is bounded: it stops when its stdin closes or its deadline passes, and a
 * timer here kills one that does not report in time, so no agent outlives the run that started it.
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SidecarlessError } from '../common/errors.js';
import type { AgentMessage } from './agents/protocol.js';
import type { Cgroup } from '../ebpf/cgroup.js';
import type { Pod } from './pods.js';

/** How long past its own deadline an agent may take to report before it is killed. */
const reportGraceMs = 5_000;
/** Servers stop by themselves after this long unless told otherwise. */
export const defaultLifetimeMs = 10 * 60_000;
/** Clients are killed after their own duration and this long. */
export const defaultClientTimeoutMs = 60_000;

export interface Agent<R> {
  ready: Promise<void>;
  result: Promise<R>;
  /** Closes the agent's stdin, which tells it to stop and report. */
  stop(): void;
}

/**
 * Runs agents/<agent>.js inside the pod (in `container`, one of Pod.addContainer's, if given) with its parameters;
 * killed if it has not reported past its deadline. Events it reports as they happen (protocol.ts `report`) go to
 * onEvent.
 */
export function launch<R>(pod: Pod, agent: string, params: object, deadlineMs: number, onEvent?: (event: Record<string, unknown>) => void, container?: Cgroup): Agent<R> {
  const file = fileURLToPath(new URL(`./agents/${agent}.js`, import.meta.url));
  const child = pod.spawn(process.execPath, [file, JSON.stringify({ ...params, deadlineMs })], { stdio: ['pipe', 'pipe', 'pipe'], container });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)));
  let outcome: R | undefined;
  let readyDone!: (err?: Error) => void;
  let resultDone!: (err: Error | undefined, value?: R) => void;
  const ready = new Promise<void>((resolve, reject) => (readyDone = (err) => (err ? reject(err) : resolve())));
  const result = new Promise<R>((resolve, reject) => (resultDone = (err, value) => (err ? reject(err) : resolve(value!))));
  // Whoever awaits these sees a rejection; nobody awaiting (a server never stopped) is not a crash.
  ready.catch(() => {});
  result.catch(() => {});

  createInterface({ input: child.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as AgentMessage<R>;
    if (message.type === 'ready') readyDone();
    else if (message.type === 'event') {
      const { type: _, ...event } = message;
      onEvent?.(event);
    } else {
      const { type: _, ...counts } = message;
      outcome = counts as R;
    }
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), deadlineMs + reportGraceMs);
  child.on('close', (code, signal) => {
    clearTimeout(killer);
    const how = signal ? `was killed by ${signal}` : `exited with ${code}`;
    const failure = (what: string) =>
      new SidecarlessError(`lab agent ${agent} in pod ${pod.name} ${how} ${what}: ${stderr.trim()}`, { context: { component: 'lab' } });
    readyDone(failure('before it was ready')); // no effect once ready
    resultDone(code === 0 && outcome !== undefined ? undefined : failure('without a result'), outcome);
  });
  // stop() may come after the agent ended (killed by a teardown); writing to its stdin then fails with EPIPE.
  child.stdin!.on('error', () => {});
  return { ready, result, stop: () => child.stdin!.end() };
}

export interface LabServer<S> {
  readonly pod: Pod;
  readonly port: number;
  /** Stops accepting, closes open connections, resolves to the server's counts. */
  stop(): Promise<S>;
}

/** Starts a server agent bound to the pod's address and resolves once it listens. */
export async function startServer<S>(pod: Pod, agent: string, params: object & { port: number }, lifetimeMs: number): Promise<LabServer<S>> {
  const running = launch<S>(pod, agent, { host: pod.ip, ...params }, lifetimeMs);
  await running.ready;
  return { pod, port: params.port, stop: () => (running.stop(), running.result) };
}
