/**
 * Kafka stopped for 20 s under steady traffic, then restarted: the collector keeps draining the kernel ring,
 * holds what fits in its queue, drops and counts the rest; afterwards every event it kept is in ClickHouse once,
 * and read = produced + dropped, exactly. What it left in the ring when it stopped, the next collector reads.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createLab, type Lab } from '../../src/lab/pods.js';
import { runTcpClient, startTcpServer } from '../../src/lab/traffic.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { kafkaServer } from '../../src/lab/stack/kafka-server.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import type { RunningRole } from '../../src/common/role.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { startEnricher } from '../../src/enricher/index.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { queryRows } from '../helpers/clickhouse.js';
import { requireStackService } from '../helpers/stack.js';

const PORT = 7201;
const OUTAGE_MS = 20_000;
const logger = createLogger({ level: 'error' });
// The smallest queue the configuration allows, so a 20 s outage of steady traffic overflows it.
const { config, env } = testConfig({ SIDECARLESS_COLLECTOR_QUEUE_EVENTS: '1000', SIDECARLESS_COLLECTOR_FLUSH_MS: '50' });

let lab: Lab;
let collector: CollectorProcess | undefined;
let telemetry: Telemetry;
let enricher: RunningRole;
let clickhouse: ClickHouseClient;

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  lab = createLab({ name: 'outage-test', pods: ['a', 'b'] });
  telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  enricher = await startEnricher({ config, logger, telemetry });
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
});

after(async () => {
  await kafkaServer.up(); // whatever happened, leave the broker running for the tests after this one
  await collector?.kill();
  uninstallCollectorPins(env);
  await enricher?.stop();
  await telemetry?.shutdown();
  lab?.destroy();
  await dropTestData(config, clickhouse);
});

describe('Kafka outage', () => {
  it('keeps what fits in the queue, counts what it drops, loses and duplicates nothing else', async () => {
    const [a, b] = [lab.pod('a'), lab.pod('b')];
    collector = await startCollectorProcess(env, () => [a.cgroup.path, b.cgroup.path]);
    const server = await startTcpServer(b, { port: PORT, expectBytes: 10, replyBytes: 10 });
    let connections = 0;
    let trafficOn = true;
    const traffic = (async () => {
      while (trafficOn) {
        const result = await runTcpClient(a, { host: b.ip, port: PORT, connections: 40, concurrency: 4, sendBytes: 10, expectBytes: 10 });
        assert.equal(result.completed, 40, JSON.stringify(result.errors));
        connections += result.completed;
      }
    })();
    try {
      await sleep(2_000);
      await kafkaServer.down();
      const outageStart = connections;
      await sleep(OUTAGE_MS);
      const duringOutage = connections - outageStart;
      await kafkaServer.up();
      await sleep(2_000);
      trafficOn = false;
      await traffic;
      assert.ok(duringOutage * 2 > 1000, `the outage saw ${duringOutage} connections: enough to overflow a 1000-event queue`);
    } finally {
      trafficOn = false;
      await traffic.catch(() => {});
      await server.stop();
    }

    const stats = await collector.stop();
    // A stopping collector takes from the ring only what its queue has room for (still full from the outage, it may
    // have none): the rest stays in the pinned ring for the next collector, which reads it first.
    collector = await startCollectorProcess(env, () => [a.cgroup.path, b.cgroup.path]);
    const next = await collector.stop();
    collector = undefined;
    // Both ends of every connection are traced: two final records each, all read from the ring by one of the two.
    assert.equal(stats.recordsRead + next.recordsRead, 2 * connections);
    assert.ok((stats.drops.queue_full ?? 0) > 0, `drops ${JSON.stringify(stats.drops)}`);
    assert.deepEqual(Object.keys(stats.drops), ['queue_full'], 'no kernel drops, no rejected batches');
    assert.equal(stats.eventsProduced + stats.drops.queue_full!, stats.recordsRead);
    assert.deepEqual(next.drops, {});
    assert.equal(next.eventsProduced, next.recordsRead);
    const produced = stats.eventsProduced + next.eventsProduced;

    const table = `${config.clickhouse.database}.flows`;
    const stored = async () => Number((await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${table}`))[0]!.n);
    await waitFor(async () => (await stored()) >= produced, { timeoutMs: 90_000, what: `${produced} rows` });
    const [row] = await queryRows<{ rows: string; unique: string }>(clickhouse, `SELECT count() AS rows, uniqExact(connection_id, record_seq) AS unique FROM ${table}`);
    assert.deepEqual(row, { rows: String(produced), unique: String(produced) });
  });
});
