/**
 * bench/enrich-join: the enricher's event-time join, in sections (one JSON line holds them all; meets_floor when
 * every section meets its own).
 *
 * Section `index`: the metadata index alone (src/metadata/index/), in this process.
 *   1. A cluster as metadata.v1 messages: 100 nodes, 50 namespaces, 1,000 Deployments (each a ReplicaSet, a Service
 *      with a ClusterIP and an EndpointSlice on port 8080), 10 pods each: 10,000 live pods (each a Pending state
 *      without an IP, then a Running one with its IP and labels) and their cgroups on their nodes. The first 100
 *      Deployments were rolled out once: 1,000 earlier pods held the same IPs (and cgroups) until the rollout, their
 *      slices listed them, and their ReplicaSet was the previous one. Built in that order (keys interleaved).
 *   2. Build: CPU time of applying every message; memory: heap growth after a full GC (what the index keeps).
 *   3. Flow events (seeded): both ends pods (client-observed: the server by address, its Service from the slice;
 *      server-observed: the server by cgroup, the client by address), pods to ClusterIPs, pods to external
 *      addresses, external clients to pods, and a tenth of each timed before the rollout (the earlier pods); pods
 *      picked uniformly, so the index is read all over (no cache-friendly hot set). They reach the enricher freshly
 *      decoded, a Kafka fetch at a time: each batch of BATCH events is built untimed just before its joins are
 *      timed (CPU of this process), after WARM_UP_BATCHES untimed; a join names both ends of one event. Baseline in
 *      the same run: each batch built again and its events touched (the fields a join reads) without joining.
 *   4. Verify every join (untimed): each end's kind, pod uid or Service, workload and server-side Service as the
 *      generator intended; the counts of each kind. Then expire() at a time after the rollout's history is past:
 *      the count it returns must be exactly what ended before the horizon (the earlier pods' states, address
 *      claims and cgroup states, the slices' earlier states, every pod's Pending state), and the stats shrink by
 *      the earlier pods.
 *   Floor: 300,000 joins per CPU-second, with exact verification.
 *
 * Section `end_to_end`: the enricher from Kafka to joined rows in ClickHouse against the path before the join, in
 * the same run (endToEndSection, below, says how). Floor: joined ≥ 0.7× unjoined rows per CPU-second.
 *
 * A further section adds a function returning a Section and one line in run().
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import type { ClickHouseClient } from '@clickhouse/client';
import { loadRegistry } from '../src/common/avro.js';
import { createClickHouse } from '../src/common/clickhouse/client.js';
import { migrate, shippedMigrations } from '../src/common/clickhouse/migrations.js';
import { loadConfig } from '../src/common/config.js';
import { createKafka } from '../src/common/kafka/client.js';
import { KeyedKafkaSink, type KeyedMessage } from '../src/common/kafka/sink.js';
import { ensureTopics } from '../src/common/kafka/topics.js';
import { createLogger } from '../src/common/logger.js';
import { startTelemetry } from '../src/common/telemetry.js';
import { BatchLedger } from '../src/enricher/batch-ledger.js';
import { ClickHouseSink } from '../src/enricher/clickhouse-sink.js';
import { Enricher, type EnricherDeps } from '../src/enricher/enricher.js';
import { FLOW_COLUMNS, FlowRows, FLOWS_TABLE } from '../src/enricher/flow-row.js';
import { IDENTITY_COLUMNS, type KafkaPosition } from '../src/enricher/row-binary.js';
import { consumeEvents, createEventConsumer } from '../src/enricher/event-consumer.js';
import { MetadataFeed } from '../src/enricher/metadata-feed.js';
import { COMPLETE_METADATA, MetadataGate, type FlowJoiner } from '../src/enricher/metadata-gate.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../src/events/flows.js';
import { bindMetadataCodec, type MetadataChange } from '../src/events/metadata.js';
import { topicSpecs } from '../src/events/topics.js';
import { cpuTimes, hostConditions } from '../src/lab/host-conditions.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { unnamed, type EndpointIdentity, type FlowIdentities } from '../src/metadata/index/identity.js';
import { MetadataIndex } from '../src/metadata/index/metadata-index.js';
import { cgroupChange, nodeChange, objectChange, observedFlow, ownerRef, podChange, sec, seeded, serviceChange, sliceChange, tombstone } from '../test/helpers/metadata.js';
import { count, cpuSeconds, enricherDeps, type Ingested, measureIngest, mergesDone, packMessages, produceMessages, queryRows, round } from './enricher-pipeline.js';

const NODES = 100;
const NAMESPACES = 50;
const DEPLOYMENTS = 1_000;
const PODS_PER_DEPLOYMENT = 10;
const ROLLED_OUT = 100;
/** Flows are joined in batches of BATCH, as a Kafka fetch brings them; BATCHES of them timed, after a warm-up. */
const BATCH = 1_000;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 1_000);
const WARM_UP_BATCHES = 100;
const FLOOR_JOINS_PER_CPU_S = 300_000;
const LABELS = ['app', 'app.kubernetes.io/name', 'version'];

/** The cluster's timeline: the first generation starts (epoch), the rollout replaces some, flows come after (live). */
interface Timeline {
  epoch: bigint;
  rollout: bigint;
  live: bigint;
}

const timeline = (epoch: bigint): Timeline => ({ epoch, rollout: epoch + sec(600), live: epoch + sec(1200) });
/** The index section's: fixed, so that its runs build and join the very same data. */
const FIXED = timeline(1_764_000_000n * 1_000_000_000n);
const HISTORY = sec(3600);

interface Section {
  figures: Record<string, unknown>;
  meets_floor: boolean;
}

/** A full garbage collection, exposed for this measurement (the bench runs without --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

const podIp = (pod: number) => `10.${1 + (pod >> 16)}.${(pod >> 8) & 255}.${pod & 255}`;
const clusterIp = (deployment: number) => `10.96.${deployment >> 8}.${deployment & 255}`;
const nodeName = (pod: number) => `node-${pod % NODES}`;
/** Cgroup ids as the kernel gives them (kernfs ids: the generation in the high 32 bits, the inode number below). */
const cgroupId = (pod: number, generation: number) => (1n << 32n) + BigInt(100_000 + generation * 50_000 + pod);
const podUid = (pod: number, generation: number) => `pod-${generation}-${pod}`;
const podName = (pod: number, generation: number) => `app-${Math.floor(pod / PODS_PER_DEPLOYMENT)}-g${generation}-${pod % PODS_PER_DEPLOYMENT}`;

/** The cluster as metadata.v1 messages, in the order a source would publish them. */
function* cluster({ epoch, rollout }: Timeline = FIXED): Generator<MetadataChange> {
  for (let n = 0; n < NODES; n++) yield nodeChange({ uid: `node-uid-${n}`, name: `node-${n}`, addresses: [`192.168.0.${n + 1}`], at: epoch - sec(3600) });
  for (let ns = 0; ns < NAMESPACES; ns++) yield objectChange('Namespace', { uid: `ns-${ns}`, name: `ns-${ns}`, at: epoch - sec(3600) });
  for (let d = 0; d < DEPLOYMENTS; d++) {
    const namespace = `ns-${d % NAMESPACES}`;
    const name = `app-${d}`;
    const rolled = d < ROLLED_OUT;
    yield objectChange('Deployment', { uid: `d-${d}`, name, namespace, at: epoch - sec(60) });
    yield serviceChange({ uid: `s-${d}`, name, namespace, clusterIps: [clusterIp(d)], at: epoch - sec(60) });
    const generations = rolled ? [0, 1] : [1];
    for (const generation of generations) {
      const rs = ownerRef('ReplicaSet', `${name}-rs${generation}`, `rs-${generation}-${d}`);
      const born = generation === 0 || !rolled ? epoch : rollout - sec(5);
      yield objectChange('ReplicaSet', { uid: rs.uid, name: rs.name, namespace, owner: ownerRef('Deployment', name, `d-${d}`), at: born - sec(1) });
      const pods = Array.from({ length: PODS_PER_DEPLOYMENT }, (_, i) => d * PODS_PER_DEPLOYMENT + i);
      for (const pod of pods) {
        const base = { uid: podUid(pod, generation), name: podName(pod, generation), namespace, node: nodeName(pod), owner: rs, created: born };
        const labels = { app: name, 'app.kubernetes.io/name': name, version: `v${generation}`, 'pod-template-hash': `rs${generation}`, team: `team-${d % 7}` };
        yield podChange({ ...base, phase: 'Pending', at: born });
        yield cgroupChange({ node: nodeName(pod), id: cgroupId(pod, generation), podUid: base.uid, at: born + sec(1) });
        yield podChange({ ...base, ips: [podIp(pod)], labels, at: born + sec(2) });
      }
      const endpoints = pods.map((pod) => ({ podUid: podUid(pod, generation), addresses: [podIp(pod)] }));
      yield sliceChange({ uid: `es-${d}`, service: name, namespace, endpoints, ports: [8080], at: born + sec(3) });
    }
    if (rolled) {
      for (let i = 0; i < PODS_PER_DEPLOYMENT; i++) {
        const pod = d * PODS_PER_DEPLOYMENT + i;
        yield tombstone(podUid(pod, 0), rollout);
        yield tombstone(`cgroup/${nodeName(pod)}/${cgroupId(pod, 0)}`, rollout);
      }
    }
  }
}

/** What a join must say about one end: a pod (uid, workload, server-side Service), a Service, or a miss. */
type Expected = { kind: 'pod'; uid: string; deployment: string; service: string } | { kind: 'service'; service: string } | { kind: 'external' };

interface Flow {
  event: FlowEvent;
  client: Expected;
  server: Expected;
}

const EXTERNALS = ['8.8.8.8', '1.1.1.1', '151.101.1.140', '52.94.236.248', '140.82.112.3'];

/** Batch `number` of the flows, the same on every call. */
function flowBatch(number: number, { epoch, live }: Timeline = FIXED): Flow[] {
  const random = seeded(number + 1);
  const flows: Flow[] = [];
  for (let n = 0; n < BATCH; n++) {
    const i = number * BATCH + n;
    // A tenth before the rollout, among the rolled-out Deployments' pods (the earlier generation).
    const early = i % 10 === 0;
    const pick = () => Math.floor(random() * (early ? ROLLED_OUT : DEPLOYMENTS) * PODS_PER_DEPLOYMENT);
    const start = early ? epoch + sec(10) + BigInt(Math.floor(random() * 500e9)) : live + BigInt(Math.floor(random() * 600e9));
    const generation = early ? 0 : 1;
    const pod = (p: number, server: boolean): Expected => {
      const d = Math.floor(p / PODS_PER_DEPLOYMENT);
      return { kind: 'pod', uid: podUid(p, generation), deployment: `app-${d}`, service: server ? `app-${d}` : '' };
    };
    const a = pick();
    const b = pick();
    const mix = i % 20;
    const external = EXTERNALS[i % EXTERNALS.length]!;
    // Observed by a's (the client's) or b's (the server's) collector: that side by its cgroup, the other by address.
    const byClient = { side: 'client', node: nodeName(a), cgroup: cgroupId(a, generation), client: podIp(a), start } as const;
    const byServer = { side: 'server', node: nodeName(b), cgroup: cgroupId(b, generation), server: podIp(b), start } as const;
    if (mix < 6) {
      // Both ends pods (the server's Service from its slice).
      flows.push({ event: observedFlow({ ...byClient, server: podIp(b) }), client: pod(a, false), server: pod(b, true) });
    } else if (mix < 10) {
      flows.push({ event: observedFlow({ ...byServer, client: podIp(a) }), client: pod(a, false), server: pod(b, true) });
    } else if (mix < 15) {
      // A pod to a ClusterIP (the connection as the client made it, before translation).
      const d = Math.floor(b / PODS_PER_DEPLOYMENT);
      flows.push({ event: observedFlow({ ...byClient, server: clusterIp(d), serverPort: 80 }), client: pod(a, false), server: { kind: 'service', service: `app-${d}` } });
    } else if (mix < 18) {
      flows.push({ event: observedFlow({ ...byClient, server: external, serverPort: 443 }), client: pod(a, false), server: { kind: 'external' } });
    } else {
      flows.push({ event: observedFlow({ ...byServer, client: external }), client: { kind: 'external' }, server: pod(b, true) });
    }
  }
  return flows;
}

/** Whether an identity says what was expected; the mismatch's description otherwise. */
function mismatch(identity: EndpointIdentity, expected: Expected): string | undefined {
  const ok =
    identity.kind === expected.kind &&
    (expected.kind === 'external'
      ? identity.status === 'miss'
      : expected.kind === 'service'
        ? identity.status === 'hit' && identity.k8s_service_name === expected.service && identity.k8s_pod_name === ''
        : identity.status === 'hit' &&
          identity.k8s_pod_uid === expected.uid &&
          identity.k8s_workload_kind === 'Deployment' &&
          identity.k8s_workload_name === expected.deployment &&
          identity.k8s_service_name === expected.service &&
          identity.labels.app === expected.deployment);
  return ok ? undefined : `${JSON.stringify(identity)} instead of ${JSON.stringify(expected)}`;
}

async function indexSection(): Promise<Section> {
  collectGarbage();
  const heapBefore = process.memoryUsage().heapUsed;
  const index = new MetadataIndex({ labels: LABELS, historyNs: HISTORY });
  let messages = 0;
  const buildCpu = cpuSeconds();
  for (const change of cluster()) {
    index.apply(change);
    messages++;
  }
  const buildCpuS = cpuSeconds() - buildCpu;
  collectGarbage();
  const heapBytes = process.memoryUsage().heapUsed - heapBefore;
  const built = index.stats();

  // Events come to the enricher freshly decoded, a batch at a time: each batch is built (untimed) just before it
  // is joined, and built again before it is touched for the baseline, so neither pass finds it warmed by the other.
  let sink = 0;
  const joined: FlowIdentities[] = new Array<FlowIdentities>(BATCH);
  const join = (events: FlowEvent[]) => {
    for (let i = 0; i < events.length; i++) {
      const identities = index.joinFlow(events[i]!);
      joined[i] = identities;
      sink += identities.client.status.length + identities.server.status.length;
    }
  };
  const touch = (events: FlowEvent[]) => {
    for (const event of events) {
      sink += event.client_address.length + event.server_address.length + event.server_port + event.k8s_node_name.length + (event.observer_side === 'client' ? 1 : 0);
      sink += Number(event.cgroup_id & 1n) + Number(event.start_time_ns & 1n);
    }
  };
  const timed = (pass: (events: FlowEvent[]) => void, events: FlowEvent[]) => {
    const cpu = cpuSeconds();
    pass(events);
    return cpuSeconds() - cpu;
  };
  // Warm-up (JIT), untimed.
  for (let number = 0; number < WARM_UP_BATCHES; number++) {
    join(flowBatch(number).map((flow) => flow.event));
    touch(flowBatch(number).map((flow) => flow.event));
  }
  let joinCpuS = 0;
  let touchCpuS = 0;
  const kinds: Record<string, number> = {};
  const expectedKinds: Record<string, number> = {};
  const mismatches: string[] = [];
  for (let number = 0; number < BATCHES; number++) {
    const flows = flowBatch(number);
    joinCpuS += timed(join, flows.map((flow) => flow.event));
    // Verify every join, untimed.
    flows.forEach((flow, i) => {
      for (const [identity, expected] of [
        [joined[i]!.client, flow.client],
        [joined[i]!.server, flow.server],
      ] as const) {
        kinds[identity.kind] = (kinds[identity.kind] ?? 0) + 1;
        expectedKinds[expected.kind] = (expectedKinds[expected.kind] ?? 0) + 1;
        const wrong = mismatch(identity, expected);
        if (wrong !== undefined) mismatches.push(wrong);
      }
    });
    touchCpuS += timed(touch, flowBatch(number).map((flow) => flow.event));
  }
  const flowCount = BATCHES * BATCH;
  const joinsPerCpuS = Math.round(flowCount / joinCpuS);
  const touchesPerCpuS = Math.round(flowCount / touchCpuS);

  // A horizon at FIXED.live, after the rollout: what ended before it is exactly, per earlier pod, its 2 states, its IP
  // claim and its cgroup state; per rolled-out Deployment its slice's first state; per live pod its Pending state.
  const livePods = DEPLOYMENTS * PODS_PER_DEPLOYMENT;
  const expectedDropped = ROLLED_OUT * PODS_PER_DEPLOYMENT * 4 + ROLLED_OUT + livePods;
  const expireCpu = cpuSeconds();
  const dropped = index.expire(FIXED.live + HISTORY);
  const expireCpuS = cpuSeconds() - expireCpu;
  const afterExpire = index.stats();
  const earlyPods = ROLLED_OUT * PODS_PER_DEPLOYMENT;
  const exact =
    mismatches.length === 0 &&
    JSON.stringify(kinds) === JSON.stringify(expectedKinds) &&
    kinds.pod! + kinds.service! + kinds.external! === 2 * flowCount &&
    dropped === expectedDropped &&
    afterExpire.objects === built.objects - earlyPods &&
    afterExpire.addressIntervals === built.addressIntervals - earlyPods &&
    afterExpire.cgroupIntervals === built.cgroupIntervals - earlyPods;

  return {
    figures: {
      pods_live: livePods,
      pods_earlier: earlyPods,
      services: DEPLOYMENTS,
      nodes: NODES,
      messages,
      build_cpu_s: Number(buildCpuS.toFixed(3)),
      build_messages_per_cpu_s: Math.round(messages / buildCpuS),
      heap_bytes: heapBytes,
      heap_bytes_per_live_pod: Math.round(heapBytes / livePods),
      stats: built,
      flows: flowCount,
      batch: BATCH,
      joins_per_cpu_s: joinsPerCpuS,
      join_cpu_s: Number(joinCpuS.toFixed(3)),
      baseline_touch_per_cpu_s: touchesPerCpuS,
      join_vs_touch: Number((joinsPerCpuS / touchesPerCpuS).toFixed(4)),
      verify: { kinds, expected_kinds: expectedKinds, mismatches: mismatches.length, first_mismatches: mismatches.slice(0, 3) },
      expire: { dropped, expected_dropped: expectedDropped, cpu_ms: Number((expireCpuS * 1000).toFixed(1)), stats: afterExpire },
      exact,
      floor: { joins_per_cpu_s: FLOOR_JOINS_PER_CPU_S },
      checksum: sink,
    },
    meets_floor: exact && joinsPerCpuS >= FLOOR_JOINS_PER_CPU_S,
  };
}

/** Events through the enricher end to end, per run; FlowBatch messages of EVENTS_PER_MESSAGE over PARTITIONS. */
const E2E_EVENTS = Number(process.env.BENCH_E2E_EVENTS ?? 384_000);
const EVENTS_PER_MESSAGE = 64;
const PARTITIONS = 2;
/** Per run and variant: stored within this, or the bench fails. */
const E2E_TIMEOUT_MS = 120_000;
const FLOOR_JOINED_VS_UNJOINED = 0.7;
/** The runs, in an order that puts each variant early and late (the machine's state drifts during a bench). */
const ORDER = ['joined', 'unjoined', 'empty_index', 'joined_no_labels', 'joined_no_view', 'joined_no_view', 'joined_no_labels', 'empty_index', 'unjoined', 'joined'] as const;
type Variant = (typeof ORDER)[number];
/**
 * The migrations of the flows table and the batch ledger before the identity columns and the rollup (issue 8), and
 * the one column added to flows since (renumbered to follow them): shipped file -> name in the bench's directory.
 */
const UNJOINED_MIGRATIONS: ReadonlyArray<readonly [string, string]> = [
  ['0001_flows.sql', '0001_flows.sql'],
  ['0002_kafka_batches.sql', '0002_kafka_batches.sql'],
  ['0003_kafka_batches_from_flows.sql', '0003_kafka_batches_from_flows.sql'],
  ['0014_flows_started_before_tracing.sql', '0004_flows_started_before_tracing.sql'],
];

/** The columns of `flows` before the join: FLOW_COLUMNS without either end's identity columns. */
const UNJOINED_COLUMNS = FLOW_COLUMNS.filter(([column]) => !IDENTITY_COLUMNS.some(([suffix]) => column === `client_${suffix}` || column === `server_${suffix}`));

/** Rows as the enricher wrote them before the join: no identity columns (the identities it is handed are ignored). */
class UnjoinedFlowRows extends FlowRows {
  private static readonly NO_COLUMNS = new Uint8Array(0);

  override add(event: FlowEvent, _identities: FlowIdentities, position: KafkaPosition): void {
    this.addRow(event, UnjoinedFlowRows.NO_COLUMNS, UnjoinedFlowRows.NO_COLUMNS, position);
  }
}

/** What the unjoined path's gate "joins" with: no lookup (these identities are never written). */
const UNJOINED: FlowJoiner = { join: () => ({ client: unnamed('late'), server: unnamed('late') }) };

/** What the rows of a flow's end must say (endpoint kind and enrichment). */
const endColumns = (expected: Expected): string => (expected.kind === 'external' ? 'external/miss' : `${expected.kind}/hit`);

/**
 * Section `end_to_end`: the enricher from Kafka to rows in ClickHouse, joined with that cluster, against the path
 * as it was before the join, in the same process and run.
 *   1. The cluster of the index section, its timeline moved to an hour and a half ago (inside the tables' TTL and
 *      the index's history), published to a fresh metadata.v1 topic through the metadata role's own sink
 *      (KeyedKafkaSink: keyed, tombstones stamped with their time), and read by the enricher's MetadataFeed into a
 *      MetadataIndex, caught up before anything is timed; its stats must equal those of an index built directly.
 *      E2E_EVENTS flows of the index section's kinds (pods picked uniformly, so joins hit all over the index)
 *      packed 64 per FlowBatch message over 2 partitions, produced to a fresh flows topic once.
 *   2. Variants, each reading the whole topic through the role's events consumer (event-consumer.ts: fetches of the
 *      default enricher.batchBytes) into the real Enricher, ClickHouseSink and BatchLedger, in the embedded engine
 *      (chdb, in this process: its CPU counts), each run into a fresh database and consumer group:
 *        joined       the gate waits on the feed's catch-ups and joins with the cluster's index; rows with both ends'
 *                     identity columns into `flows` as migrated today, whose edge rollup view aggregates every insert;
 *        unjoined     the path before the join (issue 8): no wait and no lookup at the gate, rows without identity
 *                     columns (FlowRows' writer with none: UnjoinedFlowRows) into a `flows` table made by the
 *                     migrations of that time (0001-0003: no identity columns, no rollup);
 *        empty_index  the joined path with an empty index (every end a miss): the join's own cost apart from the
 *                     names it writes;
 *        joined_no_labels  joined, with an index that copies no label (enricher.labels empty, built directly from
 *                     the same messages): what the labels cost, their Map columns mostly;
 *        joined_no_view    joined, into `flows` without the edge rollup's view (dropped after migrating): what the
 *                     rollup costs.
 *      Each variant first stores the topic once into a scratch database, untimed (JIT, the engine's first inserts).
 *      Timed: process CPU from the consumer's connect to its last row stored, then the merges that follow
 *      (merge_tail_cpu_s), as bench/enricher does. Order: ORDER, each variant twice, early and late.
 *   3. Verify (untimed): every table holds every event; the unjoined table has exactly the columns of FLOW_COLUMNS
 *      without the identity columns, and equals the joined tables on them (EXCEPT both ways); the joined rows' ends
 *      carry exactly the expected kinds and statuses (per combination; the two partial variants' too), and a sample
 *      of flows their pod uids, workloads, Services and labels; no label in the no-labels rows; the empty-index
 *      rows are all misses; the rollup counts every flow once, and holds nothing without its view.
 *   Floor: joined ≥ 0.7× unjoined in rows per CPU-second with the merge tail (ratio of the variants' medians).
 */
async function endToEndSection(): Promise<Section> {
  const stamp = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const name = `slbench_join_${stamp}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-enrich-join-'));
  const unjoinedMigrations = mkdtempSync(join(tmpdir(), 'sidecarless-bench-unjoined-migrations-'));
  for (const [shipped, file] of UNJOINED_MIGRATIONS) copyFileSync(join(shippedMigrations, shipped), join(unjoinedMigrations, file));
  const defaults = loadConfig({ argv: [], env: {} });
  const { batchBytes, flushMs, metadataHoldMs: holdMs, metadataHistoryMs: historyMs } = defaults.enricher;
  const registry = loadRegistry();
  const flowsCodec = registry.codec<FlowBatch>(FLOWS.subject);
  const metadataCodec = bindMetadataCodec(registry);
  const logger = createLogger({ level: 'error', destination: 2 });
  const kafka = createKafka({ brokers: [...localKafkaBrokers], clientId: 'sidecarless-bench-enrich-join' }, logger);
  const admin = kafka.admin();
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  const topics = topicSpecs(`${name}.`, { partitions: PARTITIONS });
  const groups: string[] = [];
  const databases: string[] = [];
  let client: ClickHouseClient | undefined;
  let feed: MetadataFeed | undefined;
  await admin.connect();
  try {
    await ensureTopics(admin, [topics.flows, topics.metadata]);
    // 1. The cluster, an hour and a half ago (whole milliseconds: tombstones keep their time as a Kafka timestamp).
    const t = timeline(BigInt(Date.now() - 5_400_000) * 1_000_000n);
    const direct = new MetadataIndex({ labels: LABELS, historyNs: BigInt(historyMs) * 1_000_000n });
    const noLabels = new MetadataIndex({ labels: [], historyNs: BigInt(historyMs) * 1_000_000n });
    const published = new KeyedKafkaSink(kafka, topics.metadata.topic);
    let metadataMessages = 0;
    let chunk: KeyedMessage[] = [];
    const publish = async () => {
      const sent = await published.send(chunk);
      if (!sent.ok) throw new Error(`bench: publishing metadata failed: ${sent.error}`);
      metadataMessages += chunk.length;
      chunk = [];
    };
    for (const change of cluster(t)) {
      direct.apply(change);
      noLabels.apply(change);
      const timestampMs = String(('event' in change ? change.event.change_time_ns : change.time_ns) / 1_000_000n);
      chunk.push({ key: change.key, value: 'event' in change ? metadataCodec.encode(change.event) : null, timestampMs });
      if (chunk.length === 1_000) await publish();
    }
    if (chunk.length > 0) await publish();
    await published.shutdown();

    const expectedEnds: Record<string, number> = {};
    const sample = new Map<string, Flow>();
    const batches = Math.ceil(E2E_EVENTS / BATCH);
    function* events(): Generator<FlowEvent> {
      for (let number = 0; number < batches; number++) {
        for (const [i, flow] of flowBatch(number, t).entries()) {
          if (number * BATCH + i >= E2E_EVENTS) return;
          const ends = `${endColumns(flow.client)} -> ${endColumns(flow.server)}`;
          expectedEnds[ends] = (expectedEnds[ends] ?? 0) + 1;
          if (i % 997 === 0) sample.set(flow.event.connection_id, flow);
          yield flow.event;
        }
      }
    }
    const partitions = packMessages(events(), PARTITIONS, EVENTS_PER_MESSAGE, (batch) => flowsCodec.encode({ events: batch }));
    await produceMessages(kafka, topics.flows.topic, partitions);
    const flowMessages = partitions.reduce((sum, list) => sum + list.length, 0);
    const flowBytes = partitions.reduce((sum, list) => sum + list.reduce((bytes, message) => bytes + message.length, 0), 0);

    // The enricher's feed, as the role starts it: read to the end of the topic before any flow is consumed.
    const index = new MetadataIndex({ labels: LABELS, historyNs: BigInt(historyMs) * 1_000_000n });
    const meter = telemetry.meter('bench.enrich-join');
    const metadataFeed = new MetadataFeed({ kafka, topic: topics.metadata.topic, groupId: `${name}-enricher`, codec: metadataCodec, index, holdMs, historyMs, logger, meter });
    feed = metadataFeed;
    const feedStarted = Date.now();
    const feedCpu = cpuSeconds();
    await metadataFeed.start();
    if (!(await metadataFeed.caughtUp(feedStarted))) throw new Error('bench: the metadata feed stopped before it caught up');
    const feedFigures = { cpu_s: round(cpuSeconds() - feedCpu, 3), wall_s: round((Date.now() - feedStarted) / 1000, 3), stats: index.stats() };
    const feedComplete = JSON.stringify(feedFigures.stats) === JSON.stringify(direct.stats());

    client = await createClickHouse({ embeddedPath: dataDir });
    const chdb = client;
    const emptyIndex = new MetadataIndex({ labels: LABELS, historyNs: BigInt(historyMs) * 1_000_000n });
    const database = async (variant: Variant, label: string): Promise<string> => {
      const db = `${name}_${label}`;
      databases.push(db);
      await migrate(chdb, { database: db, ttlDays: 7, directory: variant === 'unjoined' ? unjoinedMigrations : undefined });
      if (variant === 'joined_no_view') await chdb.command({ query: `DROP VIEW ${db}.flow_edges_1m_view` });
      return db;
    };
    const enricher = (variant: Variant, db: string, onStored: (rows: number) => void): Enricher<FlowEvent> => {
      const table = `${db}.flows`;
      const sink = variant === 'unjoined' ? new ClickHouseSink(chdb, table, UNJOINED_COLUMNS) : new ClickHouseSink(chdb, table);
      const counted: EnricherDeps<FlowEvent>['sink'] = {
        insert: async (rows, token) => {
          const result = await sink.insert(rows, token);
          if (result.ok) onStored(rows.length);
          return result;
        },
      };
      const gate =
        variant === 'unjoined'
          ? new MetadataGate({ progress: COMPLETE_METADATA, index: UNJOINED, holdMs, logger, meter })
          : new MetadataGate({ progress: metadataFeed, index: variant === 'empty_index' ? emptyIndex : variant === 'joined_no_labels' ? noLabels : index, holdMs, logger, meter });
      const rows = variant === 'unjoined' ? { ...FLOWS_TABLE, rows: (capacity: number) => new UnjoinedFlowRows(capacity) } : FLOWS_TABLE;
      return new Enricher(enricherDeps(counted, new BatchLedger(chdb, `${db}.kafka_batches`), telemetry, variant, { gate, table: rows }));
    };
    /** The whole topic through the role's consumer into a fresh database; resolves once every event is stored. */
    const consume = async (variant: Variant, db: string): Promise<Ingested> => {
      const groupId = `${db}-group`;
      groups.push(groupId);
      let running = true;
      const consumer = createEventConsumer(kafka, { groupId, batchBytes, flushMs }, () => running);
      try {
        return await measureIngest(E2E_EVENTS, chdb, async () => {
          let stored = 0;
          let allStored: () => void = () => {};
          const done = new Promise<void>((resolve) => (allStored = resolve));
          await consumeEvents(consumer, new Map([[topics.flows.topic, enricher(variant, db, (rows) => (stored += rows) >= E2E_EVENTS && allStored())]]));
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`bench: ${variant} stored ${stored} of ${E2E_EVENTS} events in ${E2E_TIMEOUT_MS} ms`)), E2E_TIMEOUT_MS)));
          await Promise.race([done, timedOut]).finally(() => clearTimeout(timer));
        });
      } finally {
        running = false;
        await consumer.disconnect();
      }
    };

    // 2. Warm-up, untimed, into scratch databases dropped after (their merges must not run into the measured runs).
    for (const variant of new Set(ORDER)) {
      const db = await database(variant, `warm_${variant}`);
      await consume(variant, db);
      await chdb.command({ query: `DROP DATABASE ${db} SYNC` });
    }
    await mergesDone(chdb);
    const runs: Array<{ variant: Variant; database: string } & Ingested> = [];
    for (const [i, variant] of ORDER.entries()) {
      const db = await database(variant, `${variant}_${i}`);
      runs.push({ variant, database: db, ...(await consume(variant, db)) });
    }

    // 3. Verify.
    const of = (variant: Variant) => runs.filter((run) => run.variant === variant);
    const counts = Object.fromEntries(await Promise.all(runs.map(async (run) => [run.database, await count(chdb, `${run.database}.flows`)] as const)));
    const unjoinedColumns = (await queryRows<{ name: string }>(chdb, `SELECT name FROM system.columns WHERE database = '${of('unjoined')[0]!.database}' AND table = 'flows' AND default_kind IN ('', 'DEFAULT') ORDER BY name`)).map((row) => row.name);
    const shared = UNJOINED_COLUMNS.map(([column]) => column).join(', ');
    const differences: Record<string, number> = {};
    for (const run of runs.filter((r) => r.variant !== 'unjoined')) {
      const legacy = `${of('unjoined')[0]!.database}.flows`;
      const side = (a: string, b: string) => `SELECT count() AS n FROM (SELECT ${shared} FROM ${a} EXCEPT SELECT ${shared} FROM ${b})`;
      const [left] = await queryRows<{ n: string }>(chdb, side(`${run.database}.flows`, legacy));
      const [right] = await queryRows<{ n: string }>(chdb, side(legacy, `${run.database}.flows`));
      differences[run.database] = Number(left!.n) + Number(right!.n);
    }
    const ends = async (db: string) =>
      Object.fromEntries(
        (
          await queryRows<{ ends: string; n: string }>(
            chdb,
            `SELECT concat(toString(client_endpoint_kind), '/', toString(client_enrichment), ' -> ', toString(server_endpoint_kind), '/', toString(server_enrichment)) AS ends, count() AS n FROM ${db}.flows GROUP BY ends ORDER BY ends`,
          )
        ).map((row) => [row.ends, Number(row.n)]),
      );
    const sortedExpected = Object.fromEntries(Object.entries(expectedEnds).sort(([a], [b]) => (a < b ? -1 : 1)));
    // The variants that join with the cluster's index: joined, joined_no_labels, joined_no_view.
    const joinedEnds = await Promise.all(runs.filter((run) => run.variant.startsWith('joined')).map((run) => ends(run.database)));
    const labelledRows = await Promise.all(
      of('joined_no_labels').map(async (run) => Number((await queryRows<{ n: string }>(chdb, `SELECT count() AS n FROM ${run.database}.flows WHERE notEmpty(client_labels) OR notEmpty(server_labels)`))[0]!.n)),
    );
    const emptyEnds = await Promise.all(of('empty_index').map((run) => ends(run.database)));
    const sampleMismatches: string[] = [];
    for (const run of of('joined')) {
      const ids = [...sample.keys()].map((id) => `'${id}'`).join(',');
      const rows = await queryRows<Record<string, string>>(
        chdb,
        `SELECT connection_id, client_k8s_pod_uid, client_k8s_workload_kind, client_k8s_workload_name, client_labels['app'] AS client_app,
                server_k8s_pod_uid, server_k8s_workload_name, server_k8s_service_name, server_labels['app'] AS server_app
         FROM ${run.database}.flows WHERE connection_id IN (${ids})`,
      );
      if (rows.length !== sample.size) sampleMismatches.push(`${run.database}: ${rows.length} sampled rows, ${sample.size} expected`);
      for (const row of rows) {
        const flow = sample.get(row.connection_id!)!;
        const want = (prefix: 'client' | 'server', expected: Expected) =>
          expected.kind === 'pod'
            ? { [`${prefix}_k8s_pod_uid`]: expected.uid, [`${prefix}_k8s_workload_name`]: expected.deployment, [`${prefix}_app`]: expected.deployment, ...(prefix === 'server' ? { server_k8s_service_name: expected.service } : { client_k8s_workload_kind: 'Deployment' }) }
            : expected.kind === 'service'
              ? { [`${prefix}_k8s_pod_uid`]: '', [`${prefix}_k8s_service_name`]: expected.service }
              : { [`${prefix}_k8s_pod_uid`]: '', [`${prefix}_k8s_workload_name`]: '' };
        for (const [column, value] of Object.entries({ ...want('client', flow.client), ...want('server', flow.server) })) {
          if (row[column] !== value) sampleMismatches.push(`${run.database} ${row.connection_id} ${column}: got ${row[column]}, want ${value}`);
        }
      }
    }
    const rollups = Object.fromEntries(
      await Promise.all(
        runs
          .filter((run) => run.variant !== 'unjoined')
          // Without its view, the rollup holds nothing: sum() of no rows is 0.
          .map(async (run) => [run.database, Number((await queryRows<{ n: string }>(chdb, `SELECT sum(connections) AS n FROM ${run.database}.flow_edges_1m`))[0]!.n)] as const),
      ),
    );
    const unjoinedTables = (await queryRows<{ name: string }>(chdb, `SELECT name FROM system.tables WHERE database = '${of('unjoined')[0]!.database}' ORDER BY name`)).map((row) => row.name);
    const exact =
      feedComplete &&
      Object.values(counts).every((n) => n === E2E_EVENTS) &&
      JSON.stringify(unjoinedColumns) === JSON.stringify(UNJOINED_COLUMNS.map(([column]) => column).sort()) &&
      JSON.stringify(unjoinedTables) === JSON.stringify(['flows', 'kafka_batches', 'schema_migrations']) &&
      Object.values(differences).every((n) => n === 0) &&
      joinedEnds.every((found) => JSON.stringify(found) === JSON.stringify(sortedExpected)) &&
      emptyEnds.every((found) => Object.keys(found).every((key) => key.split(' -> ').every((end) => end.endsWith('/miss')))) &&
      sample.size >= 100 &&
      sampleMismatches.length === 0 &&
      labelledRows.every((n) => n === 0) &&
      runs.filter((run) => run.variant !== 'unjoined').every((run) => rollups[run.database] === (run.variant === 'joined_no_view' ? 0 : E2E_EVENTS));

    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const middle = sorted.length >> 1;
      return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
    };
    const summary = (variant: Variant) => ({
      rows_per_cpu_s_with_merge_tail: of(variant).map((run) => run.rows_per_cpu_s_with_merge_tail),
      rows_per_cpu_s: of(variant).map((run) => run.rows_per_cpu_s),
      median_with_merge_tail: median(of(variant).map((run) => run.rows_per_cpu_s_with_merge_tail)),
      median: median(of(variant).map((run) => run.rows_per_cpu_s)),
    });
    const variants = Object.fromEntries([...new Set(ORDER)].map((variant) => [variant, summary(variant)])) as Record<Variant, ReturnType<typeof summary>>;
    const ratio = (a: Variant, b: Variant, key: 'median' | 'median_with_merge_tail') => round(variants[a][key] / variants[b][key], 3);
    const joinedVsUnjoined = ratio('joined', 'unjoined', 'median_with_merge_tail');
    return {
      figures: {
        events: E2E_EVENTS,
        flow_messages: flowMessages,
        flow_bytes: flowBytes,
        partitions: PARTITIONS,
        batch_bytes: batchBytes,
        metadata_messages: metadataMessages,
        feed: { ...feedFigures, equals_direct_build: feedComplete },
        order: ORDER,
        runs: runs.map(({ database: db, ...run }) => ({ ...run, database: db.slice(name.length + 1) })),
        ...variants,
        joined_vs_unjoined: joinedVsUnjoined,
        joined_vs_unjoined_before_merge_tail: ratio('joined', 'unjoined', 'median'),
        joined_vs_empty_index: ratio('joined', 'empty_index', 'median_with_merge_tail'),
        empty_index_vs_unjoined: ratio('empty_index', 'unjoined', 'median_with_merge_tail'),
        joined_vs_joined_no_labels: ratio('joined', 'joined_no_labels', 'median_with_merge_tail'),
        joined_vs_joined_no_view: ratio('joined', 'joined_no_view', 'median_with_merge_tail'),
        verify: { counts: Object.values(counts), expected_ends: sortedExpected, joined_ends: joinedEnds, labelled_rows_without_labels: labelledRows, empty_index_ends: emptyEnds, unjoined_tables: unjoinedTables, differences_on_unjoined_columns: Object.values(differences), rollup_connections: Object.values(rollups), sample_rows: sample.size, sample_mismatches: sampleMismatches.slice(0, 5) },
        exact,
        floor: { joined_vs_unjoined_with_merge_tail: FLOOR_JOINED_VS_UNJOINED },
      },
      meets_floor: exact && joinedVsUnjoined >= FLOOR_JOINED_VS_UNJOINED,
    };
  } finally {
    await feed?.stop();
    if (client) {
      for (const db of databases) await client.command({ query: `DROP DATABASE IF EXISTS ${db}` }).catch(() => {});
      await client.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(unjoinedMigrations, { recursive: true, force: true });
    await admin.deleteTopics({ topics: [topics.flows.topic, topics.metadata.topic] }).catch(() => {});
    await admin.deleteGroups(groups).catch(() => {});
    await admin.disconnect();
    await telemetry.shutdown();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const cpuAtStart = cpuTimes();
  const sections: Record<string, Section> = { index: await indexSection(), end_to_end: await endToEndSection() };
  return {
    bench: 'enrich-join',
    ...Object.fromEntries(Object.entries(sections).map(([name, section]) => [name, section.figures])),
    // The end-to-end section's embedded engine is in a directory under tmpdir().
    host_conditions: hostConditions(cpuAtStart, tmpdir()),
    meets_floor: Object.values(sections).every((section) => section.meets_floor),
  };
}
