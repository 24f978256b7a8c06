/**
 * TCP server for exact byte counts: on each connection reads exactly expectBytes, then writes replyBytes and
 * closes. Counts come from the sockets (bytesRead/bytesWritten), not from what the script meant to send.
 */
import net from 'node:net';
import { agentParams, finish, ready, stopWhen, type TcpServerParams, type TcpServerStats } from './protocol.js';

const params = agentParams<TcpServerParams>();
const reply = Buffer.alloc(params.replyBytes, 'r');
const stats: TcpServerStats = { connections: 0, completed: 0, bytesReceived: 0, bytesSent: 0, peers: [] };
const open = new Set<net.Socket>();

const server = net.createServer((socket) => {
  stats.connections++;
  if (socket.remoteAddress && !stats.peers.includes(socket.remoteAddress)) stats.peers.push(socket.remoteAddress);
  open.add(socket);
  let received = 0;
  let replied = false;
  let failed = false;
  const replyOnce = () => {
    if (replied) return;
    replied = true;
    socket.end(reply);
  };
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > params.expectBytes) failed = true;
    else if (received === params.expectBytes) replyOnce();
  });
  socket.on('error', () => (failed = true));
  socket.on('close', (hadError) => {
    open.delete(socket);
    stats.bytesReceived += socket.bytesRead;
    stats.bytesSent += socket.bytesWritten;
    if (replied && !failed && !hadError && socket.writableFinished) stats.completed++;
  });
  if (params.expectBytes === 0) replyOnce();
});

server.listen(params.port, params.host, ready);
stopWhen(params.deadlineMs, () => {
  server.close();
  for (const socket of open) socket.destroy();
  // 'close' handlers of the destroyed sockets run before this.
  setImmediate(() => finish(stats));
});
