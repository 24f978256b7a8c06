/**
 * FlowEvent -> row of the `flows` table (schemas/clickhouse/flows.sql). Pure. Unknown values become the table's
 * sentinels (0 for RTT, pid, connect latency; '' for names), as documented on its columns.
 */
import type { FlowEvent } from '../collector/flow-event.js';

/** Where the event came from, kept on the row so a restart can tell what is already stored. */
export interface KafkaPosition {
  topic: string;
  partition: number;
  offset: string;
}

export interface FlowRow {
  time: string;
  start_time: string;
  connection_id: string;
  k8s_node_name: string;
  record_kind: string;
  record_seq: number;
  observer_side: string;
  network_transport: string;
  network_type: string;
  client_address: string;
  client_port: number;
  server_address: string;
  server_port: number;
  bytes_client_to_server: string;
  bytes_server_to_client: string;
  segments_client_to_server: string;
  segments_server_to_client: string;
  rtt_us: number;
  rtt_var_us: number;
  retransmits: number;
  syn_retransmits: number;
  connect_latency_us: number;
  handshake_completed: boolean;
  close_reason: string;
  process_pid: number;
  thread_id: number;
  process_executable_name: string;
  cgroup_id: string;
  network_namespace_inode: string;
  sampling_rate: number;
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: string;
}

/** DateTime64(9) text: ClickHouse reads "<seconds>.<9 digits>" exactly, with no float rounding. */
export function nanosToDateTime64(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${seconds}.${fraction}`;
}

export function toFlowRow(event: FlowEvent, position: KafkaPosition): FlowRow {
  return {
    time: nanosToDateTime64(event.time_ns),
    start_time: nanosToDateTime64(event.start_time_ns),
    connection_id: event.connection_id,
    k8s_node_name: event.k8s_node_name,
    record_kind: event.record_kind,
    record_seq: event.record_seq,
    observer_side: event.observer_side,
    network_transport: event.network_transport,
    network_type: event.network_type,
    client_address: event.client_address,
    client_port: event.client_port,
    server_address: event.server_address,
    server_port: event.server_port,
    bytes_client_to_server: event.bytes_client_to_server.toString(),
    bytes_server_to_client: event.bytes_server_to_client.toString(),
    segments_client_to_server: event.segments_client_to_server.toString(),
    segments_server_to_client: event.segments_server_to_client.toString(),
    rtt_us: event.rtt_us ?? 0,
    rtt_var_us: event.rtt_var_us ?? 0,
    retransmits: event.retransmits,
    syn_retransmits: event.syn_retransmits,
    connect_latency_us: event.connect_latency_us ?? 0,
    handshake_completed: event.handshake_completed,
    close_reason: event.close_reason,
    process_pid: event.process_pid ?? 0,
    thread_id: event.thread_id ?? 0,
    process_executable_name: event.process_executable_name ?? '',
    cgroup_id: event.cgroup_id.toString(),
    network_namespace_inode: event.network_namespace_inode.toString(),
    sampling_rate: event.sampling_rate,
    kafka_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
  };
}
