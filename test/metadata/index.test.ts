import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RejectedValueError } from '../../src/common/errors.js';
import { metadataEvent, watermarkKey, type MetadataChange } from '../../src/events/metadata.js';
import { unnamed, type EndpointIdentity } from '../../src/metadata/index/identity.js';
import { MetadataIndex } from '../../src/metadata/index/metadata-index.js';
import {
  cgroupChange,
  nodeChange,
  objectChange,
  observedFlow,
  ownerRef,
  podChange,
  sec,
  seeded,
  serviceChange,
  sliceChange,
  tombstone,
  type FlowSpec,
} from '../helpers/metadata.js';

const LABELS = ['app', 'version'];

function indexOf(changes: MetadataChange[], historyNs = sec(3600)): MetadataIndex {
  const index = new MetadataIndex({ labels: LABELS, historyNs });
  for (const change of changes) index.apply(change);
  return index;
}

interface PodExpectation {
  namespace?: string;
  pod: string;
  uid: string;
  workload: [kind: string, name: string];
  service?: string;
  node?: string;
  labels?: Record<string, string>;
}

function podIdentity(expected: PodExpectation): EndpointIdentity {
  return {
    ...unnamed('hit', 'pod'),
    k8s_namespace_name: expected.namespace ?? 'shop',
    k8s_pod_name: expected.pod,
    k8s_pod_uid: expected.uid,
    k8s_workload_kind: expected.workload[0],
    k8s_workload_name: expected.workload[1],
    k8s_service_name: expected.service ?? '',
    k8s_node_name: expected.node ?? 'n1',
    labels: expected.labels ?? {},
  };
}

const serviceIdentity = (namespace: string, name: string): EndpointIdentity => ({ ...unnamed('hit', 'service'), k8s_namespace_name: namespace, k8s_service_name: name });
const nodeIdentity = (name: string): EndpointIdentity => ({ ...unnamed('hit', 'node'), k8s_node_name: name });

/** The server end of a flow observed by its client (so the server is named by address alone). */
function serverAt(index: MetadataIndex, server: string, start: bigint, serverPort = 8080): EndpointIdentity {
  return index.joinFlow(observedFlow({ side: 'client', client: '203.0.113.9', server, serverPort, start })).server;
}

/** A Deployment with its ReplicaSet, under uids derived from the name. */
function deployment(name: string, at: bigint): MetadataChange[] {
  return [
    objectChange('Deployment', { uid: `d-${name}`, name, at }),
    objectChange('ReplicaSet', { uid: `rs-${name}`, name: `${name}-5d8f7`, owner: ownerRef('Deployment', name, `d-${name}`), at }),
  ];
}
const rsOf = (name: string) => ownerRef('ReplicaSet', `${name}-5d8f7`, `rs-${name}`);

describe('metadata index', () => {
  describe('IP reuse', () => {
    // p1 (w1) is created at 100 and shows its IP at 101; it is deleted at 200. p2 (w2) is created at 150, before
    // p1's deletion, and shows the same IP at 203: its interval starts at p1's end, not at its own creation.
    const changes = [
      ...deployment('w1', sec(90)),
      ...deployment('w2', sec(90)),
      podChange({ uid: 'p1', name: 'w1-5d8f7-aaaaa', owner: rsOf('w1'), created: sec(100), at: sec(100) }),
      podChange({ uid: 'p1', name: 'w1-5d8f7-aaaaa', owner: rsOf('w1'), ips: ['10.1.0.5'], created: sec(100), at: sec(101) }),
      podChange({ uid: 'p2', name: 'w2-5d8f7-bbbbb', owner: rsOf('w2'), created: sec(150), at: sec(150) }),
      tombstone('p1', sec(200)),
      podChange({ uid: 'p2', name: 'w2-5d8f7-bbbbb', owner: rsOf('w2'), ips: ['10.1.0.5'], created: sec(150), at: sec(203) }),
    ];
    const p1 = podIdentity({ pod: 'w1-5d8f7-aaaaa', uid: 'p1', workload: ['Deployment', 'w1'] });
    const p2 = podIdentity({ pod: 'w2-5d8f7-bbbbb', uid: 'p2', workload: ['Deployment', 'w2'] });

    it('names p1 before the switch and p2 after it, both ways round', () => {
      const index = indexOf(changes);
      const cases: Array<[bigint, EndpointIdentity]> = [
        [sec(99), unnamed('miss', 'unknown')], // before p1 existed
        [sec(100) + 500_000_000n, p1], // backfilled to p1's creation: the IP was assigned before the status showed it
        [sec(150), p1],
        [sec(200) - 1n, p1],
        [sec(200), p2], // p2's interval starts at p1's end, though p2 showed the IP only at 203
        [sec(202), p2],
        [sec(250), p2],
      ];
      for (const [start, expected] of cases) {
        assert.deepEqual(serverAt(index, '10.1.0.5', start), expected, `server at ${start}`);
        const asClient = index.joinFlow(observedFlow({ side: 'server', node: 'n9', client: '10.1.0.5', server: '203.0.113.7', start })).client;
        assert.deepEqual(asClient, expected, `client at ${start}`);
      }
    });

    it('gives the same answers when p2 arrives before p1, whatever the order across keys', () => {
      const forward = indexOf(changes);
      const byKey = new Map<string, MetadataChange[]>();
      for (const change of changes) byKey.set(change.key, [...(byKey.get(change.key) ?? []), change]);
      const reversed = indexOf([...byKey.values()].reverse().flat());
      for (let s = 95; s <= 260; s++) {
        assert.deepEqual(serverAt(reversed, '10.1.0.5', sec(s)), serverAt(forward, '10.1.0.5', sec(s)), `at ${s}s`);
      }
      assert.deepEqual(reversed.stats(), forward.stats());
    });

    it('keeps a holder that has not released the address: the next one starts when it ends', () => {
      // p2 shows the IP at 150, while p1 (not yet deleted) still lists it: p1 keeps it until its deletion at 200.
      const index = indexOf([
        podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], created: sec(100), at: sec(100) }),
        podChange({ uid: 'p2', name: 'b', ips: ['10.1.0.5'], created: sec(140), at: sec(150) }),
        tombstone('p1', sec(200)),
      ]);
      assert.equal(serverAt(index, '10.1.0.5', sec(170)).k8s_pod_name, 'a');
      assert.equal(serverAt(index, '10.1.0.5', sec(200)).k8s_pod_name, 'b');
    });

    it('releases the IP of a pod that ran to completion, though its status still lists it', () => {
      const index = indexOf([
        podChange({ uid: 'job-pod', name: 'report-1-xk2p9', ips: ['10.1.0.9'], created: sec(100), at: sec(100) }),
        podChange({ uid: 'job-pod', name: 'report-1-xk2p9', ips: ['10.1.0.9'], phase: 'Succeeded', created: sec(100), at: sec(300) }),
        podChange({ uid: 'next', name: 'web-0', ips: ['10.1.0.9'], created: sec(305), at: sec(306) }),
      ]);
      assert.equal(serverAt(index, '10.1.0.9', sec(299)).k8s_pod_name, 'report-1-xk2p9');
      assert.deepEqual(serverAt(index, '10.1.0.9', sec(302)), unnamed('miss', 'unknown'));
      assert.equal(serverAt(index, '10.1.0.9', sec(305)).k8s_pod_name, 'web-0');
    });
  });

  it('gives the same answers for any interleaving of keys (per-key order kept)', () => {
    const random = seeded(7);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const byKey = new Map<string, MetadataChange[]>();
    const add = (change: MetadataChange) => byKey.set(change.key, [...(byKey.get(change.key) ?? []), change]);
    const ips = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4'];
    for (const name of ['web', 'api', 'db']) for (const change of deployment(name, sec(0))) add(change);
    add(serviceChange({ uid: 's-api', name: 'api', clusterIps: ['10.96.0.1'], at: sec(5) }));
    add(nodeChange({ uid: 'node-n1', name: 'n1', addresses: ['192.168.1.10'], at: sec(0) }));
    // 40 pods over 4 IPs, with overlapping lives, relabels, terminal phases; slices and cgroups following them.
    for (let i = 0; i < 40; i++) {
      const uid = `pod-${i}`;
      const workload = pick(['web', 'api', 'db']);
      const created = sec(10 * i + Math.floor(random() * 10));
      const base = { uid, name: `${workload}-5d8f7-${i}`, owner: rsOf(workload), created, ips: [pick(ips)] };
      add(podChange({ ...base, ips: [], at: created }));
      add(podChange({ ...base, labels: { app: workload, version: 'v1' }, at: created + sec(1) }));
      if (random() < 0.5) add(podChange({ ...base, labels: { app: workload, version: 'v2' }, at: created + sec(5) }));
      if (random() < 0.2) add(podChange({ ...base, phase: 'Succeeded', at: created + sec(8) }));
      add(sliceChange({ uid: `es-${i}`, service: workload, endpoints: [{ podUid: uid, addresses: base.ips }], ports: [pick([8080, 9090])], at: created + sec(2) }));
      add(cgroupChange({ node: 'n1', id: BigInt(1000 + i), podUid: uid, at: created + sec(1) }));
      const end = created + sec(15 + Math.floor(random() * 30));
      add(tombstone(uid, end));
      add(tombstone(`es-${i}`, end));
      add(tombstone(`cgroup/n1/${1000 + i}`, end + sec(1)));
    }
    const keys = [...byKey.keys()];
    const interleave = (order: () => number) => {
      const queues = keys.map((key) => [...byKey.get(key)!]);
      const out: MetadataChange[] = [];
      while (queues.some((queue) => queue.length > 0)) {
        const open = queues.filter((queue) => queue.length > 0);
        out.push(open[Math.floor(order() * open.length)]!.shift()!);
      }
      return out;
    };
    const answers = (index: MetadataIndex) => {
      const seen: EndpointIdentity[] = [];
      for (let s = 0; s < 460; s += 3) {
        for (const ip of [...ips, '10.96.0.1', '192.168.1.10']) {
          const start = sec(s);
          const flows = [
            observedFlow({ side: 'client', client: '10.9.9.9', server: ip, serverPort: 8080, start }),
            observedFlow({ side: 'server', cgroup: BigInt(1000 + (s % 40)), client: ip, server: '10.9.9.8', serverPort: 9090, start }),
          ];
          for (const flow of flows) {
            const joined = index.joinFlow(flow);
            seen.push(joined.client, joined.server);
          }
        }
      }
      return seen;
    };
    const reference = indexOf(keys.flatMap((key) => byKey.get(key)!));
    const expected = answers(reference);
    assert.ok(expected.filter((identity) => identity.kind === 'pod').length > 500, 'the scenario names many pods');
    assert.ok(expected.some((identity) => identity.k8s_service_name === 'web' && identity.kind === 'pod'));
    for (let run = 0; run < 5; run++) {
      const index = indexOf(interleave(seeded(100 + run)));
      assert.deepEqual(answers(index), expected, `interleaving ${run}`);
      assert.deepEqual(index.stats(), reference.stats());
    }
  });

  it('gives the labels (allow-listed) a pod had at the flow time', () => {
    const labels = (version: string) => ({ app: 'checkout', version, team: 'payments' });
    const index = indexOf([
      podChange({ uid: 'p1', name: 'checkout', ips: ['10.1.0.5'], labels: labels('v1'), at: sec(100) }),
      podChange({ uid: 'p1', name: 'checkout', ips: ['10.1.0.5'], labels: labels('v2'), at: sec(200) }),
    ]);
    const expected = (version: string) => podIdentity({ pod: 'checkout', uid: 'p1', workload: ['Pod', 'checkout'], labels: { app: 'checkout', version } });
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(150)), expected('v1'));
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(200) - 1n), expected('v1'));
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(200)), expected('v2'));
  });

  describe('workloads', () => {
    const at = sec(100);
    const later = sec(110);
    const workloadOf = (changes: MetadataChange[], pod: MetadataChange, time = later) => {
      const identity = serverAt(indexOf([...changes, pod]), '10.1.0.5', time);
      return [identity.k8s_workload_kind, identity.k8s_workload_name];
    };
    const pod = (owner: ReturnType<typeof ownerRef> | null) => podChange({ uid: 'p', name: 'the-pod', ips: ['10.1.0.5'], owner, at });

    it('ReplicaSet → Deployment', () => {
      assert.deepEqual(workloadOf(deployment('checkout', at), pod(rsOf('checkout'))), ['Deployment', 'checkout']);
    });

    it('a bare pod', () => {
      assert.deepEqual(workloadOf([], pod(null)), ['Pod', 'the-pod']);
    });

    it('StatefulSet and DaemonSet', () => {
      const sts = objectChange('StatefulSet', { uid: 'sts', name: 'postgres', at });
      assert.deepEqual(workloadOf([sts], pod(ownerRef('StatefulSet', 'postgres', 'sts'))), ['StatefulSet', 'postgres']);
      const ds = objectChange('DaemonSet', { uid: 'ds', name: 'node-exporter', at });
      assert.deepEqual(workloadOf([ds], pod(ownerRef('DaemonSet', 'node-exporter', 'ds'))), ['DaemonSet', 'node-exporter']);
    });

    it('Job → CronJob, and a Job of its own', () => {
      const cron = [
        objectChange('CronJob', { uid: 'cj', name: 'nightly-report', at }),
        objectChange('Job', { uid: 'job', name: 'nightly-report-29001', owner: ownerRef('CronJob', 'nightly-report', 'cj'), at }),
      ];
      assert.deepEqual(workloadOf(cron, pod(ownerRef('Job', 'nightly-report-29001', 'job'))), ['CronJob', 'nightly-report']);
      const job = objectChange('Job', { uid: 'job2', name: 'migrate-db', at });
      assert.deepEqual(workloadOf([job], pod(ownerRef('Job', 'migrate-db', 'job2'))), ['Job', 'migrate-db']);
    });

    it('an owner whose object is unknown: the reference itself', () => {
      assert.deepEqual(workloadOf([], pod(ownerRef('ReplicaSet', 'gone-7c9d', 'rs-unknown'))), ['ReplicaSet', 'gone-7c9d']);
      // The ReplicaSet is known, its Deployment is not: the Deployment's name comes from the reference.
      const orphanedRs = objectChange('ReplicaSet', { uid: 'rs', name: 'api-6b4f', owner: ownerRef('Deployment', 'api', 'd-unknown'), at });
      assert.deepEqual(workloadOf([orphanedRs], pod(ownerRef('ReplicaSet', 'api-6b4f', 'rs'))), ['Deployment', 'api']);
    });

    it("follows the ReplicaSet's owner as it was at the flow's time (adopted later)", () => {
      const changes = [
        objectChange('ReplicaSet', { uid: 'rs', name: 'api-6b4f', at }),
        objectChange('Deployment', { uid: 'd', name: 'api', at: sec(120) }),
        objectChange('ReplicaSet', { uid: 'rs', name: 'api-6b4f', owner: ownerRef('Deployment', 'api', 'd'), at: sec(130) }),
      ];
      const podChangeOfRs = pod(ownerRef('ReplicaSet', 'api-6b4f', 'rs'));
      const index = indexOf([...changes, podChangeOfRs]);
      const first = serverAt(index, '10.1.0.5', sec(125));
      assert.deepEqual([first.k8s_workload_kind, first.k8s_workload_name], ['ReplicaSet', 'api-6b4f']);
      const second = serverAt(index, '10.1.0.5', sec(130));
      assert.deepEqual([second.k8s_workload_kind, second.k8s_workload_name], ['Deployment', 'api']);
      // Cached per state, but not across workloads: asking about the earlier time again still says ReplicaSet.
      assert.equal(serverAt(index, '10.1.0.5', sec(125)).k8s_workload_kind, 'ReplicaSet');
    });
  });

  describe('Services', () => {
    it('names a ClusterIP by its Service while the Service exists', () => {
      const index = indexOf([serviceChange({ uid: 's1', name: 'payments', namespace: 'billing', clusterIps: ['10.96.0.10', 'fd00:96::10'], at: sec(100) }), tombstone('s1', sec(200))]);
      assert.deepEqual(serverAt(index, '10.96.0.10', sec(150)), serviceIdentity('billing', 'payments'));
      assert.deepEqual(serverAt(index, 'fd00:96::10', sec(150)), serviceIdentity('billing', 'payments'));
      assert.deepEqual(serverAt(index, '10.96.0.10', sec(200)), unnamed('miss', 'unknown'));
    });

    it('names the Service a server pod backs on the port; alphabetically first of several; none on the client side', () => {
      const index = indexOf([
        podChange({ uid: 'p1', name: 'payments-0', ips: ['10.1.0.5'], at: sec(100) }),
        podChange({ uid: 'p2', name: 'client-0', ips: ['10.1.0.6'], at: sec(100) }),
        sliceChange({ uid: 'es-pay', service: 'payments', endpoints: [{ podUid: 'p1', addresses: ['10.1.0.5'] }], ports: [8080], at: sec(100) }),
        sliceChange({ uid: 'es-zeta', service: 'zeta', endpoints: [{ podUid: 'p1', addresses: ['10.1.0.5'] }], ports: [], at: sec(100) }),
        sliceChange({ uid: 'es-alpha', service: 'alpha', endpoints: [{ podUid: 'p1', addresses: ['10.1.0.5'] }], ports: [9999], at: sec(100) }),
        // p1 leaves the payments slice at 200.
        sliceChange({ uid: 'es-pay', service: 'payments', endpoints: [], ports: [8080], at: sec(200) }),
      ]);
      const join = (serverPort: number, start: bigint) => index.joinFlow(observedFlow({ side: 'client', client: '10.1.0.6', server: '10.1.0.5', serverPort, start }));
      const payments = join(8080, sec(150)).server;
      assert.deepEqual(payments, podIdentity({ pod: 'payments-0', uid: 'p1', workload: ['Pod', 'payments-0'], service: 'payments' })); // payments < zeta (no ports: every port)
      assert.equal(join(9090, sec(150)).server.k8s_service_name, 'zeta'); // payments lists 8080 only
      assert.equal(join(9999, sec(150)).server.k8s_service_name, 'alpha');
      assert.equal(join(8080, sec(160)).server, payments); // the same identity again, though the pod served others since
      assert.equal(join(8080, sec(200)).server.k8s_service_name, 'zeta'); // no longer in payments' slice
      assert.equal(join(8080, sec(150)).client.k8s_service_name, '');
      assert.equal(join(8080, sec(99)).server.k8s_service_name, ''); // before the slices began (and the pod)
    });

    it('matches a slice endpoint without a pod reference by address', () => {
      const index = indexOf([
        podChange({ uid: 'p1', name: 'legacy-0', ips: ['10.1.0.5'], at: sec(100) }),
        sliceChange({ uid: 'es', service: 'legacy', endpoints: [{ addresses: ['10.1.0.5'] }], ports: [8080], at: sec(100) }),
        tombstone('es', sec(200)),
      ]);
      assert.equal(serverAt(index, '10.1.0.5', sec(150)).k8s_service_name, 'legacy');
      assert.equal(serverAt(index, '10.1.0.5', sec(150), 8081).k8s_service_name, '');
      assert.equal(serverAt(index, '10.1.0.5', sec(200)).k8s_service_name, '');
    });
  });

  describe('the observing side', () => {
    // hostnet-pod runs with the node's network: its address is the node's, 192.168.1.10.
    const changes = [
      nodeChange({ uid: 'node-n1', name: 'n1', addresses: ['192.168.1.10'], at: sec(10) }),
      podChange({ uid: 'hostnet', name: 'node-agent-x7', node: 'n1', ips: ['192.168.1.10'], hostNetwork: true, owner: ownerRef('DaemonSet', 'node-agent', 'ds'), at: sec(100) }),
      podChange({ uid: 'pa', name: 'a-0', ips: ['10.1.0.5'], at: sec(100) }),
      podChange({ uid: 'pb', name: 'b-0', ips: ['10.1.0.6'], at: sec(100) }),
      cgroupChange({ node: 'n1', id: 777n, podUid: 'hostnet', at: sec(105) }),
      cgroupChange({ node: 'n1', id: 778n, podUid: 'pa', at: sec(105) }),
      cgroupChange({ node: 'n1', id: 779n, podUid: null, at: sec(105) }), // a system service's cgroup
      tombstone('cgroup/n1/778', sec(300)),
    ];
    const hostnet = podIdentity({ pod: 'node-agent-x7', uid: 'hostnet', workload: ['DaemonSet', 'node-agent'] });
    const local = (spec: Partial<FlowSpec>) => indexOf(changes).joinFlow(observedFlow({ side: 'client', client: '192.168.1.10', server: '10.1.0.6', start: sec(150), ...spec }));

    it('is named by its cgroup first: a host-network pod, not its node', () => {
      assert.deepEqual(local({ cgroup: 777n }).client, hostnet);
      assert.deepEqual(local({ cgroup: 777n, start: sec(102) }).client, hostnet); // the cgroup's first state reaches back
      // Seen from the server's side, the same cgroup names the server end.
      const served = indexOf(changes).joinFlow(observedFlow({ side: 'server', cgroup: 777n, client: '10.1.0.6', server: '192.168.1.10', start: sec(150) }));
      assert.deepEqual(served.server, hostnet);
      assert.deepEqual(served.client, podIdentity({ pod: 'b-0', uid: 'pb', workload: ['Pod', 'b-0'] }));
    });

    it('falls back to its address: an unknown cgroup, one of no pod, one of another node, one deleted', () => {
      assert.deepEqual(local({ cgroup: 900n }).client, nodeIdentity('n1'));
      assert.deepEqual(local({ cgroup: 779n }).client, nodeIdentity('n1'));
      assert.deepEqual(local({ cgroup: 777n, node: 'n2' }).client, nodeIdentity('n1'));
      assert.equal(local({ cgroup: 778n, client: '10.1.0.6', start: sec(299) }).client.k8s_pod_name, 'a-0'); // cgroup beats the address
      assert.equal(local({ cgroup: 778n, client: '10.1.0.6', start: sec(300) }).client.k8s_pod_name, 'b-0');
    });

    it('names the far side by its address only: the cgroup id is the observer\'s', () => {
      assert.deepEqual(local({ cgroup: 778n }).server, podIdentity({ pod: 'b-0', uid: 'pb', workload: ['Pod', 'b-0'] }));
    });
  });

  it('reads IPv4-mapped and non-canonical IPv6 text as the address it is', () => {
    const index = indexOf([
      podChange({ uid: 'p4', name: 'v4-pod', ips: ['::ffff:10.1.0.7'], at: sec(100) }),
      podChange({ uid: 'p6', name: 'v6-pod', ips: ['fd00:1::7'], at: sec(100) }),
    ]);
    assert.equal(serverAt(index, '10.1.0.7', sec(150)).k8s_pod_name, 'v4-pod');
    assert.equal(serverAt(index, '::ffff:10.1.0.7', sec(150)).k8s_pod_name, 'v4-pod');
    assert.equal(serverAt(index, 'FD00:1:0:0:0:0:0:7', sec(150)).k8s_pod_name, 'v6-pod');
    assert.equal(serverAt(index, 'fd00:1::7', sec(150)).k8s_pod_name, 'v6-pod');
  });

  it('takes a tombstone (millisecond resolution) before its last state, or a change time that went back, as the last state\'s time', () => {
    const index = indexOf([
      podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'a', version: 'v1' }, at: sec(100) }),
      podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'a', version: 'v2' }, at: sec(150) }),
      // The source's clock stepped back: this state replaces the one of 150.
      podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'a', version: 'v3' }, at: sec(149) }),
      podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'a', version: 'v4' }, at: sec(200) + 500_000n }),
      tombstone('p1', sec(200)),
    ]);
    const version = (start: bigint) => serverAt(index, '10.1.0.5', start).labels.version;
    assert.equal(version(sec(149)), 'v1');
    assert.equal(version(sec(150)), 'v3');
    assert.equal(version(sec(200) + 499_999n), 'v3');
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(200) + 500_000n), unnamed('miss', 'unknown')); // the last state never lasted
  });

  it('ends an object at its tombstone; a tombstone of an unknown or deleted key changes nothing', () => {
    const index = indexOf([podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], at: sec(100) }), tombstone('p1', sec(200)), tombstone('p1', sec(500)), tombstone('never-seen', sec(200))]);
    assert.equal(serverAt(index, '10.1.0.5', sec(200) - 1n).k8s_pod_name, 'a');
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(200)), unnamed('miss', 'unknown'));
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(400)), unnamed('miss', 'unknown'));
    assert.deepEqual(index.stats(), { objects: 1, addressIntervals: 1, cgroupIntervals: 0 });
  });

  it('tells external from unknown addresses on a miss', () => {
    const index = indexOf([]);
    const kinds = ['8.8.8.8', '10.2.3.4', '172.16.0.1', '172.31.255.1', '172.32.0.1', '192.168.7.1', '192.169.0.1', '127.0.0.1', '::1', 'fd12::5', 'fc00::1', '2001:db8::1', '::ffff:8.8.4.4'].map(
      (address) => [address, serverAt(index, address, sec(1)).kind],
    );
    assert.deepEqual(kinds, [
      ['8.8.8.8', 'external'],
      ['10.2.3.4', 'unknown'],
      ['172.16.0.1', 'unknown'],
      ['172.31.255.1', 'unknown'],
      ['172.32.0.1', 'external'],
      ['192.168.7.1', 'unknown'],
      ['192.169.0.1', 'external'],
      ['127.0.0.1', 'unknown'],
      ['::1', 'unknown'],
      ['fd12::5', 'unknown'],
      ['fc00::1', 'unknown'],
      ['2001:db8::1', 'external'],
      ['::ffff:8.8.4.4', 'external'],
    ]);
    assert.equal(serverAt(index, '8.8.8.8', sec(1)).status, 'miss');
  });

  it('expire() drops what ended before the horizon, counts it, and forgets deleted objects', () => {
    const index = indexOf(
      [
        podChange({ uid: 'p1', name: 'old', ips: ['10.1.0.5'], at: sec(100) }),
        podChange({ uid: 'p1', name: 'old', ips: ['10.1.0.5'], labels: { app: 'x' }, at: sec(150) }),
        tombstone('p1', sec(200)),
        podChange({ uid: 'p2', name: 'new', ips: ['10.1.0.5'], at: sec(210) }),
        podChange({ uid: 'p2', name: 'new', ips: ['10.1.0.5'], labels: { app: 'y' }, at: sec(400) }),
        cgroupChange({ node: 'n1', id: 5n, podUid: 'p1', at: sec(100) }),
        tombstone('cgroup/n1/5', sec(200)),
      ],
      sec(250),
    );
    assert.deepEqual(index.stats(), { objects: 2, addressIntervals: 2, cgroupIntervals: 1 });
    // Horizon 150: nothing ended before it (p1's first state ended at 150 exactly).
    assert.equal(index.expire(sec(400)), 0);
    // Horizon 200: p1's first state.
    assert.equal(index.expire(sec(450)), 1);
    assert.deepEqual(index.stats(), { objects: 2, addressIntervals: 2, cgroupIntervals: 1 });
    // Horizon 450: p1's last state, its claim on the IP, the cgroup's state, and p2's state that ended at 400.
    assert.equal(index.expire(sec(700)), 4);
    assert.deepEqual(index.stats(), { objects: 1, addressIntervals: 1, cgroupIntervals: 0 });
    assert.equal(index.expire(sec(700)), 0);
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(190)), unnamed('miss', 'unknown'));
    assert.deepEqual(serverAt(index, '10.1.0.5', sec(500)), podIdentity({ pod: 'new', uid: 'p2', workload: ['Pod', 'new'], labels: { app: 'y' } }));
  });

  it('returns shared frozen identities', () => {
    const index = indexOf([podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'a' }, at: sec(100) })]);
    const first = serverAt(index, '10.1.0.5', sec(150));
    assert.equal(serverAt(index, '10.1.0.5', sec(160)), first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.labels));
    assert.ok(Object.isFrozen(serverAt(index, '8.8.8.8', sec(150))));
  });

  it('ignores watermarks and refuses an event without the part its kind needs', () => {
    const index = indexOf([]);
    index.apply({ key: watermarkKey('kubernetes/test'), event: metadataEvent({ object_key: watermarkKey('kubernetes/test'), kind: 'Watermark', source: 'kubernetes/test', change_time_ns: sec(5) }) });
    assert.deepEqual(index.stats(), { objects: 0, addressIntervals: 0, cgroupIntervals: 0 });
    const podless = { key: 'p1', event: metadataEvent({ object_key: 'p1', kind: 'Pod', source: 'kubernetes/test', change_time_ns: sec(5) }) };
    assert.throws(
      () => index.apply(podless),
      (error: unknown) => error instanceof RejectedValueError && error.context.field === 'pod' && /p1: a Pod event without its pod part/.test(error.message),
    );
    assert.deepEqual(index.stats(), { objects: 0, addressIntervals: 0, cgroupIntervals: 0 });
  });
});
