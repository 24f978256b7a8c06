/**
 * HTTP load: `concurrency` workers send GET requests over keep-alive connections until `requests` were sent or
 * durationMs passed, each reading every response to the end.
 */
import http from 'node:http';
import { agentParams, errorList, finish, stopWhen, type HttpLoadParams, type HttpLoadResult } from './protocol.js';

const params = agentParams<HttpLoadParams>();
const started = Date.now();
const until = params.durationMs === undefined ? Infinity : started + params.durationMs;
const agent = new http.Agent({ keepAlive: true, maxSockets: params.concurrency });
const errors = errorList();
const sockets = new Set<unknown>();
const result: HttpLoadResult = { requests: 0, responses: 0, statuses: {}, bodyBytesReceived: 0, connections: 0, errors: errors.list, durationMs: 0, timedOut: false };

function request(): Promise<void> {
  result.requests++;
  return new Promise((resolve) => {
    const req = http.get(params.url, { agent }, (res) => {
      const status = String(res.statusCode);
      res.on('data', (chunk: Buffer) => (result.bodyBytesReceived += chunk.length));
      res.on('end', () => {
        result.statuses[status] = (result.statuses[status] ?? 0) + 1;
        result.responses++;
        resolve();
      });
      res.on('error', (err) => (errors.add(err), resolve()));
    });
    req.on('socket', (socket) => sockets.add(socket));
    req.on('error', (err) => (errors.add(err), resolve()));
  });
}

function more(): boolean {
  return (params.requests === undefined || result.requests < params.requests) && Date.now() < until;
}

async function worker(): Promise<void> {
  while (more()) await request();
}

function report(): never {
  result.connections = sockets.size;
  result.durationMs = Date.now() - started;
  return finish(result);
}

stopWhen(params.deadlineMs, () => {
  result.timedOut = true;
  agent.destroy();
  setImmediate(report);
});
await Promise.all(Array.from({ length: params.concurrency }, worker));
agent.destroy();
report();
