/**
 * HTTP capture against the real kernel: bpf/http.bpf.c beside bpf/flows.bpf.c (one pin directory, shared connection
 * tracking), lab pods running servers and clients the project did not write the HTTP of (Python's http.server and
 * http.client, Node's http server), and the exact bytes each call carried compared with the kernel's copies; then
 * the exchanges HttpCapture pairs from them, on both observer sides.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FlowKind } from '../../src/ebpf/records/flow.js';
import { HTTP_CAPTURE_MAX, HttpChunkFlag, HttpDirection, type HttpChunkRecord } from '../../src/ebpf/records/http-chunk.js';
import { createLab, type Lab, type Pod } from '../../src/lab/pods.js';
import { DEFAULT_COPY_SIZES, HttpTap } from '../helpers/http-tap.js';
import { lineFrom, python, runIn } from '../helpers/processes.js';

const PORTS = { python: 7501, node: 7502, untraced: 7503, reset: 7504, resetAfterResponse: 7505, longHead: 7506, splitPipeline: 7507 };
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/http/fixtures/${name}`, import.meta.url));

interface ClientResult {
  pid: number;
  local_port: number;
  [key: string]: unknown;
}

/** One connection: reads a request, sends a 200's head, waits for the client's FIN, sends the 3000-byte body. */
const RESET_SERVER = `
import socket, sys
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
request = b''
while b'\\r\\n\\r\\n' not in request:
    request += conn.recv(4096)
conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 3000\\r\\n\\r\\n')
while conn.recv(4096):
    pass
conn.send(b'x' * 3000)
conn.close()
`;

/** GET /reset, reads the response's head, and closes; prints {"local_port": ...}. */
const HEAD_ONLY_CLIENT = `
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b'GET /reset HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')
head = b''
while b'\\r\\n\\r\\n' not in head:
    head += s.recv(4096)
port = s.getsockname()[1]
s.close()
print(json.dumps({'local_port': port}))
`;

/**
 * A Python server of one connection: reads a request head `recvBytes` (a Python expression) per call, runs `then`,
 * answers `response` (a Python bytes literal) and closes; prints "ready" once listening. Args: address port.
 */
const oneConnectionServer = (recvBytes: string, then: string, response: string) => `
import socket, sys
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
conn, _ = listener.accept()
request = b''
while b'\\r\\n\\r\\n' not in request:
    request += conn.recv(${recvBytes})
${then}
conn.sendall(${response})
conn.close()
`;

/**
 * Reads a request, waits until more bytes follow it, answers, and closes with those bytes unread, so that its kernel
 * sends a reset right after the response.
 */
const UNREAD_SERVER = oneConnectionServer(
  "len(b'GET /unread HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n') - len(request)",
  'while not conn.recv(1, socket.MSG_PEEK):\n    pass',
  "b'HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nhello'",
);

/**
 * GET /unread, then the first byte of a next request, which the server never reads; reads the response only once the server's reset has closed the
 * connection (its next read fails), and prints {"local_port": ..., "response": ...}.
 */
const LATE_READER_CLIENT = `
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b'GET /unread HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')
s.sendall(b'G')  # the start of a next request, never finished
port = s.getsockname()[1]
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    time.sleep(0.01)
    try:
        s.getpeername()
    except OSError:
        break
response = s.recv(4096)
print(json.dumps({'local_port': port, 'response': response.decode()}))
`;

/**
 * GET /status/200 with a 12 KB head (a single sign-on cookie) in one send, then reads the response; prints
 * {"local_port": ..., "request_bytes": ...}.
 */
const LONG_HEAD_CLIENT = `
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
request = b'GET /status/200 HTTP/1.1\\r\\nHost: t\\r\\nCookie: sso=' + b'x' * 12000 + b'\\r\\n\\r\\n'
s.sendall(request)
response = b''
while not response.endswith(b'status 200\\n'):
    response += s.recv(4096)
print(json.dumps({'local_port': s.getsockname()[1], 'request_bytes': len(request)}))
s.close()
`;

/** Reads a request head 4 KiB per call, answers 200 with "status 200\n". */
const SMALL_READS_SERVER = oneConnectionServer('4096', '', "b'HTTP/1.1 200 OK\\r\\nContent-Length: 11\\r\\n\\r\\nstatus 200\\n'");

/** The three responses SPLIT_PIPELINE_SERVER writes: the first one's body is longer than http.captureBytes. */
const SPLIT_PIPELINE_BODY = 'b'.repeat(300);

/**
 * Answers one connection's three pipelined GETs (/a, /b, /c): the first response's head alone, then, 100 ms later, its
 * body and the other two responses in one send, as a server sends a head and then a file; closes. Prints "ready".
 */
const SPLIT_PIPELINE_SERVER = `
import socket, sys, time
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
conn, _ = listener.accept()
request = b''
while request.count(b'\\r\\n\\r\\n') < 3:
    request += conn.recv(4096)
conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: ${SPLIT_PIPELINE_BODY.length}\\r\\n\\r\\n')
time.sleep(0.1)
conn.sendall(b'${SPLIT_PIPELINE_BODY}' + b'HTTP/1.1 201 Created\\r\\nContent-Length: 1\\r\\n\\r\\nb' + b'HTTP/1.1 202 Accepted\\r\\nContent-Length: 1\\r\\n\\r\\nc')
conn.close()
`;

/** Sends GET /a, /b and /c in one send, reads until the server closes; prints {"local_port": ...}. */
const SPLIT_PIPELINE_CLIENT = `
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b''.join(b'GET /%s HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n' % name for name in (b'a', b'b', b'c')))
while s.recv(65536):
    pass
print(json.dumps({'local_port': s.getsockname()[1]}))
`;

let lab: Lab;
let tap: HttpTap;
const servers: Record<string, ChildProcess> = {};

async function startServer(pod: Pod, command: string, script: string, port: number): Promise<ChildProcess> {
  const child = pod.spawn(command, [fixture(script), pod.ip, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineFrom(child, script);
  return child;
}

async function runClient(pod: Pod, mode: string, server: Pod, port: number): Promise<ClientResult> {
  return JSON.parse((await runIn(pod, python, [fixture('client.py'), mode, server.ip, String(port)])).stdout) as ClientResult;
}

const bytesOf = (chunks: HttpChunkRecord[]) => Buffer.concat(chunks.map((chunk) => chunk.data)).toString('hex');

before(async () => {
  lab = createLab({ name: 'http-capture', pods: ['client', 'server', 'quiet-client', 'quiet-server'] });
  tap = HttpTap.start([lab.pod('client'), lab.pod('server')]);
  servers.python = await startServer(lab.pod('server'), python, 'status-server.py', PORTS.python);
  servers.node = await startServer(lab.pod('server'), process.execPath, 'node-server.mjs', PORTS.node);
  servers.untraced = await startServer(lab.pod('quiet-server'), python, 'status-server.py', PORTS.untraced);
});

after(() => {
  for (const server of Object.values(servers)) server.kill();
  tap?.stop();
  lab?.destroy();
});

describe('http capture on the real kernel', () => {
  it('copies the exact bytes of each of the eight calls, with full lengths and the flows conn ids', async () => {
    const result = await runClient(lab.pod('client'), 'calls', lab.pod('server'), PORTS.python);
    const calls = result.calls as Array<{ sent_by: string; request: string; read_by: string; response: string }>;
    const { client, server } = await tap.connection(PORTS.python, result.local_port);

    // Client side: one sent record per request, each the exact bytes of its call (write, writev, sendto, sendmsg).
    const sent = tap.chunksOn(client, HttpDirection.sent);
    assert.deepEqual(
      sent.map((chunk) => ({ data: chunk.data.toString('hex'), length: chunk.length, flags: chunk.flags, pid: chunk.pid })),
      calls.map((call) => ({ data: call.request, length: call.request.length / 2, flags: 0, pid: result.pid })),
    );
    // What the client read (read, readv, recvfrom, recvmsg), in order, is every response's bytes.
    const received = tap.chunksOn(client, HttpDirection.received);
    assert.equal(bytesOf(received), calls.map((call) => call.response).join(''));
    assert.equal(received.reduce((sum, chunk) => sum + chunk.length, 0), calls.reduce((sum, call) => sum + call.response.length / 2, 0));
    // Server side: the same bytes the other way round, under the server socket's conn id.
    assert.equal(bytesOf(tap.chunksOn(server, HttpDirection.received)), calls.map((call) => call.request).join(''));
    assert.equal(bytesOf(tap.chunksOn(server, HttpDirection.sent)), calls.map((call) => call.response).join(''));
    assert.ok(tap.chunks.every((chunk) => chunk.callStartNs <= chunk.monotonicNs));

    for (const [connId, observer] of [[client, 'client'], [server, 'server']] as const) {
      assert.deepEqual(
        tap.exchangesOf(connId).map(({ observer, method, path, status, requestBytes, responseBytes }) => ({ observer, method, path, status, requestBytes, responseBytes })),
        calls.map((call, n) => ({
          observer,
          method: 'GET',
          path: `/status/${200 + n}`, // the query string (secret=n) is gone
          status: 200 + n,
          requestBytes: call.request.length / 2,
          responseBytes: call.response.length / 2,
        })),
      );
      for (const exchange of tap.exchangesOf(connId)) {
        assert.ok(exchange.latencyNs !== null && exchange.latencyNs > 0n && exchange.latencyNs < 1_000_000_000n, `latency ${exchange.latencyNs} ns`);
      }
    }
  });

  it('keep-alive: 100 requests on one connection are exactly 100 exchanges with their statuses, on both sides', async () => {
    const result = await runClient(lab.pod('client'), 'keepalive', lab.pod('server'), PORTS.python);
    const statuses = result.statuses as number[];
    assert.equal(statuses.length, 100);
    const { client, server } = await tap.connection(PORTS.python, result.local_port);
    for (const [connId, observer] of [[client, 'client'], [server, 'server']] as const) {
      const exchanges = tap.exchangesOf(connId);
      assert.deepEqual(exchanges.map((exchange) => exchange.status), statuses, `${observer} side`);
      assert.deepEqual(new Set(exchanges.map((exchange) => `${exchange.observer} ${exchange.method} ${exchange.route}`)), new Set([`${observer} GET /status/{id}`]));
    }
  });

  it('a peek (recv with MSG_PEEK) is not recorded: the client side received the response once, one exchange', async () => {
    const result = await runClient(lab.pod('client'), 'peek', lab.pod('server'), PORTS.python);
    assert.ok((result.peeked as number) > 0, 'the client peeked');
    const { client, server } = await tap.connection(PORTS.python, result.local_port);
    assert.equal(bytesOf(tap.chunksOn(client, HttpDirection.received)), result.response);
    for (const connId of [client, server]) {
      assert.deepEqual(
        tap.exchangesOf(connId).map(({ method, path, status, responseBytes }) => ({ method, path, status, responseBytes })),
        [{ method: 'GET', path: '/status/208', status: 208, responseBytes: (result.response as string).length / 2 }],
      );
    }
  });

  it('a request written one byte per call is one exchange', async () => {
    const result = await runClient(lab.pod('client'), 'bytewise', lab.pod('server'), PORTS.python);
    const request = Buffer.from(result.request as string, 'hex');
    const { client, server } = await tap.connection(PORTS.python, result.local_port);
    const sent = tap.chunksOn(client, HttpDirection.sent);
    assert.equal(sent.length, request.length);
    assert.ok(sent.every((chunk) => chunk.length === 1 && chunk.data.length === 1));
    assert.equal(bytesOf(sent), request.toString('hex'));
    for (const connId of [client, server]) {
      assert.deepEqual(
        tap.exchangesOf(connId).map(({ method, path, status, requestBytes }) => ({ method, path, status, requestBytes })),
        [{ method: 'GET', path: '/status/207', status: 207, requestBytes: request.length }],
      );
    }
  });

  it('large writes are copied up to headBytes when they begin a message, else captureBytes, marked cut, and counted at their full length', async () => {
    const result = await runClient(lab.pod('client'), 'large', lab.pod('server'), PORTS.python);
    const request = Buffer.from(result.request as string, 'hex');
    const { client, server } = await tap.connection(PORTS.python, result.local_port);
    const [first, second] = tap.chunksOn(client, HttpDirection.sent);
    const { headBytes, captureBytes } = DEFAULT_COPY_SIZES;
    const firstSend = result.first_send as number;
    assert.ok(firstSend > headBytes, `the first send (${firstSend} bytes) is longer than the head's copy`);
    const asCopied = (chunk: typeof first) => ({ length: chunk!.length, copied: chunk!.data.length, truncated: (chunk!.flags & HttpChunkFlag.truncated) !== 0, data: chunk!.data.toString('latin1') });
    assert.deepEqual(
      [asCopied(first), asCopied(second)],
      [
        { length: firstSend, copied: headBytes, truncated: true, data: request.subarray(0, headBytes).toString('latin1') },
        { length: request.length - firstSend, copied: captureBytes, truncated: true, data: request.subarray(firstSend, firstSend + captureBytes).toString('latin1') },
      ],
    );
    for (const connId of [client, server]) {
      assert.deepEqual(
        tap.exchangesOf(connId).map(({ method, path, status, requestBytes }) => ({ method, path, status, requestBytes })),
        [{ method: 'POST', path: '/upload', status: 201, requestBytes: request.length }],
      );
    }
  });

  it("Node's server writes head and body with one writev: one record holds both, in order", async () => {
    const result = await runClient(lab.pod('client'), 'keepalive', lab.pod('server'), PORTS.node);
    const { client, server } = await tap.connection(PORTS.node, result.local_port);
    const statuses = result.statuses as number[];
    assert.deepEqual(tap.exchangesOf(client).map((exchange) => exchange.status), statuses);
    assert.deepEqual(tap.exchangesOf(server).map((exchange) => exchange.status), statuses);
    const responses = tap.chunksOn(server, HttpDirection.sent).filter((chunk) => chunk.data.toString('latin1').startsWith('HTTP/1.1 200 '));
    assert.equal(responses.length, statuses.filter((status) => status === 200).length);
    for (const chunk of responses) {
      const text = chunk.data.toString('latin1');
      assert.ok(text.endsWith('\r\n\r\nstatus 200\n'), `head and body in one call: ${JSON.stringify(text)}`);
      assert.equal(chunk.length, chunk.data.length);
    }
  });

  it("a send that draws a reset (the peer closed before the body came) is recorded: the server side sent the whole response", async () => {
    // The server answers one request with its head, waits for the client's FIN, then sends the body: the closed
    // client answers it with a reset, which the server's kernel handles before that send returns (flows then ends
    // the connection and forgets it). The client reads the head and closes.
    const server = lab.pod('server').spawn(python, ['-c', RESET_SERVER, lab.pod('server').ip, String(PORTS.reset)], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.reset = server;
    await lineFrom(server, 'the reset server');
    const { stdout } = await runIn(lab.pod('client'), python, ['-c', HEAD_ONLY_CLIENT, lab.pod('server').ip, String(PORTS.reset)]);
    const localPort = (JSON.parse(stdout) as { local_port: number }).local_port;
    const { server: serverSide } = await tap.connection(PORTS.reset, localPort);
    await tap.until("the server side's exchange", () => tap.exchangesOf(serverSide).length > 0);
    assert.deepEqual(
      tap.exchangesOf(serverSide).map(({ method, path, status, responseBodyBytes }) => ({ method, path, status, responseBodyBytes })),
      [{ method: 'GET', path: '/reset', status: 200, responseBodyBytes: 3000 }],
    );
  });

  it('a receive of bytes that came before a reset, made after the reset closed the connection, is recorded', async () => {
    const server = lab.pod('server').spawn(python, ['-c', UNREAD_SERVER, lab.pod('server').ip, String(PORTS.resetAfterResponse)], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.unread = server;
    await lineFrom(server, 'the unread server');
    const { stdout } = await runIn(lab.pod('client'), python, ['-c', LATE_READER_CLIENT, lab.pod('server').ip, String(PORTS.resetAfterResponse)]);
    const result = JSON.parse(stdout) as { local_port: number; response: string };
    assert.equal(result.response, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'the client read the response after the reset');
    const { client } = await tap.connection(PORTS.resetAfterResponse, result.local_port);
    await tap.until("the client side's exchange", () => tap.exchangesOf(client).length > 0);
    assert.deepEqual(
      tap.exchangesOf(client).map(({ method, path, status, responseBodyBytes }) => ({ method, path, status, responseBodyBytes })),
      [{ method: 'GET', path: '/unread', status: 200, responseBodyBytes: 5 }],
    );
  });

  it("pipelined responses a client reads together after the first one's head came alone: every exchange on both sides", async () => {
    const server = lab.pod('server').spawn(python, ['-c', SPLIT_PIPELINE_SERVER, lab.pod('server').ip, String(PORTS.splitPipeline)], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.splitPipeline = server;
    await lineFrom(server, 'the split pipeline server');
    const { stdout } = await runIn(lab.pod('client'), python, ['-c', SPLIT_PIPELINE_CLIENT, lab.pod('server').ip, String(PORTS.splitPipeline)]);
    const { client, server: serverSide } = await tap.connection(PORTS.splitPipeline, (JSON.parse(stdout) as { local_port: number }).local_port);
    // The head alone, then the body and two responses in one call longer than http.captureBytes, copied whole.
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${SPLIT_PIPELINE_BODY.length}\r\n\r\n`;
    const rest = `${SPLIT_PIPELINE_BODY}HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nbHTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\nc`;
    assert.ok(rest.length > DEFAULT_COPY_SIZES.captureBytes);
    assert.deepEqual(
      tap.chunksOn(client, HttpDirection.received).map((chunk) => ({ length: chunk.length, copied: chunk.data.length })),
      [head, rest].map((text) => ({ length: text.length, copied: text.length })),
    );
    for (const connId of [client, serverSide]) {
      assert.deepEqual(
        tap.exchangesOf(connId).map(({ path, status, responseBodyBytes }) => ({ path, status, responseBodyBytes })),
        [
          { path: '/a', status: 200, responseBodyBytes: SPLIT_PIPELINE_BODY.length },
          { path: '/b', status: 201, responseBodyBytes: 1 },
          { path: '/c', status: 202, responseBodyBytes: 1 },
        ],
      );
    }
  });

  it('untraced cgroups produce no records', async () => {
    const quiet = await runClient(lab.pod('quiet-client'), 'calls', lab.pod('quiet-server'), PORTS.untraced);
    // A traced exchange after it: once its records are read, any of the untraced one would have been read too.
    const traced = await runClient(lab.pod('client'), 'bytewise', lab.pod('server'), PORTS.python);
    await tap.connection(PORTS.python, traced.local_port);
    const quietPids = new Set([quiet.pid, servers.untraced!.pid]);
    assert.deepEqual(tap.chunks.filter((chunk) => quietPids.has(chunk.pid)), []);
    assert.deepEqual(tap.flows.filter((flow) => flow.serverPort === PORTS.untraced), []);
  });

  it('a cgroup traced after its processes made calls is traced from the restart on (remembered answers are emptied)', async () => {
    // Its process's calls make the kernel remember the quiet client's cgroup as untraced.
    const before = await runClient(lab.pod('quiet-client'), 'bytewise', lab.pod('server'), PORTS.python);
    await tap.until('the server side of the quiet client', () => tap.flows.some((flow) => flow.clientPort === before.local_port && flow.kind === FlowKind.final));
    assert.deepEqual(tap.chunksOf(before.pid), []);
    assert.equal(tap.retrace([lab.pod('client'), lab.pod('server'), lab.pod('quiet-client')]), true, 'both kinds adopted');
    const after = await runClient(lab.pod('quiet-client'), 'bytewise', lab.pod('server'), PORTS.python);
    const { client } = await tap.connection(PORTS.python, after.local_port);
    const sent = tap.chunksOf(after.pid).filter((chunk) => chunk.direction === HttpDirection.sent);
    assert.equal(bytesOf(sent), after.request);
    assert.equal(bytesOf(tap.chunksOf(after.pid).filter((chunk) => chunk.direction === HttpDirection.received)), after.response);
    assert.deepEqual(tap.exchangesOf(client).map(({ observer, path, status }) => ({ observer, path, status })), [{ observer: 'client', path: '/status/207', status: 207 }]);
  });

  it('nothing was dropped in the kernel', () => {
    const kernelReasons = ['ringbuf_full', 'call_table_full', 'copy_failed', 'program_skipped', 'conn_table_full', 'tracking_failed'];
    assert.deepEqual(Object.fromEntries(Object.entries(tap.drops).filter(([reason]) => kernelReasons.includes(reason))), {});
  });
});

describe('http capture with http.headBytes at its largest', () => {
  let longLab: Lab | undefined;
  let longTap: HttpTap | undefined;
  let server: ChildProcess | undefined;

  before(async () => {
    longLab = createLab({ name: 'http-long-head', pods: ['client', 'server'] });
    longTap = HttpTap.start([longLab.pod('client'), longLab.pod('server')], { headBytes: HTTP_CAPTURE_MAX });
    server = longLab.pod('server').spawn(python, ['-c', SMALL_READS_SERVER, longLab.pod('server').ip, String(PORTS.longHead)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await lineFrom(server, 'the small reads server');
  });

  after(() => {
    server?.kill();
    longTap?.stop();
    longLab?.destroy();
  });

  it('a request head of 12 KB in one send (past the default 8,192), read 4 KiB per call, is copied whole on both sides: one exchange per side', async () => {
    const result = JSON.parse((await runIn(longLab!.pod('client'), python, ['-c', LONG_HEAD_CLIENT, longLab!.pod('server').ip, String(PORTS.longHead)])).stdout) as {
      local_port: number;
      request_bytes: number;
    };
    assert.ok(result.request_bytes > DEFAULT_COPY_SIZES.headBytes && result.request_bytes <= HTTP_CAPTURE_MAX);
    const { client, server: serverSide } = await longTap!.connection(PORTS.longHead, result.local_port);
    assert.deepEqual(
      longTap!.chunksOn(client, HttpDirection.sent).map((chunk) => ({ length: chunk.length, copied: chunk.data.length, truncated: (chunk.flags & HttpChunkFlag.truncated) !== 0 })),
      [{ length: result.request_bytes, copied: result.request_bytes, truncated: false }],
    );
    // Three reads go on with the head, the last two after a call that did not end it.
    assert.deepEqual(
      longTap!.chunksOn(serverSide, HttpDirection.received).map((chunk) => ({ length: chunk.length, copied: chunk.data.length })),
      [4096, 4096, result.request_bytes - 8192].map((length) => ({ length, copied: length })),
    );
    for (const connId of [client, serverSide]) {
      assert.deepEqual(
        longTap!.exchangesOf(connId).map(({ method, path, status, requestBytes }) => ({ method, path, status, requestBytes })),
        [{ method: 'GET', path: '/status/200', status: 200, requestBytes: result.request_bytes }],
      );
    }
    assert.deepEqual(longTap!.drops, {});
  });
});
