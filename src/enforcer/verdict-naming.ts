/**
 * A kernel decision (a verdict record, read by apply/verdict-reader.ts) → the VerdictEvent of verdicts.v1, named
 * with the compiled state the enforcer applied: the deciding policies (for a denial the policies that isolate the
 * subject for that direction, `isolatedBy`; for an allow the policies of the rules that allow it, found with the
 * kernel's own lookups by `explain`), both pods and the peer's ipBlock prefix. Pure.
 *
 * The record carries the generation it was decided with, not the compiled state: it is named with the state applied
 * when it is read. A record decided in the moment around an apply (the ring is read every verdicts interval) may
 * therefore be named with the state that replaced the one it was decided by; its verdict, addresses and identities
 * are the kernel's own in any case.
 */
import type { VerdictEvent, VerdictName } from '../events/verdicts.js';
import { explain, MapLookup } from './compile/explain.js';
import type { Direction } from './compile/map-state.js';
import type { DesiredState } from './desired-state.js';
import type { Protocol } from '../events/networkpolicy/types.js';

/** A verdict record with its numbers as names and its time as wall-clock ns. */
export interface Decision {
  timeNs: bigint;
  cgroupId: bigint;
  subject: bigint;
  peer: bigint;
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
  /** IP protocol number. */
  protocol: number;
  verdict: VerdictName;
  direction: Direction;
  hook: VerdictEvent['hook'];
  generation: number;
}

const TRANSPORTS: Record<number, Protocol> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

const splitPod = (pod: string | undefined): [string | null, string | null] => {
  if (pod === undefined) return [null, null];
  const slash = pod.indexOf('/');
  return [pod.slice(0, slash), pod.slice(slash + 1)];
};

export class VerdictNamer {
  private lookups = new WeakMap<DesiredState, MapLookup>();

  constructor(private readonly node: string) {}

  name(decision: Decision, state: DesiredState | undefined): VerdictEvent {
    const egress = decision.direction === 'egress';
    const peerAddress = egress ? decision.destinationAddress : decision.sourceAddress;
    const protocol = TRANSPORTS[decision.protocol];
    let policies: string[] = [];
    let rules: string[] = [];
    let peerPrefix: string | null = null;
    if (state !== undefined && protocol !== undefined) {
      let lookup = this.lookups.get(state);
      if (lookup === undefined) this.lookups.set(state, (lookup = new MapLookup(state.compiled.state)));
      const subjectEnd = { identity: decision.subject, ip: egress ? decision.sourceAddress : decision.destinationAddress };
      const peerEnd = { identity: undefined, ip: peerAddress };
      const explained = egress ? explain(state.compiled, subjectEnd, peerEnd, decision.destinationPort, protocol, lookup) : explain(state.compiled, peerEnd, subjectEnd, decision.destinationPort, protocol, lookup);
      const side = egress ? explained.egress : explained.ingress;
      peerPrefix = side.peerPrefix ?? null;
      if (decision.verdict === 'deny' || decision.verdict === 'audit_deny') policies = [...side.isolatedBy];
      else {
        const origins = side.matches.flatMap((match) => match.rules);
        policies = [...new Set(origins.map((origin) => origin.policy))].sort();
        rules = [...new Set(origins.map((origin) => `${origin.policy} ${origin.direction}[${origin.rule}]`))].sort();
      }
    }
    const [subjectNamespace, subjectPod] = splitPod(state?.cgroupPods.get(decision.cgroupId));
    const [peerNamespace, peerPod] = splitPod(state?.addressPods.get(peerAddress));
    return {
      time_ns: decision.timeNs,
      k8s_node_name: this.node,
      verdict: decision.verdict,
      direction: decision.direction,
      hook: decision.hook,
      policies,
      rules,
      network_transport: protocol?.toLowerCase() ?? String(decision.protocol),
      network_type: decision.destinationAddress.includes(':') ? 'ipv6' : 'ipv4',
      source_address: decision.sourceAddress,
      source_port: decision.sourcePort,
      destination_address: decision.destinationAddress,
      destination_port: decision.destinationPort,
      cgroup_id: decision.cgroupId,
      subject_identity: decision.subject,
      subject_k8s_namespace_name: subjectNamespace,
      subject_k8s_pod_name: subjectPod,
      peer_identity: decision.peer,
      peer_prefix: peerPrefix,
      peer_k8s_namespace_name: peerNamespace,
      peer_k8s_pod_name: peerPod,
      generation: decision.generation,
    };
  }
}
