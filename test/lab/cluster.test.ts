import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApiException, KubeConfig, KubernetesObjectApi, type KubernetesObject, type V1EndpointSlice, type V1Pod } from '@kubernetes/client-node';
import { cgroup2Root } from '../../src/ebpf/preflight.js';
import { createClusterLab, type ClusterLab } from '../../src/lab/cluster.js';
import { destroyAll } from '../../src/lab/pods.js';
import { records } from '../../src/lab/registry.js';
import { localHost, kubeApiServerPort } from '../../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { runTcpClient, startTcpServer } from '../../src/lab/traffic.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

/** A namespace name no earlier run used (deleted namespaces stay Terminating here). */
const freshNamespace = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
const suffix = '[bcdfghjklmnpqrstvwxz2456789]{5}';
const nodeName = process.env.SIDECARLESS_NODE_NAME ?? hostname();

/** Reads objects back with the client library directly, not through the lab's writer. */
function apiServer(): KubernetesObjectApi {
  const config = new KubeConfig();
  config.loadFromFile(kubeCredentials.kubeconfigFile);
  return KubernetesObjectApi.makeApiClient(config);
}

const apiVersions: Record<string, string> = {
  Pod: 'v1',
  Service: 'v1',
  Namespace: 'v1',
  ReplicaSet: 'apps/v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
  EndpointSlice: 'discovery.k8s.io/v1',
};

async function read<T extends KubernetesObject>(api: KubernetesObjectApi, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
  try {
    return (await api.read({ apiVersion: apiVersions[kind]!, kind, metadata: { name, ...(namespace ? { namespace } : {}) } })) as T;
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return undefined;
    throw error;
  }
}

/** Follows controller references up from the object: kind/name per step, each reference's uid checked against the owner read. */
async function ownerChain(api: KubernetesObjectApi, object: KubernetesObject): Promise<string[]> {
  const chain: string[] = [];
  let current = object;
  for (;;) {
    const refs = current.metadata?.ownerReferences ?? [];
    if (refs.length === 0) return chain;
    assert.equal(refs.length, 1, `${current.kind} ${current.metadata?.name} has one owner`);
    const ref = refs[0]!;
    assert.equal(ref.controller, true);
    const owner = await read(api, ref.kind, current.metadata!.namespace, ref.name);
    assert.ok(owner, `owner ${ref.kind} ${ref.name} exists`);
    assert.equal(owner.metadata!.uid, ref.uid, `the reference to ${ref.kind} ${ref.name} carries its uid`);
    chain.push(`${ref.kind}/${ref.name}`);
    current = owner;
  }
}

async function list<T extends KubernetesObject>(api: KubernetesObjectApi, kind: string, namespace: string, labelSelector?: string): Promise<T[]> {
  return (await api.list(apiVersions[kind]!, kind, namespace, undefined, undefined, undefined, undefined, labelSelector)).items as T[];
}

before(async () => {
  await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
  destroyAll();
});

describe('a lab whose pods are Kubernetes objects', () => {
  const api = apiServer();
  const shop = freshNamespace('shop');
  const ops = freshNamespace('ops');
  let cluster: ClusterLab;

  before(async () => {
    cluster = await createClusterLab({
      name: uniqueName('cluster-'),
      namespaces: [
        { name: shop, labels: { team: 'shop' } },
        { name: ops, labels: { team: 'ops', tier: 'internal' } },
      ],
      services: [
        {
          name: 'payments',
          namespace: shop,
          selector: { app: 'payments' },
          ports: [
            { name: 'http', port: 80, targetPort: 'http' },
            { name: 'metrics', port: 9090, targetPort: 9100 },
          ],
        },
      ],
      pods: [
        { name: 'checkout', namespace: shop, workload: { kind: 'Deployment', name: 'checkout' }, ports: [{ name: 'http', containerPort: 8080 }] },
        { name: 'payments', namespace: shop, workload: { kind: 'StatefulSet', name: 'payments' }, ports: [{ name: 'http', containerPort: 8443 }] },
        { name: 'report', namespace: ops, workload: { kind: 'CronJob', name: 'nightly' } },
        { name: 'agent', namespace: ops, workload: { kind: 'DaemonSet', name: 'node-agent' }, qos: 'burstable' },
        { name: 'migrate', namespace: ops, workload: { kind: 'Job', name: 'migrate' } },
        { name: 'debug', namespace: shop, labels: { app: 'debug', owner: 'sre' }, qos: 'guaranteed' },
      ],
    });
  });
  after(() => cluster?.destroy());

  it('creates the namespaces with their labels', async () => {
    const labels = async (name: string) => (await read(api, 'Namespace', undefined, name))?.metadata?.labels;
    assert.deepEqual(await labels(shop), { team: 'shop', 'kubernetes.io/metadata.name': shop });
    assert.deepEqual(await labels(ops), { team: 'ops', tier: 'internal', 'kubernetes.io/metadata.name': ops });
  });

  it('owns each pod by real workload objects, with the names and labels their controllers give', async () => {
    const pod = (name: string) => read<V1Pod>(api, 'Pod', cluster.pod(name).kubernetes!.namespace, cluster.pod(name).kubernetes!.name).then((p) => p!);

    const checkout = await pod('checkout');
    const hash = checkout.metadata!.labels!['pod-template-hash']!;
    assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    assert.match(checkout.metadata!.name!, new RegExp(`^checkout-${hash}-${suffix}$`));
    assert.deepEqual(checkout.metadata!.labels, { app: 'checkout', 'pod-template-hash': hash });
    assert.deepEqual(await ownerChain(api, checkout), [`ReplicaSet/checkout-${hash}`, 'Deployment/checkout']);

    const payments = await pod('payments');
    assert.equal(payments.metadata!.name, 'payments-0');
    assert.deepEqual(payments.metadata!.labels, { app: 'payments', 'statefulset.kubernetes.io/pod-name': 'payments-0', 'apps.kubernetes.io/pod-index': '0' });
    assert.deepEqual(await ownerChain(api, payments), ['StatefulSet/payments']);

    const report = await pod('report');
    const [jobRef] = report.metadata!.ownerReferences!;
    assert.match(jobRef!.name, /^nightly-\d{8}$/);
    assert.match(report.metadata!.name!, new RegExp(`^${jobRef!.name}-${suffix}$`));
    assert.deepEqual(await ownerChain(api, report), [`Job/${jobRef!.name}`, 'CronJob/nightly']);
    assert.equal(report.metadata!.labels!['job-name'], jobRef!.name);
    assert.equal(report.metadata!.labels!['batch.kubernetes.io/controller-uid'], jobRef!.uid);
    assert.equal(report.spec!.restartPolicy, 'Never');

    const agent = await pod('agent');
    assert.match(agent.metadata!.name!, new RegExp(`^node-agent-${suffix}$`));
    assert.deepEqual(await ownerChain(api, agent), ['DaemonSet/node-agent']);

    const migrate = await pod('migrate');
    assert.match(migrate.metadata!.name!, new RegExp(`^migrate-${suffix}$`));
    assert.deepEqual(await ownerChain(api, migrate), ['Job/migrate']);

    const debug = await pod('debug');
    assert.equal(debug.metadata!.name, 'debug');
    assert.deepEqual(debug.metadata!.labels, { app: 'debug', owner: 'sre' });
    assert.deepEqual(await ownerChain(api, debug), []);
  });

  it('binds every pod to this node, running at its lab address, its container id naming its cgroup the way the kubelet does', async () => {
    const qosClass = { besteffort: 'BestEffort', burstable: 'Burstable', guaranteed: 'Guaranteed' };
    for (const labPod of cluster.pods) {
      const object = (await read<V1Pod>(api, 'Pod', labPod.kubernetes!.namespace, labPod.kubernetes!.name))!;
      assert.equal(object.metadata!.uid, labPod.uid);
      assert.equal(object.spec!.nodeName, nodeName);
      assert.equal(object.status!.phase, 'Running');
      assert.equal(object.status!.podIP, labPod.ip);
      assert.deepEqual(object.status!.podIPs!.map((p) => p.ip), [labPod.ip]);
      assert.equal(object.status!.qosClass, qosClass[labPod.qos]);
      assert.deepEqual(object.status!.conditions!.map((c) => `${c.type}=${c.status}`).sort(), ['ContainersReady=True', 'Initialized=True', 'PodScheduled=True', 'Ready=True']);
      assert.deepEqual(object.status!.containerStatuses!.map((c) => [c.name, c.containerID, c.ready]), [['main', `containerd://${labPod.containerId}`, true]]);

      const uid = labPod.uid.replaceAll('-', '_');
      const slice = labPod.qos === 'guaranteed' ? `kubepods-pod${uid}.slice` : `kubepods-${labPod.qos}.slice/kubepods-${labPod.qos}-pod${uid}.slice`;
      const expected = `/sidecarless-lab-${cluster.id}/kubepods.slice/${slice}/cri-containerd-${labPod.containerId}.scope`;
      assert.equal(labPod.cgroup.path, join(cgroup2Root(), expected));
      assert.equal(labPod.exec('cat', ['/proc/self/cgroup']).split('\n').find((line) => line.startsWith('0::')), `0::${expected}`);
      assert.equal(labPod.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']).split(/\s+/)[3], `${labPod.ip}/24`);
    }
    assert.deepEqual(cluster.pods.map((p) => [p.name, p.qos]), [
      ['checkout', 'besteffort'],
      ['payments', 'besteffort'],
      ['report', 'besteffort'],
      ['agent', 'burstable'],
      ['migrate', 'besteffort'],
      ['debug', 'guaranteed'],
    ]);
  });

  it('gives the Service a cluster IP and an EndpointSlice of the pod it selects, with named and numbered target ports', async () => {
    const service = (await read(api, 'Service', shop, 'payments')) as KubernetesObject & { spec: { clusterIP: string } };
    assert.match(service.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
    const slices = await list<V1EndpointSlice>(api, 'EndpointSlice', shop, 'kubernetes.io/service-name=payments');
    assert.equal(slices.length, 1);
    const [slice] = slices;
    const payments = cluster.pod('payments');
    assert.match(slice!.metadata!.name!, new RegExp(`^payments-${suffix}$`));
    assert.deepEqual(slice!.metadata!.ownerReferences!.map((r) => [r.kind, r.name, r.uid, r.controller]), [['Service', 'payments', service.metadata!.uid, true]]);
    assert.equal(slice!.addressType, 'IPv4');
    assert.deepEqual(slice!.ports!.map((p) => [p.name, p.port, p.protocol]), [
      ['http', 8443, 'TCP'],
      ['metrics', 9100, 'TCP'],
    ]);
    assert.deepEqual(
      slice!.endpoints.map((e) => ({ addresses: e.addresses, ready: e.conditions?.ready, node: e.nodeName, pod: [e.targetRef?.kind, e.targetRef?.name, e.targetRef?.uid] })),
      [{ addresses: [payments.ip], ready: true, node: nodeName, pod: ['Pod', 'payments-0', payments.uid] }],
    );
  });

  it('gives a pod whose named target port differs a slice of its own, and deletes that slice with the pod', async () => {
    const slices = async () =>
      (await list<V1EndpointSlice>(api, 'EndpointSlice', shop, 'kubernetes.io/service-name=payments'))
        .map((slice) => ({ name: slice.metadata!.name!, ports: slice.ports!.map((p) => p.port), pods: slice.endpoints.map((e) => e.targetRef!.name!) }))
        .sort((a, b) => a.pods[0]!.localeCompare(b.pods[0]!));
    const canary = await cluster.addPod({ name: 'payments-canary', namespace: shop, labels: { app: 'payments' }, ports: [{ name: 'http', containerPort: 9443 }] });
    const two = await slices();
    assert.deepEqual(
      two.map((slice) => [slice.ports, slice.pods]),
      [
        [[8443, 9100], ['payments-0']],
        [[9443, 9100], [canary.kubernetes!.name]],
      ],
    );
    await cluster.deletePod('payments-canary');
    assert.deepEqual(await slices(), [two[0]]);
  });

  it('refuses a pod whose workload already has another template, and a taken index, leaving no object behind', async () => {
    await assert.rejects(
      cluster.addPod({ name: 'checkout-2', namespace: shop, workload: { kind: 'Deployment', name: 'checkout' }, labels: { app: 'other' } }),
      /Deployment .*\/checkout has pods with another template/,
    );
    await assert.rejects(cluster.addPod({ name: 'extra', namespace: shop, index: cluster.pod('checkout').index }), /pod checkout holds index 0/);
    assert.equal(await read(api, 'Pod', shop, 'extra'), undefined);
    assert.deepEqual((await list<V1Pod>(api, 'Pod', shop)).length, 3);
  });

  it('deletes a pod at once and gives its address to a pod of another workload, the slice following both', async () => {
    const old = cluster.pod('payments');
    const oldObject = cluster.object('payments');
    const checkout = cluster.pod('checkout');
    await cluster.deletePod('payments');
    assert.equal(await read(api, 'Pod', shop, 'payments-0'), undefined);
    assert.equal(existsSync(old.podCgroupPath), false);
    assert.equal(existsSync(`/run/netns/${old.netns}`), false);
    const emptied = await list<V1EndpointSlice>(api, 'EndpointSlice', shop, 'kubernetes.io/service-name=payments');
    assert.deepEqual(emptied.map((s) => [s.metadata!.name, s.endpoints ?? []]), [[cluster.kube.slicesOf(shop, 'payments')[0]!.metadata!.name, []]]);

    const next = await cluster.addPod({
      name: 'payments-v2',
      namespace: shop,
      workload: { kind: 'Deployment', name: 'payments-v2' },
      labels: { app: 'payments', version: 'v2' },
      ports: [{ name: 'http', containerPort: 8443 }],
      index: old.index,
    });
    assert.equal(next.ip, old.ip);
    assert.notEqual(next.uid, oldObject.metadata!.uid);
    const nextObject = (await read<V1Pod>(api, 'Pod', shop, next.kubernetes!.name))!;
    assert.equal(nextObject.status!.podIP, old.ip);
    assert.match(nextObject.metadata!.name!, new RegExp(`^payments-v2-${nextObject.metadata!.labels!['pod-template-hash']}-${suffix}$`));
    assert.deepEqual(await ownerChain(api, nextObject), [`ReplicaSet/payments-v2-${nextObject.metadata!.labels!['pod-template-hash']}`, 'Deployment/payments-v2']);
    const refilled = await list<V1EndpointSlice>(api, 'EndpointSlice', shop, 'kubernetes.io/service-name=payments');
    assert.deepEqual(
      refilled.map((s) => s.endpoints.map((e) => [e.addresses[0], e.targetRef?.name, e.targetRef?.uid])),
      [[[old.ip, next.kubernetes!.name, next.uid]]],
    );
    assert.equal(refilled[0]!.metadata!.name, emptied[0]!.metadata!.name, 'the slice is kept and rewritten');

    // The address works for the new pod's own namespace.
    const server = await startTcpServer(next, { port: 8443, expectBytes: 10, replyBytes: 20 });
    const client = await runTcpClient(checkout, { host: old.ip, port: 8443, sendBytes: 10, expectBytes: 20 });
    assert.deepEqual([client.completed, client.bytesReceived], [1, 20]);
    assert.deepEqual(await server.stop(), { connections: 1, completed: 1, bytesReceived: 10, bytesSent: 20, peers: [checkout.ip] });
  });
});

describe('destroying a lab whose pods are Kubernetes objects', () => {
  const api = apiServer();
  const kinds = ['Pod', 'EndpointSlice', 'Service', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'];

  /** Every object of those kinds in the namespace, as kind/name. */
  async function objectsIn(namespace: string): Promise<string[]> {
    const found = await Promise.all(kinds.map(async (kind) => (await list(api, kind, namespace)).map((o) => `${kind}/${o.metadata!.name}`)));
    return found.flat().sort();
  }

  async function namespacePhase(name: string): Promise<string | undefined> {
    return ((await read(api, 'Namespace', undefined, name)) as (KubernetesObject & { status?: { phase?: string } }) | undefined)?.status?.phase;
  }

  it('removes pods, slices, services, workloads, cgroups and netns; the namespace stays Terminating', async () => {
    const namespace = freshNamespace('gone');
    const cluster = await createClusterLab({
      name: uniqueName('cluster-destroy-'),
      namespaces: [{ name: namespace }],
      services: [{ name: 'web', namespace, selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] }],
      pods: [
        { name: 'web', namespace, workload: { kind: 'Deployment', name: 'web' } },
        { name: 'db', namespace, workload: { kind: 'StatefulSet', name: 'db' } },
        { name: 'batch', namespace, workload: { kind: 'CronJob', name: 'batch' } },
        { name: 'agent', namespace, workload: { kind: 'DaemonSet', name: 'agent' } },
      ],
    });
    const labCgroup = join(cgroup2Root(), `sidecarless-lab-${cluster.id}`);
    const sleeper = cluster.pod('web').spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => sleeper.on('exit', (_, signal) => resolve(signal)));
    const before = await objectsIn(namespace);
    assert.equal(before.length, 12, before.join('\n'));
    assert.deepEqual(
      before.filter((o) => !o.startsWith('Pod/')).map((o) => o.replace(/-[a-z0-9]+$/, '-*')),
      ['CronJob/batch', 'DaemonSet/agent', 'Deployment/web', 'EndpointSlice/web-*', 'Job/batch-*', 'ReplicaSet/web-*', 'Service/web', 'StatefulSet/db'],
    );
    cluster.destroy();
    assert.deepEqual(await objectsIn(namespace), []);
    assert.equal(await namespacePhase(namespace), 'Terminating');
    assert.equal(existsSync(labCgroup), false);
    assert.equal(cluster.pods.some((p) => existsSync(`/run/netns/${p.netns}`)), false);
    assert.equal(await exited, 'SIGKILL');
    cluster.destroy();
  });

  describe('after its owner process ends', () => {
    const ownerScript = fileURLToPath(new URL('./fixtures/cluster-owner.js', import.meta.url));

    async function startOwner(namespace: string) {
      const child = spawn(process.execPath, [ownerScript, namespace], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
      const line = await Promise.race([
        new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve)),
        ended.then(() => Promise.reject(new Error(`cluster owner ended before its lab was up: ${stderr}`))),
      ]);
      return { child, ended, id: (JSON.parse(line) as { id: string }).id };
    }

    after(() => {
      destroyAll();
    });

    it('SIGTERM: the owner deletes its objects on the way out', async () => {
      const namespace = freshNamespace('owner-term');
      const owner = await startOwner(namespace);
      try {
        assert.equal((await objectsIn(namespace)).length, 5);
        owner.child.kill('SIGTERM');
        assert.deepEqual(await owner.ended, [null, 'SIGTERM']);
        assert.deepEqual(await objectsIn(namespace), []);
        assert.equal(await namespacePhase(namespace), 'Terminating');
        assert.equal(existsSync(join(cgroup2Root(), `sidecarless-lab-${owner.id}`)), false);
      } finally {
        owner.child.kill('SIGKILL');
      }
    });

    it('SIGKILL: the objects stay until destroyAll deletes them', async () => {
      const namespace = freshNamespace('owner-kill');
      const owner = await startOwner(namespace);
      owner.child.kill('SIGKILL');
      await owner.ended;
      assert.equal((await objectsIn(namespace)).length, 5);
      assert.equal(await namespacePhase(namespace), 'Active');
      assert.ok(destroyAll().includes(owner.id));
      assert.deepEqual(await objectsIn(namespace), []);
      assert.equal(await namespacePhase(namespace), 'Terminating');
      assert.equal(existsSync(join(cgroup2Root(), `sidecarless-lab-${owner.id}`)), false);
    });
  });
});

describe('a lab whose API server does not answer', () => {
  it('names the server and how to start it, and leaves nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-kubeconfig-'));
    try {
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, readFileSync(kubeCredentials.kubeconfigFile, 'utf8').replace(`${localHost}:${kubeApiServerPort}`, `${localHost}:1`));
      const name = uniqueName('no-server-');
      await assert.rejects(
        createClusterLab({ name, kubeconfig, pods: [{ name: 'a' }] }),
        new RegExp(`the Kubernetes API server https://127\\.0\\.0\\.1:1 \\(kubeconfig ${kubeconfig}\\) does not answer: .*; start the local stack`),
      );
      assert.deepEqual(records().filter((record) => record.name === name), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
