/**
 * The flow agents a benchmark compares, one interface for both: our collector and NetObserv's agent, each started
 * fresh for one measurement window in a cgroup of its own (so ./usage.ts reads its cost), exporting to the local
 * Kafka on topics of its own. finish() stops the agent and checks what it exported against the connections the
 * window's client made (none when idle).
 */
import type { Admin, Kafka } from 'kafkajs';
import { topicSpecs } from '../events/topics.js';
import { startCollectorProcess, uninstallCollectorPins } from './collector-process.js';
import { readFlowEvents } from './flows-read.js';
import { measureRowFreshness } from './row-freshness.js';
import { countNetobservConnections, startNetobserv } from './peer/netobserv.js';
import type { Pod } from './pods.js';
import { localKafkaBrokers } from './stack/endpoints.js';
import type { TcpClientResult } from './traffic.js';
import { round, type MeasuredProcess } from './usage.js';

export interface FlowAgent extends MeasuredProcess {
  /** Stops the agent, then reports what it exported about `load` and whether that is exact. */
  finish(load: TcpClientResult | undefined): Promise<{ exact: boolean } & Record<string, unknown>>;
  /** Stops the agent after a failure, without checks. */
  abort(): Promise<void>;
}

/** Starts an agent for the window named `window` (letters and digits); `live` reads its events as they come. */
export type StartFlowAgent = (window: string, live: boolean) => Promise<FlowAgent>;

export interface LabPair {
  client: Pod;
  server: Pod;
  port: number;
}

/** Collector tracing both pods; exact when it read two records per connection (both sides) and dropped none. */
export function startOurs(kafka: Kafka, pair: LabPair, topicPrefix: string, topics: string[]): StartFlowAgent {
  return async (window, live) => {
    const names = topicSpecs(`${topicPrefix}${window}.`);
    topics.push(names.flows.topic, names.deadletter.topic);
    // A pin directory per window, uninstalled at its end: a stopped collector leaves its programs tracking.
    const env = {
      SIDECARLESS_KAFKA_TOPIC_PREFIX: `${topicPrefix}${window}.`,
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
      // bpffs refuses dots in names.
      SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-${topicPrefix}${window}`.replace(/\.+$/, '').replaceAll('.', '-'),
    };
    const collector = await startCollectorProcess(env, () => [pair.client.cgroup.path, pair.server.cgroup.path]);
    const stop = async () => {
      try {
        return await collector.stop();
      } finally {
        uninstallCollectorPins(env);
      }
    };
    const reader = live ? await readFlowEvents(kafka, names.flows.topic) : undefined;
    const rows = live ? await measureRowFreshness(`${topicPrefix}${window}.`) : undefined;
    return {
      pid: collector.pid,
      cgroup: collector.cgroup,
      pinDirectory: env.SIDECARLESS_COLLECTOR_PIN_DIRECTORY,
      abort: async () => {
        await stop().catch(() => {});
        await rows?.stop(0).catch(() => {});
      },
      async finish(load) {
        const stats = await stop();
        const read = await (reader ?? (await readFlowEvents(kafka, names.flows.topic))).drain();
        const stored = await rows?.stop(read.finalEvents);
        const connections = load?.connections ?? 0;
        return {
          records_read: stats.recordsRead,
          records_expected: 2 * connections,
          drops: stats.drops,
          events_on_kafka: read.events,
          events_per_connection: connections > 0 ? round(read.events / connections, 3) : 0,
          ...(live && read.freshnessMs ? { freshness_ms: read.freshnessMs } : {}),
          ...(stored ? { row_freshness_ms: stored, final_rows_stored: stored.rows, final_events: read.finalEvents } : {}),
          exact: stats.recordsRead === 2 * connections && Object.keys(stats.drops).length === 0,
        };
      },
    };
  };
}

/**
 * NetObserv's agent on the pods' host-side veths; exact when the 5-tuples it saw both ways are the distinct
 * 5-tuples the client used and none was seen one way only. Its byte counts include headers and its records
 * are per 5-tuple and active timeout, not per connection: per-connection bytes cannot be checked.
 */
export function startPeer(kafka: Kafka, admin: Admin, binary: string, pair: LabPair, topicPrefix: string, topics: string[], activeTimeoutSeconds: number): StartFlowAgent {
  return async (window) => {
    const topic = `${topicPrefix}netobserv-${window}`;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
    topics.push(topic);
    const interfaces = [pair.client.hostVeth, pair.server.hostVeth];
    const agent = await startNetobserv(binary, { interfaces, brokers: localKafkaBrokers, topic, activeTimeoutSeconds });
    return {
      pid: agent.pid,
      cgroup: agent.cgroup,
      abort: agent.stop,
      async finish(load) {
        await agent.stop();
        const count = await countNetobservConnections(kafka, topic, pair.client.ip, pair.server.ip, pair.port);
        const expected = load?.localPorts ?? 0;
        const connections = load?.connections ?? 0;
        return {
          records: count.records,
          five_tuples_seen: count.connections,
          five_tuples_expected: expected,
          one_way: count.oneWay,
          other_records: count.otherRecords,
          records_per_connection: connections > 0 ? round(count.records / connections, 3) : 0,
          packets_per_connection: connections > 0 ? round(count.packets / connections, 2) : 0,
          bytes_per_connection: connections > 0 ? round(count.bytes / connections, 1) : 0,
          exact: count.connections === expected && count.oneWay === 0,
        };
      },
    };
  };
}
