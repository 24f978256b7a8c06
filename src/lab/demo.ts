/**
 * The demo (`sidecarless demo`): the pipeline on this node with embedded defaults, end to end, in one process.
 *
 *   1. Start the local stack (Kafka; ClickHouse's embedded engine needs no server).
 *   2. Create three pods (network namespaces on a bridge, each with its own cgroup) and HTTP servers in two.
 *   3. Run the collector (tracing the pods' cgroups) and the enricher, then HTTP traffic between the pods.
 *   4. Wait until every connection is stored, print the top connections by bytes from ClickHouse and the counts.
 *   5. Stop the roles and remove the pods; Ctrl-C at any point does the same.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { loadConfig } from '../common/config.js';
import { createClickHouse } from '../common/clickhouse/client.js';
import { describeError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { startTelemetry } from '../common/telemetry.js';
import { startCollector, uninstallCollector } from '../collector/index.js';
import { startEnricher } from '../enricher/index.js';
import { createLab, type Pod } from './pods.js';
import { runHttpLoad, startHttpServer } from './traffic.js';
import { kafkaServer } from './stack/kafka-server.js';
import { waitFor } from './stack/processes.js';

interface TopConnection {
  client_address: string;
  server_address: string;
  server_port: number;
  sent: string;
  received: string;
  rtt_us: number;
  process: string;
}

/** The traffic of the demo: who calls whom, how much. */
const calls = [
  { from: 'frontend', to: 'backend', requests: 300, concurrency: 3 },
  { from: 'frontend', to: 'payments', requests: 100, concurrency: 2 },
  { from: 'backend', to: 'payments', requests: 60, concurrency: 1 },
] as const;
const servers = { backend: { port: 8080, responseBytes: 4096 }, payments: { port: 9090, responseBytes: 512 } } as const;

async function topConnections(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<TopConnection[]> {
  const result = await clickhouse.query({
    query: `SELECT toString(client_address) AS client_address, toString(server_address) AS server_address, server_port,
                   toString(argMax(bytes_client_to_server, record_seq)) AS sent, toString(argMax(bytes_server_to_client, record_seq)) AS received,
                   argMax(rtt_us, record_seq) AS rtt_us, any(process_executable_name) AS process
            FROM ${database}.flows
            WHERE observer_side = 'client' AND time >= fromUnixTimestamp64Nano({since:Int64})
            GROUP BY connection_id, client_address, server_address, server_port
            ORDER BY toUInt64(sent) + toUInt64(received) DESC LIMIT 10`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  return result.json<TopConnection>();
}

async function storedFinalRows(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<number> {
  const result = await clickhouse.query({
    query: `SELECT count() AS n FROM ${database}.flows WHERE record_kind = 'final' AND time >= fromUnixTimestamp64Nano({since:Int64})`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: string }>())[0]?.n ?? 0);
}

function printTable(rows: TopConnection[], podOf: (ip: string) => string): void {
  const header = ['client', 'server', 'port', 'bytes c->s', 'bytes s->c', 'rtt µs', 'process'];
  const lines = rows.map((r) => [
    podOf(r.client_address),
    podOf(r.server_address),
    String(r.server_port),
    r.sent,
    r.received,
    String(r.rtt_us),
    r.process,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(format(header));
  for (const line of lines) console.log(format(line));
}

/** Runs the demo; resolves to the process exit code (130 when interrupted). */
export async function runDemo(): Promise<number> {
  const logger = createLogger({ level: process.env.SIDECARLESS_LOG_LEVEL ?? 'warn' });
  console.log('starting Kafka (local stack)...');
  await kafkaServer.up();
  const lab = createLab({ name: 'demo', pods: ['frontend', 'backend', 'payments'] });
  const stops: Array<() => Promise<void>> = [];
  const interrupted = new Promise<void>((resolve) => process.once('SIGINT', resolve));
  try {
    const pod = (name: string): Pod => lab.pod(name);
    const podOf = (ip: string) => lab.pods.find((p) => p.ip === ip.replace(/^::ffff:/, ''))?.name ?? ip;
    console.log(`pods: ${lab.pods.map((p) => `${p.name} ${p.ip}`).join(', ')}`);
    const config = loadConfig({
      argv: [],
      env: {
        ...process.env,
        SIDECARLESS_COLLECTOR_CGROUPS: lab.pods.map((p) => p.cgroup.path).join(','),
        // The demo's programs apart from a collector this node may run, and removed at the end.
        SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-demo-${process.pid}`,
        SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
      },
    });
    const telemetry = await startTelemetry({ host: config.telemetry.host, metricsPort: 0 });
    stops.push(() => telemetry.shutdown());
    const enricher = await startEnricher({ config, logger, telemetry });
    stops.push(() => enricher.stop());
    stops.push(async () => void uninstallCollector(config));
    const collector = await startCollector({ config, logger, telemetry });
    stops.push(() => collector.stop());
    const sinceNs = BigInt(Date.now()) * 1_000_000n;

    const running = await Promise.all(Object.entries(servers).map(([name, options]) => startHttpServer(pod(name), options)));
    console.log(`traffic: ${calls.map((c) => `${c.from} -> ${c.to} ${c.requests} requests`).join(', ')}`);
    const loads = await Promise.race([
      Promise.all(calls.map((c) => runHttpLoad(pod(c.from), `http://${pod(c.to).ip}:${servers[c.to].port}/`, { requests: c.requests, concurrency: c.concurrency }))),
      interrupted.then(() => undefined),
    ]);
    await Promise.all(running.map((server) => server.stop()));
    if (!loads) return 130;
    const connections = loads.reduce((sum, load) => sum + load.connections, 0);

    const clickhouse = await createClickHouse({ ...config.clickhouse, database: undefined });
    stops.push(() => clickhouse.close());
    // Each connection closes on both ends, both traced: one final row per side.
    const wanted = 2 * connections;
    const stored = await Promise.race([
      waitFor(async () => (await storedFinalRows(clickhouse, config.clickhouse.database, sinceNs)) >= wanted, { timeoutMs: 60_000, what: `${wanted} connection sides in ClickHouse` }).then(() => true),
      interrupted.then(() => false),
    ]);
    if (!stored) return 130;
    console.log(`\ntop connections by bytes (ClickHouse ${config.clickhouse.database}.flows, client side):`);
    printTable(await topConnections(clickhouse, config.clickhouse.database, sinceNs), podOf);
    const stats = collector.collectors.get('flows')!.stats;
    console.log(
      `\n${loads.reduce((s, l) => s + l.responses, 0)} HTTP responses over ${connections} connections; ` +
        `collector read ${stats.recordsRead} records, Kafka acknowledged ${stats.eventsProduced} events, ` +
        `${await storedFinalRows(clickhouse, config.clickhouse.database, sinceNs)} final rows stored, drops: ${JSON.stringify(stats.drops)}`,
    );
    return 0;
  } catch (error) {
    console.error(`demo failed: ${describeError(error)}`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch((error) => console.error(`stopping: ${describeError(error)}`));
    lab.destroy();
    console.log('pods removed; the local stack keeps running (`sidecarless stack down` stops it)');
  }
}
