/**
 * HTTP/1.1 server answering every request with 200 and exactly responseBytes of body, except a request for
 * /status/<4xx or 5xx>, answered with that status (and the same body), so that a run can make known errors.
 */
import http from 'node:http';
import { agentParams, finish, ready, stopWhen, type HttpServerParams, type HttpServerStats } from './protocol.js';

const params = agentParams<HttpServerParams>();
const body = Buffer.alloc(params.responseBytes, 'h');
const stats: HttpServerStats = { connections: 0, requests: 0, bodyBytesSent: 0, peers: [] };

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const asked = /^\/status\/([45]\d\d)(?:[/?]|$)/.exec(req.url ?? '');
    res.writeHead(asked ? Number(asked[1]) : 200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body, () => {
      stats.requests++;
      stats.bodyBytesSent += body.length;
    });
  });
});
server.on('connection', (socket) => {
  stats.connections++;
  if (socket.remoteAddress && !stats.peers.includes(socket.remoteAddress)) stats.peers.push(socket.remoteAddress);
});

server.listen(params.port, params.host, ready);
stopWhen(params.deadlineMs, () => {
  server.close();
  server.closeAllConnections();
  setImmediate(() => finish(stats));
});
