import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetadataIndex } from '../../src/metadata/index/metadata-index.js';
import { cgroupChange, nodeChange, podChange, observedFlow, sec, serviceChange, tombstone } from '../helpers/metadata.js';

/**
 * The answers the index keeps, through the index: the pod a cgroup named (src/metadata/index/cgroup-table.ts) and
 * the state an address's holder had (address-book.ts) are kept with the interval they hold over, so each test joins
 * first (an answer is kept), then changes the metadata, then joins again.
 */
describe('kept answers', () => {
  const node = nodeChange({ uid: 'node-n1', name: 'n1', addresses: ['192.168.1.10'], at: sec(10) });
  const index = () => {
    const built = new MetadataIndex({ labels: ['app'], historyNs: sec(3600) });
    built.apply(node);
    return built;
  };
  /** The pod name (or the node's, for a fallback to the client address) that names the observing client. */
  const named = (from: MetadataIndex, cgroup: bigint, start: bigint, on = 'n1'): string => {
    const client = from.joinFlow(observedFlow({ side: 'client', node: on, cgroup, client: '192.168.1.10', server: '8.8.8.8', start })).client;
    return client.kind === 'pod' ? `${client.k8s_pod_name}/${client.labels.app ?? ''}` : client.kind;
  };

  it('sees a pod state that arrives after a join kept the one before it', () => {
    const built = index();
    built.apply(podChange({ uid: 'p1', name: 'a', labels: { app: 'v1' }, at: sec(100) }));
    built.apply(cgroupChange({ node: 'n1', id: 5n, podUid: 'p1', at: sec(101) }));
    assert.equal(named(built, 5n, sec(300)), 'a/v1');
    built.apply(podChange({ uid: 'p1', name: 'a', labels: { app: 'v2' }, at: sec(200) }));
    assert.equal(named(built, 5n, sec(300)), 'a/v2');
    assert.equal(named(built, 5n, sec(150)), 'a/v1');
    assert.equal(named(built, 5n, sec(300)), 'a/v2');
    built.apply(tombstone('p1', sec(250)));
    assert.equal(named(built, 5n, sec(300)), 'node');
    assert.equal(named(built, 5n, sec(249)), 'a/v2');
  });

  it('sees the cgroup change its pod, or end, after a join', () => {
    const built = index();
    built.apply(podChange({ uid: 'p1', name: 'a', at: sec(100) }));
    built.apply(podChange({ uid: 'p2', name: 'b', at: sec(100) }));
    built.apply(cgroupChange({ node: 'n1', id: 5n, podUid: 'p1', at: sec(101) }));
    assert.equal(named(built, 5n, sec(300)), 'a/');
    built.apply(cgroupChange({ node: 'n1', id: 5n, podUid: 'p2', at: sec(200) }));
    assert.equal(named(built, 5n, sec(300)), 'b/');
    assert.equal(named(built, 5n, sec(199)), 'a/');
    built.apply(tombstone('cgroup/n1/5', sec(250)));
    assert.equal(named(built, 5n, sec(300)), 'node');
    assert.equal(named(built, 5n, sec(249)), 'b/');
  });

  it('keeps ids apart exactly: above 2^53, negative, alike in their low 32 bits, on other nodes, hashing alike', () => {
    const built = index();
    // (1 << 32) + (7 xor 0x9e3779b1) hashes as 7 does on the same node (cgroup-table.ts hashOf).
    const colliding = (1n << 32n) + BigInt((7 ^ 0x9e3779b1) >>> 0);
    const ids = [2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 53n) - 1n, 7n, (1n << 32n) + 7n, colliding];
    for (const [i, id] of ids.entries()) {
      built.apply(podChange({ uid: `p${i}`, name: `pod-${i}`, at: sec(100) }));
      built.apply(cgroupChange({ node: 'n1', id, podUid: `p${i}`, at: sec(101) }));
    }
    built.apply(nodeChange({ uid: 'node-n2', name: 'n2', addresses: ['192.168.1.11'], at: sec(10) }));
    built.apply(podChange({ uid: 'q', name: 'on-n2', at: sec(100) }));
    built.apply(cgroupChange({ node: 'n2', id: 7n, podUid: 'q', at: sec(101) }));
    const all = () => [...ids.map((id) => named(built, id, sec(150))), named(built, 7n, sec(150), 'n2'), named(built, 8n, sec(150))];
    const expected = [...ids.map((_, i) => `pod-${i}/`), 'on-n2/', 'node'];
    assert.deepEqual(all(), expected);
    assert.deepEqual(all(), expected); // again, from the kept answers
    // Deleting one of two ids that share a hash keeps the other; the other node's 7 stays.
    built.apply(tombstone('p5', sec(120)));
    built.apply(tombstone('cgroup/n1/7', sec(120)));
    assert.equal(built.expire(sec(120) + sec(3600) + 1n), 2);
    assert.deepEqual(all(), [...expected.slice(0, 5), 'node', ...expected.slice(6)]);
    assert.deepEqual(built.stats(), { objects: 10, addressIntervals: 2, cgroupIntervals: 8 });
  });

  it("sees an address holder's new state, its end, the next holder, and a Service's new state after a join", () => {
    const built = index();
    /** The server end named by its address alone, as pod/label, service/name or kind. */
    const server = (address: string, start: bigint): string => {
      const end = built.joinFlow(observedFlow({ side: 'client', client: '203.0.113.9', server: address, start })).server;
      return end.kind === 'pod' ? `${end.k8s_pod_name}/${end.labels.app ?? ''}` : end.kind === 'service' ? `service/${end.k8s_service_name}` : end.kind;
    };
    built.apply(podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'v1' }, at: sec(100) }));
    built.apply(serviceChange({ uid: 's1', name: 'shop', clusterIps: ['10.96.0.1'], at: sec(100) }));
    assert.deepEqual([server('10.1.0.5', sec(300)), server('10.96.0.1', sec(300))], ['a/v1', 'service/shop']);
    built.apply(podChange({ uid: 'p1', name: 'a', ips: ['10.1.0.5'], labels: { app: 'v2' }, at: sec(200) }));
    built.apply(serviceChange({ uid: 's1', name: 'shop', clusterIps: ['10.96.0.2'], at: sec(200) }));
    assert.deepEqual([server('10.1.0.5', sec(300)), server('10.1.0.5', sec(150)), server('10.1.0.5', sec(300))], ['a/v2', 'a/v1', 'a/v2']);
    assert.deepEqual([server('10.96.0.1', sec(300)), server('10.96.0.1', sec(150)), server('10.96.0.2', sec(300))], ['unknown', 'service/shop', 'service/shop']);
    built.apply(tombstone('p1', sec(250)));
    assert.deepEqual([server('10.1.0.5', sec(300)), server('10.1.0.5', sec(249))], ['unknown', 'a/v2']);
    built.apply(podChange({ uid: 'p2', name: 'b', ips: ['10.1.0.5'], labels: { app: 'w' }, created: sec(240), at: sec(260) }));
    assert.deepEqual([server('10.1.0.5', sec(300)), server('10.1.0.5', sec(251)), server('10.1.0.5', sec(249))], ['b/w', 'b/w', 'a/v2']);
    // A claim that arrives late (another partition) and was made earlier takes the address from the kept holder.
    built.apply(podChange({ uid: 'p3', name: 'c', ips: ['10.1.0.7'], at: sec(100) }));
    assert.equal(server('10.1.0.7', sec(300)), 'c/');
    built.apply(podChange({ uid: 'p4', name: 'd', ips: ['10.1.0.7'], at: sec(50) }));
    assert.equal(server('10.1.0.7', sec(300)), 'd/');
    built.apply(tombstone('p3', sec(400)));
    built.apply(tombstone('p4', sec(400)));
    assert.equal(built.expire(sec(260) + sec(3600)), 5);
    assert.deepEqual([server('10.1.0.5', sec(300)), server('10.1.0.5', sec(249))], ['b/w', 'unknown']);
  });
});
