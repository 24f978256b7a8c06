/**
 * L4 flows end to end on a real kernel, broker and ClickHouse engine: pods (netns + cgroups) talk TCP, the
 * collector (its own process, in a traced cgroup of its own) produces flow events, the enricher stores them.
 * Every assertion is on exact values: byte counts, addresses, ports, row counts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createLab, type Lab } from '../../src/lab/pods.js';
import { holdConnection, runTcpClient, startTcpServer, type TcpClientResult } from '../../src/lab/traffic.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import type { RunningRole } from '../../src/common/role.js';
import { startEnricher } from '../../src/enricher/index.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { queryRows } from '../helpers/clickhouse.js';
import { requireStackService } from '../helpers/stack.js';

const logger = createLogger({ level: 'warn' });
const metricsPort = await freePort();
const { config, env } = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50', SIDECARLESS_TELEMETRY_METRICS_PORT: String(metricsPort) });
const table = `${config.clickhouse.database}.flows`;
const PORTS = { exact: 7101, long: 7102, lossy: 7103, untraced: 7104, marker: 7105, ipv6: 7106, dualStack: 7107 };

/**
 * In one pod: a server on `listen`, one client connecting to `connect`, `up` bytes up and `down` bytes back, then
 * both close. Prints "done" once the client saw everything.
 */
function exchangeScript(listen: string, connect: string, port: number, up: number, down: number): string {
  return `const net = require('net');
const server = net.createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length; if (n === ${up}) s.end(Buffer.alloc(${down})); }); });
server.listen(${port}, '${listen}', () => {
  const c = net.connect(${port}, '${connect}', () => c.write(Buffer.alloc(${up})));
  let m = 0; c.on('data', (d) => (m += d.length)); c.on('end', () => { c.end(); server.close(); console.log(m === ${down} ? 'done' : 'short ' + m); });
});`;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let lab: Lab;
let collector: CollectorProcess;
let telemetry: Telemetry;
let enricher: RunningRole;
let clickhouse: ClickHouseClient;
let longLived: Promise<TcpClientResult>;
let longLivedServer: Awaited<ReturnType<typeof startTcpServer>>;

/** Final rows (one per connection side) of a server port. */
async function finalRows(port: number, side: 'client' | 'server'): Promise<Array<Record<string, unknown>>> {
  return queryRows(
    clickhouse,
    `SELECT toString(client_address) AS client, client_port, toString(server_address) AS server, server_port,
            toString(bytes_client_to_server) AS c2s, toString(bytes_server_to_client) AS s2c, rtt_us, retransmits,
            close_reason, handshake_completed, process_executable_name, process_pid > 0 AS has_pid,
            time > start_time AS ordered_times, connect_latency_us, record_seq
     FROM ${table} WHERE server_port = {port:UInt16} AND observer_side = {side:String} AND record_kind = 'final'
     ORDER BY client_port`,
    { port, side },
  );
}

async function countWhere(condition: string, params: Record<string, unknown> = {}): Promise<number> {
  const [row] = await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${table} WHERE ${condition}`, params);
  return Number(row!.n);
}

function waitForFinalRows(port: number, count: number): Promise<void> {
  return waitFor(async () => (await countWhere(`server_port = {port:UInt16} AND record_kind = 'final'`, { port })) >= count, {
    timeoutMs: 60_000,
    what: `${count} final rows for port ${port}`,
  });
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  lab = createLab({ name: 'flows-test', pods: ['a', 'b', 'c', 'd'] });
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  enricher = await startEnricher({ config, logger, telemetry });
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  // Traced: pods a and b, and the collector's own cgroup (which it must ignore). Not traced: pods c and d.
  collector = await startCollectorProcess(env, (agent) => [a.cgroup.path, b.cgroup.path, agent.path]);
  // The 25-second connection runs while the other tests do.
  longLivedServer = await startTcpServer(b, { port: PORTS.long, expectBytes: 25 * 1000, replyBytes: 0 });
  longLived = holdConnection(a, { host: b.ip, port: PORTS.long, seconds: 25, chunkBytes: 1000 });
});

after(async () => {
  await collector?.kill();
  uninstallCollectorPins(env);
  await enricher?.stop();
  await telemetry?.shutdown();
  lab?.destroy();
  await dropTestData(config, clickhouse);
});

describe('L4 flows', () => {
  it('k connections a -> b with x bytes each way and y back: exactly k rows per side with those values', async () => {
    const [a, b] = [lab.pod('a'), lab.pod('b')];
    const k = 5;
    const x = 1500;
    const y = 70_000;
    const server = await startTcpServer(b, { port: PORTS.exact, expectBytes: x, replyBytes: y });
    const result = await runTcpClient(a, { host: b.ip, port: PORTS.exact, connections: k, sendBytes: x, expectBytes: y });
    assert.equal(result.completed, k, JSON.stringify(result.errors));
    await server.stop();
    await waitForFinalRows(PORTS.exact, 2 * k);

    const clientRows = await finalRows(PORTS.exact, 'client');
    const serverRows = await finalRows(PORTS.exact, 'server');
    assert.equal(clientRows.length, k);
    assert.equal(serverRows.length, k);
    for (const rows of [clientRows, serverRows]) {
      for (const row of rows) {
        assert.equal(row.client, `::ffff:${a.ip}`);
        assert.equal(row.server, `::ffff:${b.ip}`);
        assert.equal(row.server_port, PORTS.exact);
        assert.equal(row.c2s, String(x));
        assert.equal(row.s2c, String(y));
        assert.equal(row.ordered_times, 1, "end after start");
        assert.ok(Number(row.rtt_us) > 0, `rtt ${row.rtt_us}`);
        assert.equal(row.retransmits, 0);
        assert.equal(row.close_reason, 'normal');
        assert.equal(row.handshake_completed, true);
        assert.equal(row.process_executable_name, 'node');
        assert.equal(row.has_pid, 1);
        assert.equal(row.record_seq, 0);
      }
    }
    assert.ok(clientRows.every((row) => Number(row.connect_latency_us) > 0));
    assert.ok(serverRows.every((row) => Number(row.connect_latency_us) === 0));
    // The two sides describe the same k connections.
    assert.deepEqual(clientRows.map((row) => row.client_port), serverRows.map((row) => row.client_port));
  });

  it('packet loss on b shows retransmits on that connection only, with exact bytes still', async () => {
    const [a, b] = [lab.pod('a'), lab.pod('b')];
    const loss = b.dropOutgoing({ sport: PORTS.lossy, percent: 10 });
    // 8 MB: the veth carries segments of up to 64 KiB, so 2 MB was ~32 packets, none of them dropped in about 3 %
    // of runs (0.9^32); 8 MB makes that about one run in a million.
    const server = await startTcpServer(b, { port: PORTS.lossy, expectBytes: 100, replyBytes: 8_000_000 });
    try {
      const result = await runTcpClient(a, { host: b.ip, port: PORTS.lossy, connections: 1, sendBytes: 100, expectBytes: 8_000_000 });
      assert.equal(result.completed, 1, JSON.stringify(result.errors));
    } finally {
      await server.stop();
      loss.remove();
    }
    await waitForFinalRows(PORTS.lossy, 2);
    const [serverRow] = await finalRows(PORTS.lossy, 'server');
    assert.equal(serverRow!.s2c, '8000000');
    assert.ok(Number(serverRow!.retransmits) > 0, `retransmits ${serverRow!.retransmits}`);
    assert.equal(await countWhere(`server_port = ${PORTS.exact} AND retransmits > 0`), 0);
  });

  it('an untraced cgroup and the collector itself produce no records', async () => {
    const [a, b, c, d] = [lab.pod('a'), lab.pod('b'), lab.pod('c'), lab.pod('d')];
    const untraced = await startTcpServer(d, { port: PORTS.untraced, expectBytes: 10, replyBytes: 10 });
    assert.equal((await runTcpClient(c, { host: d.ip, port: PORTS.untraced, connections: 3, sendBytes: 10, expectBytes: 10 })).completed, 3);
    await untraced.stop();
    // A traced connection after it: once its rows are stored, anything from c -> d would be too.
    const marker = await startTcpServer(b, { port: PORTS.marker, expectBytes: 1, replyBytes: 1 });
    assert.equal((await runTcpClient(a, { host: b.ip, port: PORTS.marker, connections: 1, sendBytes: 1, expectBytes: 1 })).completed, 1);
    await marker.stop();
    await waitForFinalRows(PORTS.marker, 2);
    assert.equal(await countWhere(`server_port = ${PORTS.untraced}`), 0);
    assert.equal(await countWhere(`client_address IN (toIPv6({c:String}), toIPv6({d:String}))`, { c: c.ip, d: d.ip }), 0);
    assert.equal(await countWhere(`server_port = {kafka:UInt16}`, { kafka: kafkaPort }), 0);
    assert.equal(await countWhere(`cgroup_id = {id:UInt64}`, { id: collector.cgroup.id.toString() }), 0);
  });

  it('IPv6, and IPv4 through a dual-stack (::) socket, with the family each side really used', async () => {
    const a = lab.pod('a');
    assert.equal(a.exec(process.execPath, ['-e', exchangeScript('::1', '::1', PORTS.ipv6, 1234, 4321)]).trim(), 'done');
    assert.equal(a.exec(process.execPath, ['-e', exchangeScript('::', '127.0.0.1', PORTS.dualStack, 111, 222)]).trim(), 'done');
    await waitForFinalRows(PORTS.ipv6, 2);
    await waitForFinalRows(PORTS.dualStack, 2);
    const rows = await queryRows(
      clickhouse,
      `SELECT server_port, observer_side, toString(network_type) AS type, toString(client_address) AS client, toString(server_address) AS server,
              toString(bytes_client_to_server) AS c2s, toString(bytes_server_to_client) AS s2c
       FROM ${table} WHERE server_port IN (${PORTS.ipv6}, ${PORTS.dualStack}) AND record_kind = 'final' ORDER BY server_port, observer_side`,
    );
    assert.deepEqual(rows, [
      { server_port: PORTS.ipv6, observer_side: 'client', type: 'ipv6', client: '::1', server: '::1', c2s: '1234', s2c: '4321' },
      { server_port: PORTS.ipv6, observer_side: 'server', type: 'ipv6', client: '::1', server: '::1', c2s: '1234', s2c: '4321' },
      // The client socket is AF_INET; the accepted one is AF_INET6 holding v4-mapped addresses: both read as IPv4.
      { server_port: PORTS.dualStack, observer_side: 'client', type: 'ipv4', client: '::ffff:127.0.0.1', server: '::ffff:127.0.0.1', c2s: '111', s2c: '222' },
      { server_port: PORTS.dualStack, observer_side: 'server', type: 'ipv4', client: '::ffff:127.0.0.1', server: '::ffff:127.0.0.1', c2s: '111', s2c: '222' },
    ]);
  });

  it('a connection open for 25 s yields interim records, and a final one with the totals', async () => {
    const result = await longLived;
    assert.equal(result.completed, 1, JSON.stringify(result.errors));
    await longLivedServer.stop();
    await waitForFinalRows(PORTS.long, 2);
    const rows = await queryRows<{ kind: string; seq: number; c2s: string; reason: string }>(
      clickhouse,
      `SELECT toString(record_kind) AS kind, record_seq AS seq, toString(bytes_client_to_server) AS c2s, close_reason AS reason
       FROM ${table} WHERE server_port = {port:UInt16} AND observer_side = 'client' ORDER BY record_seq`,
      { port: PORTS.long },
    );
    const interim = rows.filter((row) => row.kind === 'interim');
    const final = rows.filter((row) => row.kind === 'final');
    // Active timeout 10 s: records at about 10 s and 20 s, then the close.
    assert.ok(interim.length >= 2, `interim records: ${JSON.stringify(rows)}`);
    assert.equal(final.length, 1);
    assert.deepEqual(rows.map((row) => row.seq), rows.map((_, i) => i));
    assert.equal(final[0]!.c2s, '25000');
    assert.equal(final[0]!.reason, 'normal');
    const sent = interim.map((row) => Number(row.c2s));
    assert.ok(sent.every((bytes, i) => bytes > 0 && bytes < 25_000 && (i === 0 || bytes > sent[i - 1]!)), `interim bytes ${sent}`);
    assert.ok(interim.every((row) => row.reason === 'open'));
  });

  it('the collector serves exact metrics and health while it runs', async () => {
    const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    let text = '';
    await waitFor(
      async () => {
        text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return metric(text, 'sidecarless_collector_queue_depth') === 0 && metric(text, 'sidecarless_collector_records_read_total') === (await countWhere('1'));
      },
      { timeoutMs: 30_000, what: 'the collector to report every stored record as read and produced' },
    );
    assert.equal(metric(text, 'sidecarless_collector_events_produced_total'), metric(text, 'sidecarless_collector_records_read_total'));
    assert.match(text, /^sidecarless_collector_send_duration_count\{?[^ ]* \d+/m);
    assert.doesNotMatch(text, /sidecarless_collector_(queue|kernel)_drops_total/);
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assert.equal(health.status, 200);
  });

  it('the collector stops cleanly with exact counts and no drops', async () => {
    const stats = await collector.stop();
    assert.deepEqual(stats.drops, {});
    assert.equal(stats.eventsProduced, stats.recordsRead);
    await waitFor(async () => (await countWhere('1')) === stats.eventsProduced, { timeoutMs: 30_000, what: 'every produced event stored' });
  });
});
