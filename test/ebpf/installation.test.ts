/**
 * Installations on the real kernel, with bpf/selftest/probe.bpf.c (one ring record per kill(2) of this process):
 * programs keep running and writing their pinned ring with no process holding them; the same layout is adopted
 * without loading anything; another layout is installed beside it and the old one's programs go once retired;
 * drops are reported once across owners; removing the pins frees every program.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { Installation, type InstallationSpec } from '../../src/ebpf/installation.js';
import { objectPath } from '../../src/ebpf/object.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { KERNEL_DROP_REASONS } from '../../src/ebpf/records/header.js';
import { decodeProbeRecord } from '../../src/ebpf/records/probe.js';
import { dropCounters, ReportedTotals } from '../../src/ebpf/reported-drops.js';
import { openRingReader } from '../../src/ebpf/ringbuf.js';
import { pinnedPrograms, programExists, waitForProgramsGone } from '../helpers/bpf-programs.js';

function spec(burst: number): InstallationSpec {
  return {
    kind: 'probe',
    objectFile: objectPath('selftest/probe'),
    // 4096 bytes hold 63 records of 64 bytes (56 and the ring's 8-byte header): the kernel keeps one byte free.
    load: { rodata: { target_tgid: process.pid, burst }, maxEntries: { probe_ring: 4096 } },
    maps: ['probe_ring', 'drops'],
    links: { probe_kill: { tracepoint: 'syscalls/sys_enter_kill' } },
  };
}

function kills(times: number): void {
  for (let i = 0; i < times; i++) process.kill(process.pid, 0);
}

/** Sequence numbers of what the installation's ring holds, read to the end. */
function readRing(installation: Installation): bigint[] {
  const seqs: bigint[] = [];
  openRingReader(installation, 'probe_ring').drain((view, offset, size) => seqs.push(decodeProbeRecord(view, offset, size).seq));
  return seqs;
}

describe('installations: kernel programs that outlive their loader', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-installation-${process.pid}-${Date.now()}`);
  const open: Installation[] = [];
  const openInstallation = (burst: number): Installation => {
    const installation = Installation.open(pins, spec(burst));
    open.push(installation);
    return installation;
  };
  let firstPrograms: number[] = [];

  after(() => {
    for (const installation of open) installation.close();
    pins.remove();
  });

  it('installs: the program runs and fills the pinned ring while no process holds it', () => {
    const installation = openInstallation(1);
    assert.equal(installation.installedNow, true);
    installation.close();
    firstPrograms = [...pinnedPrograms(pins.path).values()];
    assert.equal(firstPrograms.length, 1);
    kills(3);
    const adopted = openInstallation(1);
    assert.equal(adopted.installedNow, false, 'the same layout is adopted');
    assert.deepEqual([...pinnedPrograms(pins.path).values()], firstPrograms, 'nothing new is loaded');
    const seqs = readRing(adopted);
    assert.deepEqual(seqs, [0n, 1n, 2n], 'the records written while nobody read');
    kills(2);
    adopted.close();
    assert.deepEqual(readRing(openInstallation(1)), [3n, 4n], 'the next reader goes on from where the last one stopped');
  });

  it('reports each drop once, whoever reads the counters', () => {
    const [installation] = open.splice(-1);
    installation!.close();
    const drops = openInstallation(1);
    kills(70); // 63 fit in the ring
    // ringbuf_full first, then every other reason of enum sl_drop_reason, none of which the probe counts.
    const totals = (ringbufFull: bigint) => [ringbufFull, ...KERNEL_DROP_REASONS.slice(1).map(() => 0n)];
    assert.deepEqual(new ReportedTotals(drops, dropCounters(drops)).take(), totals(7n));
    assert.deepEqual(new ReportedTotals(drops, dropCounters(drops)).take(), totals(0n), 'what was reported stays reported');
    drops.close();
    const next = openInstallation(1);
    kills(1);
    assert.deepEqual(new ReportedTotals(next, dropCounters(next)).take(), totals(1n), 'the next owner reports only what is new');
    assert.equal(readRing(next).length, 63);
  });

  it('another layout is installed beside the running one; retiring the old one frees its program', async () => {
    const replacement = openInstallation(2);
    assert.equal(replacement.installedNow, true);
    const others = replacement.others();
    assert.deepEqual(others.map((other) => other.kind), ['probe']);
    const programs = pinnedPrograms(pins.path);
    assert.equal(programs.size, 2, 'old and new both attached until the old one is retired');
    others[0]!.detach();
    await waitForProgramsGone(firstPrograms);
    kills(1);
    assert.equal(readRing(replacement).length, 2, 'the new program runs (a burst of 2)');
    assert.equal(readRing(others[0]!).length, 0, 'the old one wrote nothing after it was detached');
    others[0]!.remove();
    assert.deepEqual(pins.child('probe').childNames(), [replacement.layout]);
  });

  it('removing the pin directory frees every program', async () => {
    const programs = [...pinnedPrograms(pins.path).values()];
    assert.equal(programs.length, 1);
    assert.ok(programs.every(programExists));
    for (const installation of open.splice(0)) installation.close();
    pins.remove();
    assert.equal(fs.existsSync(pins.path), false);
    await waitForProgramsGone(programs);
  });
});
