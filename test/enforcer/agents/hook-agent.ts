/**
 * Runs in a cgroup the policy programs judge (test/enforcer/kernel-hooks.test.ts): makes the outbound calls it is
 * given, listens on ::1 (port 0 each), prints one JSON line {outcomes, listening}, and stays up (its listeners
 * answering `ok\n`) until stdin closes.
 *   tcp: connect() (AF_INET6 for IPv6 and v4-mapped hosts) → 'connected' | error code | 'timeout'
 *   udp: an unconnected socket's sendto(), then its answer → 'answered' | error code | 'timeout'
 */
import dgram from 'node:dgram';
import net from 'node:net';

interface Params {
  tcp: Array<{ host: string; port: number }>;
  udp: Array<{ host: string; port: number }>;
  listeners: number;
}

const params = JSON.parse(process.argv[2]!) as Params;
const TIMEOUT_MS = 1_000;

const tcp = (target: { host: string; port: number }) =>
  new Promise<string>((resolve) => {
    const socket = net.connect(target);
    const timer = setTimeout(() => (socket.destroy(), resolve('timeout')), TIMEOUT_MS);
    socket.on('connect', () => (clearTimeout(timer), socket.destroy(), resolve('connected')));
    socket.on('error', (error: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(error.code ?? error.message)));
  });

const udp = (target: { host: string; port: number }) =>
  new Promise<string>((resolve) => {
    const socket = dgram.createSocket({ type: 'udp6' });
    const done = (outcome: string) => (clearTimeout(timer), socket.close(), resolve(outcome));
    const timer = setTimeout(() => done('timeout'), TIMEOUT_MS);
    socket.on('message', () => done('answered'));
    socket.send('ping\n', target.port, target.host, (error) => error && done((error as NodeJS.ErrnoException).code ?? error.message));
  });

const outcomes = { tcp: [] as string[], udp: [] as string[] };
for (const target of params.tcp) outcomes.tcp.push(await tcp(target));
for (const target of params.udp) outcomes.udp.push(await udp(target));
const servers = await Promise.all(
  Array.from(
    { length: params.listeners },
    () => new Promise<net.Server>((resolve) => {
      const server = net.createServer((socket) => socket.end('ok\n'));
      server.listen(0, '::1', () => resolve(server));
    }),
  ),
);
process.stdout.write(`${JSON.stringify({ outcomes, listening: servers.map((server) => (server.address() as net.AddressInfo).port) })}\n`);
process.stdin.on('end', () => process.exit(0)).resume();
