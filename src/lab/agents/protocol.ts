/**
 * How traffic.ts talks to the traffic agents, small Node scripts it runs inside pods (one file per agent in this
 * directory). Parameters arrive as one JSON argument; the agent writes JSON lines to stdout: {"type":"ready"} once
 * listening (servers), {"type":"result",...} once at the end. An agent stops by itself when stdin closes (the
 * parent called stop() or died) or its deadline passes, so no agent outlives the run that started it.
 */

export interface TcpServerParams {
  host: string;
  port: number;
  /** Bytes read from each connection before replying. */
  expectBytes: number;
  /** Bytes written back once expectBytes arrived; then the server closes its side. */
  replyBytes: number;
  /** Stops by itself after this long. */
  deadlineMs: number;
}

export interface TcpServerStats {
  connections: number;
  /** Connections that got exactly expectBytes, were sent replyBytes and closed cleanly. */
  completed: number;
  bytesReceived: number;
  bytesSent: number;
  /** Distinct client addresses. */
  peers: string[];
}

export interface TcpClientParams {
  host: string;
  port: number;
  /** Stops after this many connections... */
  connections: number;
  /** ...or once durationMs has passed since the start (0: no time limit), whichever comes first. */
  durationMs: number;
  /** Connections started per second, evenly spaced (one that is late starts at once); 0: as fast as possible. */
  ratePerSecond: number;
  /** Connections open at a time. */
  concurrency: number;
  /** Bytes sent on each connection, in `chunks` writes, waiting intervalMs before each write. */
  sendBytes: number;
  chunks: number;
  intervalMs: number;
  /** Bytes read back before closing. */
  expectBytes: number;
  deadlineMs: number;
}

export interface TcpClientResult {
  connections: number;
  /** Connections that sent sendBytes, got exactly expectBytes and an orderly close. */
  completed: number;
  bytesSent: number;
  bytesReceived: number;
  /** Distinct local ports: with one server address and port, the distinct 5-tuples the run used. */
  localPorts: number;
  /** Up to ten distinct error messages. */
  errors: string[];
  durationMs: number;
  timedOut: boolean;
}

export interface HttpServerParams {
  host: string;
  port: number;
  /** Body bytes of every response. */
  responseBytes: number;
  /** Stops by itself after this long. */
  deadlineMs: number;
}

export interface HttpServerStats {
  connections: number;
  requests: number;
  bodyBytesSent: number;
  peers: string[];
}

export interface HttpLoadParams {
  url: string;
  /** Stop after this many requests, or after durationMs, whichever comes first. */
  requests?: number;
  durationMs?: number;
  concurrency: number;
  deadlineMs: number;
}

export interface HttpLoadResult {
  /** Requests sent. */
  requests: number;
  /** Responses read to the end. */
  responses: number;
  /** Status code → responses. */
  statuses: Record<string, number>;
  bodyBytesReceived: number;
  /** Keep-alive connections the client opened. */
  connections: number;
  errors: string[];
  durationMs: number;
  timedOut: boolean;
}

/** A transport the lab serves and probes (SCTP is valid in a NetworkPolicy but not served here). */
export type LabProtocol = 'TCP' | 'UDP';

export interface PortServerParams {
  host: string;
  /** Every port answers each connection (TCP) or datagram (UDP) with `answer` and a newline; TCP then closes. */
  ports: ReadonlyArray<{ port: number; protocol: LabProtocol }>;
  answer: string;
  deadlineMs: number;
}

export interface PortServerStats {
  /** "TCP/80" → connections accepted, "UDP/53" → datagrams answered. */
  answered: Record<string, number>;
}

export interface ProbeTarget {
  host: string;
  port: number;
  protocol: LabProtocol;
}

export interface ProbeParams {
  targets: readonly ProbeTarget[];
  /** Per target: how long to wait for the answer. */
  timeoutMs: number;
  deadlineMs: number;
}

/**
 * What a connect() (TCP) or a datagram and its answer (UDP) came to, as the client saw it:
 *   connected  the server's answer arrived (`answeredBy` holds it);
 *   refused    a reset or an ICMP port unreachable (nothing serves there);
 *   denied     the kernel refused the call itself (EPERM/EACCES: a cgroup connect or sendmsg hook said no);
 *   timeout    no answer in time (a drop on the way: an ingress policy, a dropped SYN or datagram);
 *   error      anything else (`error` says what).
 */
export type ProbeOutcome = 'connected' | 'refused' | 'denied' | 'timeout' | 'error';

export interface ProbeAnswer {
  outcome: ProbeOutcome;
  answeredBy?: string;
  error?: string;
}

export interface ProbeResult {
  /** In the order of the targets. */
  answers: ProbeAnswer[];
}

export type AgentMessage<R> = { type: 'ready' } | ({ type: 'result' } & R) | ({ type: 'event' } & Record<string, unknown>);

export interface ConnectWatchParams {
  host: string;
  port: number;
  /** Between the end of one connect() and the next (0: at once); bounds the timing's resolution. */
  intervalMs: number;
  deadlineMs: number;
}

/** An event of connect-watch: the outcome of connect() changed, at a wall-clock time with sub-millisecond digits. */
export interface ConnectWatchEvent {
  outcome: 'connected' | 'denied' | 'error';
  atMs: number;
  /** The error of an 'error' outcome (refused, unreachable). */
  error?: string;
}

export interface ConnectWatchResult {
  attempts: number;
  changes: number;
}

// Agent side

export function agentParams<P>(): P {
  return JSON.parse(process.argv[2] ?? '{}') as P;
}

export function ready(): void {
  process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`);
}

/** Reports something as it happens (launch's onEvent), before the result. */
export function report(event: object): void {
  process.stdout.write(`${JSON.stringify({ type: 'event', ...event })}\n`);
}

/** Writes the result and exits; stdout to a pipe is synchronous on Linux, so nothing is lost. */
export function finish(result: object): never {
  process.stdout.write(`${JSON.stringify({ type: 'result', ...result })}\n`);
  process.exit(0);
}

/** Calls stop once: when stdin closes or after ms. */
export function stopWhen(ms: number, stop: (reason: 'stdin' | 'deadline') => void): void {
  let stopped = false;
  const once = (reason: 'stdin' | 'deadline') => {
    if (!stopped) (stopped = true), stop(reason);
  };
  setTimeout(() => once('deadline'), ms).unref();
  process.stdin.on('end', () => once('stdin')).on('close', () => once('stdin')).resume();
}

/** Keeps the first ten distinct messages. */
export function errorList(): { add(err: Error): void; list: string[] } {
  const list: string[] = [];
  return {
    list,
    add: (err) => {
      if (list.length < 10 && !list.includes(err.message)) list.push(err.message);
    },
  };
}
