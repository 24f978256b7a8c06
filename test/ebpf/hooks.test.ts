import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import koffi from 'koffi';
import { u32Codec, u64Codec } from '../../src/ebpf/codecs.js';
import { BpfObject, objectPath } from '../../src/ebpf/object.js';
import { openRingReader } from '../../src/ebpf/ringbuf.js';

/** Order of `enum hook` in bpf/selftest/hooks.bpf.c. */
const Hook = { tracepoint: 0, rawTracepoint: 1, uprobe: 2, uretprobe: 3, tc: 4 } as const;

const libcPath = ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'].find((p) => fs.existsSync(p))!;
const getppid = koffi.load('libc.so.6').func('int getppid(void)');

function openFds(): string[] {
  return fs.readdirSync('/proc/self/fd').sort();
}

function hits(object: BpfObject): bigint[] {
  const map = object.map('hits').typed(u32Codec, u64Codec);
  return [0, 1, 2, 3, 4].map((index) => map.lookup(index)!);
}


async function sendUdp(port: number, times: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  try {
    for (let i = 0; i < times; i++) {
      await new Promise<void>((resolve, reject) => socket.send('x', port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
    }
  } finally {
    socket.close();
  }
}

describe('attaching every hook type', () => {
  let port: number;
  let sink: dgram.Socket;

  before(async () => {
    sink = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
    port = sink.address().port;
  });
  after(() => sink?.close());

  it('counts exactly the triggered events on tracepoint, raw tracepoint, uprobe, uretprobe and tc', async () => {
    const object = BpfObject.load(objectPath('selftest/hooks'), { rodata: { target_tgid: process.pid, target_port: port } });
    try {
      object.program('count_tracepoint').attachTracepoint('syscalls', 'sys_enter_getppid');
      object.program('count_raw_tracepoint').attachRawTracepoint('sys_enter');
      object.program('count_uprobe').attachUprobe({ binaryPath: libcPath, functionName: 'getppid', pid: process.pid });
      object.program('count_uretprobe').attachUprobe({ binaryPath: libcPath, functionName: 'getppid', pid: process.pid, retprobe: true });
      object.program('count_tc').attachTc({ interface: 'lo', direction: 'ingress' });

      for (let i = 0; i < 7; i++) getppid();
      await sendUdp(port, 5);

      const counts = hits(object);
      assert.equal(counts[Hook.tracepoint], 7n);
      assert.equal(counts[Hook.rawTracepoint], 7n);
      assert.equal(counts[Hook.uprobe], 7n);
      assert.equal(counts[Hook.uretprobe], 7n);
      assert.equal(counts[Hook.tc], 5n);
    } finally {
      object.close();
    }
  });

  it('detach stops counting, and close leaves no fd, link or tc filter behind', () => {
    const fdsBefore = openFds();
    const object = BpfObject.load(objectPath('selftest/hooks'), { rodata: { target_tgid: process.pid, target_port: port } });
    const tracepoint = object.program('count_tracepoint').attachTracepoint('syscalls', 'sys_enter_getppid');
    object.program('count_raw_tracepoint').attachRawTracepoint('sys_enter');
    object.program('count_uprobe').attachUprobe({ binaryPath: libcPath, functionName: 'getppid' });
    object.program('count_tc').attachTc({ interface: 'lo', direction: 'ingress' });
    const probe = BpfObject.load(objectPath('selftest/probe'), { rodata: { target_tgid: process.pid } });
    openRingReader(probe, 'probe_ring', 'mapped');
    openRingReader(probe, 'probe_ring', 'callback');

    getppid();
    tracepoint.detach();
    tracepoint.detach(); // twice is harmless
    getppid();
    assert.equal(hits(object)[Hook.tracepoint], 1n);
    assert.equal(hits(object)[Hook.rawTracepoint], 2n);

    object.close();
    object.close();
    probe.close();
    assert.deepEqual(openFds(), fdsBefore);
    const tcFilters = execFileSync('tc', ['filter', 'show', 'dev', 'lo', 'ingress'], { encoding: 'utf8' });
    assert.doesNotMatch(tcFilters, /count_tc/);
  });

  it('reads exactly how often the kernel skipped a program that fired inside itself (recursion_misses)', () => {
    const object = BpfObject.load(objectPath('selftest/recursion'), { rodata: { target_tgid: process.pid } });
    try {
      object.program('trigger').attachTracepoint('syscalls', 'sys_enter_getppid');
      const nest = object.program('nest');
      nest.attachRawTracepoint('bpf_trace_printk');
      for (let i = 0; i < 7; i++) getppid();
      assert.equal(nest.recursionMisses(), 7n);
      assert.equal(object.program('trigger').recursionMisses(), 0n);
    } finally {
      object.close();
    }
  });
});
