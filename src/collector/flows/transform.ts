/**
 * Kernel flow record -> FlowEvent. Pure: no I/O; the clock offset and identity of this collector come in.
 * Orients the observer's sent/received counters into client->server / server->client, converts kernel
 * monotonic time to wall-clock ns, and names how the connection ended.
 */
import { FlowFlag, FlowKind, FlowSide, TcpState, type FlowRecord } from '../../ebpf/records/flow.js';
import type { CloseReason, FlowEvent } from '../../events/flows.js';
import { connectionId, type CollectorContext } from '../record-kind.js';

/**
 * How a connection ended, from the state its socket closed from and the flags the kernel program set as it closed
 * (close_flags() in bpf/flows.bpf.c says what the kernel shows at that moment). What each reason means:
 *   open             interim record: the connection is still open.
 *   refused          client: the SYN was answered by a reset (nothing listened) or an ICMP port unreachable.
 *   connect_timeout  client: the handshake did not complete otherwise: the SYN retries ran out
 *                    (net.ipv4.tcp_syn_retries), an ICMP error answered, or the application closed the socket
 *                    while connecting (its own connect timeout).
 *   reset_received   the kernel closed the socket on the peer's reset. Also data arriving after this side's
 *                    close(): Linux takes that down through its reset path before answering with an RST.
 *   reset_sent       this side aborted with a reset: close() with unread data, close() with SO_LINGER 0,
 *                    connect(AF_UNSPEC), a listener closed with connections it never accepted, or the kernel's own
 *                    aborts (orphan and keepalive timers, memory limits, a socket kill).
 *   aborted          the kernel closed the socket on another error: retransmission or keepalive timeout, an ICMP
 *                    error.
 *   normal           this side's FIN was acknowledged, and the connection ended without error or reset (an
 *                    orphaned socket aborted in FIN_WAIT2 for a negative TCP_LINGER2 or lack of memory also
 *                    reads as normal: the kernel shows nothing else at that point).
 */
export function closeReason(record: Pick<FlowRecord, 'kind' | 'lastState' | 'flags'>): CloseReason {
  if (record.kind === FlowKind.interim) return 'open';
  const { lastState, flags } = record;
  if (lastState === TcpState.SYN_SENT) return flags & FlowFlag.rstReceived ? 'refused' : 'connect_timeout';
  if (flags & FlowFlag.rstReceived) return 'reset_received';
  if (flags & FlowFlag.rstSent) return 'reset_sent';
  if (flags & FlowFlag.error) return 'aborted';
  return 'normal';
}

export function toFlowEvent(record: FlowRecord, context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>): FlowEvent {
  const client = record.side === FlowSide.client;
  const established = (record.flags & FlowFlag.established) !== 0;
  return {
    connection_id: connectionId(context, record.connId),
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
