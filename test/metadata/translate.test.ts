/**
 * Kubernetes objects → MetadataEvent (src/metadata/watch/translate.ts): exactly the contract's fields, the API's
 * defaults for absent ones, nothing else (annotations, env and secrets never reach an event), and an error naming
 * the field when an object does not have its kind's shape.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecodeError } from '../../src/common/errors.js';
import { bindMetadataCodec, metadataEvent } from '../../src/events/metadata.js';
import { loadRegistry } from '../../src/common/avro.js';
import { translate } from '../../src/metadata/watch/translate.js';

const observation = { source: 'kubernetes/test', observedNs: 1_800_000_000_123_456_789n };
const created = '2026-11-30T10:20:30Z';
const createdNs = BigInt(Date.parse(created)) * 1_000_000n;

/** A Pod as the API server sends it, with what the contract leaves out (annotations, env, volumes, a secret). */
const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-7d9c-abcde',
    namespace: 'shop',
    uid: '5f0c3a1e-0000-4000-8000-000000000001',
    resourceVersion: '4711',
    creationTimestamp: created,
    labels: { tier: 'front', app: 'web' },
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"secret":"x"}' },
    ownerReferences: [
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'not-a-controller', uid: 'cm-uid' },
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', uid: 'rs-uid', controller: true, blockOwnerDeletion: true },
    ],
    managedFields: [{ manager: 'kubectl', operation: 'Update', time: created }],
  },
  spec: {
    nodeName: 'n1',
    containers: [
      { name: 'app', image: 'web:1', env: [{ name: 'PASSWORD', value: 'hunter2' }], ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { containerPort: 9090 }] },
      { name: 'sidecar', image: 'x:1', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] },
    ],
    volumes: [{ name: 'token', secret: { secretName: 'db-password' } }],
  },
  status: {
    phase: 'Running',
    podIP: '10.1.0.5',
    podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }],
    containerStatuses: [
      { name: 'app', containerID: 'containerd://0123abcd', ready: true, restartCount: 0, image: 'web:1', imageID: 'sha256:1' },
      { name: 'sidecar', containerID: 'cri-o://feed', ready: true, restartCount: 0, image: 'x:1', imageID: 'sha256:2' },
      { name: 'waiting', ready: false, restartCount: 0, image: 'y:1', imageID: '' },
    ],
  },
};

describe('translate', () => {
  it('keeps of a Pod exactly the contract: controller owner, podIPs, container ids without the runtime, ports with defaults', () => {
    const event = translate('Pod', pod, observation);
    assert.deepEqual(event, {
      object_key: '5f0c3a1e-0000-4000-8000-000000000001',
      kind: 'Pod',
      source: 'kubernetes/test',
      change_time_ns: 1_800_000_000_123_456_789n,
      created_time_ns: createdNs,
      resource_version: '4711',
      k8s_namespace_name: 'shop',
      name: 'web-7d9c-abcde',
      labels: { app: 'web', tier: 'front' },
      owner: { kind: 'ReplicaSet', name: 'web-7d9c', uid: 'rs-uid' },
      pod: {
        k8s_node_name: 'n1',
        phase: 'Running',
        host_network: false,
        ips: ['10.1.0.5', 'fd00::5'],
        container_ids: ['0123abcd', 'feed'],
        ports: [
          { name: 'http', port: 8080, protocol: 'TCP' },
          { name: '', port: 9090, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      },
      service: null,
      endpoint_slice: null,
      node: null,
      cgroup: null,
    });
    // Labels sorted: equal maps encode to equal bytes, whatever order a source gives them in.
    assert.deepEqual(Object.keys(event.labels), ['app', 'tier']);
    const bytes = bindMetadataCodec(loadRegistry()).encode(event).toString('latin1');
    for (const leaked of ['hunter2', 'db-password', 'last-applied', 'not-a-controller']) assert.ok(!bytes.includes(leaked), leaked);
  });

  it('takes status.podIP when podIPs is absent, and gives a pending pod no IPs, node or owner', () => {
    const single = { metadata: { uid: 'u1', name: 'p', namespace: 'ns' }, spec: { hostNetwork: true }, status: { podIP: '192.168.0.7' } };
    assert.deepEqual(translate('Pod', single, observation).pod, { k8s_node_name: '', phase: '', host_network: true, ips: ['192.168.0.7'], container_ids: [], ports: [] });
    const pending = translate('Pod', { metadata: { uid: 'u2', name: 'p2', namespace: 'ns' }, spec: {}, status: { phase: 'Pending' } }, observation);
    assert.deepEqual([pending.pod?.ips, pending.pod?.k8s_node_name, pending.owner, pending.created_time_ns], [[], '', null, null]);
  });

  it('gives a Service its type, cluster IPs (none when headless), sorted selector and ports with targetPort as text', () => {
    const service = {
      metadata: { uid: 's1', name: 'web', namespace: 'shop', resourceVersion: '9', creationTimestamp: created },
      spec: {
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10', 'fd00:96::a'],
        selector: { tier: 'front', app: 'web' },
        ports: [
          { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' },
          { name: 'metrics', port: 9090, targetPort: 9091 },
          { port: 53, protocol: 'UDP' },
        ],
      },
    };
    assert.deepEqual(translate('Service', service, observation).service, {
      type: 'ClusterIP',
      cluster_ips: ['10.96.0.10', 'fd00:96::a'],
      selector: { app: 'web', tier: 'front' },
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', target_port: 'http' },
        { name: 'metrics', port: 9090, protocol: 'TCP', target_port: '9091' },
        { name: '', port: 53, protocol: 'UDP', target_port: '53' },
      ],
    });
    const headless = translate('Service', { metadata: { uid: 's2', name: 'db', namespace: 'shop' }, spec: { type: 'ClusterIP', clusterIP: 'None', clusterIPs: ['None'] } }, observation);
    assert.deepEqual(headless.service?.cluster_ips, []);
  });

  it('names an EndpointSlice\'s Service from its label and keeps pod uids only for Pod targets; a nil ready is ready', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { uid: 'e1', name: 'web-x1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' }, ownerReferences: [{ kind: 'Service', name: 'web', uid: 's1', controller: true }] },
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-1', namespace: 'shop', uid: 'pod-1' } },
        { addresses: ['10.1.0.6'], conditions: { ready: false }, targetRef: { kind: 'Pod', name: 'web-2', namespace: 'shop', uid: 'pod-2' } },
        { addresses: ['192.168.9.9'], conditions: {}, targetRef: { kind: 'Node', name: 'n1', uid: 'node-1' } },
      ],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'all' }],
    };
    const event = translate('EndpointSlice', slice, observation);
    assert.deepEqual(event.owner, { kind: 'Service', name: 'web', uid: 's1' });
    assert.deepEqual(event.endpoint_slice, {
      service_name: 'web',
      address_type: 'IPv4',
      endpoints: [
        { addresses: ['10.1.0.5'], pod_uid: 'pod-1', ready: true },
        { addresses: ['10.1.0.6'], pod_uid: 'pod-2', ready: false },
        { addresses: ['192.168.9.9'], pod_uid: null, ready: true },
      ],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'all', port: 0, protocol: 'TCP' }],
    });
  });

  it('keeps a Node\'s InternalIP and ExternalIP addresses only; a Namespace is cluster-scoped; owners carry no kind part', () => {
    const node = {
      metadata: { uid: 'n1', name: 'n1', labels: { 'kubernetes.io/hostname': 'n1' } },
      status: { addresses: [{ type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: '192.168.1.10' }, { type: 'ExternalIP', address: '203.0.113.7' }] },
    };
    assert.deepEqual(translate('Node', node, observation).node, { addresses: ['192.168.1.10', '203.0.113.7'] });
    const namespace = translate('Namespace', { metadata: { uid: 'ns1', name: 'shop', labels: { team: 'a' } } }, observation);
    assert.deepEqual(namespace, metadataEvent({ object_key: 'ns1', kind: 'Namespace', source: 'kubernetes/test', change_time_ns: observation.observedNs, name: 'shop', labels: { team: 'a' } }));
    const job = translate('Job', { metadata: { uid: 'j1', name: 'backup-29', namespace: 'ops', ownerReferences: [{ kind: 'CronJob', name: 'backup', uid: 'cj1', controller: true }] }, spec: { template: {} } }, observation);
    assert.deepEqual([job.owner, job.pod, job.service], [{ kind: 'CronJob', name: 'backup', uid: 'cj1' }, null, null]);
  });

  it('names the field of a value of the wrong type, and a missing uid', () => {
    const wrongPort = { metadata: { uid: 'u', name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'a', ports: [{ containerPort: '8080' }] }] } };
    assert.throws(() => translate('Pod', wrongPort, observation), (error: unknown) => {
      assert.ok(error instanceof DecodeError);
      assert.equal(error.message, 'spec.containers[0].ports[0].containerPort: expected a number, got "8080"');
      assert.equal(error.context.field, 'spec.containers[0].ports[0].containerPort');
      return true;
    });
    assert.throws(() => translate('Service', { metadata: { name: 'web', namespace: 'ns' } }, observation), { message: 'metadata.uid is required' });
    assert.throws(() => translate('Pod', { metadata: { uid: 'u', name: 'p', labels: { a: 1 } } }, observation), { message: 'metadata.labels.a: expected a string, got 1' });
    assert.throws(() => translate('Pod', { metadata: { uid: 'u', name: 'p', creationTimestamp: 'yesterday' } }, observation), { message: 'metadata.creationTimestamp: expected an RFC 3339 time, got "yesterday"' });
  });
});
