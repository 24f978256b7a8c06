/**
 * Probes targets from inside a pod, all at once: a TCP connect() and the server's answer, or a UDP datagram and
 * its answer, each within timeoutMs. Reports one ProbeAnswer per target, in order (protocol.ts says what each
 * outcome means). The calls are the ones an application makes, so cgroup hooks and ingress drops act on them.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { agentParams, finish, type ProbeAnswer, type ProbeParams, type ProbeTarget } from './protocol.js';

const params = agentParams<ProbeParams>();

function classify(error: NodeJS.ErrnoException): ProbeAnswer {
  if (error.code === 'ECONNREFUSED') return { outcome: 'refused' };
  if (error.code === 'EPERM' || error.code === 'EACCES') return { outcome: 'denied' };
  return { outcome: 'error', error: `${error.code ?? ''} ${error.message}`.trim() };
}

/**
 * Calls `onTimeout` once timeoutMs passed and the I/O already received has been handled: the timer is checked
 * before the event loop reads its sockets, so an agent the machine starved for longer than the timeout (seen in CI
 * at load 8 on 2 CPUs) would otherwise time out probes whose answers were waiting to be read.
 */
function afterTimeout(onTimeout: () => void): NodeJS.Timeout {
  return setTimeout(() => setImmediate(onTimeout), params.timeoutMs);
}

/** The probe's one answer: the first given (or a timeout), after which the timer stops and `release` frees the socket. */
function answerOnce(resolve: (answer: ProbeAnswer) => void, release: () => void): (answer: ProbeAnswer) => void {
  let settled = false;
  const done = (answer: ProbeAnswer) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    release();
    resolve(answer);
  };
  const timer = afterTimeout(() => done({ outcome: 'timeout' }));
  return done;
}

function probeTcp(target: ProbeTarget): Promise<ProbeAnswer> {
  return new Promise((resolve) => {
    let received = '';
    const socket = net.connect({ host: target.host, port: target.port });
    const done = answerOnce(resolve, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.includes('\n')) done({ outcome: 'connected', answeredBy: received.split('\n')[0]! });
    });
    socket.on('end', () => done({ outcome: 'error', error: `closed without an answer (got ${JSON.stringify(received)})` }));
    socket.on('error', (error) => done(classify(error)));
  });
}

function probeUdp(target: ProbeTarget): Promise<ProbeAnswer> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const done = answerOnce(resolve, () => socket.close());
    socket.on('message', (message) => done({ outcome: 'connected', answeredBy: message.toString().split('\n')[0]! }));
    // A connected UDP socket hears the ICMP port unreachable as ECONNREFUSED.
    socket.on('error', (error) => done(classify(error)));
    socket.on('connect', () => socket.send('probe\n', (error) => error && done(classify(error))));
    socket.connect(target.port, target.host);
  });
}

const answers = await Promise.all(params.targets.map((target) => (target.protocol === 'TCP' ? probeTcp(target) : probeUdp(target))));
finish({ answers });
