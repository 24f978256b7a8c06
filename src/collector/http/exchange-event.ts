/**
 * A paired exchange (exchange.ts) and the connection it was seen on → the http.v1 event (src/events/http.ts).
 * Pure: no I/O, no clock. This is where the privacy rules are applied to what leaves the collector: the target
 * becomes its path (urlPath: query string, fragment, scheme and authority cut first) and the path its route
 * (RouteTemplater, then RouteCatalog's per-service cap); nothing else of the request's text is read. Headers and
 * bodies never reached the exchange; only their sizes did.
 */
import type { HttpEvent, HttpOutcome } from '../../events/http.js';
import type { HttpExchange, HttpRequestSeen } from './exchange.js';
import type { RouteCatalog } from './route-catalog.js';
import { urlPath, type RouteTemplater } from './route.js';

/** What the collector knows of the connection an exchange was seen on: the fields its flow events carry too. */
export interface HttpConnection {
  readonly connection_id: string;
  readonly k8s_node_name: string;
  readonly network_type: 'ipv4' | 'ipv6';
  readonly client_address: string;
  readonly client_port: number;
  readonly server_address: string;
  readonly server_port: number;
  readonly process_pid: number | null;
  readonly process_executable_name: string | null;
  readonly cgroup_id: bigint;
}

export interface ExchangeEventsOptions {
  templater: RouteTemplater;
  catalog: RouteCatalog;
  /** config http.maxPathBytes */
  maxPathBytes: number;
}

export class ExchangeEvents {
  constructor(private readonly options: ExchangeEventsOptions) {}

  /**
   * The event of the `seq`-th exchange the observer reported on `connection`: a paired exchange, or a request the
   * connection closed before answering (the parser's `unanswered`: outcome 'unanswered', response fields null). The
   * route cap counts per server end (address and port as the observer saw them): the service a client called, or
   * the one a server runs.
   */
  toEvent(exchange: HttpExchange | HttpRequestSeen, connection: HttpConnection, seq: number): HttpEvent {
    const { templater, catalog, maxPathBytes } = this.options;
    const path = urlPath(exchange.target, maxPathBytes);
    const route = catalog.admit(`${connection.server_address}:${connection.server_port}`, templater.route(path));
    const response = 'status' in exchange ? exchange : undefined;
    return {
      connection_id: connection.connection_id,
      exchange_seq: seq,
      k8s_node_name: connection.k8s_node_name,
      observer_side: exchange.observer,
      outcome: response === undefined ? 'unanswered' : outcomeOf(response),
      request_start_time_ns: exchange.requestFirstNs,
      request_end_time_ns: exchange.requestLastNs,
      response_start_time_ns: response?.responseFirstNs ?? null,
      response_end_time_ns: response?.responseLastNs ?? null,
      duration_ns: response?.latencyNs ?? null,
      http_request_method: exchange.method,
      http_request_method_original: exchange.methodOriginal,
      network_protocol_version: exchange.version,
      url_path: path,
      http_route: route,
      http_response_status_code: response?.status ?? null,
      http_request_header_size: BigInt(exchange.requestHeaderBytes),
      http_request_body_size: BigInt(exchange.requestBodyBytes),
      http_response_header_size: response === undefined ? null : BigInt(response.responseHeaderBytes),
      http_response_body_size: response === undefined ? null : BigInt(response.responseBodyBytes),
      network_transport: 'tcp',
      network_type: connection.network_type,
      client_address: connection.client_address,
      client_port: connection.client_port,
      server_address: connection.server_address,
      server_port: connection.server_port,
      process_pid: connection.process_pid,
      process_executable_name: connection.process_executable_name,
      cgroup_id: connection.cgroup_id,
    };
  }
}

/** After 101 Switching Protocols, or a CONNECT answered 2xx, the parser stops: the connection carries something else. */
function outcomeOf(exchange: HttpExchange): HttpOutcome {
  const { status } = exchange;
  return status === 101 || (exchange.method === 'CONNECT' && status >= 200 && status < 300) ? 'upgraded' : 'complete';
}
