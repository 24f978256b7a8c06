import os from 'node:os';
import { KernelError } from '../common/errors.js';

const namesByNumber = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, value]) => [value, name]),
);

/** What an errno usually means for a BPF call, phrased as what to do. */
const hints: Record<string, string> = {
  EPERM: 'missing privileges: run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN',
  EACCES: 'the verifier rejected the program (see the libbpf log above) or a capability is missing',
  ENOENT: 'no such object: check the name, path or that the kernel supports this hook',
  E2BIG: 'the map or record is larger than the kernel accepts',
  EINVAL: 'the kernel rejected an argument: check sizes and attach type',
  EBUSY: 'already attached: detach the previous program first',
};

export function errnoName(errno: number): string {
  return namesByNumber.get(errno) ?? `errno ${errno}`;
}

/** A KernelError for a failed call; `errno` is positive (libbpf's negative returns are flipped by the caller). */
export function kernelError(what: string, errno: number, component?: string): KernelError {
  const name = errnoName(errno);
  const hint = hints[name];
  return new KernelError(`${what}: ${name}${hint ? ` (${hint})` : ''}`, {
    errno,
    context: component === undefined ? {} : { component },
  });
}
