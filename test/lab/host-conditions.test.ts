/**
 * What benches report about the machine besides their own figures (src/lab/host-conditions.ts): the CPU time stolen
 * by the hypervisor from /proc/stat, the transparent huge page mode, DAMON's running schemes from a sysfs-shaped
 * tree, the filesystem holding a path from /proc/self/mountinfo, and this machine's conditions for a directory on
 * tmpfs.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuTimes, damonActions, hostConditions, mountOf, parseCpuTimes, stealPercent, transparentHugepageMode } from '../../src/lab/host-conditions.js';

const MOUNTINFO = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683568k',
  '24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334096k',
  '27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard',
  '40 27 0:40 / /mnt/my\\040disk rw,relatime master:2 - xfs /dev/vdb1 rw',
].join('\n');

describe('host conditions', () => {
  it('reads the total and the stolen CPU time of the cpu line, and nothing from a malformed one', () => {
    const stat = 'cpu  308527 0 121642 592351 9753 0 30503 17647 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n';
    assert.deepEqual(parseCpuTimes(stat), { total: 308527 + 121642 + 592351 + 9753 + 30503 + 17647, steal: 17647 });
    assert.equal(parseCpuTimes('cpu  1 2 3\n'), undefined);
    assert.equal(parseCpuTimes('intr 1\n'), undefined);
  });

  it('takes the stolen share of the CPU time between two readings, and none when no time passed', () => {
    assert.equal(stealPercent({ total: 1_000, steal: 10 }, { total: 3_000, steal: 60 }), 2.5);
    assert.equal(stealPercent({ total: 1_000, steal: 10 }, { total: 1_000, steal: 10 }), null);
    assert.equal(stealPercent(undefined, { total: 1_000, steal: 10 }), null);
  });

  it('reads the selected transparent huge page mode', () => {
    assert.equal(transparentHugepageMode('always [madvise] never'), 'madvise');
    assert.equal(transparentHugepageMode('[always] madvise never\n'), 'always');
    assert.equal(transparentHugepageMode(undefined), null);
  });

  it('lists the scheme actions of the kdamonds that are on, and nothing of one that is off', () => {
    const root = mkdtempSync(join('/dev/shm', 'sidecarless-damon-'));
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), `${text}\n`);
    };
    try {
      write('nr_kdamonds', '2');
      write('0/state', 'on');
      write('0/contexts/0/schemes/0/action', 'pageout');
      write('0/contexts/0/schemes/1/action', 'lru_prio');
      write('1/state', 'off');
      write('1/contexts/0/schemes/0/action', 'hugepage');
      assert.deepEqual(damonActions(root), ['pageout', 'lru_prio']);
      assert.deepEqual(damonActions(join(root, 'absent')), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('finds the mount holding a path: the longest mount point above it, whole path components only', () => {
    assert.deepEqual(mountOf(MOUNTINFO, '/dev/shm/chdb'), { mountPoint: '/dev/shm', type: 'tmpfs', source: 'tmpfs' });
    assert.deepEqual(mountOf(MOUNTINFO, '/dev'), { mountPoint: '/dev', type: 'devtmpfs', source: 'devtmpfs' });
    assert.deepEqual(mountOf(MOUNTINFO, '/devices/x'), { mountPoint: '/', type: 'ext4', source: '/dev/vda' });
    assert.deepEqual(mountOf(MOUNTINFO, '/mnt/my disk/data'), { mountPoint: '/mnt/my disk', type: 'xfs', source: '/dev/vdb1' });
  });

  it('reports this machine over a run, for a directory on tmpfs', () => {
    const directory = mkdtempSync(join('/dev/shm', 'sidecarless-host-conditions-'));
    try {
      const start = cpuTimes();
      assert.ok(start !== undefined && start.total > 0);
      // Some CPU time must pass for a share of it to exist.
      const until = Date.now() + 50;
      while (Date.now() < until);
      const conditions = hostConditions(start, directory);
      assert.ok(conditions.cpu_steal_percent !== null && conditions.cpu_steal_percent >= 0 && conditions.cpu_steal_percent <= 100, `${conditions.cpu_steal_percent}`);
      assert.deepEqual(conditions.filesystem, { path: directory, type: 'tmpfs', journal: null });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
