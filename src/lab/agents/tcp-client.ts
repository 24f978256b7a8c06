/**
 * TCP client for exact byte counts, long-lived connections and paced load: opens up to `connections` connections
 * (`concurrency` at a time, for at most durationMs, ratePerSecond of them per second when paced); on each sends
 * sendBytes in `chunks` writes (waiting intervalMs before each), reads exactly expectBytes, and closes once the
 * server has closed its side.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentParams, errorList, finish, stopWhen, type TcpClientParams, type TcpClientResult } from './protocol.js';

const params = agentParams<TcpClientParams>();
const started = Date.now();
const errors = errorList();
const result: TcpClientResult = { connections: 0, completed: 0, bytesSent: 0, bytesReceived: 0, localPorts: 0, errors: errors.list, durationMs: 0, timedOut: false };
const open = new Set<net.Socket>();
const localPorts = new Set<number>();
/** Connections claimed by workers so far; connection i is due at started + i / ratePerSecond when paced. */
let claimed = 0;
const chunkSizes = Array.from({ length: params.chunks }, (_, i) =>
  i < params.chunks - 1 ? Math.floor(params.sendBytes / params.chunks) : params.sendBytes - Math.floor(params.sendBytes / params.chunks) * (params.chunks - 1),
);
const payload = Buffer.alloc(chunkSizes[chunkSizes.length - 1] ?? 0, 's');

function connection(): Promise<void> {
  return new Promise((resolve) => {
    result.connections++;
    let received = 0;
    let sent = false;
    let failed = false;
    const socket = net.connect(params.port, params.host);
    open.add(socket);
    socket.on('connect', async () => {
      localPorts.add(socket.localPort!);
      for (const size of chunkSizes) {
        if (params.intervalMs > 0) await sleep(params.intervalMs);
        if (socket.destroyed) return;
        socket.write(payload.subarray(0, size));
      }
      sent = true;
    });
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', (err) => {
      failed = true;
      errors.add(err);
    });
    socket.on('close', () => {
      open.delete(socket);
      result.bytesSent += socket.bytesWritten;
      result.bytesReceived += socket.bytesRead;
      if (sent && !failed && received === params.expectBytes && socket.readableEnded) result.completed++;
      resolve();
    });
  });
}

function timeIsUp(): boolean {
  return params.durationMs > 0 && Date.now() - started >= params.durationMs;
}

async function worker(): Promise<void> {
  for (let i = claimed++; i < params.connections && !timeIsUp(); i = claimed++) {
    const wait = params.ratePerSecond > 0 ? started + (i * 1000) / params.ratePerSecond - Date.now() : 0;
    if (wait > 0) await sleep(wait);
    if (timeIsUp()) return;
    await connection();
  }
}

function report(): never {
  result.durationMs = Date.now() - started;
  result.localPorts = localPorts.size;
  return finish(result);
}

stopWhen(params.deadlineMs, () => {
  result.timedOut = true;
  for (const socket of open) socket.destroy();
  setImmediate(report);
});
await Promise.all(Array.from({ length: Math.min(params.concurrency, params.connections) }, worker));
report();
