/**
 * A process's own cgroup when it runs in a cgroup namespace of its own with the host's tree mounted, as the
 * collector does in its pod: /proc/self/cgroup reads "0::/", and cgroupOfProcess still names the real directory
 * (unshare --cgroup on the real kernel), not the host's root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Cgroup, namespaceLevelsAbove } from '../../src/ebpf/cgroup.js';
import { cleanUpAll } from '../helpers/cleanup.js';

const CGROUP_MODULE = new URL('../../src/ebpf/cgroup.js', import.meta.url).href;

const mountinfo = (...lines: string[]) =>
  ['25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw', ...lines, '31 25 0:27 / /sys/fs/bpf rw,nosuid - bpf bpf rw,mode=700'].join('\n');

describe('cgroup namespaces', () => {
  it('reads how far the visible cgroup v2 mount reaches above the namespace\'s root', () => {
    assert.equal(namespaceLevelsAbove(mountinfo('30 25 0:26 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw'), '/sys/fs/cgroup'), 0);
    assert.equal(namespaceLevelsAbove(mountinfo('30 25 0:26 /../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw'), '/sys/fs/cgroup'), 2);
    // A pod: the runtime's namespaced mount, then the host's tree mounted over it (the one visible).
    const pod = mountinfo('40 25 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup ro', '41 40 0:26 /../../../.. /sys/fs/cgroup ro - cgroup2 cgroup2 rw');
    assert.equal(namespaceLevelsAbove(pod, '/sys/fs/cgroup'), 4);
    assert.equal(namespaceLevelsAbove(pod, '/sys/fs/cgroup/unified'), 0, 'another mount point');
    assert.equal(namespaceLevelsAbove(mountinfo('30 25 0:26 /../.. /sys/fs/cgroup rw - tmpfs tmpfs rw'), '/sys/fs/cgroup'), 0, 'not cgroup2');
  });

  describe('on the real kernel', () => {
    // Two levels, as a pod's cgroup and its container's below the tree's root.
    const name = `sidecarless-test-cgns-${randomBytes(4).toString('hex')}`;
    const outer = Cgroup.create(name);
    const pod = Cgroup.create(`${name}/pod`);
    const inner = Cgroup.create(`${name}/pod/container`);
    after(() => cleanUpAll([inner, pod, outer].map((cgroup) => [cgroup.path, () => cgroup.remove()] as const)));

    it('names its own directory from inside a namespace rooted at it', () => {
      const script = `const { cgroupOfProcess } = await import(${JSON.stringify(CGROUP_MODULE)});
        const own = cgroupOfProcess();
        const line = (await import('node:fs')).readFileSync('/proc/self/cgroup', 'utf8').trim().split('\\n').find((l) => l.startsWith('0::'));
        console.log(JSON.stringify({ line, path: own.path, id: String(own.id) }));`;
      const result = spawnSync('sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', `${inner.path}/cgroup.procs`,
        'unshare', '--cgroup', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { line: '0::/', path: inner.path, id: String(inner.id) });
    });

    it('names a directory below the mount as before outside a namespace', () => {
      const result = spawnSync('sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', `${inner.path}/cgroup.procs`,
        process.execPath, '--input-type=module', '-e', `const { cgroupOfProcess } = await import(${JSON.stringify(CGROUP_MODULE)}); console.log(cgroupOfProcess().path);`], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.trim(), inner.path);
    });
  });
});
