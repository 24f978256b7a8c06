/**
 * FlowEvent: one event of the flows topic (schemas/avro/flows.v1.avsc, record dev.sidecarless.FlowEvent), and the
 * FlowBatch message value that packs several of them. The Avro schema is the contract; this type mirrors it.
 */
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
}

export interface FlowBatch {
  events: FlowEvent[];
}

export const FLOWS_SUBJECT = 'sidecarless.flows.v1';
