/**
 * Flow events and the pieces of a pipeline run for integration tests: configuration with unique names, FlowBatch
 * messages built like the collector builds them, and ClickHouse queries against the embedded engine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import type { FlowEvent } from '../../src/events/flows.js';
import { loadConfig, type Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { createLogger } from '../../src/common/logger.js';
import { topicSpecs } from '../../src/events/topics.js';
import { localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { uniqueName } from './stack.js';

/** A configuration whose topics, database, consumer group, embedded store and pins belong to this test run alone. */
export function testConfig(extra: Record<string, string> = {}): { config: Config; env: Record<string, string> } {
  const name = uniqueName('t');
  const env = {
    // The local stack's, wherever SIDECARLESS_STACK_* moved it (a second stack beside a shared one).
    SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
    SIDECARLESS_METADATA_KUBECONFIG: kubeCredentials.kubeconfigFile,
    SIDECARLESS_KAFKA_TOPIC_PREFIX: `${name}.`,
    SIDECARLESS_KAFKA_PARTITIONS: '2',
    SIDECARLESS_CLICKHOUSE_DATABASE: name,
    SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: mkdtempSync(join(tmpdir(), 'sidecarless-chdb-')),
    SIDECARLESS_ENRICHER_GROUP_ID: `${name}-enricher`,
    // The collector's programs outlive it: each run pins them apart, and removes them (uninstallCollectorPins).
    SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-test-${name}`,
    SIDECARLESS_ENRICHER_FLUSH_MS: '100',
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    SIDECARLESS_LOG_LEVEL: 'warn',
    ...extra,
  };
  return { config: loadConfig({ argv: [], env }), env };
}

/** Drops the run's database and deletes every topic of its prefix (in after(): whatever failed, nothing is left behind). */
export async function dropTestData(config: Config, clickhouse: ClickHouseClient | undefined): Promise<void> {
  await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouse.database}` }).catch(() => {});
  await clickhouse?.close();
  // The embedded engine's directory is this run's own (testConfig made it).
  if (config.clickhouse.embeddedPath.startsWith(tmpdir())) rmSync(config.clickhouse.embeddedPath, { recursive: true, force: true });
  const admin = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' })).admin();
  await admin.connect();
  const topics = topicSpecs(config.kafka.topicPrefix);
  // Only those that exist: one that does not fails the whole request, which kafkajs then retries for seconds.
  const existing = new Set(await admin.listTopics());
  const doomed = Object.values(topics).map((spec) => spec.topic).filter((topic) => existing.has(topic));
  if (doomed.length > 0) await admin.deleteTopics({ topics: doomed }).catch(() => {});
  await admin.disconnect();
}

/** An hour ago, in ns: recent enough for the tables' TTL, which drops rows that are already expired. */
export const BASE_TIME_NS = BigInt(Date.now() - 3_600_000) * 1_000_000n + 123n;

/** A final client-side event of connection `n`, with times and byte counts derived from n so every row is checkable. */
export function flowEvent(n: number, overrides: Partial<FlowEvent> = {}): FlowEvent {
  const start = BASE_TIME_NS + BigInt(n) * 1_000_000n;
  return {
    connection_id: `test-node/e1/${n}`,
    k8s_node_name: 'test-node',
    record_kind: 'final',
    record_seq: 0,
    observer_side: 'client',
    start_time_ns: start,
    time_ns: start + 123_456_789n,
    network_transport: 'tcp',
    network_type: 'ipv4',
    client_address: '10.0.0.1',
    client_port: 40000 + (n % 20000),
    server_address: '10.0.0.2',
    server_port: 8080,
    bytes_client_to_server: BigInt(1000 + n),
    bytes_server_to_client: BigInt(2000 + n),
    segments_client_to_server: 3n,
    segments_server_to_client: 4n,
    rtt_us: 50,
    rtt_var_us: 10,
    retransmits: 0,
    syn_retransmits: 0,
    connect_latency_us: 80,
    handshake_completed: true,
    close_reason: 'normal',
    process_pid: 1234,
    thread_id: 1234,
    process_executable_name: 'curl',
    cgroup_id: 99n,
    network_namespace_inode: 4026531840n,
    sampling_rate: 1,
    started_before_tracing: false,
    ...overrides,
  };
}
