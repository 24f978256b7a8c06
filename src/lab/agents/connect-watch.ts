/**
 * Connects to one TCP target from inside a pod in a loop, one connect() at a time (each closed as soon as it is
 * established, the next intervalMs after the last ended: each denied connect() is also a verdict the enforcer
 * reports), and reports each change of outcome as it happens (connected, denied: EPERM from a cgroup hook, or
 * another error) with its wall-clock time, so that a caller can time when a policy took effect. Reports the first
 * outcome too. Stops when stdin closes or its deadline passes.
 */
import net from 'node:net';
import { agentParams, finish, report, stopWhen, type ConnectWatchEvent, type ConnectWatchParams } from './protocol.js';

const params = agentParams<ConnectWatchParams>();
let attempts = 0;
let changes = 0;
let last: string | undefined;
let stopped = false;

function note(outcome: ConnectWatchEvent['outcome'], error?: string): void {
  const atMs = performance.timeOrigin + performance.now();
  if (outcome === last) return;
  last = outcome;
  changes++;
  report({ outcome, atMs, ...(error === undefined ? {} : { error }) });
}

function attempt(): void {
  if (stopped) return;
  attempts++;
  const socket = net.connect({ host: params.host, port: params.port });
  socket.once('connect', () => {
    note('connected');
    socket.destroy();
    setTimeout(attempt, params.intervalMs);
  });
  socket.once('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPERM' || error.code === 'EACCES') note('denied');
    else note('error', `${error.code ?? ''} ${error.message}`.trim());
    socket.destroy();
    setTimeout(attempt, params.intervalMs);
  });
}

stopWhen(params.deadlineMs, () => {
  stopped = true;
  finish({ attempts, changes });
});
attempt();
