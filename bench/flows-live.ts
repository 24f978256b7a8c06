/**
 * bench/flows-live: the highest TCP connection rate this machine generates between two lab pods, with and without
 * the collector tracing both, in the same run.
 *
 *   1. Two pods; a TCP server in one; a client in the other opening CONNECTIONS connections (CONCURRENCY at a
 *      time), each sending and receiving 100 bytes.
 *   2. Baseline: the burst with nothing traced. Then the same burst with `sidecarless collector` (its own process
 *      and cgroup, producing to the local Kafka) tracing both pods.
 *   3. Reports connections/s both ways and their ratio, the collector's CPU (from /proc/<pid>/stat over the burst)
 *      and RSS, CPU cores per 1000 connections/s, and its exact counts: records read must be 2 per connection
 *      (both sides are traced) and drops must be zero.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startCollectorProcess, uninstallCollectorPins } from '../src/lab/collector-process.js';
import { createLab, type Pod } from '../src/lab/pods.js';
import { runTcpClient, startTcpServer } from '../src/lab/traffic.js';
import { createKafka } from '../src/common/kafka/client.js';
import { topicSpecs } from '../src/events/topics.js';
import { createLogger } from '../src/common/logger.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20_000);
const CONCURRENCY = 32;
const PORT = 7301;
const CLOCK_TICKS = 100; // USER_HZ on Linux

function cpuSeconds(pid: number): number {
  // Fields after the command (which may contain spaces) start after the last ')'; utime and stime are 14 and 15.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()!.trim().split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function rssMegabytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 1024);
}

async function burst(client: Pod, server: Pod): Promise<{ completed: number; perSecond: number; seconds: number }> {
  const result = await runTcpClient(client, { host: server.ip, port: PORT, connections: CONNECTIONS, concurrency: CONCURRENCY, sendBytes: 100, expectBytes: 100, timeoutMs: 300_000 });
  if (result.completed !== CONNECTIONS) throw new Error(`burst completed ${result.completed} of ${CONNECTIONS}: ${result.errors.join('; ')}`);
  const seconds = result.durationMs / 1000;
  return { completed: result.completed, perSecond: Math.round(result.completed / seconds), seconds };
}

export async function run(): Promise<Record<string, unknown>> {
  const prefix = `bench-${randomBytes(3).toString('hex')}.`;
  const collectorEnv = {
    SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix,
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-${prefix.slice(0, -1)}`,
  };
  const lab = createLab({ name: 'bench-flows-live', pods: ['client', 'server'] });
  try {
    const [client, server] = [lab.pod('client'), lab.pod('server')];
    const tcpServer = await startTcpServer(server, { port: PORT, expectBytes: 100, replyBytes: 100 });
    await burst(client, server); // warm-up: JIT of the agents, ARP, conntrack-free paths
    const baseline = await burst(client, server);

    const collector = await startCollectorProcess(collectorEnv, () => [client.cgroup.path, server.cgroup.path]);
    let traced: Awaited<ReturnType<typeof burst>>;
    let cpu: number;
    let rss: number;
    try {
      const cpuBefore = cpuSeconds(collector.pid);
      traced = await burst(client, server);
      cpu = cpuSeconds(collector.pid) - cpuBefore;
      rss = rssMegabytes(collector.pid);
    } catch (error) {
      await collector.kill();
      throw error;
    }
    const stats = await collector.stop();
    await tcpServer.stop();

    const cores = cpu / traced.seconds;
    return {
      bench: 'flows-live',
      connections: CONNECTIONS,
      concurrency: CONCURRENCY,
      baseline_connections_per_s: baseline.perSecond,
      traced_connections_per_s: traced.perSecond,
      traced_vs_baseline: Number((traced.perSecond / baseline.perSecond).toFixed(3)),
      collector_cpu_cores: Number(cores.toFixed(3)),
      collector_cpu_cores_per_1000_conn_s: Number((cores / (traced.perSecond / 1000)).toFixed(4)),
      collector_rss_mb: rss,
      records_read: stats.recordsRead,
      records_expected: 2 * CONNECTIONS,
      events_produced: stats.eventsProduced,
      drops: stats.drops,
      zero_drops: Object.keys(stats.drops).length === 0 && stats.recordsRead === 2 * CONNECTIONS,
    };
  } finally {
    lab.destroy();
    uninstallCollectorPins(collectorEnv);
    const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'bench' }, createLogger({ level: 'error' }));
    const admin = kafka.admin();
    await admin.connect();
    const topics = topicSpecs(prefix);
    await admin.deleteTopics({ topics: [topics.flows.topic, topics.deadletter.topic] }).catch(() => {});
    await admin.disconnect();
  }
}
