/**
 * HTTP end to end on a real kernel, broker and ClickHouse engine: a server the project did not write the HTTP of
 * (Python's http.server) in pod b answers a Node client in pod a on one keep-alive connection; the collector (its own
 * process, http.enabled) captures both sockets, the enricher (this process) stores them. Exact rows per observing
 * side, method and status in `http_requests` and in the RED rollup, and none of the secrets the requests carried (in
 * the query string, a header, a cookie and a body) anywhere in ClickHouse or on the http topic. nginx answering curl
 * (static, chunked, HEAD, 304, an upload, 404 on one connection): each side's rows equal nginx's access log, and
 * curl's secrets are not stored either. A server that answers after known delays: each measured duration at least
 * the delay and below the delay plus a small bound.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import type { RunningRole } from '../../src/common/role.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { startEnricher } from '../../src/enricher/index.js';
import { topicSpecs } from '../../src/events/topics.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { createLab, type Lab } from '../../src/lab/pods.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { everyStoredValue, queryRows } from '../helpers/clickhouse.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { DOCUMENTS, DocumentRoot, Nginx } from '../helpers/foreign-servers.js';
import { lineFrom, python, runIn } from '../helpers/processes.js';
import { requireStackService } from '../helpers/stack.js';

const PORT = 7521;
const DELAY_PORT = 7522;
const NGINX_PORT = 7523;
/** Each delay (ms) a server waits before it answers, three requests each; measured durations stay below delay + this. */
const DELAYS_MS = [20, 80];
const DELAY_BOUND_MS = 20;
const statusServer = fileURLToPath(new URL('../../../test/http/fixtures/status-server.py', import.meta.url));
const logger = createLogger({ level: 'warn' });
const { config, env } = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50', SIDECARLESS_HTTP_ENABLED: 'true', SIDECARLESS_KAFKA_PARTITIONS: '1' });
const database = config.clickhouse.database;
const SECRETS = { query: 'Q9querysecret', header: 'H9headersecret', cookie: 'C9cookiesecret', body: 'B9bodysecret' };
const CURL_SECRETS = { query: 'Q9curlquery', header: 'H9curlheader', cookie: 'C9curlcookie', body: 'B9curlbody' };
/** The client's requests, in order: [method, status asked for, how many]. */
const REQUESTS: Array<[method: 'GET' | 'POST', status: number, count: number]> = [
  ['GET', 200, 6],
  ['GET', 404, 3],
  ['GET', 500, 2],
  ['POST', 201, 1],
];

/** Node's http client on one keep-alive connection: the requests above, each with every secret; prints the statuses. */
const clientScript = (host: string) => `
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const plan = ${JSON.stringify(REQUESTS)};
const secrets = ${JSON.stringify(SECRETS)};
function call(method, status) {
  return new Promise((resolve, reject) => {
    const body = method === 'POST' ? secrets.body : undefined;
    const req = http.request({ host: '${host}', port: ${PORT}, agent, method, path: '/status/' + status + '?token=' + secrets.query,
      headers: { Authorization: 'Bearer ' + secrets.header, Cookie: 'sid=' + secrets.cookie, ...(body ? { 'Content-Length': body.length } : {}) } },
      (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}
(async () => {
  const statuses = [];
  for (const [method, status, count] of plan) for (let i = 0; i < count; i++) statuses.push(await call(method, status));
  agent.destroy();
  console.log(JSON.stringify(statuses));
})();`;

/**
 * Python's http.server answering GET /delay/<ms> with 200 after sleeping <ms> from when it has read the request
 * (time.sleep sleeps at least that long; Node's timers count from the event loop's cached time and may fire earlier).
 */
const delayServerScript = (host: string) => `
import sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        time.sleep(int(self.path.split('/')[2]) / 1000)
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *args):
        pass
server = HTTPServer(('${host}', ${DELAY_PORT}), Handler)
print('ready', flush=True)
server.serve_forever()
`;

/** Three GETs per delay on one keep-alive connection, one after the other. */
const delayClientScript = (host: string) => `
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = (ms) => new Promise((resolve, reject) => http.get({ host: '${host}', port: ${DELAY_PORT}, agent, path: '/delay/' + ms }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
(async () => { for (const ms of ${JSON.stringify(DELAYS_MS)}) for (let i = 0; i < 3; i++) await get(ms); agent.destroy(); console.log('done'); })();`;

let lab: Lab;
let collector: CollectorProcess | undefined;
let telemetry: Telemetry | undefined;
let enricher: RunningRole | undefined;
let clickhouse: ClickHouseClient | undefined;
let server: ChildProcess | undefined;
let delayServer: ChildProcess | undefined;
let documents: DocumentRoot | undefined;
let nginx: Nginx | undefined;

/** None of `secrets` in any value of any table, nor in any message of the http topic (read to its end). */
async function assertNoSecretStored(secrets: Record<string, string>, expectedInRequests: RegExp): Promise<void> {
  const stored = await everyStoredValue(clickhouse!, database);
  assert.match(stored.get('http_requests')!, expectedInRequests, 'the search reads the stored values');
  const messages: Buffer[] = [];
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), logger);
  await readToEnd(kafka, topicSpecs(config.kafka.topicPrefix).http.topic, (message) => void (message.value && messages.push(message.value)), {
    groupPrefix: `${config.enricher.groupId}-read`,
    logger,
  });
  assert.ok(messages.length > 0, 'the http topic holds the events');
  for (const secret of Object.values(secrets)) {
    for (const [table, text] of stored) assert.equal(text.includes(secret), false, `${secret} stored in ${table}`);
    for (const value of messages) assert.equal(value.includes(Buffer.from(secret)), false, `${secret} on the http topic`);
  }
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  lab = createLab({ name: 'http-e2e', pods: ['a', 'b'] });
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  enricher = await startEnricher({ config, logger, telemetry });
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  collector = await startCollectorProcess(env, () => [a.cgroup.path, b.cgroup.path]);
  server = b.spawn(python, [statusServer, b.ip, String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineFrom(server, 'status-server.py');
  delayServer = b.spawn(python, ['-c', delayServerScript(b.ip)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineFrom(delayServer, 'the delay server');
  documents = new DocumentRoot();
  nginx = await Nginx.start(b, NGINX_PORT, documents);
});

after(async () => {
  await cleanUpAll([
    ['the servers', () => [server, delayServer].forEach((child) => child?.kill())],
    ['nginx', () => nginx?.stop()],
    ['the document root', () => documents?.remove()],
    ['the collector', () => collector?.kill()],
    ["the collector's pins", () => uninstallCollectorPins(env)],
    ['the enricher', () => enricher?.stop()],
    ['telemetry', () => telemetry?.shutdown()],
    ['the lab', () => lab?.destroy()],
    ['the test data', () => dropTestData(config, clickhouse)],
  ]);
});

it('keep-alive requests a -> b: one row per exchange and side with its method, route and status, counted exactly in the rollup, no secret stored', async () => {
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  const statuses = JSON.parse(a.exec(process.execPath, ['-e', clientScript(b.ip)]).trim()) as number[];
  const total = REQUESTS.reduce((sum, [, , count]) => sum + count, 0);
  assert.deepEqual(statuses, REQUESTS.flatMap(([, status, count]) => Array<number>(count).fill(status)));
  await waitFor(async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT count() AS n FROM ${database}.http_requests`))[0]?.n === String(2 * total), {
    timeoutMs: 60_000,
    what: `${2 * total} rows in http_requests`,
  });

  const expected = (side: string) =>
    REQUESTS.map(([method, status, count]) => ({ side, method, status, rows: String(count), path: `/status/${status}`, route: '/status/{id}', connections: '1', ordered: 1 }));
  assert.deepEqual(
    await queryRows(
      clickhouse!,
      `SELECT toString(observer_side) AS side, http_request_method AS method, http_response_status_code AS status, toString(count()) AS rows,
              any(url_path) AS path, any(http_route) AS route, toString(uniqExact(connection_id)) AS connections,
              min(response_start_time >= request_end_time AND request_end_time >= start_time AND duration_ns > 0) AS ordered
       FROM ${database}.http_requests WHERE toString(client_address) = {a:String} AND toString(server_address) = {b:String} AND server_port = {port:UInt16}
       GROUP BY side, method, status ORDER BY side, method, status`,
      { a: `::ffff:${a.ip}`, b: `::ffff:${b.ip}`, port: PORT },
    ),
    [...expected('client'), ...expected('server')],
  );
  assert.deepEqual(
    await queryRows(
      clickhouse!,
      `SELECT toString(observer_side) AS side, toString(groupArray(exchange_seq)) AS seqs
       FROM (SELECT * FROM ${database}.http_requests WHERE server_port = ${PORT} ORDER BY exchange_seq)
       GROUP BY side ORDER BY side`,
    ),
    ['client', 'server'].map((side) => ({ side, seqs: `[${Array.from({ length: total }, (_, i) => i).join(',')}]` })),
    'each side numbers its exchanges on the connection in order',
  );
  assert.deepEqual(
    await queryRows(
      clickhouse!,
      `SELECT toString(observer_side) AS side, http_request_method AS method, toString(status_class) AS class, toString(sum(requests)) AS requests, toString(sum(errors)) AS errors
       FROM ${database}.http_red_1m WHERE http_route = '/status/{id}' GROUP BY side, method, class ORDER BY side, method, class`,
    ),
    ['client', 'server'].flatMap((side) => [
      { side, method: 'GET', class: '2xx', requests: '6', errors: '0' },
      { side, method: 'GET', class: '4xx', requests: '3', errors: '0' },
      { side, method: 'GET', class: '5xx', requests: '2', errors: '2' },
      { side, method: 'POST', class: '2xx', requests: '1', errors: '0' },
    ]),
  );

  await assertNoSecretStored(SECRETS, /\/status\/404/);
});

it("curl -> nginx on one connection (static, chunked, HEAD, 304, an upload, 404): each side's rows equal nginx's access log, no secret stored", async () => {
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  const url = (path: string) => `http://${b.ip}:${NGINX_PORT}${path}?token=${CURL_SECRETS.query}`;
  const transfer = (...options: string[]) => ['-s', '-o', '/dev/null', '-w', '%{local_port}\n', '-H', `Authorization: Bearer ${CURL_SECRETS.header}`, '-b', `sid=${CURL_SECRETS.cookie}`, ...options];
  const { stdout } = await runIn(a, 'curl', [
    ...transfer(url(DOCUMENTS.small)),
    ...['--next', ...transfer(url(DOCUMENTS.listing))],
    ...['--next', ...transfer('-I', url(DOCUMENTS.small))],
    ...['--next', ...transfer('-z', documents!.file(DOCUMENTS.small), url(DOCUMENTS.small))],
    ...['--next', ...transfer('-X', 'PUT', '--data-binary', CURL_SECRETS.body, url(`${DOCUMENTS.upload}pipeline.txt`))],
    ...['--next', ...transfer(url('/missing/1'))],
  ]);
  const ports = new Set(stdout.trim().split('\n'));
  assert.equal(ports.size, 1, 'one connection');
  const logged = await nginx!.logged(Number([...ports][0]), 6);
  await waitFor(async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT count() AS n FROM ${database}.http_requests WHERE server_port = ${NGINX_PORT}`))[0]?.n === '12', {
    timeoutMs: 60_000,
    what: '12 rows of nginx',
  });
  assert.deepEqual(
    await queryRows(
      clickhouse!,
      `SELECT toString(observer_side) AS side, http_request_method AS method, url_path AS path, http_response_status_code AS status,
              toUInt32(http_request_header_size + http_request_body_size) AS requestBytes,
              toUInt32(http_response_header_size + http_response_body_size) AS responseBytes, toUInt32(http_response_body_size) AS responseBodyBytes
       FROM ${database}.http_requests WHERE server_port = ${NGINX_PORT} ORDER BY side, exchange_seq`,
    ),
    ['client', 'server'].flatMap((side) =>
      logged.map(({ method, path, status, requestBytes, responseBytes, responseBodyBytes }) => ({ side, method, path, status, requestBytes, responseBytes, responseBodyBytes })),
    ),
  );
  assert.deepEqual(
    logged.map(({ method, status }) => `${method} ${status}`),
    ['GET 200', 'GET 200', 'HEAD 200', 'GET 304', 'PUT 201', 'GET 404'],
  );
  await assertNoSecretStored(CURL_SECRETS, /\/listing\//);
});

it('a server answering after known delays: each duration at least the delay and below the delay plus a small bound, on both sides', async () => {
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  assert.equal(a.exec(process.execPath, ['-e', delayClientScript(b.ip)]).trim(), 'done');
  const expected = 2 * 3 * DELAYS_MS.length;
  await waitFor(async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT count() AS n FROM ${database}.http_requests WHERE server_port = ${DELAY_PORT}`))[0]?.n === String(expected), {
    timeoutMs: 60_000,
    what: `${expected} rows of the delay server`,
  });
  const rows = await queryRows<{ side: string; path: string; route: string; status: number; ms: number }>(
    clickhouse!,
    `SELECT toString(observer_side) AS side, url_path AS path, http_route AS route, http_response_status_code AS status, duration_ns / 1e6 AS ms
     FROM ${database}.http_requests WHERE server_port = ${DELAY_PORT} ORDER BY side, exchange_seq`,
  );
  assert.deepEqual(
    rows.map(({ side, path, route, status }) => ({ side, path, route, status })),
    ['client', 'server'].flatMap((side) => DELAYS_MS.flatMap((ms) => Array.from({ length: 3 }, () => ({ side, path: `/delay/${ms}`, route: '/delay/{id}', status: 200 })))),
  );
  for (const row of rows) {
    const delay = Number(row.path.split('/')[2]);
    assert.ok(row.ms >= delay && row.ms < delay + DELAY_BOUND_MS, `${row.side} ${row.path}: ${row.ms} ms`);
  }
});
