/**
 * The flows topic (`flows.v1`): one FlowEvent per TCP connection and observing side, final or interim
 * (schemas/avro/flows.v2.avsc, record dev.sidecarless.FlowEvent), packed into FlowBatch messages. Written by the
 * collector, read by the enricher and by anyone's own consumers. The Avro schema is the contract; these types
 * mirror it. Version 2 added started_before_tracing; events written with version 1 (schema id 2) read as false.
 */
import { collectorEventContract, type PackedTopicContract } from './contract.js';

export type CloseReason = 'open' | 'normal' | 'reset_received' | 'reset_sent' | 'refused' | 'connect_timeout' | 'aborted';

export interface FlowEvent {
  connection_id: string;
  k8s_node_name: string;
  record_kind: 'interim' | 'final';
  record_seq: number;
  observer_side: 'client' | 'server';
  start_time_ns: bigint;
  time_ns: bigint;
  network_transport: 'tcp';
  network_type: 'ipv4' | 'ipv6';
  client_address: string;
  client_port: number;
  server_address: string;
  server_port: number;
  bytes_client_to_server: bigint;
  bytes_server_to_client: bigint;
  segments_client_to_server: bigint;
  segments_server_to_client: bigint;
  rtt_us: number | null;
  rtt_var_us: number | null;
  retransmits: number;
  syn_retransmits: number;
  connect_latency_us: number | null;
  handshake_completed: boolean;
  close_reason: CloseReason;
  process_pid: number | null;
  thread_id: number | null;
  process_executable_name: string | null;
  cgroup_id: bigint;
  network_namespace_inode: bigint;
  sampling_rate: number;
  started_before_tracing: boolean;
}

export interface FlowBatch {
  events: FlowEvent[];
}

// Every event of a connection (interim and final, both sides on one node) in one partition, in order.
export const FLOWS: PackedTopicContract<FlowEvent, FlowBatch> = collectorEventContract('flows.v1', 'sidecarless.flows.v2');
