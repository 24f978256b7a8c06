/**
 * HTTP exchanges from the kernel's chunk records (struct sl_http_chunk_record, bpf/http.bpf.c): each record's bytes
 * go to the HttpConnectionParser of its connection (one per conn id: a conn id is one socket, so one observer side,
 * and the parser keeps the two directions apart), and each exchange the parser pairs comes out as a
 * CapturedExchange with its path and route (./route.ts: no query string survives). Pure: no I/O and no clock, the
 * caller passes kernel times in; the collector wires it between the ring and the http contract.
 *
 * Times: a received call's bytes exist when the call returns (a blocking read entered long before), a sent call's
 * when it enters (a blocking write may return long after), so each record is fed at that time, and a latency is
 * the server's turn: response first byte − request last byte as the observed process saw them.
 *
 * State is bounded: at most `maxConnections` parsers (the kernel tracks no more connections than that; a record of a
 * new connection past it is counted, connection_table_full, and ignored), each bounded by the parser's own limits.
 * A connection's parser ends when flows reports its final record (connectionClosed), or after `idleNs` without a
 * record (counted as idle_evicted: a later record starts a new parser, which resynchronises on the next message).
 * A final flow record and the connection's last chunk records travel through two rings read by two loops, so the
 * last chunks may be read after the final: a closed connection is ended at the second tick() after the close was
 * noted, which lies after a whole read cycle of the chunk ring that began after the final was read, and that cycle
 * read every chunk the kernel wrote before the final.
 */
import { HttpChunkFlag, HttpChunkView, HttpDirection, type HttpChunk, type HttpChunkEnds } from '../../ebpf/records/http-chunk.js';
import { canonicalU64, type U64 } from '../../ebpf/records/u64.js';
import { createHttpParseCounters, HttpConnectionParser, type HttpExchange, type HttpParseCounters, type HttpRequestSeen, type RejectionKind } from './parser.js';
import { RouteTemplater, urlPath } from './route.js';
import { ROUTE_DROP_REMEDIES, RouteCatalog } from './route-catalog.js';
import type { RouteRule } from '../../common/route-rules.js';

/**
 * One exchange as the collector reports it; times are kernel monotonic ns (the contract converts them). A request the
 * connection closed (or left idle past http.idleTimeoutMs) before answering is reported too, its response fields null.
 */
export interface CapturedExchange {
  /** The kernel's conn id (with the conn-id epoch and node it is the flows' connection_id). */
  readonly connId: bigint;
  /** cgroup v2 id of the observed socket (whose identity names the pod, as for flows). */
  readonly cgroupId: bigint;
  readonly observer: HttpExchange['observer'];
  readonly method: string;
  readonly methodOriginal: string | null;
  /** The request target's path: no query string or fragment, at most http.maxPathBytes. */
  readonly path: string;
  /**
   * The path with its variable segments templated (http.routeRules first), capped per server end (address:port as
   * the observer saw it: http.maxRoutesPerService, http.maxRouteServices; past them {other}, counted).
   */
  readonly route: string;
  readonly version: HttpExchange['version'];
  /** The final response's status; null: no response came. */
  readonly status: number | null;
  /** Start line, header block and body as on the wire (full lengths: bytes the copies cut inside a body count). */
  readonly requestBytes: number;
  readonly responseBytes: number | null;
  /** The bodies alone, as on the wire (chunk framing and trailers included). */
  readonly requestBodyBytes: number;
  readonly responseBodyBytes: number | null;
  /** 0, 1, 2...: the order of this exchange among those of its connection this capture reported. */
  readonly seq: number;
  readonly requestFirstNs: bigint;
  readonly requestLastNs: bigint;
  readonly responseFirstNs: bigint | null;
  readonly responseLastNs: bigint | null;
  /** responseFirstNs − requestLastNs. */
  readonly latencyNs: bigint | null;
  /** The process of the connection's latest call when the exchange completed. */
  readonly pid: number;
  /** The connection's ends, as its flow records name them. */
  readonly ends: HttpChunkEnds;
}

/** What governs each reason the capture counts, beside the parser's kinds (remedies in HTTP_CAPTURE_REMEDIES). */
export type CaptureDropReason = RejectionKind | 'connection_table_full' | 'bad_direction' | keyof typeof ROUTE_DROP_REMEDIES;

export const HTTP_CAPTURE_REMEDIES: Readonly<Record<CaptureDropReason, string>> = {
  not_http: 'a traced connection that is not HTTP/1.x (TLS, HTTP/2, a database protocol): nothing to do; it costs one comparison per call',
  bad_request_line: 'a malformed request line on an HTTP connection: the rest of that connection is ignored',
  bad_status_line: 'a malformed status line on an HTTP connection: the rest of that connection is ignored',
  bad_header: 'a malformed or unframeable header block: the rest of that connection is ignored',
  header_too_large: 'a header block over 16 KiB: the rest of that connection is ignored',
  bad_chunk: 'malformed chunked framing: the rest of that connection is ignored',
  truncated_headers:
    'a call wrote or read more header bytes than the kernel copied (http.headBytes for a call that begins a message, else http.captureBytes): raise that setting ' +
    '(http.headBytes: 8,192 by default, at most 16,384; a longer head in one call is lost)',
  truncated_body: 'a call cut by the copy (http.captureBytes for a body call) ran past a body into the next message, which is lost: raise http.captureBytes',
  unpaired_response: 'a response without a request seen (the request was in flight when capture began on the connection, or a request call was lost)',
  unanswered_request: 'a request without a response when the connection closed or went idle',
  pipeline_overflow: 'more than 64 pipelined requests waiting on one connection: the oldest is dropped',
  incomplete_at_close: 'a connection closed or went idle in the middle of a message',
  upgrade: 'the connection switched protocols (WebSocket, CONNECT): the rest of it is not HTTP/1.x',
  joined_mid_message:
    'capture began in the middle of a message (a connection open before tracing began, or when the collector restarted): ' +
    'its bytes were skipped up to the next message; nothing to do',
  connection_table_full: 'more connections with HTTP traffic at once than collector.maxConnections: raise it',
  bad_direction: 'a chunk record with an unknown direction (a kernel program of another version)',
  ...ROUTE_DROP_REMEDIES,
};

export interface HttpCaptureOptions {
  /** Parsers kept at once (collector.maxConnections: the kernel tracks no more). */
  maxConnections: number;
  /** A connection without a record for this long is ended and forgotten (kernel ns). */
  idleNs: bigint;
  maxPathBytes: number;
  routeRules: readonly RouteRule[];
  /** http.maxRoutesPerService and http.maxRouteServices (RouteCatalog). */
  maxRoutesPerService: number;
  maxRouteServices: number;
  /**
   * The kernel's next conn id when this capture began (KernelSource.firstConnId): a connection with a lower one was
   * open before, so its first records may be in the middle of a message, as may an adopted connection's (their
   * parsers are joined midway). 0 when nothing was open before.
   */
  firstConnId: bigint;
}

interface Connection {
  readonly connId: bigint;
  readonly cgroupId: bigint;
  readonly ends: HttpChunkEnds;
  /** The server end as the route catalog keys its services (address:port): made once, not per exchange. */
  readonly service: string;
  readonly parser: HttpConnectionParser;
  lastRecordNs: bigint;
  /** The process of the connection's latest call. */
  pid: number;
  /** Exchanges reported so far: the seq of the next one. */
  exchanges: number;
}

export interface HttpCaptureStats {
  connections: number;
  closed: number;
  idleEvicted: number;
}

export class HttpCapture {
  /** Counts by parser kind; read and reset by the caller (takeDrops). */
  private readonly counters: HttpParseCounters = createHttpParseCounters();
  private readonly ownDrops = { connection_table_full: 0, bad_direction: 0, route_cap: 0, service_cap: 0 };
  /** By conn id, in the form the chunk view reads it (canonicalU64). */
  private readonly connections = new Map<U64, Connection>();
  /** Reads each ring record in place: no object per record (record()). */
  private readonly chunk = new HttpChunkView();
  private readonly chunkEnds = () => this.chunk.ends();
  private readonly templater: RouteTemplater;
  private readonly routes: RouteCatalog;
  /** Closes noted since the last tick, and those noted before it (ended at the next tick). */
  private closing: U64[] = [];
  private closable: U64[] = [];
  private lastSweepNs = 0n;
  readonly stats: HttpCaptureStats = { connections: 0, closed: 0, idleEvicted: 0 };

  constructor(
    private readonly options: HttpCaptureOptions,
    private readonly emit: (exchange: CapturedExchange) => void,
  ) {
    this.templater = new RouteTemplater(options.routeRules, options.maxPathBytes);
    this.routes = new RouteCatalog({
      maxRoutesPerService: options.maxRoutesPerService,
      maxServices: options.maxRouteServices,
      drops: { add: (reason) => void this.ownDrops[reason]++ },
    });
  }

  /** One ring record; throws a DecodeError on one it cannot read. */
  record(view: DataView, offset: number, size: number): void {
    const chunk = this.chunk.point(view, offset, size);
    this.take(chunk, this.chunkEnds, chunk.bytes, chunk.dataStart, chunk.dataEnd);
  }

  /** A decoded record; `ends` is called for a connection's first record only (every record carries the same). */
  add(chunk: HttpChunk, ends: () => HttpChunkEnds): void {
    this.take(chunk, ends, chunk.data, 0, chunk.data.length);
  }

  /** A record whose copied bytes are bytes[start, end) (its `data` is not read). */
  private take(chunk: HttpChunk, ends: () => HttpChunkEnds, bytes: Buffer, start: number, end: number): void {
    const sent = chunk.direction === HttpDirection.sent;
    if (!sent && chunk.direction !== HttpDirection.received) {
      this.ownDrops.bad_direction++;
      return;
    }
    const connection = this.connectionOf(chunk, ends);
    if (connection === undefined) return;
    const returnedNs = chunk.monotonicNs;
    connection.lastRecordNs = returnedNs;
    connection.pid = chunk.pid;
    connection.parser.call(sent, bytes, start, end, sent ? chunk.callStartNs : returnedNs, chunk.length);
  }

  /**
   * Flows reported the connection's final record: its parser ends at the second tick from now. Noted whether or not
   * a chunk of it was read yet: the flows ring may be read first, and its chunks are read by then.
   */
  connectionClosed(connId: bigint): void {
    this.closing.push(canonicalU64(connId));
  }

  /** Whether the connection has a parser (records came, and it has not been ended yet). */
  hasConnection(connId: bigint): boolean {
    return this.connections.has(canonicalU64(connId));
  }

  /** Call after each read cycle of the chunk ring: ends closed connections (see above) and idle ones. */
  tick(nowNs: bigint): void {
    for (const connId of this.closable) {
      if (this.end(connId)) this.stats.closed++;
    }
    this.closable = this.closing;
    this.closing = [];
    // A sweep visits every connection: a tenth of the idle time apart, so a connection lives at most 1.1 times it.
    if (nowNs - this.lastSweepNs < this.options.idleNs / 10n) return;
    this.lastSweepNs = nowNs;
    for (const [connId, connection] of this.connections) {
      if (nowNs - connection.lastRecordNs >= this.options.idleNs && this.end(connId)) this.stats.idleEvicted++;
    }
  }

  /** Drops by reason since the last call, the parser's kinds included. */
  takeDrops(): Array<[reason: CaptureDropReason, count: number]> {
    const taken: Array<[CaptureDropReason, number]> = [];
    for (const counts of [this.counters, this.ownDrops] as Array<Record<string, number>>) {
      for (const [reason, count] of Object.entries(counts)) {
        if (count === 0) continue;
        taken.push([reason as CaptureDropReason, count]);
        counts[reason] = 0;
      }
    }
    return taken;
  }

  private connectionOf(chunk: HttpChunk, ends: () => HttpChunkEnds): Connection | undefined {
    const key = canonicalU64(chunk.connId);
    const connection = this.connections.get(key);
    if (connection !== undefined) return connection;
    if (this.connections.size >= this.options.maxConnections) {
      this.ownDrops.connection_table_full++;
      return undefined;
    }
    const connectionEnds = ends();
    const connId = BigInt(key);
    const joinedMidway = connId < this.options.firstConnId || (chunk.flags & HttpChunkFlag.adopted) !== 0;
    const created: Connection = {
      connId,
      cgroupId: chunk.cgroupId,
      ends: connectionEnds,
      service: `${connectionEnds.serverAddress}:${connectionEnds.serverPort}`,
      parser: new HttpConnectionParser(
        (exchange) => this.report(created, exchange, exchange),
        this.counters,
        (request) => this.report(created, request, null),
        joinedMidway,
      ),
      lastRecordNs: 0n,
      pid: 0,
      exchanges: 0,
    };
    this.connections.set(key, created);
    this.stats.connections++;
    return created;
  }

  private end(connId: U64): boolean {
    const connection = this.connections.get(connId);
    if (connection === undefined) return false;
    connection.parser.end();
    this.connections.delete(connId);
    return true;
  }

  /** A request and its response (the same object: an HttpExchange is its request too), or a request left unanswered. */
  private report(connection: Connection, request: HttpRequestSeen, response: HttpExchange | null): void {
    const path = urlPath(request.target, this.options.maxPathBytes);
    const { ends } = connection;
    this.emit({
      connId: connection.connId,
      cgroupId: connection.cgroupId,
      observer: request.observer,
      method: request.method,
      methodOriginal: request.methodOriginal,
      path,
      route: this.routes.admit(connection.service, this.templater.route(path)),
      version: request.version,
      status: response === null ? null : response.status,
      requestBytes: request.requestHeaderBytes + request.requestBodyBytes,
      responseBytes: response === null ? null : response.responseHeaderBytes + response.responseBodyBytes,
      requestBodyBytes: request.requestBodyBytes,
      responseBodyBytes: response === null ? null : response.responseBodyBytes,
      seq: connection.exchanges++,
      requestFirstNs: request.requestFirstNs,
      requestLastNs: request.requestLastNs,
      responseFirstNs: response === null ? null : response.responseFirstNs,
      responseLastNs: response === null ? null : response.responseLastNs,
      latencyNs: response === null ? null : response.latencyNs,
      pid: connection.pid,
      ends,
    });
  }
}
