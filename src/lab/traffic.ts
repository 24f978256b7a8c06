/**
 * Traffic between lab pods with exact, known counts, for tests and benchmarks of the telemetry. Each helper runs
 * a small Node agent (agents/*.js) inside a pod and resolves to the counts the agent measured. Everything is
 * bounded: clients stop after their count or duration and at a deadline, servers at their lifetime, and a
 * parent-side timer kills an agent that does not report in time. Targets must be addresses of the client's lab.
 */
import { defaultClientTimeoutMs, defaultLifetimeMs, launch, startServer, type LabServer } from './agent-launch.js';
import type { Pod } from './pods.js';
import type {
  HttpLoadParams,
  HttpLoadResult,
  HttpServerParams,
  HttpServerStats,
  TcpClientParams,
  TcpClientResult,
  TcpServerParams,
  TcpServerStats,
} from './agents/protocol.js';

export type { HttpLoadResult, HttpServerStats, LabServer, TcpClientResult, TcpServerStats };

function assertInLab(from: Pod, host: string): void {
  if (!from.lab.subnet.contains(host)) {
    throw new RangeError(`lab traffic goes to addresses of the lab (${from.lab.subnet.cidr}), not ${host}`);
  }
}

/** Per connection: reads exactly expectBytes, writes replyBytes, closes. Binds the pod's address. */
export function startTcpServer(
  pod: Pod,
  options: { port: number; expectBytes: number; replyBytes: number; lifetimeMs?: number },
): Promise<LabServer<TcpServerStats>> {
  const params: Omit<TcpServerParams, 'host' | 'deadlineMs'> = { port: options.port, expectBytes: options.expectBytes, replyBytes: options.replyBytes };
  return startServer(pod, 'tcp-server', params, options.lifetimeMs ?? defaultLifetimeMs);
}

/** Answers every request with 200 (a path /status/<4xx or 5xx>: that status) and exactly responseBytes of body. Binds the pod's address. */
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
