/**
 * The enricher on the http topic against the real broker and the embedded ClickHouse engine: exchanges made the
 * collector's way (bytes through the parser and the privacy rules) and metadata.v1 events for their pods are
 * published, the enricher role runs in this process, and `http_requests` holds each exchange once with both ends
 * named at the request's start, while no byte of the secrets the requests carried is anywhere in Kafka or in any
 * table. The RED rollup `http_red_1m` counts requests and errors exactly per route and status class, gives duration
 * quantiles within its documented 0.9%, and a replayed insert adds nothing to either table.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { ClickHouseSink } from '../../src/enricher/clickhouse-sink.js';
import { HTTP_TABLE, HttpRows } from '../../src/enricher/http-row.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { migrate } from '../../src/common/clickhouse/migrations.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { HTTP, type HttpBatch, type HttpEvent } from '../../src/events/http.js';
import { everyStoredValue, queryRows } from '../helpers/clickhouse.js';
import { testConfig } from '../helpers/flows.js';
import { topicClients } from '../helpers/topic-clients.js';
import { httpEvent, httpEvents } from '../helpers/http.js';
import { podIdentity, sec, serviceChange, sliceChange } from '../helpers/metadata.js';
import { deploymentPod, nowNs, publishMetadata } from '../helpers/metadata-topic.js';

const logger = createLogger({ level: 'warn' });
const { config } = testConfig({ SIDECARLESS_KAFKA_PARTITIONS: '1' });
const database = config.clickhouse.database;
const codec = loadRegistry().codec<HttpBatch>(HTTP.subject);
let clickhouse: ClickHouseClient | undefined;
const { kafka, producer, topics } = topicClients(config, logger, ['http', 'metadata', 'deadletter'], () => clickhouse);

/** The secrets a request and its response carried where the collector must not look: none may be stored. */
const SECRETS = ['Q7secretquery', 'F7secretfragment', 'U7secretuser', 'P7secretpass', 'A7secretauth', 'C7secretcookie', 'B7secretbody', 'R7secretresponse', 'S7secretsetcookie'];

/** A request carrying every secret, and a 503 response carrying the rest. */
const secretRequest = (path: string) =>
  `POST http://${SECRETS[2]}:${SECRETS[3]}@orders.shop${path}?session=${SECRETS[0]}#${SECRETS[1]} HTTP/1.1\r\n` +
  `Authorization: Bearer ${SECRETS[4]}\r\nCookie: id=${SECRETS[5]}\r\nContent-Length: ${SECRETS[6]!.length}\r\n\r\n${SECRETS[6]}`;
const secretResponse = `HTTP/1.1 503 Service Unavailable\r\nSet-Cookie: s=${SECRETS[8]}\r\nContent-Length: ${SECRETS[7]!.length}\r\n\r\n${SECRETS[7]}`;

describe('enricher: http.v1 into http_requests', () => {
  it('stores each exchange once with both ends named at the request start, and no byte of a secret anywhere', async () => {
    const start = nowNs() - sec(60);
    const client = deploymentPod({ namespace: 'shop', deployment: 'frontend', suffix: 'a', ip: '10.7.0.5', node: 'n1', cgroupId: 71n, at: start - sec(600) });
    const server = deploymentPod({ namespace: 'shop', deployment: 'orders', suffix: 'b', ip: '10.7.0.9', node: 'n1', cgroupId: 72n, at: start - sec(600) });
    await publishMetadata(producer, topics.metadata.topic, [
      ...client.changes,
      ...server.changes,
      serviceChange({ uid: 'svc-orders', name: 'orders', clusterIps: ['10.96.0.20'], at: start - sec(600) }),
      sliceChange({ uid: 'slice-orders', service: 'orders', endpoints: [{ podUid: server.uid, addresses: ['10.7.0.9'] }], ports: [8080], at: start - sec(600) }),
    ]);
    // One exchange seen from both sockets of one connection (made the collector's way), then a request the server
    // never answered before the connection closed.
    const ends = { node: 'n1', pid: 0, clientAddress: '10.7.0.5', clientPort: 40001, serverAddress: '10.7.0.9', serverPort: 8080 };
    const exchange = [{ request: secretRequest('/orders/12345/items'), response: secretResponse, atNs: start, durationNs: 2_500_000n }];
    const fromClient = httpEvents({ ...ends, connId: 1n, cgroupId: 71n, side: 'client' }, exchange);
    const fromServer = httpEvents({ ...ends, connId: 2n, cgroupId: 72n, side: 'server' }, [
      ...exchange,
      { request: 'GET /items/3 HTTP/1.1\r\n\r\n', atNs: start + sec(1), durationNs: 0n },
    ]);
    await producer.send({ topic: topics.http.topic, messages: [{ key: 'n1', value: codec.encode({ events: [...fromClient, ...fromServer] }) }] });

    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    const role = await startEnricher({ config, logger, telemetry });
    try {
      clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
      await waitFor(async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT count() AS n FROM ${database}.http_requests`))[0]?.n === '3', {
        timeoutMs: 60_000,
        what: '3 rows in http_requests',
      });
    } finally {
      await role.stop();
      await telemetry.shutdown();
    }

    const rows = await queryRows(
      clickhouse!,
      `SELECT connection_id, exchange_seq, toString(observer_side) AS side, toString(outcome) AS outcome,
              toString(toUnixTimestamp64Nano(start_time) - {start:Int64}) AS start, toString(toUnixTimestamp64Nano(response_start_time)) AS response_start,
              duration_ns, http_request_method, url_path, http_route, http_response_status_code, http_request_body_size, http_response_body_size,
              toString(client_address) AS client, toString(server_address) AS server, server_port, cgroup_id,
              concat(client_k8s_namespace_name, '/', client_k8s_workload_kind, '/', client_k8s_workload_name, '/', client_k8s_pod_name, '/', toString(client_endpoint_kind), '/', toString(client_enrichment)) AS client_identity,
              concat(server_k8s_namespace_name, '/', server_k8s_workload_kind, '/', server_k8s_workload_name, '/', server_k8s_pod_name, '/', server_k8s_service_name, '/', toString(server_endpoint_kind), '/', toString(server_enrichment)) AS server_identity,
              kafka_offset
       FROM ${database}.http_requests ORDER BY connection_id, exchange_seq`,
      { start: start.toString() },
    );
    const named = {
      client: '::ffff:10.7.0.5',
      server: '::ffff:10.7.0.9',
      server_port: 8080,
      client_identity: `shop/Deployment/frontend/${client.name}/pod/hit`,
      server_identity: `shop/Deployment/orders/${server.name}/orders/pod/hit`,
      kafka_offset: '0',
    };
    const answered = {
      outcome: 'complete',
      start: '0',
      duration_ns: '2500000',
      http_request_method: 'POST',
      url_path: '/orders/12345/items',
      http_route: '/orders/{id}/items',
      http_response_status_code: 503,
      http_request_body_size: String(SECRETS[6]!.length),
      http_response_body_size: String(SECRETS[7]!.length),
      response_start: String(start + 2_500_000n),
    };
    assert.deepEqual(rows, [
      { connection_id: 'n1/e1/1', exchange_seq: 0, side: 'client', ...answered, cgroup_id: '71', ...named },
      { connection_id: 'n1/e1/2', exchange_seq: 0, side: 'server', ...answered, cgroup_id: '72', ...named },
      {
        connection_id: 'n1/e1/2',
        exchange_seq: 1,
        side: 'server',
        outcome: 'unanswered',
        start: String(sec(1)),
        response_start: '0',
        duration_ns: '0',
        http_request_method: 'GET',
        url_path: '/items/3',
        http_route: '/items/{id}',
        http_response_status_code: 0,
        http_request_body_size: '0',
        http_response_body_size: '0',
        cgroup_id: '72',
        ...named,
      },
    ]);

    // What the rollup made of them: per side, one request with one error each (503; unanswered).
    assert.deepEqual(
      await queryRows(
        clickhouse!,
        `SELECT toString(observer_side) AS side, http_route, toString(status_class) AS class, toString(sum(requests)) AS requests, toString(sum(errors)) AS errors,
                server_k8s_service_name AS service, client_k8s_workload_name AS caller
         FROM ${database}.http_red_1m GROUP BY side, http_route, class, service, caller ORDER BY side, http_route`,
      ),
      [
        { side: 'client', http_route: '/orders/{id}/items', class: '5xx', requests: '1', errors: '1', service: 'orders', caller: 'frontend' },
        { side: 'server', http_route: '/items/{id}', class: 'none', requests: '1', errors: '1', service: 'orders', caller: 'frontend' },
        { side: 'server', http_route: '/orders/{id}/items', class: '5xx', requests: '1', errors: '1', service: 'orders', caller: 'frontend' },
      ],
    );

    // Privacy: no secret in any table, nor in any message of the http topic or the dead letters.
    const stored = await everyStoredValue(clickhouse!, database);
    assert.deepEqual([...stored.keys()], ['flow_edges_1m', 'flows', 'http_red_1m', 'http_requests', 'kafka_batches', 'overhead_runs', 'policy_verdicts_1m', 'schema_migrations', 'verdicts']);
    assert.match(stored.get('http_requests')!, /\/orders\/12345\/items/, 'the search reads the stored values');
    const messages: Array<Buffer | null> = [];
    for (const topic of [topics.http.topic, topics.deadletter.topic]) {
      await readToEnd(kafka, topic, (message) => messages.push(message.value), { groupPrefix: `${config.enricher.groupId}-read`, logger });
    }
    assert.equal(messages.length, 1, 'the one http message, no dead letter');
    for (const secret of SECRETS) {
      for (const [table, text] of stored) assert.equal(text.includes(secret), false, `${secret} stored in ${table}`);
      for (const value of messages) assert.equal(value?.includes(Buffer.from(secret, 'latin1')), false, `${secret} in a Kafka message`);
    }
  });

  it('rolls requests up per minute, route and status class: exact counts and errors, quantiles within 0.9%, a replayed insert adding nothing', async () => {
    clickhouse ??= await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
    await migrate(clickhouse, { database, ttlDays: 7 });
    await clickhouse.command({ query: `TRUNCATE TABLE ${database}.http_red_1m` });
    const edge = { client: podIdentity('shop', 'frontend'), server: podIdentity('shop', 'orders', 'orders') };
    // A whole minute an hour ago.
    const minute = (BigInt(Date.now() - 3_600_000) / 60_000n) * 60_000_000_000n;
    const ms = 1_000_000n;
    // /orders/{id}, server side, first minute: 60 at 1.5 ms, 35 at 20 ms, 5 at 300 ms; of those, statuses 200 except
    // 7 of the 20 ms ones (500) and 2 of the 300 ms ones (404); then 3 unanswered and a 413 answered before the
    // request ended; the next minute 4 at 10 ms (201).
    const durations = [...Array<bigint>(60).fill(1_500_000n), ...Array<bigint>(35).fill(20n * ms), ...Array<bigint>(5).fill(300n * ms)];
    const status = (i: number) => (i >= 60 && i < 67 ? 500 : i >= 95 && i < 97 ? 404 : 200);
    const events: HttpEvent[] = [
      ...durations.map((duration, i) =>
        httpEvent(i, minute + BigInt(i) * 100n * ms, {
          observer_side: 'server',
          http_route: '/orders/{id}',
          duration_ns: duration,
          http_response_status_code: status(i),
          http_request_body_size: 10n,
          http_response_body_size: 1000n,
        }),
      ),
      ...[0, 1, 2].map((i) =>
        httpEvent(200 + i, minute + 30_000n * ms, {
          observer_side: 'server',
          http_route: '/orders/{id}',
          outcome: 'unanswered',
          duration_ns: null,
          http_response_status_code: null,
          http_response_body_size: null,
          http_request_body_size: 7n,
        }),
      ),
      // Answered before its body ended (413): a negative duration, counted as the shortest.
      httpEvent(400, minute + 40_000n * ms, { observer_side: 'server', http_route: '/orders/{id}', http_request_method: 'PUT', duration_ns: -5000n, http_response_status_code: 413, http_request_body_size: 0n, http_response_body_size: 0n }),
      ...[0, 1, 2, 3].map((i) =>
        httpEvent(300 + i, minute + 70_000n * ms, { observer_side: 'server', http_route: '/orders/{id}', http_request_method: 'POST', duration_ns: 10n * ms, http_response_status_code: 201, http_response_body_size: 5n }),
      ),
    ];
    const rows = new HttpRows();
    events.forEach((event, i) => rows.add(event, edge, { topic: 'red', partition: 0, offset: String(i) }));
    const sink = new ClickHouseSink(clickhouse, `${database}.http_requests`, HTTP_TABLE.columns);
    assert.deepEqual(await sink.insert(rows, 'red/0/0/0-107'), { ok: true });

    const rollup = () =>
      queryRows<{ second: string; method: string; class: string; requests: string; errors: string; sent: string; received: string; p: number[] }>(
        clickhouse!,
        `SELECT toString(toUnixTimestamp(minute) - {minute:Int64}) AS second, http_request_method AS method, toString(status_class) AS class,
                toString(sum(requests)) AS requests, toString(sum(errors)) AS errors, toString(sum(request_body_bytes)) AS sent,
                toString(sum(response_body_bytes)) AS received,
                arrayMap(code -> exp(code / 56) * 1000, quantilesTimingMerge(0.5, 0.9, 0.99)(duration_code)) AS p
         FROM ${database}.http_red_1m
         WHERE observer_side = 'server' AND client_k8s_workload_name = 'frontend' AND server_k8s_workload_name = 'orders' AND server_k8s_service_name = 'orders' AND http_route = '/orders/{id}'
         GROUP BY minute, method, class ORDER BY minute, method, class`,
        { minute: (minute / 1_000_000_000n).toString() },
      );
    const counts = async () => (await rollup()).map(({ p: _p, ...rest }) => rest);
    const expected = [
      { second: '0', method: 'GET', class: '2xx', requests: '91', errors: '0', sent: '910', received: '91000' },
      { second: '0', method: 'GET', class: '4xx', requests: '2', errors: '0', sent: '20', received: '2000' },
      { second: '0', method: 'GET', class: '5xx', requests: '7', errors: '7', sent: '70', received: '7000' },
      { second: '0', method: 'GET', class: 'none', requests: '3', errors: '3', sent: '21', received: '0' },
      { second: '0', method: 'PUT', class: '4xx', requests: '1', errors: '0', sent: '0', received: '0' },
      { second: '60', method: 'POST', class: '2xx', requests: '4', errors: '0', sent: '0', received: '20' },
    ];
    assert.deepEqual(await counts(), expected);

    // Quantiles merged at query time over the minute's classes (101 samples, the 413's the shortest): p50 1.5 ms,
    // p90 20 ms, p99 300 ms, each within 0.9%.
    const [merged] = await queryRows<{ p: number[] }>(
      clickhouse,
      `SELECT arrayMap(code -> exp(code / 56) * 1000, quantilesTimingMerge(0.5, 0.9, 0.99)(duration_code)) AS p
       FROM ${database}.http_red_1m WHERE minute = toDateTime({minute:Int64}) AND observer_side = 'server'`,
      { minute: (minute / 1_000_000_000n).toString() },
    );
    const within = (actual: number, expectedNs: number) => Math.abs(actual - expectedNs) / expectedNs <= 0.009;
    assert.ok(
      merged!.p.length === 3 && within(merged!.p[0]!, 1_500_000) && within(merged!.p[1]!, 20_000_000) && within(merged!.p[2]!, 300_000_000),
      `quantiles ${merged!.p.join(', ')} ns`,
    );
    const byClass = await rollup();
    assert.deepEqual(byClass.find((row) => row.class === 'none')!.p, [null, null, null], 'requests without a response give no duration sample (nan, which JSON writes as null)');
    assert.deepEqual(byClass.find((row) => row.method === 'PUT')!.p, [1000, 1000, 1000], 'a negative duration is the shortest code: 1 µs');

    // The same insert again (a crash before the commit, then the replay): nothing added, in the table or the rollup.
    assert.deepEqual(await sink.insert(rows, 'red/0/0/0-107'), { ok: true });
    await clickhouse.command({ query: `OPTIMIZE TABLE ${database}.http_red_1m FINAL` });
    assert.deepEqual(await counts(), expected);
    assert.deepEqual(await queryRows(clickhouse, `SELECT count() AS n FROM ${database}.http_requests WHERE kafka_topic = 'red'`), [{ n: String(events.length) }]);
  });
});
