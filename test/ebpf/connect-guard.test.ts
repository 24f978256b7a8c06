import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Cgroup } from '../../src/ebpf/cgroup.js';
import { u32Codec } from '../../src/ebpf/codecs.js';
import { BpfObject, objectPath } from '../../src/ebpf/object.js';
import { egress4KeyCodec, type Egress4Key } from '../../src/ebpf/records/egress4-key.js';


/** Runs a fresh process inside `cgroup` that connects to 127.0.0.1:port and prints "connected" or the errno code. */
function connectFrom(cgroup: Cgroup, port: number): string {
  const script = `require('net').connect(${port}, '127.0.0.1').on('connect', function () { console.log('connected'); this.destroy(); }).on('error', (e) => console.log(e.code));`;
  const result = spawnSync('sh', ['-c', `echo $$ > ${cgroup.path}/cgroup.procs && exec "${process.execPath}" -e "${script}"`], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

describe('cgroup/connect4 deny map', () => {
  const cgroup = Cgroup.create(`sidecarless-test-connect-${process.pid}-${Date.now()}`);
  let server: net.Server;
  let port: number;
  let object: BpfObject;

  before(async () => {
    server = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    object = BpfObject.load(objectPath('selftest/connect_guard'));
    object.program('guard_connect4').attachCgroup(cgroup.path);
  });

  after(async () => {
    object?.close();
    cgroup.remove();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('refuses connect() with EPERM while the destination is listed, and allows it once deleted', () => {
    const deny = object.map('egress4_deny').typed(egress4KeyCodec, u32Codec);
    const key: Egress4Key = { daddr: '127.0.0.1', dport: port };

    assert.equal(connectFrom(cgroup, port), 'connected');
    deny.update(key, 1);
    assert.equal(connectFrom(cgroup, port), 'EPERM');
    assert.equal(deny.delete(key), true);
    assert.equal(connectFrom(cgroup, port), 'connected');
  });

  it('reads entries back one by one and in batches', () => {
    const deny = object.map('egress4_deny').typed(egress4KeyCodec, u32Codec);
    const keys: Egress4Key[] = Array.from({ length: 300 }, (_, i) => ({ daddr: `10.1.${i >> 8}.${i & 255}`, dport: 1000 + i }));
    keys.forEach((key, i) => deny.update(key, i));
    try {
      assert.equal(deny.lookup(keys[42]!), 42);
      assert.equal(deny.lookup({ daddr: '10.9.9.9', dport: 1 }), undefined);
      const byKey = (a: Egress4Key, b: Egress4Key) => a.dport - b.dport;
      assert.deepEqual([...deny.keys()].sort(byKey), keys);
      const entries = deny.entries(64).sort(([a], [b]) => byKey(a, b));
      assert.deepEqual(entries, keys.map((key, i) => [key, i]));
      assert.throws(() => deny.update(keys[0]!, 7, 'create'), /EEXIST/);
    } finally {
      keys.forEach((key) => deny.delete(key));
    }
    assert.deepEqual(deny.entries(), []);
  });
});
