/**
 * Traffic between lab pods with exact, known counts, for tests and benchmarks of the telemetry. Each helper runs
 * a small Node agent (agents/*.js) inside a pod and resolves to the counts the agent measured. Everything is
 * bounded: clients stop after their count or duration and at a deadline, servers at their lifetime, and a
 * parent-side timer kills an agent that does not report in time. Targets must be addresses of the client's lab.
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SidecarlessError } from '../common/errors.js';
import type { Pod } from './pods.js';
import type {
  AgentMessage,
  HttpLoadParams,
  HttpLoadResult,
  HttpServerParams,
  HttpServerStats,
  TcpClientParams,
  TcpClientResult,
  TcpServerParams,
  TcpServerStats,
} from './agents/protocol.js';

export type { HttpLoadResult, HttpServerStats, TcpClientResult, TcpServerStats };

/** How long past its own deadline an agent may take to report before it is killed. */
const reportGraceMs = 5_000;
const defaultLifetimeMs = 10 * 60_000;
const defaultClientTimeoutMs = 60_000;

interface Agent<R> {
  ready: Promise<void>;
  result: Promise<R>;
  /** Closes the agent's stdin, which tells it to stop and report. */
  stop(): void;
}

function launch<R>(pod: Pod, agent: string, params: object, deadlineMs: number): Agent<R> {
  const file = fileURLToPath(new URL(`./agents/${agent}.js`, import.meta.url));
  const child = pod.spawn(process.execPath, [file, JSON.stringify({ ...params, deadlineMs })], { stdio: ['pipe', 'pipe', 'pipe'] });
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
    else {
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

function assertInLab(from: Pod, host: string): void {
  if (!from.lab.subnet.contains(host)) {
    throw new RangeError(`lab traffic goes to addresses of the lab (${from.lab.subnet.cidr}), not ${host}`);
  }
}

export interface LabServer<S> {
  readonly pod: Pod;
  readonly port: number;
  /** Stops accepting, closes open connections, resolves to the server's counts. */
  stop(): Promise<S>;
}

async function startServer<S>(pod: Pod, agent: string, params: object & { port: number }, lifetimeMs: number): Promise<LabServer<S>> {
  const running = launch<S>(pod, agent, { host: pod.ip, ...params }, lifetimeMs);
  await running.ready;
  return { pod, port: params.port, stop: () => (running.stop(), running.result) };
}

/** Per connection: reads exactly expectBytes, writes replyBytes, closes. Binds the pod's address. */
export function startTcpServer(
  pod: Pod,
  options: { port: number; expectBytes: number; replyBytes: number; lifetimeMs?: number },
): Promise<LabServer<TcpServerStats>> {
  const params: Omit<TcpServerParams, 'host' | 'deadlineMs'> = { port: options.port, expectBytes: options.expectBytes, replyBytes: options.replyBytes };
  return startServer(pod, 'tcp-server', params, options.lifetimeMs ?? defaultLifetimeMs);
}

/** Answers every request with 200 and exactly responseBytes of body. Binds the pod's address. */
export async function startHttpServer(
  pod: Pod,
  options: { port: number; responseBytes: number; lifetimeMs?: number },
): Promise<LabServer<HttpServerStats> & { url: string }> {
  const params: Omit<HttpServerParams, 'host' | 'deadlineMs'> = { port: options.port, responseBytes: options.responseBytes };
  const server = await startServer<HttpServerStats>(pod, 'http-server', params, options.lifetimeMs ?? defaultLifetimeMs);
  return { ...server, url: `http://${pod.ip}:${options.port}` };
}

/**
 * Connections from a pod; each sends exactly sendBytes, reads exactly expectBytes, closes. The run ends after
 * `connections` or after durationMs, whichever comes first (connections defaults to 1 without durationMs,
 * unbounded with it); ratePerSecond paces the starts (default: as fast as `concurrency` allows).
 */
export function runTcpClient(
  from: Pod,
  options: {
    host: string;
    port: number;
    connections?: number;
    durationMs?: number;
    ratePerSecond?: number;
    concurrency?: number;
    sendBytes: number;
    expectBytes: number;
    timeoutMs?: number;
  },
): Promise<TcpClientResult> {
  assertInLab(from, options.host);
  const params: Omit<TcpClientParams, 'deadlineMs'> = {
    host: options.host,
    port: options.port,
    connections: options.connections ?? (options.durationMs === undefined ? 1 : Number.MAX_SAFE_INTEGER),
    durationMs: options.durationMs ?? 0,
    ratePerSecond: options.ratePerSecond ?? 0,
    concurrency: options.concurrency ?? 16,
    sendBytes: options.sendBytes,
    chunks: 1,
    intervalMs: 0,
    expectBytes: options.expectBytes,
  };
  const deadlineMs = options.timeoutMs ?? (options.durationMs ?? 0) + defaultClientTimeoutMs;
  return launch<TcpClientResult>(from, 'tcp-client', params, deadlineMs).result;
}

/**
 * One connection kept open for `seconds`: a chunk of chunkBytes at the end of every second (seconds × chunkBytes
 * in all), then reads expectBytes and closes. Pair it with startTcpServer({ expectBytes: seconds × chunkBytes }).
 */
export function holdConnection(
  from: Pod,
  options: { host: string; port: number; seconds: number; chunkBytes: number; expectBytes?: number },
): Promise<TcpClientResult> {
  assertInLab(from, options.host);
  if (!Number.isInteger(options.seconds) || options.seconds < 1) throw new RangeError(`holdConnection: seconds ${options.seconds} must be a whole number ≥ 1`);
  const params: Omit<TcpClientParams, 'deadlineMs'> = {
    host: options.host,
    port: options.port,
    connections: 1,
    durationMs: 0,
    ratePerSecond: 0,
    concurrency: 1,
    sendBytes: options.seconds * options.chunkBytes,
    chunks: options.seconds,
    intervalMs: 1_000,
    expectBytes: options.expectBytes ?? 0,
  };
  return launch<TcpClientResult>(from, 'tcp-client', params, options.seconds * 1_000 + defaultClientTimeoutMs).result;
}

/**
 * GET requests from a pod over `concurrency` keep-alive connections until `requests` were sent or durationMs
 * passed (at least one of them), each response read to the end.
 */
export function runHttpLoad(
  from: Pod,
  url: string,
  options: { requests?: number; durationMs?: number; concurrency?: number; timeoutMs?: number },
): Promise<HttpLoadResult> {
  assertInLab(from, new URL(url).hostname);
  if (options.requests === undefined && options.durationMs === undefined) throw new RangeError('runHttpLoad: give requests, durationMs or both');
  const params: Omit<HttpLoadParams, 'deadlineMs'> = { url, requests: options.requests, durationMs: options.durationMs, concurrency: options.concurrency ?? 1 };
  const deadlineMs = options.timeoutMs ?? (options.durationMs ?? 0) + defaultClientTimeoutMs;
  return launch<HttpLoadResult>(from, 'http-load', params, deadlineMs).result;
}
