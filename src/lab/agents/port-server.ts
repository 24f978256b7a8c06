/**
 * Serves a pod's declared ports (TCP and UDP) for reachability probes: each TCP connection and each UDP datagram
 * gets the pod's answer (its namespace/name) and a newline, so a probe knows which pod it reached, not only that
 * something did. TCP closes after answering.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { agentParams, finish, ready, stopWhen, type PortServerParams, type PortServerStats } from './protocol.js';

const params = agentParams<PortServerParams>();
const answer = Buffer.from(`${params.answer}\n`);
const stats: PortServerStats = { answered: {} };
const count = (key: string) => (stats.answered[key] = (stats.answered[key] ?? 0) + 1);
const closers: Array<() => void> = [];
const open = new Set<net.Socket>();

async function serve(port: number, protocol: 'TCP' | 'UDP'): Promise<void> {
  const key = `${protocol}/${port}`;
  if (protocol === 'TCP') {
    const server = net.createServer((socket) => {
      open.add(socket);
      count(key);
      socket.on('error', () => {});
      socket.on('close', () => open.delete(socket));
      socket.end(answer);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, params.host, resolve));
    closers.push(() => server.close());
  } else {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (_, from) => {
      count(key);
      socket.send(answer, from.port, from.address);
    });
    await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(port, params.host, resolve));
    closers.push(() => socket.close());
  }
}

await Promise.all(params.ports.map(({ port, protocol }) => serve(port, protocol)));
ready();
stopWhen(params.deadlineMs, () => {
  for (const close of closers) close();
  for (const socket of open) socket.destroy();
  setImmediate(() => finish(stats));
});
