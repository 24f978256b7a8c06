/**
 * What the HTTP/1.x parser emits (one paired request and response) and what it counts instead when the bytes are
 * not a message it can frame. Pure types and constants: the collector wires the counters into its drop counter.
 */

/** Which end of the socket the kernel observed: the one that sent the requests, or the one that answered them. */
export type ObserverRole = 'client' | 'server';

/**
 * A request as the observer saw it. Sizes in bytes, times in kernel nanoseconds. Alone, it is a request the connection
 * closed before answering (HttpConnectionParser's `unanswered`); with its response, an HttpExchange.
 */
export interface HttpRequestSeen {
  readonly observer: ObserverRole;
  /** A known method (OTel's set) or `_OTHER`, in which case `methodOriginal` holds what was sent. */
  readonly method: string;
  readonly methodOriginal: string | null;
  /** The request target exactly as sent (path and query): privacy rules are applied downstream. */
  readonly target: string;
  /** The request's protocol version: `1.0` or `1.1`. */
  readonly version: '1.0' | '1.1';
  readonly requestHeaderBytes: number;
  /** Bytes after the header block as they were on the wire (chunk framing and trailers included); 0 when the close cut the request itself short. */
  readonly requestBodyBytes: number;
  readonly requestFirstNs: bigint;
  /** The request's last byte; its first when the close cut the request itself short. */
  readonly requestLastNs: bigint;
}

/** One request paired with its final response. */
export interface HttpExchange extends HttpRequestSeen {
  /** Status code of the final (non-1xx, or 101) response. */
  readonly status: number;
  readonly responseHeaderBytes: number;
  readonly responseBodyBytes: number;
  readonly responseFirstNs: bigint;
  readonly responseLastNs: bigint;
  /** responseFirstNs − requestLastNs: the time the server took, as the kernel saw it. */
  readonly latencyNs: bigint;
}

/** Why bytes did not become (part of) an exchange. Each is counted once per occurrence. */
export const REJECTION_KINDS = [
  'not_http',
  'bad_request_line',
  'bad_status_line',
  'bad_header',
  'header_too_large',
  'bad_chunk',
  'truncated_headers',
  'truncated_body',
  'unpaired_response',
  'unanswered_request',
  'pipeline_overflow',
  'incomplete_at_close',
  'upgrade',
  'joined_mid_message',
] as const;
export type RejectionKind = (typeof REJECTION_KINDS)[number];
export type HttpParseCounters = Record<RejectionKind, number>;

export function createHttpParseCounters(): HttpParseCounters {
  return Object.fromEntries(REJECTION_KINDS.map((kind) => [kind, 0])) as HttpParseCounters;
}

/** Bound on one message's header block (start line + headers + blank line), and on one chunk-size or trailer block. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Bound on requests waiting for their responses on one connection (pipelining depth). */
export const MAX_PIPELINED_REQUESTS = 64;
