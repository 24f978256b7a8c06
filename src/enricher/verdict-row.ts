/**
 * VerdictEvent -> row of the `verdicts` table (schemas/clickhouse/0010_verdicts.sql), written as RowBinary
 * (row-binary.ts) in VERDICT_COLUMNS order: the decision as the enforcer named it, the Kubernetes identity of its
 * source and destination at the decision's time (the event-time join flows and HTTP exchanges get), and the Kafka
 * position.
 *
 * The join reads a verdict as a connection observed by its subject: at egress the subject is the source (the
 * client end, named by its cgroup first, then its address), at ingress the destination (the server end). An egress
 * decision at connect() on a socket not bound yet carries source 0.0.0.0 port 0, so its source is named only through
 * the collector's cgroup identities; the enforcer's own names of the subject and peer pods (subject_*, peer_*),
 * taken from the state it applied, are stored beside the join's and do not depend on the collector.
 */
import type { VerdictEvent } from '../events/verdicts.js';
import type { ConnectionEnds, FlowIdentities } from '../metadata/index/identity.js';
import { badEnum, endsIdentityColumns, identityBytes, POSITION_COLUMNS, RowBinaryRows, type Columns, type EventTable, type KafkaPosition } from './row-binary.js';

/** Columns of one insert (LowCardinality(String) declared String, in arrays too: the same bytes, see FLOW_COLUMNS). */
export const VERDICT_COLUMNS: Columns = [
  ['time', 'DateTime64(9)'],
  ['k8s_node_name', 'String'],
  ['verdict', "Enum8('allow' = 1, 'deny' = 2, 'audit_deny' = 3, 'audit_allow' = 4)"],
  ['direction', "Enum8('ingress' = 1, 'egress' = 2)"],
  ['hook', "Enum8('connect' = 1, 'sendmsg' = 2, 'ingress' = 3)"],
  ['policies', 'Array(String)'],
  ['rules', 'Array(String)'],
  ['network_transport', 'String'],
  ['network_type', "Enum8('ipv4' = 4, 'ipv6' = 6)"],
  ['source_address', 'IPv6'],
  ['source_port', 'UInt16'],
  ['destination_address', 'IPv6'],
  ['destination_port', 'UInt16'],
  ['cgroup_id', 'UInt64'],
  ['subject_identity', 'UInt64'],
  ['subject_k8s_namespace_name', 'String'],
  ['subject_k8s_pod_name', 'String'],
  ['peer_identity', 'UInt64'],
  ['peer_prefix', 'String'],
  ['peer_k8s_namespace_name', 'String'],
  ['peer_k8s_pod_name', 'String'],
  ['generation', 'UInt8'],
  ...endsIdentityColumns('source', 'destination'),
  ...POSITION_COLUMNS,
];

/** The verdicts table: its decisions joined at their time, the subject as the observing end. */
export const VERDICTS_TABLE: EventTable<VerdictEvent> = {
  name: 'verdicts',
  columns: VERDICT_COLUMNS,
  rows: (capacityBytes) => new VerdictRows(capacityBytes),
  joinTimeNs: (event) => event.time_ns,
  ends: verdictEnds,
};

/** The connection as its subject saw it: source = client, destination = server. */
export function verdictEnds(event: VerdictEvent): ConnectionEnds {
  return {
    observer_side: event.direction === 'egress' ? 'client' : 'server',
    k8s_node_name: event.k8s_node_name,
    cgroup_id: event.cgroup_id,
    client_address: event.source_address,
    server_address: event.destination_address,
    server_port: event.destination_port,
  };
}

/** Bytes of a row besides its strings and Kafka position: the time, 3 enums, the network type, 2x16 addresses, 2 ports, 3 UInt64s, the generation. */
const FIXED_ROW_BYTES = 8 + 3 + 1 + 2 * 16 + 2 * 2 + 3 * 8 + 1;
/** Strings per row besides the arrays' (the Kafka topic aside). */
const STRINGS_PER_ROW = 7;

/** The rows of one insert into `verdicts`. */
export class VerdictRows extends RowBinaryRows<VerdictEvent> {
  add(event: VerdictEvent, identities: FlowIdentities, position: KafkaPosition): void {
    const source = identityBytes(identities.client);
    const destination = identityBytes(identities.server);
    this.usePosition(position);
    const subjectNamespace = event.subject_k8s_namespace_name ?? '';
    const subjectPod = event.subject_k8s_pod_name ?? '';
    const prefix = event.peer_prefix ?? '';
    const peerNamespace = event.peer_k8s_namespace_name ?? '';
    const peerPod = event.peer_k8s_pod_name ?? '';
    let strings =
      event.k8s_node_name.length + event.network_transport.length + subjectNamespace.length + subjectPod.length + prefix.length + peerNamespace.length + peerPod.length;
    for (const text of event.policies) strings += text.length;
    for (const text of event.rules) strings += text.length;
    // Upper bound: UTF-8 takes at most 3 bytes per UTF-16 unit; every varint (lengths, the arrays' counts) at most 5.
    const varints = STRINGS_PER_ROW + 2 + event.policies.length + event.rules.length;
    this.reserve(FIXED_ROW_BYTES + 5 * varints + 3 * strings + source.length + destination.length + this.positionBytes.length);
    const view = this.view;
    let p = this.pos;
    view.setBigInt64(p, event.time_ns, true);
    p = this.string(p + 8, event.k8s_node_name);
    view.setInt8(p, verdict(event.verdict));
    view.setInt8(p + 1, direction(event.direction));
    view.setInt8(p + 2, hook(event.hook));
    p = this.strings(p + 3, event.policies);
    p = this.strings(p, event.rules);
    p = this.string(p, event.network_transport);
    this.endpointColumns(p, event.network_type, event.source_address, event.source_port, event.destination_address, event.destination_port);
    view.setBigUint64(p + 37, event.cgroup_id, true);
    view.setBigUint64(p + 45, event.subject_identity, true);
    p = this.string(p + 53, subjectNamespace);
    p = this.string(p, subjectPod);
    view.setBigUint64(p, event.peer_identity, true);
    p = this.string(p + 8, prefix);
    p = this.string(p, peerNamespace);
    p = this.string(p, peerPod);
    view.setUint8(p, event.generation);
    this.endRow(p + 1, source, destination);
  }
}

function verdict(name: string): number {
  if (name === 'allow') return 1;
  if (name === 'deny') return 2;
  if (name === 'audit_deny') return 3;
  if (name === 'audit_allow') return 4;
  throw badEnum('verdict', name, 'allow, deny, audit_deny, audit_allow');
}

function direction(name: string): number {
  if (name === 'ingress') return 1;
  if (name === 'egress') return 2;
  throw badEnum('direction', name, 'ingress, egress');
}

function hook(name: string): number {
  if (name === 'connect') return 1;
  if (name === 'sendmsg') return 2;
  if (name === 'ingress') return 3;
  throw badEnum('hook', name, 'connect, sendmsg, ingress');
}
