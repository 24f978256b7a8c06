/**
 * The enricher process killed with SIGKILL while a batch of HTTP exchanges is held at the metadata gate, then
 * restarted: the held batch is neither lost nor stored twice in `http_requests`, and the RED rollup counts every
 * request once (the scenario: test/helpers/hold-crash.ts).
 */
import { loadRegistry } from '../../src/common/avro.js';
import { HTTP, type HttpBatch, type HttpEvent } from '../../src/events/http.js';
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
  table: 'http_requests',
  bytesColumn: 'http_request_body_size',
  rollup: { table: 'http_red_1m', count: 'requests', bytes: 'request_body_bytes' },
});
