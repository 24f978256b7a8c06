import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import koffi from 'koffi';
import { cgroupOfProcess } from '../../src/ebpf/cgroup.js';
import { u32Codec, u64Codec, u8Codec } from '../../src/ebpf/codecs.js';
import { BpfObject, objectPath, type LoadOptions } from '../../src/ebpf/object.js';
import { pinDirectory } from '../../src/collector/index.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { connStateCodec, type ConnState } from '../../src/ebpf/records/conn-state.js';

const getppid = koffi.load('libc.so.6').func('int getppid(void)');

/** Order of `enum peer_result` in bpf/selftest/conn_peer.bpf.c. */
const Peer = { foundConnId: 0, newConnId: 1, traced: 2 } as const;

/** A socket address no kernel socket has: the test's own entry in `conns`. */
const SKADDR = 0xffff_dead_beef_0000n;
const STATE: ConnState = {
  connId: 77n,
  startMonotonicNs: 1_000n,
  establishedMonotonicNs: 2_000n,
  lastRecordMonotonicNs: 2_000n,
  cgroupId: 5n,
  pid: 4242,
  tid: 4243,
  synRetransmits: 0,
  records: 1,
  side: 1,
  flags: 0x04,
  comm: 'curl',
};
const SHARED_MAPS = ['cgroup_answers', 'closed_conns', 'conn_ids', 'conns', 'traced_cgroups'];

/** Unique per run, directly below the bpffs root so that removing it leaves nothing behind. */
function testPins(label: string): PinDirectory {
  return new PinDirectory(`/sys/fs/bpf/sidecarless-test-${label}-${process.pid}-${Date.now()}`);
}

function openFds(): string[] {
  return fs.readdirSync('/proc/self/fd').sort();
}

describe('maps shared through a pin directory', () => {
  const pins = testPins('pins');
  const loaded: BpfObject[] = [];
  const load = (name: string, options: LoadOptions = {}): BpfObject => {
    const object = BpfObject.load(objectPath(name), options);
    loaded.push(object);
    return object;
  };
  const conns = (object: BpfObject) => object.map('conns').typed(u64Codec, connStateCodec);
  const connIds = (object: BpfObject) => object.map('conn_ids').typed(u32Codec, u64Codec);

  after(() => {
    for (const object of loaded) object.close();
    pins.remove();
  });

  it('flows and another object built on conn.h see one conns, conn_ids, traced_cgroups and cgroup_answers, in user space and kernel', () => {
    const flows = load('flows', { pins });
    const peer = load('selftest/conn_peer', { pins, rodata: { target_tgid: process.pid, lookup_skaddr: SKADDR } });
    assert.deepEqual(fs.readdirSync(path.join(pins.path, 'maps')).sort(), SHARED_MAPS);

    conns(flows).update(SKADDR, STATE);
    connIds(flows).update(0, 1000n);
    flows.map('traced_cgroups').typed(u64Codec, u8Codec).update(cgroupOfProcess().id, 1);
    assert.deepEqual(conns(peer).lookup(SKADDR), STATE);

    peer.program('peer_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');
    getppid();
    const results = peer.map('results').typed(u32Codec, u64Codec);
    assert.equal(results.lookup(Peer.foundConnId), STATE.connId);
    assert.equal(results.lookup(Peer.newConnId), 1000n);
    assert.equal(results.lookup(Peer.traced), 1n);
    assert.equal(connIds(flows).lookup(0), 1001n, 'the id the peer took is gone for flows too');
  });

  it('pinned maps outlive their objects and are adopted by the next load; a load without pins is private', () => {
    for (const object of loaded.splice(0)) object.close();
    const again = load('flows', { pins });
    assert.deepEqual(conns(again).lookup(SKADDR), STATE);
    assert.equal(connIds(again).lookup(0), 1001n);

    const alone = load('flows');
    assert.equal(fs.existsSync('/sys/fs/bpf/conns'), false, "libbpf's default pin place stays unused");
    assert.equal(conns(alone).lookup(SKADDR), undefined);
    assert.equal(connIds(alone).lookup(0), 0n);
  });

  it('refuses a pinned map configured with another capacity, naming the difference and the remedy', () => {
    const fdsBefore = openFds();
    assert.throws(
      () => load('flows', { pins, maxEntries: { conns: 1024 } }),
      (error: Error) => {
        assert.match(error.message, /flows\/conns: the map pinned at \S+\/maps\/conns has another shape \(max_entries 65536 pinned, 1024 here\)/);
        assert.ok(error.message.endsWith(`rm -r ${pins.path}`), error.message);
        return true;
      },
    );
    assert.deepEqual(openFds(), fdsBefore);
  });

  it('refuses a pinned map whose layout changed', () => {
    const other = testPins('layout');
    try {
      BpfObject.load(objectPath('selftest/conn_peer'), { pins: other }).close();
      // What an older program would have left under the name: another key, value and type.
      fs.unlinkSync(other.mapPath('conns'));
      fs.renameSync(other.mapPath('conn_ids'), other.mapPath('conns'));
      assert.throws(
        () => load('flows', { pins: other }),
        /has another shape \(type 2 pinned, 1 here, key_size 4 pinned, 8 here, value_size 8 pinned, 80 here, max_entries 1 pinned, 65536 here\)\. Either its layout changed, and a changed layout needs a new map name/,
      );
    } finally {
      other.remove();
    }
    assert.equal(fs.existsSync(other.path), false);
  });

  it('refuses a pin directory outside bpffs, saying how to mount it', () => {
    const outside = new PinDirectory(path.join(os.tmpdir(), `sidecarless-pins-${process.pid}`, 'node-1'));
    assert.throws(() => load('flows', { pins: outside }), /is not on a bpf filesystem.*mount -t bpf bpf \/sys\/fs\/bpf/);
    assert.equal(fs.existsSync(outside.path), false);
  });

  it('refuses a name with a dot, which bpffs cannot hold, naming it; a node name with dots gets a default without', () => {
    const dotted = new PinDirectory(path.join(pins.path, 'node.example'));
    assert.throws(() => dotted.prepare(), /bpffs refuses names with a dot \("node\.example"\)/);
    const node = pinDirectory({ collector: { pinDirectory: undefined }, node: { name: `ip-10-0-0-1.${process.pid}.internal` } } as Parameters<typeof pinDirectory>[0]);
    assert.equal(node.path, `/sys/fs/bpf/sidecarless/ip-10-0-0-1_${process.pid}_internal`);
    try {
      node.prepare();
      assert.equal(fs.statSync(node.path).isDirectory(), true);
    } finally {
      node.remove();
      // The parent too, when this test created it: left empty, it is no one's.
      if (fs.readdirSync(path.dirname(node.path)).length === 0) fs.rmdirSync(path.dirname(node.path));
    }
  });

  it('remove() unpins everything; loaded objects keep their maps', () => {
    const [flows] = loaded;
    pins.remove();
    pins.remove();
    assert.equal(fs.existsSync(pins.path), false);
    assert.deepEqual(conns(flows!).lookup(SKADDR), STATE);
  });
});
