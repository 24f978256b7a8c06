/**
 * HTTP/1.0–1.1 exchanges from the bytes of one TCP connection as the kernel copied them: each direction is framed
 * by its own MessageStream, and this pairer matches requests with responses in order (pipelining), whichever end
 * of the socket the observer was. Pure: no I/O; it emits exchanges and counts what it could not pair or parse.
 */
import {
  MAX_PIPELINED_REQUESTS,
  type HttpExchange,
  type HttpParseCounters,
  type HttpRequestSeen,
  type ObserverRole,
  type RejectionKind,
} from './exchange.js';
import { MessageStream, type MessagePairer } from './message-stream.js';
import type { RequestLine } from './start-line.js';

export { createHttpParseCounters, REJECTION_KINDS, MAX_HEADER_BYTES, MAX_PIPELINED_REQUESTS } from './exchange.js';
export type { HttpExchange, HttpParseCounters, HttpRequestSeen, ObserverRole, RejectionKind } from './exchange.js';

/** A request whose head was seen, waiting for its end and its final response. */
interface PendingRequest {
  method: string;
  methodOriginal: string | null;
  target: string;
  version: '1.0' | '1.1';
  headerBytes: number;
  bodyBytes: number;
  firstNs: bigint;
  lastNs: bigint;
}

export class HttpConnectionParser implements MessagePairer {
  /** Bytes the observed socket wrote, and bytes it read. */
  private readonly sentStream: MessageStream;
  private readonly receivedStream: MessageStream;
  private readonly pending: PendingRequest[] = [];
  /** The request whose head was reported and whose end was not yet. */
  private openRequest: PendingRequest | null = null;
  private observer: ObserverRole = 'client';

  /**
   * `emit` gets each paired exchange; `unanswered`, if given, each request the connection closed before answering
   * (at `end()`; counted as unanswered_request either way). `joinedMidway`: capture began while the connection was
   * open, so either direction's first bytes may be in the middle of a message (MessageStream).
   */
  constructor(
    private readonly emit: (exchange: HttpExchange) => void,
    private readonly counters: HttpParseCounters,
    private readonly unanswered?: (request: HttpRequestSeen) => void,
    joinedMidway = false,
  ) {
    this.sentStream = new MessageStream(this, joinedMidway);
    this.receivedStream = new MessageStream(this, joinedMidway);
  }

  /** Bytes of one write-side call of the observed socket (`callLength` > bytes.length when the copy was cut). */
  sent(bytes: Buffer, timeNs: bigint, callLength: number = bytes.length): void {
    this.sentStream.feed(bytes, timeNs, callLength);
  }

  /** Bytes of one read-side call of the observed socket. */
  received(bytes: Buffer, timeNs: bigint, callLength: number = bytes.length): void {
    this.receivedStream.feed(bytes, timeNs, callLength);
  }

  /** As sent and received, for the copied bytes at bytes[start, end) (a ring record's, in place). */
  call(sent: boolean, bytes: Buffer, start: number, end: number, timeNs: bigint, callLength: number): void {
    (sent ? this.sentStream : this.receivedStream).feedRange(bytes, start, end, timeNs, callLength);
  }

  /** The connection closed: completes a body that ends at close, counts what was left in flight. */
  end(): void {
    this.sentStream.end();
    this.receivedStream.end();
    for (const request of this.pending) {
      this.reject('unanswered_request');
      this.unanswered?.(this.seen(request));
    }
    this.pending.length = 0;
    this.openRequest = null;
  }

  claim(stream: MessageStream, carriesRequests: boolean): void {
    const other = stream === this.sentStream ? this.receivedStream : this.sentStream;
    stream.expect(carriesRequests);
    other.expect(!carriesRequests);
    this.observer = carriesRequests === (stream === this.sentStream) ? 'client' : 'server';
  }

  requestHead(line: RequestLine, headerBytes: number, firstNs: bigint): void {
    if (this.pending.length >= MAX_PIPELINED_REQUESTS) {
      this.pending.shift();
      this.reject('pipeline_overflow');
    }
    const request: PendingRequest = {
      method: line.method ?? '_OTHER',
      methodOriginal: line.methodOriginal,
      target: line.target,
      version: line.minorVersion === 1 ? '1.1' : '1.0',
      headerBytes,
      bodyBytes: 0,
      firstNs,
      lastNs: firstNs,
    };
    this.pending.push(request);
    this.openRequest = request;
  }

  requestEnd(bodyBytes: number, lastNs: bigint): void {
    const request = this.openRequest;
    if (request === null) return;
    request.bodyBytes = bodyBytes;
    request.lastNs = lastNs;
    this.openRequest = null;
  }

  requestProgress(bodyBytes: number, lastNs: bigint): void {
    const request = this.openRequest;
    if (request === null) return;
    request.bodyBytes = bodyBytes;
    request.lastNs = lastNs;
  }

  answeredMethod(): string | null {
    return this.pending[0]?.method ?? null;
  }

  responseEnd(status: number, headerBytes: number, bodyBytes: number, firstNs: bigint, lastNs: bigint): void {
    // A request that asked to upgrade and got a plain response goes on as HTTP.
    this.sentStream.resume();
    this.receivedStream.resume();
    const request = this.pending.shift();
    if (request === undefined) return this.reject('unpaired_response');
    if (request === this.openRequest) this.openRequest = null;
    // Written out, not spread from seen(): a spread here made the parser 7x slower (bench http-parse).
    this.emit({
      observer: this.observer,
      method: request.method,
      methodOriginal: request.methodOriginal,
      target: request.target,
      version: request.version,
      status,
      requestHeaderBytes: request.headerBytes,
      requestBodyBytes: request.bodyBytes,
      responseHeaderBytes: headerBytes,
      responseBodyBytes: bodyBytes,
      requestFirstNs: request.firstNs,
      requestLastNs: request.lastNs,
      responseFirstNs: firstNs,
      responseLastNs: lastNs,
      latencyNs: firstNs - request.lastNs,
    });
  }

  private seen(request: PendingRequest): HttpRequestSeen {
    return {
      observer: this.observer,
      method: request.method,
      methodOriginal: request.methodOriginal,
      target: request.target,
      version: request.version,
      requestHeaderBytes: request.headerBytes,
      requestBodyBytes: request.bodyBytes,
      requestFirstNs: request.firstNs,
      requestLastNs: request.lastNs,
    };
  }

  lost(stream: MessageStream): void {
    if (stream.carriesRequests) {
      const open = this.openRequest;
      if (open !== null) this.pending.splice(this.pending.indexOf(open), 1);
      this.openRequest = null;
    } else if (this.pending.shift() === this.openRequest) {
      this.openRequest = null; // The response that was cut answered the oldest request.
    }
  }

  failed(): void {
    this.stop();
  }

  reject(kind: RejectionKind): void {
    this.counters[kind]++;
  }

  upgraded(): void {
    this.reject('upgrade');
    this.stop();
  }

  /** Both streams ignore the rest of the connection; requests still waiting go with it (their cause was counted). */
  private stop(): void {
    this.sentStream.stop();
    this.receivedStream.stop();
    this.pending.length = 0;
    this.openRequest = null;
  }
}
