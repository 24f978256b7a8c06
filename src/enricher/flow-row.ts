/**
 * FlowEvent -> row of the `flows` table (schemas/clickhouse/0001_flows.sql), and rows -> the bytes of one insert.
 *
 * A row is the event, the Kubernetes identity of its two ends (the event-time join, src/metadata/index/) and the
 * Kafka position it came from (kept on the row so a restart can tell what is already stored). Rows are written as
 * RowBinary (row-binary.ts), column by column in FLOW_COLUMNS order.
 * Unknown values become the table's sentinels (0 for RTT, pid, connect latency; '' for names), as documented on
 * its columns. A value the table cannot hold (an address that does not parse, an unknown enum name) throws a
 * RejectedValueError: retrying the same rows cannot help.
 */
import type { FlowEvent } from '../events/flows.js';
import type { FlowIdentities } from '../metadata/index/identity.js';
import {
  badEnum,
  ENDS_IDENTITY_COLUMNS,
  identityBytes,
  observerSide,
  POSITION_COLUMNS,
  RowBinaryRows,
  type Columns,
  type EventTable,
  type KafkaPosition,
} from './row-binary.js';

export interface FlowRow {
  readonly event: FlowEvent;
  readonly identities: FlowIdentities;
  readonly position: KafkaPosition;
}

/**
 * Columns of one insert, in RowBinary order, with the types their bytes are written as: the table's types, except
 * that LowCardinality(String) columns are declared String (the same bytes in RowBinary). The engine then builds
 * each column's dictionary once, on insert, instead of also while reading the file: about half of its insert cost
 * (bench/enricher).
 */
export const FLOW_COLUMNS: Columns = [
  ['time', 'DateTime64(9)'],
  ['start_time', 'DateTime64(9)'],
  ['connection_id', 'String'],
  ['k8s_node_name', 'String'],
  ['record_kind', "Enum8('interim' = 1, 'final' = 2)"],
  ['record_seq', 'UInt32'],
  ['observer_side', "Enum8('client' = 1, 'server' = 2)"],
  ['network_transport', 'String'],
  ['network_type', "Enum8('ipv4' = 4, 'ipv6' = 6)"],
  ['client_address', 'IPv6'],
  ['client_port', 'UInt16'],
  ['server_address', 'IPv6'],
  ['server_port', 'UInt16'],
  ['bytes_client_to_server', 'UInt64'],
  ['bytes_server_to_client', 'UInt64'],
  ['segments_client_to_server', 'UInt64'],
  ['segments_server_to_client', 'UInt64'],
  ['rtt_us', 'UInt32'],
  ['rtt_var_us', 'UInt32'],
  ['retransmits', 'UInt32'],
  ['syn_retransmits', 'UInt32'],
  ['connect_latency_us', 'UInt32'],
  ['handshake_completed', 'Bool'],
  ['close_reason', 'String'],
  ['process_pid', 'UInt32'],
  ['thread_id', 'UInt32'],
  ['process_executable_name', 'String'],
  ['cgroup_id', 'UInt64'],
  ['network_namespace_inode', 'UInt64'],
  ['sampling_rate', 'UInt32'],
  ['started_before_tracing', 'Bool'],
  ...ENDS_IDENTITY_COLUMNS,
  ...POSITION_COLUMNS,
];

/** The flows table: its events joined at the connection's start. */
export const FLOWS_TABLE: EventTable<FlowEvent> = {
  name: 'flows',
  columns: FLOW_COLUMNS,
  rows: (capacityBytes) => new FlowRows(capacityBytes),
  joinTimeNs: (event) => event.start_time_ns,
  ends: (event) => event,
};

export function toFlowRow(event: FlowEvent, identities: FlowIdentities, position: KafkaPosition): FlowRow {
  return { event, identities, position };
}

/** DateTime64(9) text: ClickHouse reads "<seconds>.<9 digits>" exactly, with no float rounding. */
export function nanosToDateTime64(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${seconds}.${fraction}`;
}


/** Bytes of a row besides its strings and Kafka position: 2x8 times, 3 enums, 2x16 addresses, 2 ports, 6x8 UInt64s, 9x4 UInt32s, 2 bools. */
const FIXED_ROW_BYTES = 16 + 3 + 32 + 4 + 48 + 36 + 2;
/** Strings per row (the Kafka topic and labels aside), each with a varint length of at most 5 bytes. */
const STRINGS_PER_ROW = 5;

/** Writes rows as one RowBinary payload (FLOW_COLUMNS order). Throws RejectedValueError for a value the table cannot hold. */
export function encodeFlowRows(rows: readonly FlowRow[]): Buffer {
  const batch = new FlowRows(rows.length * 256);
  for (const { event, identities, position } of rows) batch.add(event, identities, position);
  return batch.bytes();
}

/** The rows of one insert into `flows` (RowBinaryRows: written as they are added). */
export class FlowRows extends RowBinaryRows<FlowEvent> {
  add(event: FlowEvent, identities: FlowIdentities, position: KafkaPosition): void {
    this.addRow(event, identityBytes(identities.client), identityBytes(identities.server), position);
  }

  /**
   * A row with the identity columns of its ends already encoded (`client`, `server`: IDENTITY_COLUMNS as RowBinary).
   * Protected for bench/enrich-join, whose baseline writes no identity columns (empty bytes) into a table without
   * them: the rows as they were before the join.
   */
  protected addRow(event: FlowEvent, client: Uint8Array, server: Uint8Array, position: KafkaPosition): void {
    this.usePosition(position);
    const nodeName = event.k8s_node_name;
    const comm = event.process_executable_name ?? '';
    // Upper bound: UTF-8 takes at most 3 bytes per UTF-16 unit.
    const strings =
      event.connection_id.length + nodeName.length + event.network_transport.length + event.close_reason.length + comm.length;
    this.reserve(FIXED_ROW_BYTES + STRINGS_PER_ROW * 5 + 3 * strings + client.length + server.length + this.positionBytes.length);
    const view = this.view;
    let p = this.pos;
    view.setBigInt64(p, event.time_ns, true);
    view.setBigInt64(p + 8, event.start_time_ns, true);
    p = this.string(p + 16, event.connection_id);
    p = this.string(p, nodeName);
    view.setInt8(p, recordKind(event.record_kind));
    view.setUint32(p + 1, event.record_seq, true);
    view.setInt8(p + 5, observerSide(event.observer_side));
    p = this.string(p + 6, event.network_transport);
    this.addressColumns(p, event);
    view.setBigUint64(p + 37, event.bytes_client_to_server, true);
    view.setBigUint64(p + 45, event.bytes_server_to_client, true);
    view.setBigUint64(p + 53, event.segments_client_to_server, true);
    view.setBigUint64(p + 61, event.segments_server_to_client, true);
    view.setUint32(p + 69, event.rtt_us ?? 0, true);
    view.setUint32(p + 73, event.rtt_var_us ?? 0, true);
    view.setUint32(p + 77, event.retransmits, true);
    view.setUint32(p + 81, event.syn_retransmits, true);
    view.setUint32(p + 85, event.connect_latency_us ?? 0, true);
    view.setUint8(p + 89, event.handshake_completed ? 1 : 0);
    p = this.string(p + 90, event.close_reason);
    view.setUint32(p, event.process_pid ?? 0, true);
    view.setUint32(p + 4, event.thread_id ?? 0, true);
    p = this.string(p + 8, comm);
    view.setBigUint64(p, event.cgroup_id, true);
    view.setBigUint64(p + 8, event.network_namespace_inode, true);
    view.setUint32(p + 16, event.sampling_rate, true);
    view.setUint8(p + 20, event.started_before_tracing ? 1 : 0);
    this.endRow(p + 21, client, server);
  }
}

/** Enum8 values of the table (comparisons: a keyed lookup here was a megamorphic load on every row). */
function recordKind(name: string): number {
  if (name === 'final') return 2;
  if (name === 'interim') return 1;
  throw badEnum('record_kind', name, 'interim, final');
}
