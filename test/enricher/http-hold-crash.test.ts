/**
 * The enricher process killed with SIGKILL while a batch of HTTP exchanges is held at the metadata gate, then
 * restarted: the held batch is neither lost nor stored twice in `http_requests`, and the RED rollup counts every
 * request once (the scenario: test/helpers/hold-crash.ts).
 */
import assert from 'node:assert/strict';
import { loadRegistry } from '../../src/common/avro.js';
import { HTTP, type HttpBatch, type HttpEvent } from '../../src/events/http.js';
import { queryRows } from '../helpers/clickhouse.js';
import { holdCrashSuite } from '../helpers/hold-crash.js';
import { httpEvent } from '../helpers/http.js';

const codec = loadRegistry().codec<HttpBatch>(HTTP.subject);

await holdCrashSuite<HttpEvent>({
  topic: 'http',
  encode: (events) => codec.encode({ events }),
  // Requests from the pod to an external address, each on a connection of its own.
  event: (n, startNs) =>
    httpEvent(n, startNs, {
      connection_id: `n1/crash/${n}`,
      k8s_node_name: 'n1',
      cgroup_id: 55n,
      client_address: '10.5.0.5',
      server_address: '192.0.2.1',
      server_port: 443,
      http_request_body_size: BigInt(1000 + n),
    }),
  async verify(clickhouse, database, total, bytes) {
    assert.deepEqual(
      await queryRows(
        clickhouse,
        `SELECT count() AS rows, uniqExact(connection_id) AS connections, toString(sum(http_request_body_size)) AS bytes,
                groupUniqArray(concat(client_k8s_workload_name, ':', toString(client_enrichment))) AS clients
         FROM ${database}.http_requests`,
      ),
      [{ rows: String(total), connections: String(total), bytes, clients: ['crash:hit'] }],
    );
    assert.deepEqual(
      await queryRows(clickhouse, `SELECT toString(sum(requests)) AS requests, toString(sum(request_body_bytes)) AS bytes FROM ${database}.http_red_1m`),
      [{ requests: String(total), bytes }],
    );
  },
});
