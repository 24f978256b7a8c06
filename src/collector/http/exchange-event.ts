/**
 * A captured exchange (capture.ts: the parser's exchange with its path, capped route and connection) → the http.v1
 * event (src/events/http.ts). Pure: no I/O, no clock. Privacy was applied before (capture.ts keeps the path
 * without its query string, route.ts templates it); this adds nothing of the request's text. The connection id is
 * the one the socket's flow events carry, and the observing side and addresses are the socket's, as flows has them,
 * so that the enricher names both ends the same way for both topics.
 */
import { FlowSide } from '../../ebpf/records/flow.js';
import type { HttpEvent, HttpOutcome } from '../../events/http.js';
import { connectionId, type CollectorContext } from '../record-kind.js';
import type { CapturedExchange } from './capture.js';

export function toHttpEvent(exchange: CapturedExchange, context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>): HttpEvent {
  const { ends } = exchange;
  return {
    connection_id: connectionId(context, exchange.connId),
    exchange_seq: exchange.seq,
    k8s_node_name: context.nodeName,
    observer_side: ends.side === FlowSide.client ? 'client' : 'server',
    outcome: outcomeOf(exchange),
    request_start_time_ns: context.toWallNs(exchange.requestFirstNs),
    request_end_time_ns: context.toWallNs(exchange.requestLastNs),
    response_start_time_ns: exchange.responseFirstNs === null ? null : context.toWallNs(exchange.responseFirstNs),
    response_end_time_ns: exchange.responseLastNs === null ? null : context.toWallNs(exchange.responseLastNs),
    duration_ns: exchange.latencyNs,
    http_request_method: exchange.method,
    http_request_method_original: exchange.methodOriginal,
    network_protocol_version: exchange.version,
    url_path: exchange.path,
    http_route: exchange.route,
    http_response_status_code: exchange.status,
    http_request_header_size: BigInt(exchange.requestBytes - exchange.requestBodyBytes),
    http_request_body_size: BigInt(exchange.requestBodyBytes),
    http_response_header_size: exchange.responseBytes === null ? null : BigInt(exchange.responseBytes - (exchange.responseBodyBytes ?? 0)),
    http_response_body_size: exchange.responseBodyBytes === null ? null : BigInt(exchange.responseBodyBytes),
    network_transport: 'tcp',
    network_type: ends.serverAddress.includes(':') ? 'ipv6' : 'ipv4',
    client_address: ends.clientAddress,
    client_port: ends.clientPort,
    server_address: ends.serverAddress,
    server_port: ends.serverPort,
    process_pid: exchange.pid > 0 ? exchange.pid : null,
    // Chunk records carry the pid, not the comm.
    process_executable_name: null,
    cgroup_id: exchange.cgroupId,
  };
}

/**
 * No status: no response came before the connection closed (or idled out). After 101 Switching Protocols, or a
 * CONNECT answered 2xx, the parser stops: the connection carries something else.
 */
function outcomeOf(exchange: CapturedExchange): HttpOutcome {
  const { status } = exchange;
  if (status === null) return 'unanswered';
  return status === 101 || (exchange.method === 'CONNECT' && status >= 200 && status < 300) ? 'upgraded' : 'complete';
}
