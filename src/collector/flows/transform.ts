/**
 * Kernel flow record -> FlowEvent. Pure: no I/O; the clock offset and identity of this collector come in.
 * Orients the observer's sent/received counters into client->server / server->client, converts kernel
 * monotonic time to wall-clock ns, and names how the connection ended.
 */
import { FlowFlag, FlowKind, FlowSide, TcpState, type FlowRecord } from '../../ebpf/records/flow.js';
import type { CloseReason, FlowEvent } from '../../events/flows.js';
import type { CollectorContext } from '../record-kind.js';

/** States a socket leaves for CLOSE after an orderly shutdown of at least one direction. */
const ORDERLY_STATES = new Set<number>([TcpState.FIN_WAIT1, TcpState.FIN_WAIT2, TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT]);

export function closeReason(record: Pick<FlowRecord, 'kind' | 'lastState' | 'flags'>): CloseReason {
  if (record.kind === FlowKind.interim) return 'open';
  const { lastState, flags } = record;
  if (lastState === TcpState.SYN_SENT) return flags & FlowFlag.rstReceived ? 'refused' : 'connect_timeout';
  if (flags & FlowFlag.rstReceived) return 'reset_received';
  if (flags & FlowFlag.rstSent) return 'reset_sent';
  if (ORDERLY_STATES.has(lastState)) return 'normal';
  return 'aborted';
}

export function toFlowEvent(record: FlowRecord, context: CollectorContext): FlowEvent {
  const client = record.side === FlowSide.client;
  const established = (record.flags & FlowFlag.established) !== 0;
  return {
    connection_id: `${context.nodeName}/${context.epoch}/${record.connId}`,
    k8s_node_name: context.nodeName,
    record_kind: record.kind === FlowKind.final ? 'final' : 'interim',
    record_seq: record.recordSeq,
    observer_side: client ? 'client' : 'server',
    start_time_ns: context.toWallNs(record.startMonotonicNs),
    time_ns: context.toWallNs(record.monotonicNs),
    network_transport: 'tcp',
    network_type: record.serverAddress.includes(':') ? 'ipv6' : 'ipv4',
    client_address: record.clientAddress,
    client_port: record.clientPort,
    server_address: record.serverAddress,
    server_port: record.serverPort,
    bytes_client_to_server: client ? record.bytesSent : record.bytesReceived,
    bytes_server_to_client: client ? record.bytesReceived : record.bytesSent,
    segments_client_to_server: BigInt(client ? record.segsSent : record.segsReceived),
    segments_server_to_client: BigInt(client ? record.segsReceived : record.segsSent),
    rtt_us: record.srttUs > 0 ? record.srttUs : null,
    rtt_var_us: record.srttUs > 0 ? record.rttvarUs : null,
    retransmits: record.retransmits,
    syn_retransmits: record.synRetransmits,
    connect_latency_us: client && established && record.connectUs > 0 ? record.connectUs : null,
    handshake_completed: established,
    close_reason: closeReason(record),
    process_pid: record.pid > 0 ? record.pid : null,
    thread_id: record.pid > 0 ? record.tid : null,
    process_executable_name: record.pid > 0 ? record.comm : null,
    cgroup_id: record.cgroupId,
    network_namespace_inode: BigInt(record.netnsIno),
    sampling_rate: 1,
  };
}
