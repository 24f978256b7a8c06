/**
 * Kernel flow record -> the FlowEvent the flows topic carries, written as Avro straight from the ring record
 * (FlowEventWriter): no record or event object is made, and the bytes are those the flows schema's encoder wrote
 * for the FlowEvent object this replaced (test/flows/flow-encoding.test.ts holds them to that). Pure: no I/O; the
 * clock offset and identity of this collector come in. Orients the observer's sent/received counters into
 * client->server / server->client, converts kernel monotonic time to wall-clock ns, and names how the connection
 * ended.
 */
import { AvroWriter, encodedString, optionalInt } from '../../common/avro-writer.js';
import type { Codec } from '../../common/avro.js';
import { MAX_ADDRESS_TEXT } from '../../ebpf/records/address.js';
import { COMM_BYTES } from '../../ebpf/records/comm.js';
import { FlowFlag, FlowKind, FlowSide, TcpState, type FlowRecord, type FlowRecordView } from '../../ebpf/records/flow.js';
import type { CloseReason, FlowBatch, FlowEvent } from '../../events/flows.js';
import { ConnectionIdBytes } from '../connection-id.js';
import type { CollectorContext } from '../record-kind.js';

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

/** The Avro of each close reason (a string field), written once. */
const CLOSE_REASONS: Readonly<Record<CloseReason, Uint8Array>> = Object.fromEntries(
  (['open', 'normal', 'reset_received', 'reset_sent', 'refused', 'connect_timeout', 'aborted'] as const).map((reason) => [reason, encodedString(reason)]),
) as Record<CloseReason, Uint8Array>;
const TCP = encodedString('tcp');
const IPV4 = encodedString('ipv4');
const IPV6 = encodedString('ipv6');
/** Every field but the two names of this collector, at their longest (10 bytes a varint, addresses and comm in full). */
const MAX_FIXED_BYTES = 2 * (1 + MAX_ADDRESS_TEXT) + (1 + 2 * COMM_BYTES) + 24 * 10 + 64;

const writeClientAddress = (record: FlowRecordView, target: Uint8Array, pos: number) => record.writeClientAddress(target, pos);
const writeServerAddress = (record: FlowRecordView, target: Uint8Array, pos: number) => record.writeServerAddress(target, pos);
const writeComm = (record: FlowRecordView, target: Uint8Array, pos: number) => record.writeComm(target, pos);

/**
 * Writes the FlowEvent of a ring record (FlowRecordView) as Avro, in the schema's field order
 * (schemas/avro/flows.v2.avsc), and picks its partition from its connection id's bytes, as partitionOf would from
 * the string. One per collector run: the node name and the connection ids' prefix are encoded once.
 */
export class FlowEventWriter {
  private readonly nodeName: Uint8Array;
  /** The connection id of the record at hand. */
  private readonly id: ConnectionIdBytes;
  private readonly maxEventBytes: number;

  constructor(private readonly context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>) {
    this.nodeName = encodedString(context.nodeName);
    this.id = new ConnectionIdBytes(context);
    this.maxEventBytes = 10 + this.id.maxBytes + this.nodeName.length + MAX_FIXED_BYTES;
  }

  /** The partition of the record's events: murmur2 of its connection id, as Kafka's default partitioner. */
  partitionOf(record: FlowRecordView, partitions: number): number {
    return this.id.partitionOf(record.connId, partitions);
  }

  /** The record's FlowEvent as Avro at `out`'s position; throws on a value the schema refuses (nothing is then kept). */
  write(record: FlowRecordView, out: AvroWriter): void {
    out.reserve(this.maxEventBytes);
    const client = record.side === FlowSide.client;
    const established = (record.flags & FlowFlag.established) !== 0;
    const owned = record.pid > 0;
    const idBytes = this.id.write(record.connId);
    out.long(idBytes); // connection_id
    out.raw(this.id.bytes, idBytes);
    out.raw(this.nodeName); // k8s_node_name
    out.index(record.kind === FlowKind.final ? 1 : 0); // record_kind: interim | final
    out.int(record.recordSeq); // record_seq
    out.index(client ? 0 : 1); // observer_side: client | server
    out.long(this.context.toWallNs(record.startMonotonicNs)); // start_time_ns
    out.long(this.context.toWallNs(record.monotonicNs)); // time_ns
    out.raw(TCP); // network_transport
    out.raw(record.serverIsIPv4 ? IPV4 : IPV6); // network_type
    out.shortString(record, writeClientAddress); // client_address
    out.int(record.clientPort); // client_port
    out.shortString(record, writeServerAddress); // server_address
    out.int(record.serverPort); // server_port
    out.long(client ? record.bytesSent : record.bytesReceived); // bytes_client_to_server
    out.long(client ? record.bytesReceived : record.bytesSent); // bytes_server_to_client
    out.long(client ? record.segsSent : record.segsReceived); // segments_client_to_server
    out.long(client ? record.segsReceived : record.segsSent); // segments_server_to_client
    const srttUs = record.srttUs;
    optionalInt(out, srttUs > 0, srttUs); // rtt_us
    optionalInt(out, srttUs > 0, record.rttvarUs); // rtt_var_us
    out.int(record.retransmits); // retransmits
    out.int(record.synRetransmits); // syn_retransmits
    const connectUs = record.connectUs;
    optionalInt(out, client && established && connectUs > 0, connectUs); // connect_latency_us
    out.boolean(established); // handshake_completed
    out.raw(CLOSE_REASONS[closeReason(record)]); // close_reason
    optionalInt(out, owned, record.pid); // process_pid
    optionalInt(out, owned, record.tid); // thread_id
    out.index(owned ? 1 : 0); // process_executable_name: null | string
    if (owned) out.shortString(record, writeComm);
    out.long(record.cgroupId); // cgroup_id
    out.long(record.netnsIno); // network_namespace_inode
    out.int(1); // sampling_rate
    out.boolean((record.flags & FlowFlag.adopted) !== 0); // started_before_tracing
  }
}

/**
 * The FlowEvent of a record as the flows topic carries it (FlowEventWriter's bytes, decoded by the flows schema),
 * for tests and benches that look at events; one writer and one message reused for every record.
 */
export function flowEventReader(context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>, codec: Codec<FlowBatch>): (record: FlowRecordView) => FlowEvent {
  const writer = new FlowEventWriter(context);
  const message = codec.batchBuilder<FlowRecordView>((record, out) => writer.write(record, out));
  return (record) => {
    message.add(record);
    return codec.decodeFrom(message.seal(), codec).events[0]!;
  };
}
