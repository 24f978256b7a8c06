import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkKernel, parseMountinfo, readKernelFacts, type KernelFacts } from '../../src/ebpf/preflight.js';

const MOUNTINFO = [
  '25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw',
  '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw',
  '31 25 0:27 / /sys/fs/bpf rw,nosuid - bpf bpf rw,mode=700',
].join('\n');

const allCaps: KernelFacts = { btf: true, effectiveCapabilities: (1n << 41n) - 1n, mounts: parseMountinfo(MOUNTINFO) };

describe('preflight', () => {
  it('parses mountinfo by filesystem type', () => {
    assert.deepEqual(parseMountinfo(MOUNTINFO).get('cgroup2'), ['/sys/fs/cgroup/unified']);
    assert.deepEqual(parseMountinfo(MOUNTINFO).get('bpf'), ['/sys/fs/bpf']);
  });

  it('names every missing piece in one error', () => {
    const facts: KernelFacts = { btf: false, effectiveCapabilities: 1n << 12n, mounts: new Map() };
    assert.throws(
      () => checkKernel(['btf', 'bpf', 'perfmon', 'net_admin', 'cgroup2', 'bpffs'], facts),
      (error: Error) => {
        for (const piece of ['kernel BTF', 'CAP_BPF', 'CAP_PERFMON', 'cgroup v2', 'bpffs']) assert.match(error.message, new RegExp(piece));
        assert.doesNotMatch(error.message, /CAP_NET_ADMIN/);
        return true;
      },
    );
    assert.doesNotThrow(() => checkKernel(['btf', 'bpf', 'perfmon', 'net_admin', 'cgroup2', 'bpffs'], allCaps));
  });

  it('this node, as root, has BTF, the capabilities and cgroup v2', () => {
    assert.doesNotThrow(() => checkKernel(['btf', 'bpf', 'perfmon', 'net_admin', 'cgroup2'], readKernelFacts()));
  });

  it('a process without CAP_BPF and CAP_PERFMON is told so by name', () => {
    const module = fileURLToPath(new URL('../../src/ebpf/preflight.js', import.meta.url));
    const script = `import(${JSON.stringify(module)}).then((m) => m.checkKernel(['bpf', 'perfmon'])).then(() => console.log('passed'), (e) => console.log(e.message))`;
    const result = spawnSync('setpriv', ['--bounding-set=-bpf,-perfmon,-sys_admin', '--inh-caps=-all', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /capability CAP_BPF/);
    assert.match(result.stdout, /capability CAP_PERFMON/);
  });
});
