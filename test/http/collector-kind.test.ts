/**
 * The http record kind in the real Collector, beside the flows kind, as src/collector/index.ts wires them: both
 * kinds loaded from one configuration into one pin directory, one ConnectionEnds between them, each ring read by
 * its own Collector loops (drain, transform, tick), items into memory instead of Kafka (http's items are the
 * exchanges its packing writes; flow records are read as the flows topic carries them). A Python keep-alive client
 * makes 100 requests of a Python server; both sides' exchanges come out of the http Collector exactly once, in
 * order, with nothing dropped.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { Collector } from '../../src/collector/collector.js';
import { ConnectionEnds } from '../../src/collector/connection-ends.js';
import { flowsKind } from '../../src/collector/flows/index.js';
import type { CapturedExchange } from '../../src/collector/http/capture.js';
import { httpKind } from '../../src/collector/http/index.js';
import { flowEventReader } from '../../src/collector/flows/transform.js';
import type { CollectorContext, KernelSource, RecordKind } from '../../src/collector/record-kind.js';
import { loadRegistry } from '../../src/common/avro.js';
import { loadConfig } from '../../src/common/config.js';
import { createLogger } from '../../src/common/logger.js';
import { MemorySink } from '../../src/common/pipeline.js';
import type { OutMessage } from '../../src/common/kafka/sink.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../src/events/flows.js';
import { createLab, type Lab } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { lineFrom, python, runIn } from '../helpers/processes.js';

const PORT = 7511;
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/http/fixtures/${name}`, import.meta.url));

let lab: Lab;
let pins: PinDirectory;
let server: ChildProcess | undefined;
const sources: KernelSource[] = [];
const collectors: Array<Collector<unknown>> = [];
const events = { flows: [] as FlowEvent[], http: [] as CapturedExchange[] };

/**
 * A Collector of one kind, each item handed to `collect` (made for the run's context) as it is packed: http's items
 * are its exchanges, flows' are ring records, read as the flows topic carries them.
 */
function collectorOf<Item>(
  kind: RecordKind<Item, unknown, unknown>,
  source: KernelSource,
  collect: (context: CollectorContext) => (item: Item) => void,
  config: ReturnType<typeof loadConfig>,
  connectionEnds: ConnectionEnds,
): Collector<Item> {
  const context = { nodeName: 'n', epoch: source.epoch, toWallNs: (ns: bigint) => ns, connectionEnds };
  const add = collect(context);
  return new Collector<Item>(
    {
      kind: kind.name,
      source,
      transform: (emit) => kind.transform(context, emit, config),
      packing: {
        partitionOf: () => 0,
        messageBuilder: () => {
          let size = 0;
          return {
            get size() {
              return size;
            },
            get bytes() {
              return size;
            },
            add: (item) => void (add(item), size++),
            seal: () => Buffer.alloc(size),
          };
        },
      },
      sink: new MemorySink<OutMessage[]>(),
      logger: createLogger({ level: 'silent' }),
      meter: metrics.getMeter('test'),
    },
    { queueEvents: 10_000, eventsPerMessage: 64, flushMs: 20, shutdownTimeoutMs: 2000 },
  );
}

before(async () => {
  lab = createLab({ name: 'http-kind', pods: ['client', 'server'] });
  pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-http-kind-${process.pid}-${randomBytes(3).toString('hex')}`);
  const config = loadConfig({
    argv: [],
    env: { SIDECARLESS_COLLECTOR_CGROUPS: [lab.pod('client'), lab.pod('server')].map((pod) => pod.cgroup.path).join(','), SIDECARLESS_HTTP_ENABLED: 'true' },
  });
  const http = httpKind;
  assert.equal(http.enabled?.(config), true);
  pins.prepare();
  const connectionEnds = new ConnectionEnds();
  // In the order of src/collector/kinds.ts: flows first (it writes traced_cgroups, the http programs read it).
  sources.push(flowsKind.load(config, pins), http.load(config, pins));
  collectors.push(
    collectorOf(flowsKind, sources[0]!, (context) => {
      const read = flowEventReader(context, loadRegistry().codec<FlowBatch>(FLOWS.subject));
      return (record) => events.flows.push(read(record));
    }, config, connectionEnds) as Collector<unknown>,
    collectorOf(http, sources[1]!, () => (exchange) => events.http.push(exchange), config, connectionEnds) as Collector<unknown>,
  );
  for (const collector of collectors) collector.start();
  server = lab.pod('server').spawn(python, [fixture('status-server.py'), lab.pod('server').ip, String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineFrom(server, 'status-server.py');
});

after(async () => {
  server?.kill();
  for (const collector of collectors) await collector.stop();
  for (const source of sources) source.close();
  pins?.remove();
  lab?.destroy();
});

it('100 keep-alive requests are 100 exchanges per side out of the http Collector, nothing dropped', async () => {
  const { stdout } = await runIn(lab.pod('client'), python, [fixture('client.py'), 'keepalive', lab.pod('server').ip, String(PORT)]);
  const { statuses, local_port: localPort } = JSON.parse(stdout) as { statuses: number[]; local_port: number };
  const finals = () => events.flows.filter((flow) => flow.client_port === localPort && flow.server_port === PORT && flow.record_kind === 'final');
  await waitFor(async () => finals().length === 2, { timeoutMs: 20_000, what: 'both final flow events' });
  const connIds = finals().map((flow) => BigInt(flow.connection_id.split('/').pop()!));
  const exchangesOf = (connId: bigint) => events.http.filter((exchange) => exchange.connId === connId);
  await waitFor(async () => connIds.every((connId) => exchangesOf(connId).length >= 100), { timeoutMs: 20_000, what: '100 exchanges per side' });
  // Stopping drains both rings and ticks the transforms: nothing more may come of that connection.
  for (const collector of collectors) await collector.stop();
  for (const connId of connIds) assert.deepEqual(exchangesOf(connId).map((exchange) => exchange.status), statuses);
  assert.deepEqual(new Set(connIds.map((connId) => exchangesOf(connId)[0]!.observer)), new Set(['client', 'server']));
  assert.deepEqual(collectors.map((collector) => collector.stats.drops), [{}, {}]);
});
