/**
 * A Kubernetes NetworkPolicy (networking.k8s.io/v1) as the enforcer uses it: validated (document.ts) and with the
 * API server's defaults applied (protocol TCP, policyTypes), so that two documents that mean the same are equal.
 * Empty lists mean what absent lists mean in the API ("all peers", "all ports"); a peer's absent selector is null,
 * because there absent and empty differ (an absent namespaceSelector is the policy's own namespace).
 */

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type PolicyType = 'Ingress' | 'Egress';
export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  /** Sorted; empty for Exists and DoesNotExist. */
  values: string[];
}

/** metav1.LabelSelector: every matchLabels pair and every requirement must hold; an empty selector selects all. */
export interface LabelSelector {
  /** Keys sorted. */
  matchLabels: Record<string, string>;
  matchExpressions: LabelSelectorRequirement[];
}

export interface IpBlock {
  cidr: string;
  except: string[];
}

/** One of `from`/`to`: an ipBlock alone, or pods by podSelector and/or namespaceSelector (both: AND). */
export interface PolicyPeer {
  podSelector: LabelSelector | null;
  namespaceSelector: LabelSelector | null;
  ipBlock: IpBlock | null;
}

export interface PolicyPort {
  protocol: Protocol;
  /** A number, a named container port, or null for every port of the protocol. */
  port: number | string | null;
  /** The last port of a range starting at `port` (a number then), or null. */
  endPort: number | null;
}

/** An ingress rule (`from`) or an egress rule (`to`): `peers` empty = every peer, `ports` empty = every port. */
export interface PolicyRule {
  ports: PolicyPort[];
  peers: PolicyPeer[];
}

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  /** As the API server defaults it: Ingress, plus Egress when egress rules are present, unless given. */
  policyTypes: PolicyType[];
  ingress: PolicyRule[];
  egress: PolicyRule[];
}

export interface NetworkPolicy {
  namespace: string;
  name: string;
  /**
   * Audit mode (annotation `policy.sidecarless.dev/audit: "true"`): the policy's isolation and rules are evaluated
   * and reported, but what it alone would deny passes.
   */
  audit: boolean;
  spec: NetworkPolicySpec;
}

export const AUDIT_ANNOTATION = 'policy.sidecarless.dev/audit';

/** The policy's key on the policies topic and in every report: `namespace/name`. */
export const policyKey = (policy: Pick<NetworkPolicy, 'namespace' | 'name'>): string => `${policy.namespace}/${policy.name}`;
