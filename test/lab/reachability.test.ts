/**
 * The lab's cluster descriptions (issue 10, item 7): Kubernetes manifests of Namespaces and Pods brought up as real
 * API objects and network-namespace pods serving their declared ports, and the reachability matrix between them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ApiException, KubeConfig, KubernetesObjectApi, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import { DecodeError } from '../../src/common/errors.js';
import { describeCluster, parseClusterDescription } from '../../src/lab/cluster-description.js';
import { destroyAll } from '../../src/lab/pods.js';
import { formatMatrix, probeMatrix, reached, startDescribedCluster, type DescribedCluster, type ReachabilityMatrix } from '../../src/lab/reachability.js';
import { localHost, kubeApiServerPort } from '../../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { requireStackService } from '../helpers/stack.js';

function refusal(text: string): DecodeError {
  try {
    parseClusterDescription(text, 'cluster.yaml');
  } catch (error) {
    assert.ok(error instanceof DecodeError, `a DecodeError, not ${String(error)}`);
    return error;
  }
  assert.fail('the description was accepted');
}

const namespaceX = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels: {ns: x}\n';
const pod = (spec: string) => `${namespaceX}---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec:\n  containers:\n  - name: c\n    ports:\n${spec}`;

describe('cluster descriptions', () => {
  it('reads namespaces with labels and pods with labels and their declared ports, named ones included', () => {
    const text = `${namespaceX}---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - name: web
    ports:
    - {containerPort: 80, name: serve-80-tcp}
    - {containerPort: 53, protocol: UDP, name: serve-53-udp}
  - name: side
    ports: [{containerPort: 81}]
`;
    assert.deepEqual(parseClusterDescription(text, 'cluster.yaml'), {
      namespaces: [{ name: 'x', labels: { ns: 'x' } }],
      pods: [
        {
          namespace: 'x',
          name: 'a',
          labels: { pod: 'a' },
          ports: [
            { port: 80, protocol: 'TCP', name: 'serve-80-tcp' },
            { port: 53, protocol: 'UDP', name: 'serve-53-udp' },
            { port: 81, protocol: 'TCP' },
          ],
        },
      ],
    });
  });

  it('builds in code what the manifests describe, and refuses a pod of an undescribed namespace', () => {
    const text = `${namespaceX}---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP, name: dns}]}]}\n`;
    assert.deepEqual(describeCluster({ x: { ns: 'x' } }, [{ namespace: 'x', name: 'a', ports: [80, { port: 53, protocol: 'UDP', name: 'dns' }] }]), parseClusterDescription(text, 'cluster.yaml'));
    assert.throws(() => describeCluster({}, [{ namespace: 'x', name: 'a' }]), /Pod x\/a: metadata.namespace x is not a Namespace of the description/);
  });

  it('refuses what it cannot bring up, naming the document and the field', () => {
    const cases: Array<[text: string, field: string, message: RegExp]> = [
      [pod('    - {containerPort: 70000}\n'), 'spec.containers[0].ports[0].containerPort', /document 2 \(line 7\): spec\.containers\[0\]\.ports\[0\]\.containerPort: 70000 is not a port/],
      [pod('    - {containerPort: 80, protocol: SCTP}\n'), 'spec.containers[0].ports[0].protocol', /the lab serves TCP and UDP, not "SCTP"/],
      [pod('    - {containerPort: 80}\n    - {containerPort: 80, protocol: TCP}\n'), 'spec.containers[0].ports[1].containerPort', /TCP\/80 is declared twice/],
      [pod('    - {containerPort: 80, name: web}\n    - {containerPort: 81, name: web}\n'), 'spec.containers[0].ports[1].name', /"web" names two ports/],
      [pod('    - {containerPort: "80"}\n'), 'spec.containers[0].ports[0].containerPort', /containerPort: expected a number, got "80"/],
      [`${namespaceX}---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x}\n`, 'kind', /document 2 \(line 7\): kind: a cluster description holds Namespaces and Pods, not a Service/],
      ['apiVersion: v1\nkind: Namespace\nmetadata: {name: X_1}\n', 'metadata.name', /"X_1" is not a DNS label/],
      ['apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: nowhere}\n', 'metadata.namespace', /Pod nowhere\/a: metadata.namespace nowhere is not a Namespace of the description/],
      [`${namespaceX}---\n${namespaceX}`, 'metadata.name', /Namespace x is described twice/],
      ['kind: Namespace\nmetadata: {name: [x\n', 'document 1', /document 1: line \d+, column \d+/],
    ];
    for (const [text, field, message] of cases) {
      const error = refusal(text);
      assert.equal(error.context.field, field, `${error.message}`);
      assert.match(error.message, message);
      assert.match(error.message, /^cluster\.yaml: /);
    }
  });
});

describe('a described cluster, probed', () => {
  const id = `${Date.now().toString(36).slice(-5)}${randomBytes(2).toString('hex')}`;
  const x = `x-${id}`;
  const y = `y-${id}`;
  const description = parseClusterDescription(
    `apiVersion: v1
kind: Namespace
metadata: {name: ${x}, labels: {ns: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ${y}, labels: {ns: y}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ${x}, labels: {pod: a}}
spec:
  containers:
  - name: c
    ports: [{containerPort: 80, name: serve-80-tcp}, {containerPort: 53, protocol: UDP, name: serve-53-udp}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ${x}, labels: {pod: b}}
spec:
  containers:
  - name: c
    ports: [{containerPort: 80}, {containerPort: 81, name: serve-81-tcp}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ${y}, labels: {pod: a}}
spec:
  containers:
  - name: c
    ports: [{containerPort: 81}]
`,
    'probe.yaml',
  );
  let described: DescribedCluster | undefined;
  let api: KubernetesObjectApi;

  before(async () => {
    await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
    const config = new KubeConfig();
    config.loadFromFile(kubeCredentials.kubeconfigFile);
    api = KubernetesObjectApi.makeApiClient(config);
    described = await startDescribedCluster(description, { name: `reach-${id}` });
  });
  after(async () => {
    await described?.destroy();
    destroyAll();
  });

  /** Rows "from → to=outcome[:answeredBy]" for every cell, so a failure shows the whole matrix. */
  const cells = (matrix: ReachabilityMatrix) =>
    matrix.pods.flatMap((from) => matrix.pods.map((to) => `${from} → ${to}=${matrix.answers[from]![to]!.outcome}${reached(matrix, from, to) ? '' : `:${matrix.answers[from]![to]!.answeredBy ?? ''}`}`));

  it('creates the pods as API objects with their labels and declared ports', async () => {
    const read = async (namespace: string, name: string) => (await api.read({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace, name } })) as V1Pod;
    const a = await read(x, 'a');
    assert.deepEqual(a.metadata!.labels, { pod: 'a' });
    assert.deepEqual(
      a.spec!.containers.flatMap((c) => c.ports ?? []).map((p) => `${p.protocol}/${p.containerPort}/${p.name ?? ''}`),
      ['TCP/80/serve-80-tcp', 'UDP/53/serve-53-udp'],
    );
    assert.equal(a.status!.podIP, described!.pods.get(`${x}/a`)!.ip);
    assert.equal((await read(y, 'a')).status!.podIP, described!.pods.get(`${y}/a`)!.ip);
    const namespace = (await api.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: y } })) as V1Namespace;
    assert.equal(namespace.metadata!.labels!.ns, 'y');
  });

  it('draws every pod to every pod on a port: served ports answer with the very pod, others refuse', async () => {
    const expected = (served: string[]) => description.pods.flatMap((from) => description.pods.map((to) => [`${from.namespace}/${from.name}`, `${to.namespace}/${to.name}`, served.includes(`${to.namespace}/${to.name}`)] as const));
    for (const [port, protocol, served] of [
      [80, 'TCP', [`${x}/a`, `${x}/b`]],
      [81, 'TCP', [`${x}/b`, `${y}/a`]],
      [53, 'UDP', [`${x}/a`]],
    ] as const) {
      const matrix = await probeMatrix(described!, { port, protocol });
      const want = expected([...served]).map(([from, to, ok]) => `${from} → ${to}=${ok ? 'connected' : 'refused:'}`);
      assert.deepEqual(cells(matrix), want, formatMatrix(matrix));
    }
  });

  it('prints the matrix as the e2e suite does', async () => {
    const matrix = await probeMatrix(described!, { port: 81, protocol: 'TCP' });
    const lines = formatMatrix(matrix).split('\n');
    assert.deepEqual(lines.slice(1, 4).map((line) => line.slice(-5)), ['X . .', 'X . .', 'X . .']);
    assert.equal(lines[4], `0=${x}/a 1=${x}/b 2=${y}/a`);
  });

  it('removes the namespaces and pods with the lab', async () => {
    await described!.destroy();
    described = undefined;
    const gone = async (name: string) => {
      try {
        const ns = (await api.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })) as V1Namespace;
        return ns.metadata?.deletionTimestamp !== undefined;
      } catch (error) {
        if (error instanceof ApiException && error.code === 404) return true;
        throw error;
      }
    };
    const deadline = Date.now() + 20_000;
    while (!((await gone(x)) && (await gone(y)))) {
      assert.ok(Date.now() < deadline, `namespaces ${x} and ${y} still exist 20 s after destroy`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
});
