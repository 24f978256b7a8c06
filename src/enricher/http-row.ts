/**
 * HttpEvent -> row of the `http_requests` table (schemas/clickhouse/0007_http_requests.sql), written as RowBinary
 * (row-binary.ts) in HTTP_COLUMNS order: the event, the Kubernetes identity of both ends at the request's start,
 * and the Kafka position. What no response told (status, response times and sizes, duration) is the table's
 * sentinel 0, as its columns document; outcome 'unanswered' says why.
 */
import type { HttpEvent } from '../events/http.js';
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

/** Columns of one insert (LowCardinality(String) declared String: the same bytes, see FLOW_COLUMNS). */
export const HTTP_COLUMNS: Columns = [
  ['start_time', 'DateTime64(9)'],
  ['request_end_time', 'DateTime64(9)'],
  ['response_start_time', 'DateTime64(9)'],
  ['response_end_time', 'DateTime64(9)'],
  ['duration_ns', 'Int64'],
  ['connection_id', 'String'],
  ['exchange_seq', 'UInt32'],
  ['k8s_node_name', 'String'],
  ['observer_side', "Enum8('client' = 1, 'server' = 2)"],
  ['outcome', "Enum8('complete' = 1, 'upgraded' = 2, 'unanswered' = 3)"],
  ['http_request_method', 'String'],
  ['http_request_method_original', 'String'],
  ['network_protocol_version', 'String'],
  ['url_path', 'String'],
  ['http_route', 'String'],
  ['http_response_status_code', 'UInt16'],
  ['http_request_header_size', 'UInt64'],
  ['http_request_body_size', 'UInt64'],
  ['http_response_header_size', 'UInt64'],
  ['http_response_body_size', 'UInt64'],
  ['network_transport', 'String'],
  ['network_type', "Enum8('ipv4' = 4, 'ipv6' = 6)"],
  ['client_address', 'IPv6'],
  ['client_port', 'UInt16'],
  ['server_address', 'IPv6'],
  ['server_port', 'UInt16'],
  ['process_pid', 'UInt32'],
  ['process_executable_name', 'String'],
  ['cgroup_id', 'UInt64'],
  ...ENDS_IDENTITY_COLUMNS,
  ...POSITION_COLUMNS,
];

/** The http_requests table: its events joined at the request's start. */
export const HTTP_TABLE: EventTable<HttpEvent> = {
  name: 'http_requests',
  columns: HTTP_COLUMNS,
  rows: (capacityBytes) => new HttpRows(capacityBytes),
  joinTimeNs: (event) => event.request_start_time_ns,
  ends: (event) => event,
};

/**
 * Bytes of a row besides its strings and Kafka position: 4x8 times and the duration, the exchange seq, 2 enums, the
 * status, 4x8 sizes, the network type, 2x16 addresses, 2 ports, the pid, the cgroup id.
 */
const FIXED_ROW_BYTES = 5 * 8 + 4 + 2 + 2 + 4 * 8 + 1 + 2 * 16 + 2 * 2 + 4 + 8;
/** Strings per row (the Kafka topic and labels aside), each with a varint length of at most 5 bytes. */
const STRINGS_PER_ROW = 9;

/** The rows of one insert into `http_requests`. */
export class HttpRows extends RowBinaryRows<HttpEvent> {
  add(event: HttpEvent, identities: FlowIdentities, position: KafkaPosition): void {
    const client = identityBytes(identities.client);
    const server = identityBytes(identities.server);
    this.usePosition(position);
    const original = event.http_request_method_original ?? '';
    const comm = event.process_executable_name ?? '';
    // Upper bound: UTF-8 takes at most 3 bytes per UTF-16 unit.
    const strings =
      event.connection_id.length +
      event.k8s_node_name.length +
      event.http_request_method.length +
      original.length +
      event.network_protocol_version.length +
      event.url_path.length +
      event.http_route.length +
      event.network_transport.length +
      comm.length;
    this.reserve(FIXED_ROW_BYTES + STRINGS_PER_ROW * 5 + 3 * strings + client.length + server.length + this.positionBytes.length);
    const view = this.view;
    let p = this.pos;
    view.setBigInt64(p, event.request_start_time_ns, true);
    view.setBigInt64(p + 8, event.request_end_time_ns, true);
    view.setBigInt64(p + 16, event.response_start_time_ns ?? 0n, true);
    view.setBigInt64(p + 24, event.response_end_time_ns ?? 0n, true);
    view.setBigInt64(p + 32, event.duration_ns ?? 0n, true);
    p = this.string(p + 40, event.connection_id);
    view.setUint32(p, event.exchange_seq, true);
    p = this.string(p + 4, event.k8s_node_name);
    view.setInt8(p, observerSide(event.observer_side));
    view.setInt8(p + 1, outcome(event.outcome));
    p = this.string(p + 2, event.http_request_method);
    p = this.string(p, original);
    p = this.string(p, event.network_protocol_version);
    p = this.string(p, event.url_path);
    p = this.string(p, event.http_route);
    view.setUint16(p, event.http_response_status_code ?? 0, true);
    view.setBigUint64(p + 2, event.http_request_header_size, true);
    view.setBigUint64(p + 10, event.http_request_body_size, true);
    view.setBigUint64(p + 18, event.http_response_header_size ?? 0n, true);
    view.setBigUint64(p + 26, event.http_response_body_size ?? 0n, true);
    p = this.string(p + 34, event.network_transport);
    this.addressColumns(p, event);
    view.setUint32(p + 37, event.process_pid ?? 0, true);
    p = this.string(p + 41, comm);
    view.setBigUint64(p, event.cgroup_id, true);
    this.endRow(p + 8, client, server);
  }
}

function outcome(name: string): number {
  if (name === 'complete') return 1;
  if (name === 'upgraded') return 2;
  if (name === 'unanswered') return 3;
  throw badEnum('outcome', name, 'complete, upgraded, unanswered');
}
