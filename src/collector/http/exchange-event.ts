/**
 * A captured exchange (capture.ts: the parser's exchange with its path, capped route and connection) → the http.v1
 * event (src/events/http.ts), written as Avro straight from the exchange (HttpEventWriter): no event object, and the
 * bytes are those the http schema's encoder wrote for the HttpEvent object this replaced
 * (test/http/http-encoding.test.ts holds them to that). Pure: no I/O, no clock. Privacy was applied before
 * (capture.ts keeps the path without its query string, route.ts templates it); this adds nothing of the request's
 * text. The connection id is the one the socket's flow events carry, and the observing side and addresses are the
 * socket's, as flows has them, so that the enricher names both ends the same way for both topics.
 */
import { AvroWriter, encodedString, optionalInt, optionalLong } from '../../common/avro-writer.js';
import type { Codec } from '../../common/avro.js';
import { FlowSide } from '../../ebpf/records/flow.js';
import type { HttpChunkEnds } from '../../ebpf/records/http-chunk.js';
import type { HttpBatch, HttpEvent, HttpOutcome } from '../../events/http.js';
import { ConnectionIdBytes } from '../connection-id.js';
import type { CollectorContext } from '../record-kind.js';
import type { CapturedExchange } from './capture.js';
import { KNOWN_METHODS } from './start-line.js';

/** The Avro of the strings most events carry, written once. */
const encodedStrings = <Text extends string>(texts: readonly Text[]) => new Map<string, Uint8Array>(texts.map((text) => [text, encodedString(text)]));
const OUTCOMES = encodedStrings<HttpOutcome>(['complete', 'upgraded', 'unanswered']);
const METHODS = encodedStrings([...KNOWN_METHODS, '_OTHER']);
const VERSIONS = encodedStrings(['1.0', '1.1']);
const TCP = encodedString('tcp');
const IPV4 = encodedString('ipv4');
const IPV6 = encodedString('ipv6');
/** Every field but the strings of variable length: at most 10 bytes a varint, a long's union branch included. */
const MAX_FIXED_BYTES = 30 * 11;

/**
 * Writes the HttpEvent of a CapturedExchange as Avro, in the schema's field order (schemas/avro/http.v1.avsc), and
 * picks its partition from its connection id's bytes, as partitionOf would from the string. One per collector run:
 * the node name and the connection ids' prefix are encoded once, a connection's ends once per connection.
 */
export class HttpEventWriter {
  private readonly nodeName: Uint8Array;
  private readonly id: ConnectionIdBytes;
  /** network_transport to server_port, the same for every exchange of a connection (its ends: one object). */
  private readonly endsBytes = new WeakMap<HttpChunkEnds, Uint8Array>();

  constructor(private readonly context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>) {
    this.nodeName = encodedString(context.nodeName);
    this.id = new ConnectionIdBytes(context);
  }

  /** The partition of the exchange's event: murmur2 of its connection id, as Kafka's default partitioner. */
  partitionOf(exchange: CapturedExchange, partitions: number): number {
    return this.id.partitionOf(exchange.connId, partitions);
  }

  /** The exchange's HttpEvent as Avro at `out`'s position; throws on a value the schema refuses (nothing is then kept). */
  write(exchange: CapturedExchange, out: AvroWriter): void {
    const { path, route, method, methodOriginal } = exchange;
    const ends = this.endsOf(exchange.ends);
    // Strings are UTF-16 units, at most 3 UTF-8 bytes each.
    out.reserve(MAX_FIXED_BYTES + this.id.maxBytes + this.nodeName.length + ends.length + 3 * (path.length + route.length + method.length + (methodOriginal?.length ?? 0)));
    const answered = exchange.status !== null;
    const toWallNs = this.context.toWallNs;
    const idBytes = this.id.write(exchange.connId);
    out.long(idBytes); // connection_id
    out.raw(this.id.bytes, idBytes);
    out.int(exchange.seq); // exchange_seq
    out.raw(this.nodeName); // k8s_node_name
    out.index(exchange.ends.side === FlowSide.client ? 0 : 1); // observer_side: client | server
    out.raw(OUTCOMES.get(outcomeOf(exchange))!); // outcome
    out.long(toWallNs(exchange.requestFirstNs)); // request_start_time_ns
    out.long(toWallNs(exchange.requestLastNs)); // request_end_time_ns
    optionalLong(out, exchange.responseFirstNs === null ? null : toWallNs(exchange.responseFirstNs)); // response_start_time_ns
    optionalLong(out, exchange.responseLastNs === null ? null : toWallNs(exchange.responseLastNs)); // response_end_time_ns
    optionalLong(out, exchange.latencyNs); // duration_ns
    writeString(out, METHODS, method); // http_request_method
    out.index(methodOriginal === null ? 0 : 1); // http_request_method_original
    if (methodOriginal !== null) out.string(methodOriginal);
    writeString(out, VERSIONS, exchange.version); // network_protocol_version
    out.string(path); // url_path
    out.string(route); // http_route
    optionalInt(out, answered, exchange.status ?? 0); // http_response_status_code
    out.long(exchange.requestBytes - exchange.requestBodyBytes); // http_request_header_size
    out.long(exchange.requestBodyBytes); // http_request_body_size
    optionalLong(out, exchange.responseBytes === null ? null : exchange.responseBytes - (exchange.responseBodyBytes ?? 0)); // http_response_header_size
    optionalLong(out, exchange.responseBodyBytes); // http_response_body_size
    out.raw(ends); // network_transport, network_type, client_address, client_port, server_address, server_port
    optionalInt(out, exchange.pid > 0, exchange.pid); // process_pid
    out.index(0); // process_executable_name: chunk records carry the pid, not the comm
    out.long(exchange.cgroupId); // cgroup_id
  }

  private endsOf(ends: HttpChunkEnds): Uint8Array {
    let bytes = this.endsBytes.get(ends);
    if (bytes === undefined) {
      const out = new AvroWriter(64 + 6 * (ends.clientAddress.length + ends.serverAddress.length));
      out.raw(TCP);
      out.raw(ends.serverAddress.includes(':') ? IPV6 : IPV4);
      out.string(ends.clientAddress);
      out.int(ends.clientPort);
      out.string(ends.serverAddress);
      out.int(ends.serverPort);
      bytes = out.buf.subarray(0, out.pos);
      this.endsBytes.set(ends, bytes);
    }
    return bytes;
  }
}

/** A string field, from its bytes written once when it is one of them. */
function writeString(out: AvroWriter, encoded: ReadonlyMap<string, Uint8Array>, text: string): void {
  const bytes = encoded.get(text);
  if (bytes === undefined) out.string(text);
  else out.raw(bytes);
}

/**
 * No status: no response came before the connection closed (or idled out). After 101 Switching Protocols, or a
 * CONNECT answered 2xx, the parser stops: the connection carries something else.
 */
function outcomeOf(exchange: CapturedExchange): HttpOutcome {
  const { status } = exchange;
  if (status === null) return 'unanswered';
  return status === 101 || (exchange.method === 'CONNECT' && status >= 200 && status < 300) ? 'upgraded' : 'complete';
}

/**
 * The HttpEvent of an exchange as the http topic carries it (HttpEventWriter's bytes, decoded by the http schema),
 * for tests that look at events, as a plain object (they compare it with literals); one writer and one message
 * reused for every exchange.
 */
export function httpEventReader(context: Pick<CollectorContext, 'nodeName' | 'epoch' | 'toWallNs'>, codec: Codec<HttpBatch>): (exchange: CapturedExchange) => HttpEvent {
  const writer = new HttpEventWriter(context);
  const message = codec.batchBuilder<CapturedExchange>((exchange, out) => writer.write(exchange, out));
  return (exchange) => {
    message.add(exchange);
    return { ...codec.decodeFrom(message.seal(), codec).events[0]! };
  };
}
