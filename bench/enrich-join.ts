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
 * A further section (the enricher end to end: Kafka → joined rows, against the unjoined path) adds a function
 * returning a Section and one line in run().
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import type { FlowEvent } from '../src/events/flows.js';
import type { MetadataChange } from '../src/events/metadata.js';
import type { EndpointIdentity, FlowIdentities } from '../src/metadata/index/identity.js';
import { MetadataIndex } from '../src/metadata/index/metadata-index.js';
import { cgroupChange, nodeChange, objectChange, observedFlow, ownerRef, podChange, sec, seeded, serviceChange, sliceChange, tombstone } from '../test/helpers/metadata.js';

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

/** The cluster's timeline: the first generation starts, the rollout replaces some, flows come after. */
const EPOCH = 1_764_000_000n * 1_000_000_000n;
const FIRST_GENERATION = EPOCH;
const ROLLOUT = EPOCH + sec(600);
const LIVE = EPOCH + sec(1200);
const HISTORY = sec(3600);

interface Section {
  figures: Record<string, unknown>;
  meets_floor: boolean;
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
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
function* cluster(): Generator<MetadataChange> {
  for (let n = 0; n < NODES; n++) yield nodeChange({ uid: `node-uid-${n}`, name: `node-${n}`, addresses: [`192.168.0.${n + 1}`], at: EPOCH - sec(3600) });
  for (let ns = 0; ns < NAMESPACES; ns++) yield objectChange('Namespace', { uid: `ns-${ns}`, name: `ns-${ns}`, at: EPOCH - sec(3600) });
  for (let d = 0; d < DEPLOYMENTS; d++) {
    const namespace = `ns-${d % NAMESPACES}`;
    const name = `app-${d}`;
    const rolled = d < ROLLED_OUT;
    yield objectChange('Deployment', { uid: `d-${d}`, name, namespace, at: EPOCH - sec(60) });
    yield serviceChange({ uid: `s-${d}`, name, namespace, clusterIps: [clusterIp(d)], at: EPOCH - sec(60) });
    const generations = rolled ? [0, 1] : [1];
    for (const generation of generations) {
      const rs = ownerRef('ReplicaSet', `${name}-rs${generation}`, `rs-${generation}-${d}`);
      const born = generation === 0 || !rolled ? FIRST_GENERATION : ROLLOUT - sec(5);
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
        yield tombstone(podUid(pod, 0), ROLLOUT);
        yield tombstone(`cgroup/${nodeName(pod)}/${cgroupId(pod, 0)}`, ROLLOUT);
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
function flowBatch(number: number): Flow[] {
  const random = seeded(number + 1);
  const flows: Flow[] = [];
  for (let n = 0; n < BATCH; n++) {
    const i = number * BATCH + n;
    // A tenth before the rollout, among the rolled-out Deployments' pods (the earlier generation).
    const early = i % 10 === 0;
    const pick = () => Math.floor(random() * (early ? ROLLED_OUT : DEPLOYMENTS) * PODS_PER_DEPLOYMENT);
    const start = early ? FIRST_GENERATION + sec(10) + BigInt(Math.floor(random() * 500e9)) : LIVE + BigInt(Math.floor(random() * 600e9));
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

  // A horizon at LIVE, after the rollout: what ended before it is exactly, per earlier pod, its 2 states, its IP
  // claim and its cgroup state; per rolled-out Deployment its slice's first state; per live pod its Pending state.
  const livePods = DEPLOYMENTS * PODS_PER_DEPLOYMENT;
  const expectedDropped = ROLLED_OUT * PODS_PER_DEPLOYMENT * 4 + ROLLED_OUT + livePods;
  const expireCpu = cpuSeconds();
  const dropped = index.expire(LIVE + HISTORY);
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

export async function run(): Promise<Record<string, unknown>> {
  const sections: Record<string, Section> = { index: await indexSection() };
  return {
    bench: 'enrich-join',
    ...Object.fromEntries(Object.entries(sections).map(([name, section]) => [name, section.figures])),
    meets_floor: Object.values(sections).every((section) => section.meets_floor),
  };
}
