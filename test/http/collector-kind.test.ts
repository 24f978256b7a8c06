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
import { once } from 'node:events';
import { createInterface } from 'node:readline';
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
  const context = { nodeName: 'n', epoch: source.epoch, firstConnId: source.firstConnId, toWallNs: (ns: bigint) => ns, connectionEnds };
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

/**
 * What src/collector/index.ts does at a start: both kinds loaded (installed, or adopted from the pins), one
 * Collector each, started. Returns the two.
 */
function startCollectors(config: ReturnType<typeof loadConfig>): Array<Collector<unknown>> {
  const connectionEnds = new ConnectionEnds();
  // In the order of src/collector/kinds.ts: flows first (it writes traced_cgroups, the http programs read it).
  const [flows, http] = [flowsKind.load(config, pins), httpKind.load(config, pins)];
  sources.push(flows, http);
  const started = [
    collectorOf(flowsKind, flows, (context) => {
      const read = flowEventReader(context, loadRegistry().codec<FlowBatch>(FLOWS.subject));
      return (record) => events.flows.push(read(record));
    }, config, connectionEnds) as Collector<unknown>,
    collectorOf(httpKind, http, () => (exchange) => events.http.push(exchange), config, connectionEnds) as Collector<unknown>,
  ];
  collectors.push(...started);
  for (const collector of started) collector.start();
  return started;
}

let config: ReturnType<typeof loadConfig>;

before(async () => {
  lab = createLab({ name: 'http-kind', pods: ['client', 'server'] });
  pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-http-kind-${process.pid}-${randomBytes(3).toString('hex')}`);
  config = loadConfig({
    argv: [],
    env: { SIDECARLESS_COLLECTOR_CGROUPS: [lab.pod('client'), lab.pod('server')].map((pod) => pod.cgroup.path).join(','), SIDECARLESS_HTTP_ENABLED: 'true' },
  });
  assert.equal(httpKind.enabled?.(config), true);
  pins.prepare();
  startCollectors(config);
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

it('a restart in the middle of a body: the next collector skips the rest of that message on each side and pairs every exchange after it', async () => {
  // The client sends a POST's head and the first 4000 bytes of its 9000-byte body while the first collector runs.
  const first = startCollectors(config);
  const client = lab.pod('client').spawn(python, [fixture('client.py'), 'held_body', lab.pod('server').ip, String(PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: client.stdout! })[Symbol.asyncIterator]();
  const localPort = (JSON.parse((await lines.next()).value as string) as { local_port: number }).local_port;
  const exitCode = once(client, 'exit');
  // Once the server has read all that came (its socket's receive queue empty), the kernel has written those calls
  // to the ring, and the first collector's stop drains them.
  const unread = () => lab.pod('server').exec('ss', ['-Htn', 'state', 'established', `( sport = :${PORT} and dport = :${localPort} )`]).trim().split(/\s+/)[0];
  await waitFor(async () => unread() === '0', { timeoutMs: 10_000, what: "the server's read of the body's first part" });
  for (const collector of first) await collector.stop();
  // With no collector running, the client sends the rest of the body, reads the answer and makes 5 GETs.
  client.stdin!.end('go\n');
  const result = JSON.parse((await lines.next()).value as string) as { post: number; statuses: number[] };
  assert.deepEqual(await exitCode, [0, null]);
  const second = startCollectors(config);
  const finals = () => events.flows.filter((flow) => flow.client_port === localPort && flow.server_port === PORT && flow.record_kind === 'final');
  await waitFor(async () => finals().length === 2, { timeoutMs: 20_000, what: 'both final flow events' });
  for (const collector of second) await collector.stop();
  assert.deepEqual([result.post, result.statuses], [201, [200, 201, 204, 301, 404]]);
  for (const flow of finals()) {
    const connId = BigInt(flow.connection_id.split('/').pop()!);
    assert.deepEqual(
      events.http.filter((exchange) => exchange.connId === connId).map((exchange) => `${exchange.observer} ${exchange.method} ${exchange.status}`),
      result.statuses.map((status) => `${flow.observer_side} GET ${status}`),
    );
  }
  // Skipped: the client's write and the server's read of the body's last 5000 bytes; unpaired: the POST's response,
  // seen by each side without the request the first collector had read.
  assert.deepEqual(second.map((collector) => collector.stats.drops), [{}, { joined_mid_message: 2, unpaired_response: 2 }]);
});
