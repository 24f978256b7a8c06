/**
 * The enricher process killed with SIGKILL while a batch of flows is held at the metadata gate, then restarted: the
 * held batch is neither lost nor stored twice, and the edge rollup counts every connection once (the scenario:
 * test/helpers/hold-crash.ts).
 */
import { loadRegistry } from '../../src/common/avro.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../src/events/flows.js';
import { holdCrashSuite } from '../helpers/hold-crash.js';
import { observedFlow } from '../helpers/metadata.js';

const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);

await holdCrashSuite<FlowEvent>({
  topic: 'flows',
  encode: (events) => codec.encode({ events }),
  // Connections from the pod to an external address.
  event: (n, startNs) => ({
    ...observedFlow({ side: 'client', node: 'n1', cgroup: 55n, client: '10.5.0.5', server: '192.0.2.1', serverPort: 443, start: startNs }),
    connection_id: `n1/crash/${n}`,
    bytes_client_to_server: BigInt(1000 + n),
  }),
  table: 'flows',
  bytesColumn: 'bytes_client_to_server',
  rollup: { table: 'flow_edges_1m', count: 'connections', bytes: 'bytes_client_to_server' },
});
