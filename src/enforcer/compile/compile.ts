/**
 * Policies + cluster → MapState (map-state.ts), with where each entry came from (for explain and verdicts). Pure,
 * deterministic: the same policies and cluster give the same state, in any input order.
 *
 * NetworkPolicy semantics, as the Kubernetes e2e and cyclonus suites define them:
 * - a pod selected by no policy for a direction is open in that direction; selected by any, only what some rule of
 *   some policy selecting it allows passes (policies are additive, there are no denies);
 * - policyTypes come defaulted from the document (Ingress, plus Egress with egress rules); rules of a direction not
 *   in policyTypes are ignored;
 * - a rule without peers allows every peer (any address); without ports every port of every protocol;
 * - a peer with podSelector alone selects pods of the policy's namespace; with namespaceSelector alone every pod of
 *   the namespaces it selects; with both, pods matching both (AND); separate peers are alternatives (OR);
 * - ipBlock matches any address in cidr and outside every except, pod addresses included;
 * - a named port resolves per destination pod: ingress on the selected pod's own named ports, egress on each peer
 *   pod's (a rule without peers: every pod that has the name); the name and protocol must both match. A named port
 *   in an egress rule to an ipBlock matches no address: which pod is behind an address inside a CIDR is not known
 *   to a CIDR entry (documented in docs/ARCHITECTURE.md);
 * - endPort makes [port, endPort]; a port spec without port is every port of its protocol.
 */
import { parseCidr, prefixContains, type Prefix } from '../../events/networkpolicy/cidr.js';
import { selects } from '../../events/networkpolicy/labels.js';
import { policyKey, type NetworkPolicy, type PolicyPeer, type PolicyPort, type PolicyRule, type Protocol } from '../../events/networkpolicy/types.js';
import type { ClusterView, NamedPort } from './cluster.js';
import { allocateIdentities, ANY_PEER, type Identities, type PodIdentity } from './identities.js';
import { isolationKey, policyEntryKey, policyGroupKey, type Direction, type EntryProtocol, type IsolationEntry, type MapState, type PolicyEntry } from './map-state.js';
import { mergeRanges, subtractRanges, type PortRange } from './port-ranges.js';

/** One rule that contributes to a group of entries, over the ports it allows there. */
export interface RuleOrigin {
  /** `namespace/name`. */
  policy: string;
  direction: Direction;
  /** Index of the rule in the policy's `ingress` or `egress` list. */
  rule: number;
  portFirst: number;
  portLast: number;
  audit: boolean;
}

export interface CompiledPolicies {
  state: MapState;
  identities: Identities;
  /** policyGroupKey → the rules that allow something in that group. */
  origins: ReadonlyMap<string, readonly RuleOrigin[]>;
  /** isolationKey → the policies (`namespace/name`, sorted) that select the subject for that direction. */
  isolatedBy: ReadonlyMap<string, readonly string[]>;
}

const ALL_PORTS: PortRange = { first: 0, last: 65535 };
const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A peer identity a rule stands for; `pod` for pod identities (egress named ports resolve on it). */
interface Peer {
  id: bigint;
  pod: PodIdentity | undefined;
}

interface Group {
  subject: bigint;
  direction: Direction;
  protocol: EntryProtocol;
  peer: bigint;
  enforcing: PortRange[];
  audit: PortRange[];
  origins: RuleOrigin[];
}

/** The prefixes of every ipBlock (cidr and except) of the policies, once each. */
function policyPrefixes(policies: readonly NetworkPolicy[]): Prefix[] {
  const texts = new Set<string>();
  for (const policy of policies) {
    for (const rule of [...policy.spec.ingress, ...policy.spec.egress]) {
      for (const peer of rule.peers) if (peer.ipBlock !== null) for (const text of [peer.ipBlock.cidr, ...peer.ipBlock.except]) texts.add(text);
    }
  }
  return [...texts].map((text) => parseCidr(text)!);
}

class Compiler {
  private readonly groups = new Map<string, Group>();
  private readonly isolation = new Map<string, IsolationEntry>();
  private readonly isolatedBy = new Map<string, string[]>();
  private readonly podIdentities: PodIdentity[];

  constructor(
    private readonly cluster: ClusterView,
    private readonly identities: Identities,
  ) {
    this.podIdentities = [...identities.pods.values()];
  }

  add(policy: NetworkPolicy): void {
    const key = policyKey(policy);
    const subjects = this.podIdentities.filter((identity) => identity.namespace === policy.namespace && selects(policy.spec.podSelector, identity.labels));
    for (const type of policy.spec.policyTypes) {
      const direction: Direction = type === 'Ingress' ? 'ingress' : 'egress';
      for (const subject of subjects) this.isolate(subject.id, direction, key, policy.audit);
      const rules = direction === 'ingress' ? policy.spec.ingress : policy.spec.egress;
      rules.forEach((rule, index) => {
        const origin = { policy: key, direction, rule: index, audit: policy.audit };
        const peers = rule.peers.length === 0 ? [{ id: ANY_PEER, pod: undefined }] : rule.peers.flatMap((peer) => this.peerIdentities(peer, policy.namespace));
        for (const subject of subjects) this.addRule(subject, rule, peers, origin);
      });
    }
  }

  private isolate(subject: bigint, direction: Direction, policy: string, audit: boolean): void {
    const key = isolationKey(subject, direction);
    const entry = this.isolation.get(key);
    this.isolation.set(key, { subject, direction, audit: (entry?.audit ?? true) && audit });
    const by = this.isolatedBy.get(key) ?? [];
    if (!by.includes(policy)) by.push(policy);
    this.isolatedBy.set(key, by);
  }

  private addRule(subject: PodIdentity, rule: PolicyRule, peers: readonly Peer[], origin: Omit<RuleOrigin, 'portFirst' | 'portLast'>): void {
    const ports: Array<PolicyPort | null> = rule.ports.length === 0 ? [null] : rule.ports;
    for (const port of ports) {
      for (const peer of peers) {
        if (port === null) {
          this.allow(subject.id, origin, 'ANY', peer.id, ALL_PORTS);
        } else if (typeof port.port !== 'string') {
          const range = port.port === null ? ALL_PORTS : { first: port.port, last: port.endPort ?? port.port };
          this.allow(subject.id, origin, port.protocol, peer.id, range);
        } else if (origin.direction === 'ingress') {
          const number = resolveNamedPort(subject.namedPorts, port.port, port.protocol);
          if (number !== undefined) this.allow(subject.id, origin, port.protocol, peer.id, { first: number, last: number });
        } else {
          // Egress: the destination's named port; a rule without peers reaches every pod that has the name.
          const destinations = peer.id === ANY_PEER ? this.podIdentities : peer.pod === undefined ? [] : [peer.pod];
          for (const destination of destinations) {
            const number = resolveNamedPort(destination.namedPorts, port.port, port.protocol);
            if (number !== undefined) this.allow(subject.id, origin, port.protocol, destination.id, { first: number, last: number });
          }
        }
      }
    }
  }

  /** The identities one peer stands for: pod identities it selects, or the CIDR identities inside its ipBlock. */
  private peerIdentities(peer: PolicyPeer, namespace: string): Peer[] {
    if (peer.ipBlock !== null) {
      const cidr = parseCidr(peer.ipBlock.cidr)!;
      const excepts = peer.ipBlock.except.map((text) => parseCidr(text)!);
      return [...this.identities.cidrs.values()]
        .filter(({ prefix }) => prefixContains(cidr, prefix) && !excepts.some((except) => prefixContains(except, prefix)))
        .map(({ id }) => ({ id, pod: undefined }));
    }
    const namespaceSelector = peer.namespaceSelector;
    return this.podIdentities
      .filter((identity) =>
        namespaceSelector === null ? identity.namespace === namespace : selects(namespaceSelector, this.cluster.namespaces.get(identity.namespace) ?? {}),
      )
      .filter((identity) => peer.podSelector === null || selects(peer.podSelector, identity.labels))
      .map((identity) => ({ id: identity.id, pod: identity }));
  }

  private allow(subject: bigint, origin: Omit<RuleOrigin, 'portFirst' | 'portLast'>, protocol: EntryProtocol, peer: bigint, range: PortRange): void {
    const key = policyGroupKey(subject, origin.direction, protocol, peer);
    let group = this.groups.get(key);
    if (group === undefined) {
      group = { subject, direction: origin.direction, protocol, peer, enforcing: [], audit: [], origins: [] };
      this.groups.set(key, group);
    }
    (origin.audit ? group.audit : group.enforcing).push(range);
    group.origins.push({ ...origin, portFirst: range.first, portLast: range.last });
  }

  finish(): CompiledPolicies {
    const policy = new Map<string, PolicyEntry>();
    const origins = new Map<string, RuleOrigin[]>();
    for (const [key, group] of [...this.groups].sort(([a], [b]) => compareText(a, b))) {
      const enforcing = mergeRanges(group.enforcing);
      const audit = subtractRanges(mergeRanges(group.audit), enforcing);
      const entries = [...enforcing.map((range) => ({ range, audit: false })), ...audit.map((range) => ({ range, audit: true }))];
      for (const { range, audit: isAudit } of entries) {
        const entry: PolicyEntry = { subject: group.subject, direction: group.direction, protocol: group.protocol, peer: group.peer, portFirst: range.first, portLast: range.last, audit: isAudit };
        policy.set(policyEntryKey(entry), entry);
      }
      origins.set(key, group.origins);
    }
    const endpoints = new Map<string, bigint>();
    const pods = [...this.cluster.pods].sort((a, b) => compareText(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
    for (const pod of pods) for (const ip of pod.ips) endpoints.set(ip, this.identities.ofPod.get(`${pod.namespace}/${pod.name}`)!);
    const prefixes = new Map([...this.identities.cidrs.values()].map((cidr) => [cidr.text, cidr.id]));
    for (const by of this.isolatedBy.values()) by.sort(compareText);
    return { state: { endpoints, prefixes, isolation: this.isolation, policy }, identities: this.identities, origins, isolatedBy: this.isolatedBy };
  }
}

function resolveNamedPort(ports: readonly NamedPort[], name: string, protocol: Protocol): number | undefined {
  return ports.find((port) => port.name === name && port.protocol === protocol)?.port;
}

/** Compiles every policy against the cluster. Throws IdentityCollisionError (never expected; see identities.ts). */
export function compilePolicies(policies: readonly NetworkPolicy[], cluster: ClusterView): CompiledPolicies {
  const sorted = [...policies].sort((a, b) => compareText(policyKey(a), policyKey(b)));
  const compiler = new Compiler(cluster, allocateIdentities(cluster, policyPrefixes(sorted)));
  for (const policy of sorted) compiler.add(policy);
  return compiler.finish();
}
