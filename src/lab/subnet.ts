/**
 * The private IPv4 /24 of a lab: .1 is the bridge (the pods' default gateway), pods get .2 upwards. Without an
 * explicit subnet a lab takes 10.213.<n>.0/24 with n from a hash of its name, moving to the next n while one is
 * reserved by another lab or overlaps a route of the host, so a lab never shadows a network the node uses.
 */
import { createHash } from 'node:crypto';
import { SidecarlessError } from '../common/errors.js';
import { reserve, thisProcess } from './registry.js';
import { run } from './run.js';

export interface Subnet {
  /** 'a.b.c.0/24' */
  cidr: string;
  gateway: string;
  /** Address of the pod with this index. */
  host(podIndex: number): string;
  contains(ip: string): boolean;
}

export const maxPods = 253;

function toInt(ip: string): number | undefined {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

function toIp(n: number): string {
  return [Math.floor(n / 2 ** 24), Math.floor(n / 2 ** 16) % 256, Math.floor(n / 256) % 256, n % 256].join('.');
}

function subnetAt(base: number): Subnet {
  return {
    cidr: `${toIp(base)}/24`,
    gateway: toIp(base + 1),
    host: (podIndex) => toIp(base + 2 + podIndex),
    contains: (ip) => {
      const n = toInt(ip);
      return n !== undefined && n - (n % 256) === base;
    },
  };
}

export function parseSubnet(cidr: string): Subnet {
  const [address = '', bits] = cidr.split('/');
  const base = toInt(address);
  if (base === undefined || bits !== '24' || base % 256 !== 0) {
    throw new SidecarlessError(`lab subnet ${cidr}: give an IPv4 /24 such as 10.213.7.0/24`, { context: { component: 'lab' } });
  }
  return subnetAt(base);
}

/** True when a host route other than the default route overlaps the /24 at base. */
function overlapsHostRoute(base: number): boolean {
  const routes = JSON.parse(run('ip', ['-j', '-4', 'route', 'show'])) as { dst: string }[];
  return routes.some(({ dst }) => {
    const [address = '', bits = '32'] = dst.split('/');
    const net = toInt(address);
    if (net === undefined) return false; // 'default'
    // Two prefixes overlap when they agree on the bits of the shorter one.
    const size = 2 ** (32 - Math.min(24, Number(bits)));
    return Math.floor(net / size) === Math.floor(base / size);
  });
}

/** Reserves a subnet for the lab (see registry.ts) and returns it. */
export function claimSubnet(lab: { id: string; name: string }, requested?: string): Subnet {
  const claim = (subnet: Subnet): boolean =>
    !overlapsHostRoute(toInt(subnet.gateway)! - 1) && reserve({ ...lab, subnet: subnet.cidr, ...thisProcess() });
  if (requested !== undefined) {
    const subnet = parseSubnet(requested);
    if (claim(subnet)) return subnet;
    throw new SidecarlessError(`lab subnet ${requested} overlaps a host route or another lab; pick another or leave it out`, {
      context: { component: 'lab' },
    });
  }
  const first = createHash('sha256').update(lab.name).digest()[0]!;
  for (let i = 0; i < 256; i++) {
    const subnet = subnetAt(toInt(`10.213.${(first + i) % 256}.0`)!);
    if (claim(subnet)) return subnet;
  }
  throw new SidecarlessError('lab: every subnet of 10.213.0.0/16 is taken; destroyAll() removes labs of crashed runs', {
    context: { component: 'lab' },
  });
}
