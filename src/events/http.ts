/**
 * The http topic (`http.v1`): one HttpEvent per HTTP/1.x exchange and observing side (schemas/avro/http.v1.avsc,
 * record dev.sidecarless.HttpEvent), packed into HttpBatch messages like flows. Written by the collector, read by
 * the enricher and by anyone's own consumers. The Avro schema is the contract; these types mirror it.
 *
 * Privacy is part of the contract: an event holds no header, cookie, body, query string, fragment, scheme or
 * authority, so no consumer downstream has to filter them (src/collector/http/route.ts decides what is kept).
 */
import { collectorEventContract, type PackedTopicContract } from './contract.js';

/**
 * complete: request and final response seen (a response body the close cut counts the bytes that came); upgraded:
 * 101, or a CONNECT accepted; unanswered: closed before a response.
 */
export type HttpOutcome = 'complete' | 'upgraded' | 'unanswered';

export interface HttpEvent {
  connection_id: string;
  exchange_seq: number;
  k8s_node_name: string;
  observer_side: 'client' | 'server';
  outcome: HttpOutcome;
  request_start_time_ns: bigint;
  request_end_time_ns: bigint;
  response_start_time_ns: bigint | null;
  response_end_time_ns: bigint | null;
  duration_ns: bigint | null;
  http_request_method: string;
  http_request_method_original: string | null;
  network_protocol_version: '1.0' | '1.1';
  url_path: string;
  http_route: string;
  http_response_status_code: number | null;
  http_request_header_size: bigint;
  http_request_body_size: bigint;
  http_response_header_size: bigint | null;
  http_response_body_size: bigint | null;
  network_transport: 'tcp';
  network_type: 'ipv4' | 'ipv6';
  client_address: string;
  client_port: number;
  server_address: string;
  server_port: number;
  process_pid: number | null;
  process_executable_name: string | null;
  cgroup_id: bigint;
}

export interface HttpBatch {
  events: HttpEvent[];
}

// Every exchange of a connection in one partition, in order, and in the partition its flow events take.
export const HTTP: PackedTopicContract<HttpEvent, HttpBatch> = collectorEventContract('http.v1', 'sidecarless.http.v1');
