/**
 * HTTP exchanges for tests, made the collector's way: chunk records as bpf/http.bpf.c writes them (decoded) through
 * HttpCapture (the parser, the path without its query string, the capped route) and the http kind's writer (its
 * Avro, decoded: httpEventReader), so that what a test stores went through the same privacy rules; and plain events
 * with every field derived from a number.
 */
import { HttpCapture, type CapturedExchange } from '../../src/collector/http/capture.js';
import { httpEventReader } from '../../src/collector/http/exchange-event.js';
import { loadRegistry } from '../../src/common/avro.js';
import { FlowSide } from '../../src/ebpf/records/flow.js';
import { HttpDirection, type HttpChunkEnds } from '../../src/ebpf/records/http-chunk.js';
import { HTTP, type HttpBatch, type HttpEvent } from '../../src/events/http.js';

/**
 * One request and its response as the observed socket's calls: the request at `atNs`, the response `durationNs`
 * after; no response: the request is left unanswered when the connection closes after the last exchange.
 */
export interface ExchangeBytes {
  request: string;
  response?: string;
  atNs: bigint;
  durationNs: bigint;
  /** The response call's full length when the kernel's copy (`response`) was cut short: the rest is body. */
  responseCallBytes?: number;
}

/** The socket the calls were made on: its node, kernel conn id (epoch e1), cgroup, caller and ends. */
export interface ObservedSocket {
  node: string;
  connId: bigint;
  cgroupId: bigint;
  pid: number;
  side: 'client' | 'server';
  clientAddress: string;
  clientPort: number;
  serverAddress: string;
  serverPort: number;
}

/**
 * What HttpCapture made of the exchanges on the socket, each request and response in one call (kernel time = wall
 * time), and of its close after them (flows' final record, then the capture's two ticks).
 */
export function capturedExchanges(socket: ObservedSocket, exchanges: readonly ExchangeBytes[]): CapturedExchange[] {
  const out: CapturedExchange[] = [];
  const capture = new HttpCapture(
    { maxConnections: 10, idleNs: 60_000_000_000n, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 200, maxRouteServices: 1000, firstConnId: 0n },
    (exchange) => out.push(exchange),
  );
  const { side, clientAddress, clientPort, serverAddress, serverPort } = socket;
  const ends: HttpChunkEnds = { side: FlowSide[side], clientAddress, clientPort, serverAddress, serverPort };
  const call = (direction: 'sent' | 'received', text: string, atNs: bigint, length = text.length) =>
    capture.add(
      { monotonicNs: atNs, connId: socket.connId, cgroupId: socket.cgroupId, callStartNs: atNs, length, pid: socket.pid, tid: socket.pid, direction: HttpDirection[direction], flags: 0, data: Buffer.from(text, 'latin1') },
      () => ends,
    );
  for (const { request, response, atNs, durationNs, responseCallBytes } of exchanges) {
    call(side === 'client' ? 'sent' : 'received', request, atNs);
    if (response !== undefined) call(side === 'client' ? 'received' : 'sent', response, atNs + durationNs, responseCallBytes);
  }
  capture.connectionClosed(socket.connId);
  capture.tick(0n);
  capture.tick(0n);
  return out;
}

/** The http.v1 events of the exchanges on the socket, as the collector makes them. */
export function httpEvents(socket: ObservedSocket, exchanges: readonly ExchangeBytes[]): HttpEvent[] {
  const toEvent = httpEventReader({ nodeName: socket.node, epoch: 'e1', toWallNs: (ns: bigint) => ns }, loadRegistry().codec<HttpBatch>(HTTP.subject));
  return capturedExchanges(socket, exchanges).map(toEvent);
}

/** A client socket from 10.0.0.1:40000 to 10.0.0.2:8080 on test-node, conn id 1. */
export function observedSocket(overrides: Partial<ObservedSocket> = {}): ObservedSocket {
  return { node: 'test-node', connId: 1n, cgroupId: 0n, pid: 1234, side: 'client', clientAddress: '10.0.0.1', clientPort: 40000, serverAddress: '10.0.0.2', serverPort: 8080, ...overrides };
}

/** A complete client-side GET of exchange `n` (200, durations and sizes derived from n), at `startNs`. */
export function httpEvent(n: number, startNs: bigint, overrides: Partial<HttpEvent> = {}): HttpEvent {
  const duration = BigInt(1000 + n) * 1000n;
  return {
    connection_id: `test-node/e1/${n}`,
    k8s_node_name: 'test-node',
    network_type: 'ipv4',
    client_address: '10.0.0.1',
    client_port: 40000,
    server_address: '10.0.0.2',
    server_port: 8080,
    process_pid: 1234,
    process_executable_name: 'curl',
    cgroup_id: 0n,
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
