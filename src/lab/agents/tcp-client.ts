/**
 * TCP client for exact byte counts and long-lived connections: opens `connections` connections (`concurrency` at
 * a time), or as many as it can in durationMs; on each sends sendBytes in `chunks` writes (waiting intervalMs
 * before each), reads exactly expectBytes, and closes once the server has closed its side.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentParams, errorList, finish, stopWhen, type TcpClientParams, type TcpClientResult } from './protocol.js';

const params = agentParams<TcpClientParams>();
const started = Date.now();
const errors = errorList();
const result: TcpClientResult = { connections: 0, completed: 0, bytesSent: 0, bytesReceived: 0, errors: errors.list, durationMs: 0, timedOut: false };
const open = new Set<net.Socket>();
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

const openingEnds = params.durationMs === undefined ? Infinity : started + params.durationMs;

async function worker(): Promise<void> {
  while (result.connections < params.connections && Date.now() < openingEnds) await connection();
}

function report(): never {
  result.durationMs = Date.now() - started;
  return finish(result);
}

stopWhen(params.deadlineMs, () => {
  result.timedOut = true;
  for (const socket of open) socket.destroy();
  setImmediate(report);
});
await Promise.all(Array.from({ length: Math.min(params.concurrency, params.connections) }, worker));
report();
