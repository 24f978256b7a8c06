/**
 * Startup check: before loading anything, name every missing kernel prerequisite in one error, so an operator
 * sees "no CAP_BPF" instead of EPERM from deep inside libbpf.
 */
import fs from 'node:fs';
import { KernelError } from '../common/errors.js';

export type Requirement = 'btf' | 'bpf' | 'perfmon' | 'net_admin' | 'cgroup2' | 'bpffs';

/** Capability bits (linux/capability.h). CAP_SYS_ADMIN implies BPF and PERFMON on the kernels we support. */
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

export interface KernelFacts {
  btf: boolean;
  effectiveCapabilities: bigint;
  /** Mount points by filesystem type, from /proc/self/mountinfo. */
  mounts: Map<string, string[]>;
}

export function readKernelFacts(): KernelFacts {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
  return {
    btf: fs.existsSync('/sys/kernel/btf/vmlinux'),
    effectiveCapabilities: BigInt(`0x${capEff}`),
    mounts: parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')),
  };
}

/** mountinfo line: id parent major:minor root mountpoint options [optional...] - fstype source superoptions */
export function parseMountinfo(text: string): Map<string, string[]> {
  const mounts = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const mountPoint = before.split(' ')[4];
    const fsType = after.split(' ')[0];
    if (!mountPoint || !fsType) continue;
    mounts.set(fsType, [...(mounts.get(fsType) ?? []), mountPoint]);
  }
  return mounts;
}

function hasCapability(facts: KernelFacts, bit: number): boolean {
  return ((facts.effectiveCapabilities >> BigInt(bit)) & 1n) === 1n;
}

const checks: Record<Requirement, (facts: KernelFacts) => string | undefined> = {
  btf: (f) => (f.btf ? undefined : 'kernel BTF (/sys/kernel/btf/vmlinux is missing: a kernel built with CONFIG_DEBUG_INFO_BTF=y is required)'),
  bpf: (f) => (hasCapability(f, CAP_BPF) || hasCapability(f, CAP_SYS_ADMIN) ? undefined : 'capability CAP_BPF (add it to the container securityContext or run as root)'),
  perfmon: (f) => (hasCapability(f, CAP_PERFMON) || hasCapability(f, CAP_SYS_ADMIN) ? undefined : 'capability CAP_PERFMON (needed for tracepoints and probes)'),
  net_admin: (f) => (hasCapability(f, CAP_NET_ADMIN) ? undefined : 'capability CAP_NET_ADMIN (needed for cgroup and tc programs)'),
  cgroup2: (f) => (f.mounts.has('cgroup2') ? undefined : 'cgroup v2 (no cgroup2 filesystem is mounted)'),
  bpffs: (f) => (f.mounts.has('bpf') ? undefined : 'bpffs (mount it: mount -t bpf bpf /sys/fs/bpf)'),
};

/** Throws one KernelError listing every unmet requirement. */
export function checkKernel(requirements: readonly Requirement[], facts: KernelFacts = readKernelFacts()): void {
  const missing = requirements.map((requirement) => checks[requirement](facts)).filter((m): m is string => m !== undefined);
  if (missing.length > 0) {
    throw new KernelError(`this node lacks what sidecarless needs: ${missing.join('; ')}`, { context: { component: 'preflight' } });
  }
}

/** Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup on most hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Root(facts: KernelFacts = readKernelFacts()): string {
  const root = facts.mounts.get('cgroup2')?.[0];
  if (!root) throw new KernelError('no cgroup2 filesystem is mounted', { context: { component: 'preflight' } });
  return root;
}
