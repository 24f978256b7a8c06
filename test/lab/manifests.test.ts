import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1ContainerPort, V1Pod } from '@kubernetes/client-node';
import { deployment, podTemplate, podTemplateHash, replicaSet, runningStatus, service, sliceContents } from '../../src/lab/kube/manifests.js';

const generated = /^[bcdfghjklmnpqrstvwxz2456789]+$/;

function labPod(name: string, options: { ip?: string; ports?: V1ContainerPort[]; labels?: Record<string, string>; namespace?: string; ready?: boolean } = {}): V1Pod {
  const status = options.ip === undefined ? {} : runningStatus(options.ip, 'f'.repeat(64), new Date(0));
  if (options.ready === false) status.conditions = [{ type: 'Ready', status: 'False' }];
  return {
    metadata: { namespace: options.namespace ?? 'shop', name, uid: `uid-${name}`, labels: options.labels ?? { app: 'pay' } },
    spec: { nodeName: 'n1', containers: [{ name: 'main', ports: options.ports ?? [] }] },
    status,
  };
}

const endpointsOf = (content: ReturnType<typeof sliceContents>[number]) =>
  content.endpoints.map((e) => [e.addresses.join(), e.targetRef?.name, e.targetRef?.uid, e.conditions?.ready, e.nodeName]);

describe('lab manifests', () => {
  it('names a ReplicaSet after its Deployment and the hash of the template, which only the template changes', () => {
    const template = podTemplate({ labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }], qos: 'besteffort' });
    const hash = podTemplateHash(template);
    assert.match(hash, generated);
    assert.equal(podTemplateHash(podTemplate({ labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }], qos: 'besteffort' })), hash);
    assert.notEqual(podTemplateHash(podTemplate({ labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8081 }], qos: 'besteffort' })), hash);
    const owner = { ...deployment('shop', 'web', template), metadata: { ...deployment('shop', 'web', template).metadata, uid: 'd-uid' } };
    const rs = replicaSet(owner);
    assert.equal(rs.metadata!.name, `web-${hash}`);
    assert.deepEqual(rs.spec!.selector.matchLabels, { app: 'web', 'pod-template-hash': hash });
    assert.deepEqual(rs.spec!.template!.metadata!.labels, { app: 'web', 'pod-template-hash': hash });
    assert.deepEqual(rs.metadata!.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: true, blockOwnerDeletion: true }]);
  });

  it('asks for the requests and limits that give each QoS class', () => {
    const resourcesOf = (qos: 'besteffort' | 'burstable' | 'guaranteed') => podTemplate({ labels: {}, ports: [], qos }).spec!.containers[0]!.resources;
    assert.equal(resourcesOf('besteffort'), undefined);
    assert.deepEqual(resourcesOf('burstable'), { requests: { cpu: '10m', memory: '16Mi' } });
    assert.deepEqual(resourcesOf('guaranteed'), { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '10m', memory: '16Mi' } });
  });

  it('groups the selected pods with an address by how the target ports resolve in each, one slice per group', () => {
    const svc = service({
      namespace: 'shop',
      name: 'pay',
      selector: { app: 'pay' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'admin', port: 81, targetPort: 9000 },
        { name: 'raw', port: 7000 },
      ],
    });
    const pods = [
      labPod('c', { ip: '10.0.0.3', ports: [{ name: 'http', containerPort: 9090 }] }),
      labPod('a', { ip: '10.0.0.1', ports: [{ name: 'http', containerPort: 8080 }] }),
      labPod('b', { ip: '10.0.0.2', ports: [{ name: 'http', containerPort: 8080 }], ready: false }),
      labPod('d', { ip: '10.0.0.4' }),
      labPod('other-labels', { ip: '10.0.0.5', labels: { app: 'web' } }),
      labPod('other-namespace', { ip: '10.0.0.6', namespace: 'ops' }),
      labPod('no-address-yet'),
    ];
    const contents = sliceContents(svc, pods);
    assert.deepEqual(
      contents.map((c) => [c.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`), endpointsOf(c)]),
      [
        [['http:8080/TCP', 'admin:9000/TCP', 'raw:7000/TCP'], [['10.0.0.1', 'a', 'uid-a', true, 'n1'], ['10.0.0.2', 'b', 'uid-b', false, 'n1']]],
        [['http:9090/TCP', 'admin:9000/TCP', 'raw:7000/TCP'], [['10.0.0.3', 'c', 'uid-c', true, 'n1']]],
        [['admin:9000/TCP', 'raw:7000/TCP'], [['10.0.0.4', 'd', 'uid-d', true, 'n1']]],
      ],
    );
  });

  it('keeps one empty slice for a service that selects no pod', () => {
    const svc = service({ namespace: 'shop', name: 'pay', selector: { app: 'pay' }, ports: [{ port: 80 }] });
    assert.deepEqual(sliceContents(svc, [labPod('x', { ip: '10.0.0.9', labels: { app: 'web' } })]), [{ ports: [], endpoints: [] }]);
  });
});
