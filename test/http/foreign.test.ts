/**
 * HTTP capture on the real kernel with servers and clients the project did not write: nginx and
 * `python3 -m http.server` in one lab pod; curl, wget, Python (http.client, and raw sockets for pipelining and
 * 1-byte writes) and a Go net/http client in another. Each exchange the capture pairs on each side (method, path
 * without query, route, status, request and response sizes, count per connection) is compared with the programs'
 * own accounts: nginx's access log (client port, order on the connection, status, request length, bytes and body
 * bytes sent), Python's server log, curl -w, wget -S, and what the clients printed. Every client sends secrets in
 * the query string, the Authorization and Cookie headers and a body: the kernel's copies hold them, and no
 * captured exchange nor the http.v1 event made of it does. The HttpTap harness (the collector's programs and
 * HttpCapture in this process, no Kafka): test/http/pipeline.test.ts takes nginx and curl through Kafka and
 * ClickHouse.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { CapturedExchange } from '../../src/collector/http/capture.js';
import { httpEventReader } from '../../src/collector/http/exchange-event.js';
import { loadRegistry } from '../../src/common/avro.js';
import { FlowKind } from '../../src/ebpf/records/flow.js';
import { HttpDirection } from '../../src/ebpf/records/http-chunk.js';
import { HTTP, type HttpBatch } from '../../src/events/http.js';
import { createLab, type Lab } from '../../src/lab/pods.js';
import { acceptsConnections, waitFor } from '../../src/lab/stack/processes.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { DOCUMENTS, DocumentRoot, Nginx, PythonFileServer, type NginxLogLine, type PythonLogLine } from '../helpers/foreign-servers.js';
import { DEFAULT_COPY_SIZES, HttpTap } from '../helpers/http-tap.js';
import { python, runIn } from '../helpers/processes.js';

const PORTS = { nginx: 7611, python: 7612, go: 7613 };
const GO = '/usr/local/go/bin/go';
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/http/fixtures/${name}`, import.meta.url));
const RUN = randomBytes(4).toString('hex');
const CLIENTS = ['curl', 'wget', 'httpclient', 'pipelined', 'go', 'bytewise'] as const;
type Client = (typeof CLIENTS)[number];
/** What each client sends and nothing may keep: unique per client and run. */
const secretsOf = (client: Client) => ({ query: `Q${client}${RUN}`, authorization: `A${client}${RUN}`, cookie: `C${client}${RUN}`, body: `B${client}${RUN}` });
/** curl -w: one line per transfer. */
const CURL_WRITE_OUT = '%{http_code} %{size_request} %{size_header} %{size_download} %{num_connects} %{local_port}\\n';

let lab: Lab;
let tap: HttpTap;
let root: DocumentRoot;
let nginx: Nginx | undefined;
let pythonServer: PythonFileServer | undefined;
let buildDir: string;
let goClient: string;
let goServer: ChildProcess | undefined;
/** What the Go server printed so far: a line per request it answered. */
let goServerOutput = '';

const client = () => lab.pod('client');
const server = () => lab.pod('server');
const nginxUrl = (path: string) => `http://${server().ip}:${PORTS.nginx}${path}`;
const pythonUrl = (path: string) => `http://${server().ip}:${PORTS.python}${path}`;
const goUrl = (path: string) => `http://${server().ip}:${PORTS.go}${path}`;

/** Builds a Go fixture into buildDir; returns the binary. */
function buildGo(name: string): string {
  const binary = join(buildDir, name);
  // Standard library only: no module download (GOPROXY=off), and Go's build cache makes a rebuild quick.
  execFileSync(GO, ['build', '-o', binary, fixture(`${name}.go`)], { env: { ...process.env, GOTOOLCHAIN: 'local', GOPROXY: 'off', GOFLAGS: '' }, stdio: ['ignore', 'ignore', 'inherit'] });
  return binary;
}

/** The Go server's lines of the connection from `clientPort` that say `what` (request or idle), split at spaces. */
const goServerLines = (clientPort: number, what: 'request' | 'idle') =>
  goServerOutput
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([port, said]) => Number(port) === clientPort && said === what)
    .map((fields) => fields.slice(2));
/** The requests the Go server answered on the connection from `clientPort`, in order. */
const goServerRequests = (clientPort: number) => goServerLines(clientPort, 'request').map(([method, path, status]) => ({ method, path, status: Number(status) }));
/** The bytes of each response it wrote on that connection, framing included: between the times it went idle. */
const goServerResponseBytes = (clientPort: number) =>
  goServerLines(clientPort, 'idle').map(([written], n, idle) => Number(written) - (n === 0 ? 0 : Number(idle[n - 1]![0])));

/** An exchange as the servers' logs can tell it. */
const asLogged = ({ method, path, status, requestBytes, responseBytes, responseBodyBytes }: CapturedExchange | NginxLogLine) => ({
  method,
  path,
  status,
  requestBytes,
  responseBytes,
  responseBodyBytes,
});

/**
 * The connection from `clientPort` to nginx, once closed: both sides' exchanges equal nginx's access log lines of
 * that port, one by one and in order. Returns the client side's exchanges.
 */
async function matchesNginxLog(clientPort: number, count: number): Promise<CapturedExchange[]> {
  const logged = await nginx!.logged(clientPort, count);
  assert.deepEqual(
    logged.map((line) => line.connectionRequest),
    Array.from({ length: count }, (_, n) => n + 1),
    'nginx served them on one connection',
  );
  const { client: clientSide, server: serverSide } = await tap.connection(PORTS.nginx, clientPort);
  for (const [connId, observer] of [
    [clientSide, 'client'],
    [serverSide, 'server'],
  ] as const) {
    const exchanges = tap.exchangesOf(connId);
    assert.deepEqual(new Set(exchanges.map((exchange) => exchange.observer)), new Set([observer]));
    assert.deepEqual(exchanges.map(asLogged), logged.map(asLogged), `${observer} side of ${clientPort}`);
  }
  return tap.exchangesOf(clientSide);
}

/** Ports of the connections to `serverPort` whose both final flow records are in, in the order they closed. */
function closedClientPorts(serverPort: number): number[] {
  const finals = tap.flows.filter((flow) => flow.serverPort === serverPort && flow.kind === FlowKind.final);
  const ports = [...new Set(finals.map((flow) => flow.clientPort))];
  return ports.filter((port) => finals.filter((flow) => flow.clientPort === port).length === 2);
}

/**
 * The connections to Python's file server from `clientPorts` (HTTP/1.0: one request each), in order: each side's
 * exchange has the method, path and status of the server's log line from `logFrom` on. Returns each side's.
 */
async function matchesPythonLog(clientPorts: readonly number[], logFrom: number): Promise<Record<'client' | 'server', CapturedExchange[]>> {
  const logged = (await pythonServer!.logged(logFrom + clientPorts.length)).slice(logFrom);
  const asPythonLogged = ({ method, path, status }: CapturedExchange | PythonLogLine) => ({ method, path, status });
  const sides: Record<'client' | 'server', CapturedExchange[]> = { client: [], server: [] };
  for (const [n, port] of clientPorts.entries()) {
    const conns = await tap.connection(PORTS.python, port);
    for (const side of ['client', 'server'] as const) {
      const exchanges = tap.exchangesOf(conns[side]);
      assert.deepEqual(exchanges.map(asPythonLogged), [asPythonLogged(logged[n]!)], `${side} side of ${port}`);
      sides[side].push(exchanges[0]!);
    }
  }
  return sides;
}

/** curl's -w lines of one run. */
function curlLines(stdout: string) {
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [status, requestBytes, headerBytes, bodyBytes, connects, localPort] = line.split(' ').map(Number) as [number, number, number, number, number, number];
      return { status, requestBytes, headerBytes, bodyBytes, connects, localPort };
    });
}

/** curl's options that carry a client's secrets in headers. */
const curlSecretHeaders = (secrets: ReturnType<typeof secretsOf>) => ['-H', `Authorization: Bearer ${secrets.authorization}`, '-b', `sid=${secrets.cookie}`];

/** The chunk framing of a body sent as one chunk and the last: size line, CRLF after the data, `0` line and blank line. */
const oneChunkFraming = (bodyBytes: number) => bodyBytes.toString(16).length + 2 + 2 + 5;

before(async () => {
  lab = createLab({ name: 'http-foreign', pods: ['client', 'server'] });
  // The copies a collector makes by default, as a new user has them: a call that begins a message is copied up to
  // http.headBytes, so every secret a request carries reaches the parser (the test checks it did), and pipelined
  // requests, and their responses, fit in one (past it they are lost, counted: docs/ARCHITECTURE.md, "Seen in part").
  tap = HttpTap.start([client(), server()]);
  root = new DocumentRoot();
  buildDir = mkdtempSync(join(tmpdir(), 'sidecarless-go-'));
  goClient = buildGo('go-client');
  goServer = server().spawn(buildGo('go-server'), [`${server().ip}:${PORTS.go}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  goServer.stdout!.on('data', (data: Buffer) => (goServerOutput += data.toString()));
  await waitFor(() => acceptsConnections(server().ip, PORTS.go), { timeoutMs: 10_000, what: 'the Go server' });
  nginx = await Nginx.start(server(), PORTS.nginx, root);
  pythonServer = await PythonFileServer.start(server(), PORTS.python, root);
});

after(async () => {
  await cleanUpAll([
    ['nginx', () => nginx?.stop()],
    ['python3 -m http.server', () => pythonServer?.stop()],
    ['the Go server', () => goServer?.kill()],
    ['the tap', () => tap?.stop()],
    ['the lab', () => lab?.destroy()],
    ['the document root', () => root?.remove()],
    ['the Go build', () => buildDir && rmSync(buildDir, { recursive: true, force: true })],
  ]);
});

describe('HTTP capture of servers and clients the project did not write', () => {
  it('curl: 100 requests on one keep-alive connection to nginx (static, chunked, 404), per side as nginx logged them and curl counted them', async () => {
    const secrets = secretsOf('curl');
    const paths = Array.from({ length: 100 }, (_, n) => [DOCUMENTS.small, DOCUMENTS.listing, `/missing/${n}`][n % 3]!);
    const urls = paths.flatMap((path) => ['-o', '/dev/null', nginxUrl(`${path}?token=${secrets.query}`)]);
    const { stdout } = await runIn(client(), 'curl', ['-s', ...curlSecretHeaders(secrets), '-w', CURL_WRITE_OUT, ...urls]);
    const counted = curlLines(stdout);
    assert.deepEqual(
      counted.map((line) => line.connects),
      paths.map((_, n) => (n === 0 ? 1 : 0)),
      'curl made one connection',
    );
    const exchanges = await matchesNginxLog(counted[0]!.localPort, 100);
    assert.deepEqual(
      exchanges.map(({ method, path, route, status }) => ({ method, path, route, status })),
      paths.map((path) => ({ method: 'GET', path, route: path.startsWith('/missing/') ? '/missing/{id}' : path, status: path.startsWith('/missing/') ? 404 : 200 })),
    );
    // curl's own counts: request bytes, response head bytes, and the body it decoded (chunked: without framing).
    assert.deepEqual(
      exchanges.map((exchange) => ({
        status: exchange.status,
        requestBytes: exchange.requestBytes,
        headerBytes: exchange.responseBytes! - exchange.responseBodyBytes!,
        bodyBytes: exchange.path === DOCUMENTS.listing ? exchange.responseBodyBytes! - oneChunkFraming(counted[1]!.bodyBytes) : exchange.responseBodyBytes,
      })),
      counted.map(({ status, requestBytes, headerBytes, bodyBytes }) => ({ status, requestBytes, headerBytes, bodyBytes })),
    );
    assert.equal(exchanges.filter((exchange) => exchange.path === DOCUMENTS.small)[0]!.responseBodyBytes, root.size(DOCUMENTS.small));
    // The listing, one chunk, is longer than the largest copy: the parser counted the chunk framing it did not see
    // from the next call (or the close).
    const listings = exchanges.filter((exchange) => exchange.path === DOCUMENTS.listing);
    assert.ok(listings.length === 33 && listings.every((exchange) => exchange.responseBodyBytes! > DEFAULT_COPY_SIZES.headBytes), 'the listings are longer than the copy');
  });

  it('curl: HEAD (-I), 304 by If-Modified-Since (-z) and by If-None-Match, a 5 MiB body and a PUT body, on one connection', async () => {
    const secrets = secretsOf('curl');
    const group = (...options: string[]) => ['-s', '-o', '/dev/null', '-w', CURL_WRITE_OUT, ...curlSecretHeaders(secrets), ...options];
    const query = `?token=${secrets.query}`;
    const { stdout } = await runIn(client(), 'curl', [
      ...group('-I', nginxUrl(DOCUMENTS.small + query)),
      '--next',
      ...group('-z', root.file(DOCUMENTS.small), nginxUrl(DOCUMENTS.small + query)),
      '--next',
      ...group('-H', `If-None-Match: ${root.nginxEtag(DOCUMENTS.small)}`, nginxUrl(DOCUMENTS.small + query)),
      '--next',
      ...group(nginxUrl(DOCUMENTS.big + query)),
      '--next',
      ...group('-X', 'PUT', '--data-binary', secrets.body, nginxUrl(`${DOCUMENTS.upload}curl.txt${query}`)),
    ]);
    const counted = curlLines(stdout);
    assert.deepEqual(
      counted.map((line) => line.connects),
      [1, 0, 0, 0, 0],
    );
    const exchanges = await matchesNginxLog(counted[0]!.localPort, 5);
    assert.deepEqual(
      exchanges.map(({ method, path, status, responseBodyBytes }) => ({ method, path, status, responseBodyBytes })),
      [
        { method: 'HEAD', path: DOCUMENTS.small, status: 200, responseBodyBytes: 0 },
        { method: 'GET', path: DOCUMENTS.small, status: 304, responseBodyBytes: 0 },
        { method: 'GET', path: DOCUMENTS.small, status: 304, responseBodyBytes: 0 },
        { method: 'GET', path: DOCUMENTS.big, status: 200, responseBodyBytes: 5 * 1024 * 1024 },
        { method: 'PUT', path: `${DOCUMENTS.upload}curl.txt`, status: 201, responseBodyBytes: 0 },
      ],
    );
    assert.deepEqual(
      exchanges.map((exchange) => ({ status: exchange.status, requestBytes: exchange.requestBytes, headerBytes: exchange.responseBytes! - exchange.responseBodyBytes!, bodyBytes: exchange.responseBodyBytes })),
      counted.map(({ status, requestBytes, headerBytes, bodyBytes }) => ({ status, requestBytes, headerBytes, bodyBytes })),
      "curl's counts",
    );
    assert.equal(exchanges[4]!.requestBodyBytes, secrets.body.length);
    // nginx sent the 5 MiB file with sendfile(2): records with its length and no bytes.
    const { server: serverSide } = await tap.connection(PORTS.nginx, counted[0]!.localPort);
    const fromFile = tap.chunksOn(serverSide, HttpDirection.sent).filter((chunk) => chunk.data.length === 0);
    assert.equal(fromFile.reduce((sum, chunk) => sum + chunk.length, 0), root.size(DOCUMENTS.big));
  });

  it('wget: python3 -m http.server (HTTP/1.0, a connection per request: file, listing, 404) and a PUT body to nginx', async () => {
    const secrets = secretsOf('wget');
    const headers = [`--header=Authorization: Bearer ${secrets.authorization}`, `--header=Cookie: sid=${secrets.cookie}`];
    const query = `?token=${secrets.query}`;
    const known = new Set(closedClientPorts(PORTS.python));
    const logFrom = pythonServer!.log().length;
    const paths = [DOCUMENTS.small, DOCUMENTS.listing, '/missing/1'];
    // -S: the responses' heads on stderr; exit code 8: a server answered an error (the 404). --no-http-keep-alive:
    // wget otherwise offers keep-alive and, when the server's FIN has not arrived yet as it checks, writes its next
    // request on the connection the HTTP/1.0 server is closing, reads nothing and retries on a new one (about one
    // run in twenty here). The capture records that request without a response, as it happened; the test needs a
    // known number of connections.
    const { stderr } = await runIn(client(), 'wget', ['-S', '-O', '/dev/null', '--no-http-keep-alive', ...headers, ...paths.map((path) => pythonUrl(path + query))], [8]);
    const statuses = [...stderr.matchAll(/^ {2}HTTP\/1\.[01] (\d{3}) /gm)].map((match) => Number(match[1]));
    assert.deepEqual(statuses, [200, 200, 404]);
    const lengths = [...stderr.matchAll(/^ {2}Content-Length: (\d+)/gm)].map((match) => Number(match[1]));
    let ports: number[] = [];
    await tap.until('three closed connections of wget to the Python server', () => (ports = closedClientPorts(PORTS.python).filter((port) => !known.has(port))).length === 3);
    const { client: clientSide, server: serverSide } = await matchesPythonLog(ports, logFrom);
    assert.deepEqual(
      serverSide.map(({ method, path, status, version, responseBodyBytes }) => ({ method, path, status, version, responseBodyBytes })),
      paths.map((path, n) => ({ method: 'GET', path, status: statuses[n], version: '1.1', responseBodyBytes: lengths[n] })),
    );
    assert.equal(serverSide[0]!.responseBodyBytes, root.size(DOCUMENTS.small));
    // wget reads an error's head and closes without reading its body: the client side got the 404 and no body
    // byte (counted incomplete_at_close), the server side sent it all.
    assert.deepEqual(
      clientSide.map(({ requestBytes, responseBytes, responseBodyBytes }) => ({ requestBytes, responseBytes, responseBodyBytes })),
      serverSide.map(({ requestBytes, responseBytes, responseBodyBytes }, n) =>
        n < 2 ? { requestBytes, responseBytes, responseBodyBytes } : { requestBytes, responseBytes: responseBytes! - responseBodyBytes!, responseBodyBytes: 0 },
      ),
    );

    const before = new Set(nginx!.log().map((line) => line.clientPort));
    const put = await runIn(client(), 'wget', ['-S', '-O', '/dev/null', ...headers, '--method=PUT', `--body-data=${secrets.body}`, nginxUrl(`${DOCUMENTS.upload}wget.txt${query}`)]);
    assert.match(put.stderr, /^ {2}HTTP\/1\.1 201 Created$/m);
    // nginx writes its access log line after the response, so wget may be done before it.
    let line: NginxLogLine | undefined;
    await tap.until("nginx's log line of wget's PUT", () => (line = nginx!.log().find((logged) => !before.has(logged.clientPort))) !== undefined);
    const [exchange] = await matchesNginxLog(line!.clientPort, 1);
    assert.deepEqual({ method: exchange!.method, requestBodyBytes: exchange!.requestBodyBytes }, { method: 'PUT', requestBodyBytes: secrets.body.length });
  });

  it('curl: heads nginx reads in two calls (1 KiB first), one of 6,000 bytes, and a chunked 600 KB upload, on one connection to nginx', async () => {
    const upload = join(buildDir, 'upload.bin');
    writeFileSync(upload, Buffer.alloc(600_000, 0x61));
    const group = (...options: string[]) => ['-s', '-o', '/dev/null', '-w', CURL_WRITE_OUT, ...options];
    const { stdout } = await runIn(client(), 'curl', [
      ...group('-b', `sid=${'c'.repeat(1500)}`, nginxUrl(`${DOCUMENTS.small}?q=${'x'.repeat(600)}`)),
      '--next',
      ...group('-H', `Cookie: sid=${'d'.repeat(6000)}`, nginxUrl(DOCUMENTS.small)), // -b drops a cookie past 4 KiB
      '--next',
      ...group('-X', 'PUT', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${upload}`, nginxUrl(`${DOCUMENTS.upload}chunked.bin`)),
      '--next',
      ...group(nginxUrl(DOCUMENTS.small)),
    ]);
    const counted = curlLines(stdout);
    assert.deepEqual(
      counted.map(({ status, connects }) => [status, connects]),
      [
        [200, 1],
        [200, 0],
        [201, 0],
        [200, 0],
      ],
    );
    assert.ok(counted.slice(0, 2).every((line) => line.requestBytes > 1024), "the first two heads pass nginx's first read");
    // Both sides equal nginx's log (matchesNginxLog): request sizes with the chunked framing as nginx counted it.
    const exchanges = await matchesNginxLog(counted[0]!.localPort, 4);
    assert.deepEqual(
      exchanges.map(({ method, status }) => ({ method, status })),
      ['GET', 'GET', 'PUT', 'GET'].map((method, n) => ({ method, status: counted[n]!.status })),
    );
    const gets = [0, 1, 3];
    assert.deepEqual(
      gets.map((n) => exchanges[n]!.requestBytes),
      gets.map((n) => counted[n]!.requestBytes),
      "curl's request sizes",
    );
    assert.ok(exchanges[2]!.requestBodyBytes > 600_000, 'the chunked body with its framing');
  });

  it("wget: a small file, then the 5 MiB file on the same keep-alive connection to nginx, whose head for it is longer than http.captureBytes", async () => {
    const before = new Set(nginx!.log().map((line) => line.clientPort));
    const { stderr } = await runIn(client(), 'wget', ['-S', '-O', '/dev/null', nginxUrl(DOCUMENTS.small), nginxUrl(DOCUMENTS.big)]);
    assert.deepEqual([...stderr.matchAll(/^ {2}HTTP\/1\.1 (\d{3}) /gm)].map((match) => Number(match[1])), [200, 200]);
    let line: NginxLogLine | undefined;
    await tap.until("nginx's log lines of wget's two requests", () => (line = nginx!.log().find((logged) => !before.has(logged.clientPort) && logged.connectionRequest === 2)) !== undefined);
    const exchanges = await matchesNginxLog(line!.clientPort, 2);
    assert.deepEqual(
      exchanges.map(({ path, status, responseBodyBytes }) => ({ path, status, responseBodyBytes })),
      [
        { path: DOCUMENTS.small, status: 200, responseBodyBytes: root.size(DOCUMENTS.small) },
        { path: DOCUMENTS.big, status: 200, responseBodyBytes: root.size(DOCUMENTS.big) },
      ],
    );
    const bigHeadBytes = exchanges[1]!.responseBytes! - exchanges[1]!.responseBodyBytes!;
    assert.ok(bigHeadBytes > DEFAULT_COPY_SIZES.captureBytes, `nginx's head for the big file (${bigHeadBytes} bytes) is longer than a body call's copy`);
  });

  it('Python http.client: GET, PUT, HEAD, chunked and 5 MiB on one keep-alive connection to nginx', async () => {
    const result = JSON.parse((await runIn(client(), python, [fixture('client.py'), 'httpclient', server().ip, String(PORTS.nginx), JSON.stringify(secretsOf('httpclient'))])).stdout) as {
      local_port: number;
      responses: Array<{ status: number; body_bytes: number }>;
    };
    const exchanges = await matchesNginxLog(result.local_port, 5);
    assert.deepEqual(
      exchanges.map(({ method, path, status }) => ({ method, path, status })),
      [
        { method: 'GET', path: DOCUMENTS.small, status: 200 },
        { method: 'PUT', path: `${DOCUMENTS.upload}httpclient.txt`, status: 201 },
        { method: 'HEAD', path: DOCUMENTS.small, status: 200 },
        { method: 'GET', path: DOCUMENTS.listing, status: 200 },
        { method: 'GET', path: DOCUMENTS.big, status: 200 },
      ],
    );
    // What http.client read: the bodies, the chunked one decoded.
    assert.deepEqual(
      exchanges.map((exchange, n) => ({
        status: exchange.status,
        body_bytes: exchange.path === DOCUMENTS.listing ? exchange.responseBodyBytes! - oneChunkFraming(result.responses[n]!.body_bytes) : exchange.responseBodyBytes,
      })),
      result.responses,
    );
  });

  it('pipelined: four requests in one write before any response is read are four exchanges per side, in order', async () => {
    const result = JSON.parse((await runIn(client(), python, [fixture('client.py'), 'pipelined', server().ip, String(PORTS.nginx), JSON.stringify(secretsOf('pipelined'))])).stdout) as {
      local_port: number;
      pid: number;
      requests: string[];
      received_bytes: number;
    };
    const exchanges = await matchesNginxLog(result.local_port, 4);
    const sent = tap.chunksOf(result.pid).filter((chunk) => chunk.direction === HttpDirection.sent);
    assert.deepEqual(
      sent.map((chunk) => chunk.length),
      [result.requests.join('').length / 2],
      'the client wrote all requests in one call',
    );
    assert.deepEqual(
      exchanges.map(({ method, path, status, requestBytes }) => ({ method, path, status, requestBytes })),
      [
        { method: 'GET', path: DOCUMENTS.small, status: 200, requestBytes: result.requests[0]!.length / 2 },
        { method: 'PUT', path: `${DOCUMENTS.upload}pipelined.txt`, status: 201, requestBytes: result.requests[1]!.length / 2 },
        { method: 'HEAD', path: DOCUMENTS.small, status: 200, requestBytes: result.requests[2]!.length / 2 },
        { method: 'GET', path: '/missing/9', status: 404, requestBytes: result.requests[3]!.length / 2 },
      ],
    );
    assert.equal(
      exchanges.reduce((sum, exchange) => sum + exchange.responseBytes!, 0),
      result.received_bytes,
      'the responses are every byte the client read',
    );
  });

  it('Go net/http: keep-alive to nginx (GET, PUT, HEAD, chunked, 5 MiB) and Python file server requests', async () => {
    const secrets = secretsOf('go');
    const headers = { Authorization: `Bearer ${secrets.authorization}`, Cookie: `sid=${secrets.cookie}` };
    const query = `?token=${secrets.query}`;
    const plan = [
      { method: 'GET', url: nginxUrl(DOCUMENTS.small + query), headers },
      { method: 'PUT', url: nginxUrl(`${DOCUMENTS.upload}go.txt${query}`), headers, body: secrets.body },
      { method: 'HEAD', url: nginxUrl(DOCUMENTS.small), headers },
      { method: 'GET', url: nginxUrl(DOCUMENTS.listing + query), headers },
      { method: 'GET', url: nginxUrl(DOCUMENTS.big), headers },
      { method: 'GET', url: pythonUrl(DOCUMENTS.small + query), headers },
      { method: 'HEAD', url: pythonUrl(DOCUMENTS.big + query), headers },
      { method: 'GET', url: pythonUrl('/missing/3' + query), headers },
    ];
    const logFrom = pythonServer!.log().length;
    const { stdout } = await runIn(client(), goClient, [JSON.stringify(plan)]);
    const results = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { status: number; bodyBytes: number; localPort: number; reused: boolean });
    assert.deepEqual(
      results.map(({ status, reused }) => ({ status, reused })),
      [200, 201, 200, 200, 200, 200, 200, 404].map((status, n) => ({ status, reused: n > 0 && n < 5 })),
      'one connection to nginx, one per request to the HTTP/1.0 server',
    );
    const toNginx = await matchesNginxLog(results[0]!.localPort, 5);
    assert.deepEqual(
      toNginx.map((exchange, n) => ({
        method: exchange.method,
        bodyBytes: exchange.path === DOCUMENTS.listing ? exchange.responseBodyBytes! - oneChunkFraming(results[n]!.bodyBytes) : exchange.responseBodyBytes,
      })),
      plan.slice(0, 5).map(({ method }, n) => ({ method, bodyBytes: results[n]!.bodyBytes })),
    );
    const toPython = await matchesPythonLog(
      results.slice(5).map((result) => result.localPort),
      logFrom,
    );
    assert.deepEqual(toPython.client.map(asLogged), toPython.server.map(asLogged), 'both sides alike');
    assert.deepEqual(
      toPython.client.map(({ method, path, status, responseBodyBytes }) => ({ method, path, status, responseBodyBytes })),
      [
        { method: 'GET', path: DOCUMENTS.small, status: 200, responseBodyBytes: root.size(DOCUMENTS.small) },
        { method: 'HEAD', path: DOCUMENTS.big, status: 200, responseBodyBytes: 0 },
        { method: 'GET', path: '/missing/3', status: 404, responseBodyBytes: results[7]!.bodyBytes },
      ],
    );
  });

  it("Go net/http as the server: chunked responses whose calls end where its 4 KiB write buffer does, then more, on one connection (curl)", async () => {
    // A call of such a body can begin with the last bytes of a chunk's data: "cccccccccccc" and its CRLF, which also
    // reads as a chunk-size line. Taken for one before, it made every later response of the connection chunk data.
    const paths = ['/chunked/5', '/status/201', '/chunked/3', '/status/404', '/status/200'];
    const transfers = curlLines((await runIn(client(), 'curl', ['-s', '-w', CURL_WRITE_OUT, ...paths.flatMap((path) => ['-o', '/dev/null', goUrl(path)])])).stdout);
    assert.deepEqual(transfers.map(({ status, connects }) => [status, connects]), [[200, 1], [201, 0], [200, 0], [404, 0], [200, 0]]);
    const clientPort = transfers[0]!.localPort;
    await waitFor(async () => goServerResponseBytes(clientPort).length === paths.length, { timeoutMs: 10_000, what: 'the Go server writing every response' });
    assert.deepEqual(goServerRequests(clientPort), paths.map((path, n) => ({ method: 'GET', path, status: transfers[n]!.status })));
    const wire = goServerResponseBytes(clientPort);
    const connection = await tap.connection(PORTS.go, clientPort);
    for (const observer of ['client', 'server'] as const) {
      const exchanges = tap.exchangesOf(connection[observer]);
      assert.deepEqual(
        exchanges.map(({ method, path, status, responseBytes }) => ({ method, path, status, responseBytes })),
        paths.map((path, n) => ({ method: 'GET', path, status: transfers[n]!.status, responseBytes: wire[n] })),
        `${observer} side`,
      );
      // curl's bodies, decoded: the Content-Length ones exactly; the chunked ones with their framing on top.
      for (const [n, exchange] of exchanges.entries()) {
        const framed = paths[n]!.startsWith('/chunked/');
        assert.equal(framed ? exchange.responseBodyBytes! > transfers[n]!.bodyBytes : exchange.responseBodyBytes === transfers[n]!.bodyBytes, true, `${observer} body of ${paths[n]}`);
      }
    }
  });

  it('a request written in 1-byte writes to nginx is one exchange per side', async () => {
    const result = JSON.parse((await runIn(client(), python, [fixture('client.py'), 'bytewise', server().ip, String(PORTS.nginx), JSON.stringify(secretsOf('bytewise'))])).stdout) as {
      local_port: number;
      pid: number;
      request: string;
      response: string;
    };
    const exchanges = await matchesNginxLog(result.local_port, 1);
    const sent = tap.chunksOf(result.pid).filter((chunk) => chunk.direction === HttpDirection.sent);
    assert.equal(sent.length, result.request.length / 2, 'one call per byte');
    assert.deepEqual(
      exchanges.map(({ method, path, status, requestBytes, responseBytes }) => ({ method, path, status, requestBytes, responseBytes })),
      [{ method: 'GET', path: '/status/207', status: 404, requestBytes: result.request.length / 2, responseBytes: result.response.length / 2 }],
    );
  });

  it("no client's secrets are in a captured exchange or its http.v1 event, though the kernel's copies hold them", () => {
    // Per socket and direction: the copies of one stream in order (a 1-byte writer's secret spans many calls).
    const streams = new Map<string, Buffer[]>();
    for (const chunk of tap.chunks) {
      const key = `${chunk.connId} ${chunk.direction}`;
      if (!streams.has(key)) streams.set(key, []);
      streams.get(key)!.push(chunk.data);
    }
    const copied = [...streams.values()].map((chunks) => Buffer.concat(chunks));
    const toEvent = httpEventReader({ nodeName: 'test-node', epoch: 'e1', toWallNs: (ns: bigint) => ns }, loadRegistry().codec<HttpBatch>(HTTP.subject));
    const stored = JSON.stringify(
      tap.exchanges.flatMap((exchange) => [exchange, toEvent(exchange)]),
      (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    );
    assert.match(stored, /\/static\/small\.txt/, 'the search reads the exchanges');
    for (const client of CLIENTS) {
      for (const [where, secret] of Object.entries(secretsOf(client))) {
        if (client === 'bytewise' && where === 'body') continue; // its GET has no body
        assert.ok(copied.some((stream) => stream.includes(secret)), `${client}'s ${where} secret reached the parser`);
        assert.equal(stored.includes(secret), false, `${client}'s ${where} secret kept`);
      }
    }
  });

  it("nothing was dropped or rejected but wget's 404 body, which it never read", () => {
    assert.deepEqual(tap.drops, { incomplete_at_close: 1 });
  });
});
