/**
 * Security identities: a number per distinct (namespace, labels, named ports) of pods, and per CIDR prefix that a
 * policy names. Map keys hold these numbers instead of addresses, so a policy costs entries per identity, not per
 * pod, and a pod relabeled changes one endpoint entry, not every rule that names it.
 *
 * Allocation is a hash (the first 62 bits of sha256 of the canonical key), not a counter: two enforcers that never
 * talk, or one enforcer before and after a restart, give equal keys equal ids whatever order they saw them in, and
 * an id never moves when other identities come or go. Collision odds at 62 bits: about n²/2⁶³, 10⁻¹¹ for 10,000
 * identities; a collision is detected and refused (IdentityCollisionError), never merged. The top two bits name
 * the kind, so a number read from a map or a verdict says what it is: 01 a pod identity, 10 a CIDR identity;
 * 0 is reserved for "any peer" (a rule without peers).
 *
 * Named ports are part of a pod identity because a named port resolves per destination pod: two pods with equal
 * labels but different numbers behind `http` must not share map entries. Pods of one workload share their ports,
 * so this splits identities only where the semantics need it.
 */
import { createHash } from 'node:crypto';
import { SidecarlessError } from '../../common/errors.js';
import { formatPrefix, type Prefix } from '../../events/networkpolicy/cidr.js';
import { podName, type ClusterView, type NamedPort } from './cluster.js';

export const ANY_PEER = 0n;
const POD_KIND = 1n << 62n;
const CIDR_KIND = 2n << 62n;
const HASH_BITS = (1n << 62n) - 1n;

export interface PodIdentity {
  id: bigint;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  namedPorts: readonly NamedPort[];
  /** Pods that have it (`namespace/name`), sorted. */
  pods: string[];
}

export interface CidrIdentity {
  id: bigint;
  prefix: Prefix;
  /** Canonical text, e.g. `10.0.0.0/8`. */
  text: string;
}

export class IdentityCollisionError extends SidecarlessError {
  constructor(id: bigint, first: string, second: string) {
    super(`identity ${id} is the hash of both ${first} and ${second}: rename or relabel one of them`, { context: { component: 'enforcer.identities' } });
  }
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function hashId(kind: bigint, key: string): bigint {
  const digest = createHash('sha256').update(key).digest();
  return kind | (digest.readBigUInt64BE(0) & HASH_BITS);
}

/** The canonical key of a pod identity: equal for equal (namespace, label set, named port set). */
export function podIdentityKey(namespace: string, labels: Readonly<Record<string, string>>, namedPorts: readonly NamedPort[]): string {
  const sortedLabels = Object.entries(labels).sort(([a], [b]) => compareText(a, b));
  const ports = namedPorts.map((p) => `${p.name}=${p.protocol}/${p.port}`).sort(compareText);
  return JSON.stringify(['pod', namespace, sortedLabels, ports]);
}

export const podIdentityId = (key: string): bigint => hashId(POD_KIND, key);
export const cidrIdentityId = (prefix: Prefix): bigint => hashId(CIDR_KIND, JSON.stringify(['cidr', formatPrefix(prefix)]));

export interface Identities {
  pods: ReadonlyMap<bigint, PodIdentity>;
  /** `namespace/name` → its identity. */
  ofPod: ReadonlyMap<string, bigint>;
  cidrs: ReadonlyMap<bigint, CidrIdentity>;
}

/** The identities of every pod of the cluster and of every prefix given. Throws IdentityCollisionError. */
export function allocateIdentities(cluster: ClusterView, prefixes: Iterable<Prefix>): Identities {
  const owners = new Map<bigint, string>();
  const claim = (id: bigint, key: string): void => {
    const owner = owners.get(id);
    if (owner !== undefined && owner !== key) throw new IdentityCollisionError(id, owner, key);
    owners.set(id, key);
  };
  const pods = new Map<bigint, PodIdentity>();
  const ofPod = new Map<string, bigint>();
  const sortedPods = [...cluster.pods].sort((a, b) => compareText(podName(a), podName(b)));
  for (const pod of sortedPods) {
    const key = podIdentityKey(pod.namespace, pod.labels, pod.namedPorts);
    const id = podIdentityId(key);
    claim(id, key);
    let identity = pods.get(id);
    if (identity === undefined) {
      identity = { id, namespace: pod.namespace, labels: pod.labels, namedPorts: pod.namedPorts, pods: [] };
      pods.set(id, identity);
    }
    identity.pods.push(podName(pod));
    ofPod.set(podName(pod), id);
  }
  const cidrs = new Map<bigint, CidrIdentity>();
  for (const prefix of prefixes) {
    const text = formatPrefix(prefix);
    const id = cidrIdentityId(prefix);
    claim(id, JSON.stringify(['cidr', text]));
    cidrs.set(id, { id, prefix, text });
  }
  return { pods, ofPod, cidrs };
}

