/**
 * A denied connection, from the kernel to a ClickHouse row: `sidecarless enforcer` as a separate process (as
 * enforcer-role.test.ts runs it) on the real kernel, the metadata role watching the real API server (lab pods of a
 * described cluster: x/a serving TCP 80, y/a its client), `sidecarless policy apply` isolating x/a for ingress, real
 * Kafka, and the enricher role in this process storing verdicts.v1 in the embedded ClickHouse engine.
 *
 * y/a connects to x/a:80 from a source port it binds itself, so that the 5-tuple is known exactly; the SYN is dropped
 * at x/a's cgroup_skb ingress and the client gives up before its first retransmission, so the kernel decides once.
 * The row must name the isolating policy, the exact 5-tuple, the direction and hook, both pods (as the enforcer named
 * them and as the enricher's event-time join names them) and x/a's policy identity; the per-minute rollup counts
 * every denial of the run under that policy and workload edge.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import type { RunningRole } from '../../src/common/role.js';
import { cgroup2Root } from '../../src/ebpf/preflight.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { podIdentityId, podIdentityKey } from '../../src/enforcer/compile/identities.js';
import { startEnricher } from '../../src/enricher/index.js';
import { describeCluster } from '../../src/lab/cluster-description.js';
import { startEnforcerProcess, type EnforcerProcess } from '../../src/lab/enforcer-process.js';
import { labNames } from '../../src/lab/names.js';
import { destroyAll } from '../../src/lab/pods.js';
import { startDescribedCluster, type DescribedCluster } from '../../src/lab/reachability.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { queryRows } from '../helpers/clickhouse.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { deleteMetadataTopic, metadataConfig, startRole, type StartedRole } from '../helpers/metadata-role.js';
import { connectFrom, policyApply } from '../helpers/policy.js';
import { requireStackService } from '../helpers/stack.js';

const id = randomBytes(3).toString('hex');
const x = `x-${id}`;
const y = `y-${id}`;
const description = describeCluster({ [x]: { ns: 'x' }, [y]: { ns: 'y' } }, [
  { namespace: x, name: 'a', ports: [80] },
  { namespace: y, name: 'a', ports: [] },
]);
const prefix = `verdicts-${id}.`;
const pins = `/sys/fs/bpf/sidecarless-test-verdicts-${id}`;
const logger = createLogger({ level: 'warn' });
const { config } = testConfig({ SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix, SIDECARLESS_KAFKA_PARTITIONS: '3' });
const database = config.clickhouse.database;

/** x/a takes no connection from anyone. */
const ISOLATE = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-a, namespace: ${x}}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
`;

describe('verdicts table: a denial from the kernel to a ClickHouse row (enforcer process, real Kafka, embedded ClickHouse)', () => {
  const metadataCfg = metadataConfig({ SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix });
  let metadata: StartedRole | undefined;
  let described: DescribedCluster | undefined;
  let enforcer: EnforcerProcess | undefined;
  let enricher: { role: RunningRole; telemetry: Telemetry } | undefined;
  let clickhouse: ClickHouseClient | undefined;

  before(async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    metadata = await startRole(metadataCfg);
    described = await startDescribedCluster(description, { name: `verdicts-${id}`, lifetimeMs: 10 * 60_000 });
    enforcer = await startEnforcerProcess({
      SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
      SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix,
      SIDECARLESS_KAFKA_PARTITIONS: '3',
      SIDECARLESS_ENFORCER_CGROUPS: join(cgroup2Root(), labNames.cgroupDir(described.cluster.id)),
      SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins,
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    });
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    enricher = { role: await startEnricher({ config, logger, telemetry }), telemetry };
    clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  });

  after(async () => {
    await cleanUpAll([
      ['the enforcer process', () => enforcer?.kill()],
      ['the enforcer\'s pins', () => new PinDirectory(pins).remove()],
      ['the enricher', async () => {
        await enricher?.role.stop();
        await enricher?.telemetry.shutdown();
      }],
      ['the lab', async () => {
        await described?.destroy();
        destroyAll();
      }],
      ['the metadata role', () => metadata?.stop()],
      ['the metadata and policies topics', () => deleteMetadataTopic(metadataCfg)],
      ['the database and event topics', () => dropTestData(config, clickhouse)],
    ]);
  });

  it('names the isolating policy, the exact 5-tuple, the direction and both pods', async () => {
    const [xa, ya] = [described!.pods.get(`${x}/a`)!, described!.pods.get(`${y}/a`)!];
    assert.equal(connectFrom(ya, xa, 80, 0), 'connected', 'x/a is open before the policy');

    await policyApply(ISOLATE, { SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix, SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','), SIDECARLESS_KAFKA_PARTITIONS: '3' });
    await waitFor(async () => connectFrom(ya, xa, 80, 0) === 'timeout', { timeoutMs: 30_000, intervalMs: 100, what: 'x/a isolated: the SYN dropped at its ingress' });

    const sourcePort = randomInt(20_000, 30_000);
    assert.equal(connectFrom(ya, xa, 80, sourcePort), 'timeout');
    const select = `SELECT k8s_node_name AS node, toString(verdict) AS verdict, toString(direction) AS direction, toString(hook) AS hook, policies, rules,
                           network_transport AS transport, toString(network_type) AS type,
                           concat(toString(source_address), ' ', toString(source_port), ' ', toString(destination_address), ' ', toString(destination_port)) AS tuple,
                           cgroup_id, subject_identity, concat(subject_k8s_namespace_name, '/', subject_k8s_pod_name) AS subject,
                           peer_identity, concat(peer_k8s_namespace_name, '/', peer_k8s_pod_name) AS peer,
                           concat(source_k8s_namespace_name, '/', source_k8s_workload_kind, '/', source_k8s_workload_name, '/', source_k8s_pod_name, '/', toString(source_endpoint_kind), '/', toString(source_enrichment)) AS source,
                           concat(destination_k8s_namespace_name, '/', destination_k8s_workload_kind, '/', destination_k8s_workload_name, '/', destination_k8s_pod_name, '/', toString(destination_endpoint_kind), '/', toString(destination_enrichment)) AS destination
                    FROM ${database}.verdicts WHERE source_port = {port:UInt16}`;
    let rows: Array<Record<string, unknown>> = [];
    await waitFor(async () => (rows = await queryRows(clickhouse!, select, { port: sourcePort })).length > 0, { timeoutMs: 60_000, intervalMs: 300, what: `the denial from port ${sourcePort} in ${database}.verdicts` });
    const identity = (namespace: string) => String(podIdentityId(podIdentityKey(namespace, { pod: 'a' }, [])));
    assert.deepEqual(rows, [
      {
        node: config.node.name,
        verdict: 'deny',
        direction: 'ingress',
        hook: 'ingress',
        policies: [`${x}/isolate-a`],
        rules: [],
        transport: 'tcp',
        type: 'ipv4',
        tuple: `::ffff:${ya.ip} ${sourcePort} ::ffff:${xa.ip} 80`,
        cgroup_id: String(xa.cgroup.id),
        subject_identity: identity(x),
        subject: `${x}/a`,
        peer_identity: identity(y),
        peer: `${y}/a`,
        source: `${y}/Pod/a/a/pod/hit`,
        destination: `${x}/Pod/a/a/pod/hit`,
      },
    ]);

    // The rollup counts every denial of the run (the probes that waited for the policy, and this one) under the
    // policy and the workload edge: one key, as many decisions as the table has rows.
    const [stored] = await queryRows<{ n: string }>(clickhouse!, `SELECT toString(count()) AS n FROM ${database}.verdicts`);
    assert.deepEqual(
      await queryRows(
        clickhouse!,
        `SELECT toString(verdict) AS verdict, toString(direction) AS direction, policy,
                concat(source_k8s_namespace_name, '/', source_k8s_workload_kind, '/', source_k8s_workload_name) AS source,
                concat(destination_k8s_namespace_name, '/', destination_k8s_workload_kind, '/', destination_k8s_workload_name) AS destination,
                toString(sum(decisions)) AS decisions
         FROM ${database}.policy_verdicts_1m GROUP BY ALL`,
      ),
      [{ verdict: 'deny', direction: 'ingress', policy: `${x}/isolate-a`, source: `${y}/Pod/a`, destination: `${x}/Pod/a`, decisions: stored!.n }],
    );
  });
});
