/**
 * HTTP exchanges for tests, made the collector's way: bytes of one connection through the real parser
 * (src/collector/http/parser.ts) and the exchange → event mapping (exchange-event.ts), so that what a test stores
 * went through the same privacy rules; and plain events with every field derived from a number.
 */
import { ExchangeEvents, type HttpConnection } from '../../src/collector/http/exchange-event.js';
import { HttpConnectionParser, createHttpParseCounters, type HttpExchange, type HttpRequestSeen, type ObserverRole } from '../../src/collector/http/parser.js';
import { RouteCatalog } from '../../src/collector/http/route-catalog.js';
import { RouteTemplater } from '../../src/collector/http/route.js';
import type { HttpEvent } from '../../src/events/http.js';

/**
 * One request and its response as the observed socket's calls: the request at `atNs`, the response `durationNs`
 * after its last byte; no response: the connection closes with the request unanswered.
 */
export interface ExchangeBytes {
  request: string;
  response?: string;
  atNs: bigint;
  durationNs: bigint;
}

/**
 * What the parser reported of a socket of `side` that saw the exchanges (request and response each in one call; the
 * client writes the request) and then closed: paired exchanges as they came, then the requests left unanswered.
 */
export function parsedExchanges(side: ObserverRole, exchanges: readonly ExchangeBytes[]): Array<HttpExchange | HttpRequestSeen> {
  const out: Array<HttpExchange | HttpRequestSeen> = [];
  const parser = new HttpConnectionParser((exchange) => out.push(exchange), createHttpParseCounters(), (request) => out.push(request));
  for (const { request, response, atNs, durationNs } of exchanges) {
    const [requestCall, responseCall] = side === 'client' ? (['sent', 'received'] as const) : (['received', 'sent'] as const);
    parser[requestCall](Buffer.from(request, 'latin1'), atNs);
    if (response !== undefined) parser[responseCall](Buffer.from(response, 'latin1'), atNs + durationNs);
  }
  parser.end();
  return out;
}

/** The http.v1 events of what a socket of `side` on `connection` saw (parsedExchanges), numbered from 0, with the default settings. */
export function httpEvents(side: ObserverRole, connection: HttpConnection, exchanges: readonly ExchangeBytes[]): HttpEvent[] {
  const mapper = new ExchangeEvents({
    templater: new RouteTemplater([], 2048),
    catalog: new RouteCatalog({ maxRoutesPerService: 200, maxServices: 1000, drops: { add: () => {} } }),
    maxPathBytes: 2048,
  });
  return parsedExchanges(side, exchanges).map((exchange, seq) => mapper.toEvent(exchange, connection, seq));
}

/** The connection fields of an event, client 10.0.0.1 to server 10.0.0.2:8080 on test-node. */
export function httpConnection(id: string, overrides: Partial<HttpConnection> = {}): HttpConnection {
  return {
    connection_id: id,
    k8s_node_name: 'test-node',
    network_type: 'ipv4',
    client_address: '10.0.0.1',
    client_port: 40000,
    server_address: '10.0.0.2',
    server_port: 8080,
    process_pid: 1234,
    process_executable_name: 'curl',
    cgroup_id: 0n,
    ...overrides,
  };
}

/** A complete client-side GET of exchange `n` (200, durations and sizes derived from n), at `startNs`. */
export function httpEvent(n: number, startNs: bigint, overrides: Partial<HttpEvent> = {}): HttpEvent {
  const duration = BigInt(1000 + n) * 1000n;
  return {
    ...httpConnection(`test-node/e1/${n}`),
    exchange_seq: 0,
    observer_side: 'client',
    outcome: 'complete',
    request_start_time_ns: startNs,
    request_end_time_ns: startNs + 1000n,
    response_start_time_ns: startNs + 1000n + duration,
    response_end_time_ns: startNs + 2000n + duration,
    duration_ns: duration,
    http_request_method: 'GET',
    http_request_method_original: null,
    network_protocol_version: '1.1',
    url_path: `/items/${n}`,
    http_route: '/items/{id}',
    http_response_status_code: 200,
    http_request_header_size: 40n,
    http_request_body_size: 0n,
    http_response_header_size: 60n,
    http_response_body_size: BigInt(100 + n),
    network_transport: 'tcp',
    ...overrides,
  };
}
