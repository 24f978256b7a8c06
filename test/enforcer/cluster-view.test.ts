/** The cluster view from metadata.v1 changes: what is selectable, named ports, labels, tombstones. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterViewBuilder } from '../../src/enforcer/cluster-view.js';
import { metadataEvent, type MetadataChange, type PodState } from '../../src/events/metadata.js';

const pod = (uid: string, name: string, state: Partial<PodState>, labels: Record<string, string> = {}): MetadataChange => ({
  key: uid,
  event: metadataEvent({
    object_key: uid,
    kind: 'Pod',
    source: 'test',
    change_time_ns: 1n,
    k8s_namespace_name: 'shop',
    name,
    labels,
    pod: { k8s_node_name: 'n1', phase: 'Running', host_network: false, ips: [], container_ids: [], ports: [], ...state },
  }),
});

describe('ClusterViewBuilder', () => {
  it('keeps selectable pods with named ports and canonical IPs, namespaces with labels, and applies tombstones', () => {
    const builder = new ClusterViewBuilder();
    builder.apply({ key: 'ns1', event: metadataEvent({ object_key: 'ns1', kind: 'Namespace', source: 'test', change_time_ns: 1n, name: 'shop', labels: { team: 'a' } }) });
    builder.apply(
      pod('p1', 'web', {
        ips: ['10.0.0.1', '2001:DB8:0:0::1'],
        ports: [
          { name: 'http', port: 80, protocol: 'TCP' },
          { name: '', port: 81, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }, { app: 'web' }),
    );
    builder.apply(pod('p2', 'host', { host_network: true, ips: ['192.168.0.1'] }));
    builder.apply(pod('p3', 'done', { phase: 'Succeeded', ips: ['10.0.0.3'] }));
    builder.apply(pod('p4', 'gone', { ips: ['10.0.0.4'] }));
    builder.apply({ key: 'p4', deleted: true, time_ns: 2n });
    builder.apply({ key: 'svc', event: metadataEvent({ object_key: 'svc', kind: 'Service', source: 'test', change_time_ns: 1n, name: 's' }) });
    const view = builder.view();
    assert.deepEqual([...view.namespaces], [['shop', { team: 'a' }]]);
    assert.deepEqual(view.pods, [
      {
        namespace: 'shop',
        name: 'web',
        labels: { app: 'web' },
        namedPorts: [
          { name: 'http', protocol: 'TCP', port: 80 },
          { name: 'dns', protocol: 'UDP', port: 53 },
        ],
        ips: ['10.0.0.1', '2001:db8::1'],
      },
    ]);
    // A pod that terminates leaves the view.
    builder.apply(pod('p1', 'web', { phase: 'Failed' }));
    assert.deepEqual(builder.view().pods, []);
  });
});
