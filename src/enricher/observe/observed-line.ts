/**
 * One event of `sidecarless observe`, named at its own time, as a terminal line or a JSON line; and the filters a
 * user narrows the stream with. Pure.
 *
 * A line reads client -> server, whichever side observed it (the observer is said at the end):
 *   2026-12-02T07:50:01.123456789Z flow  shop/frontend-6d4 -> billing/payments-7f9 (svc payments):9090 final 1200B/35200B rtt 850us normal [client]
 *   2026-12-02T07:50:01.200000000Z http  shop/frontend-6d4 -> svc billing/payments:80 GET /api/orders/{id} 200 1.25ms [client]
 *   2026-12-02T07:50:02.000000000Z verdict ops/prober-1 -> billing/payments-7f9:5432 deny egress [default-deny] [client]
 * An end is a pod (namespace/pod, and the Service it served when the server), a Service (its ClusterIP), a node, or
 * its address when nothing named it (with `?` when the metadata was not complete yet: late).
 */
import type { FlowEvent } from '../../events/flows.js';
import type { HttpEvent } from '../../events/http.js';
import type { VerdictEvent } from '../../events/verdicts.js';
import type { EndpointIdentity, FlowIdentities } from '../../metadata/index/identity.js';

export type ObservedKind = 'flow' | 'http' | 'verdict';

export type Observed =
  | { kind: 'flow'; event: FlowEvent; ends: FlowIdentities }
  | { kind: 'http'; event: HttpEvent; ends: FlowIdentities }
  | { kind: 'verdict'; event: VerdictEvent; ends: FlowIdentities };

/** What a user narrows the stream to; each given field must hold for one end or the other (or the server port). */
export interface ObserveFilter {
  namespace?: string;
  /** A workload's or a Service's name. */
  workload?: string;
  pod?: string;
  serverPort?: number;
}

export function matches(filter: ObserveFilter, { kind, event, ends }: Observed): boolean {
  const either = (test: (end: EndpointIdentity) => boolean) => test(ends.client) || test(ends.server);
  const port = kind === 'verdict' ? event.destination_port : event.server_port;
  return (
    (filter.namespace === undefined || either((end) => end.k8s_namespace_name === filter.namespace)) &&
    (filter.workload === undefined || either((end) => end.k8s_workload_name === filter.workload || end.k8s_service_name === filter.workload)) &&
    (filter.pod === undefined || either((end) => end.k8s_pod_name === filter.pod)) &&
    (filter.serverPort === undefined || port === filter.serverPort)
  );
}

export function textLine(observed: Observed): string {
  const { kind, event, ends } = observed;
  const [client, server, port, details, time] =
    kind === 'flow'
      ? [event.client_address, event.server_address, event.server_port, flowDetails(event), event.time_ns]
      : kind === 'http'
        ? [event.client_address, event.server_address, event.server_port, httpDetails(event), event.request_start_time_ns]
        : [event.source_address, event.destination_address, event.destination_port, verdictDetails(event), event.time_ns];
  const observer = kind === 'verdict' ? (event.direction === 'egress' ? 'client' : 'server') : event.observer_side;
  return `${isoNs(time)} ${kind.padEnd(7)} ${endText(ends.client, client)} -> ${endText(ends.server, server)}:${port} ${details} [${observer}]`;
}

/** The event and both ends' identities as one JSON object (64-bit integers as strings, as every reader here gets them). */
export function jsonLine({ kind, event, ends }: Observed): string {
  return JSON.stringify({ kind, ...event, client: ends.client, server: ends.server }, (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
}

function endText(end: EndpointIdentity, address: string): string {
  switch (end.kind) {
    case 'pod':
      return `${end.k8s_namespace_name}/${end.k8s_pod_name}${end.k8s_service_name === '' ? '' : ` (svc ${end.k8s_service_name})`}`;
    case 'service':
      return `svc ${end.k8s_namespace_name}/${end.k8s_service_name}`;
    case 'node':
      return `node ${end.k8s_node_name}`;
    default:
      return `${address.includes(':') ? `[${address}]` : address}${end.status === 'late' ? '?' : ''}`;
  }
}

function flowDetails(event: FlowEvent): string {
  const rtt = event.rtt_us === null ? '' : ` rtt ${event.rtt_us}us`;
  const close = event.record_kind === 'final' ? ` ${event.close_reason}` : '';
  // Its start and connect time were not seen; its bytes still count from the connection's beginning.
  const adopted = event.started_before_tracing ? ' (open before tracing)' : '';
  return `${event.record_kind} ${event.bytes_client_to_server}B/${event.bytes_server_to_client}B${rtt}${close}${adopted}`;
}

function httpDetails(event: HttpEvent): string {
  const status = event.http_response_status_code ?? '-';
  const duration = event.duration_ns === null ? '' : ` ${(Number(event.duration_ns) / 1e6).toFixed(2)}ms`;
  return `${event.http_request_method} ${event.http_route} ${status}${duration}`;
}

function verdictDetails(event: VerdictEvent): string {
  return `${event.verdict} ${event.direction} [${event.policies.join(',')}]`;
}

/** A nanosecond time as ISO 8601 UTC with all nine digits. */
function isoNs(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString();
  return `${iso.slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}
