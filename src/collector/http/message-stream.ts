/**
 * One direction of one TCP connection: a byte-driven state machine that frames HTTP/1.x messages (requests or
 * responses, decided by the first message) and reports their heads and ends to the connection pairer. Lines are
 * found by a scan for LF and read in place; only a line split across calls is copied, into a bounded buffer.
 */
import { MAX_HEADER_BYTES, type RejectionKind } from './exchange.js';
import { emptyFraming, readHeaderLine, resetFraming } from './framing-headers.js';
import { parseRequestLine, parseStatusLine, plausibleStartPrefix, startsLikeStatusLine, type RequestLine } from './start-line.js';

/** What a message stream tells the connection it belongs to. */
export interface MessagePairer {
  /** A stream found from its first message that it carries requests (`true`) or responses. */
  claim(stream: MessageStream, carriesRequests: boolean): void;
  requestHead(line: RequestLine, headerBytes: number, firstNs: bigint): void;
  requestEnd(bodyBytes: number, lastNs: bigint): void;
  /** The request body goes on unframed (MessageStream's CHUNKS_CUT): its bytes and time so far, the end to come. */
  requestProgress(bodyBytes: number, lastNs: bigint): void;
  /** Method of the request the next final response answers, or null when none is waiting. */
  answeredMethod(): string | null;
  responseEnd(status: number, headerBytes: number, bodyBytes: number, firstNs: bigint, lastNs: bigint): void;
  /** A message of this stream was cut short: drop its half of the pairing. */
  lost(stream: MessageStream): void;
  /** This stream cannot be parsed any further (counted): the connection stops. */
  failed(): void;
  reject(kind: RejectionKind): void;
  /** The response switched protocols: the connection stops, counted. */
  upgraded(): void;
}

const START = 0;
const HEADERS = 1;
const BODY = 2;
const CHUNK_SIZE = 3;
const CHUNK_DATA = 4;
const CHUNK_DATA_END = 5;
const TRAILERS = 6;
const UNTIL_CLOSE = 7;
/**
 * A cut copy missed bytes of a chunked body past its current chunk: the next call says how it went on, or, once
 * the framing is lost (chunksUnframed), the body runs to the next call that begins a start line, or to the close.
 */
const CHUNKS_CUT = 8;
/**
 * A message was cut (counted once, when it was): the rest of it is skipped, call by call, until a call begins with a
 * start line of this stream's direction (the bytes of a body cannot be framed without the head that was missed).
 */
const RESYNC = 9;
/** A stream joined mid-message skipped the rest of a call that began with no start line: the next call may have one. */
const MIDWAY = 10;
/** Not HTTP, malformed beyond recovery, or upgraded: further input is ignored in O(1). */
const STOPPED = 11;
/** A request asked to upgrade; until its response says no, what follows is not HTTP. */
const AWAITING_UPGRADE = 12;

/**
 * Calls a stream joined in the middle (MessageStream's joinedMidway) skips while it waits for its first start line;
 * then it is not HTTP. A 64 MiB body read 64 KiB at a time passes in 1,024 calls; a connection that is not HTTP costs
 * that many checks of a first line before it costs nothing.
 */
export const MIDWAY_CALLS = 1024;

const CHUNKED_BODY = -1;
const BODY_UNTIL_CLOSE = -2;

const LF = 0x0a;
/** indexOfByte scans this many bytes itself before it asks Buffer.indexOf. */
const SCAN_BYTES = 64;
const CR = 0x0d;
const UNKNOWN = 0;
const REQUESTS = 1;
const RESPONSES = 2;

export class MessageStream {
  private state = START;
  private carries = UNKNOWN;
  private carry: Buffer | null = null;
  private carryLength = 0;
  private readonly framing = emptyFraming();
  /** Bytes of the current message so far; of its header block; of the current line-based block (trailers). */
  private messageBytes = 0;
  private headerBytes = 0;
  private blockBytes = 0;
  private remaining = 0;
  private status = 0;
  private requestLine: RequestLine | null = null;
  /** A start line of this stream parsed: later garbage is malformed HTTP rather than another protocol. */
  private spokeHttp = false;
  /** Calls it may still skip waiting for its first start line (MIDWAY_CALLS when joined midway, else none). */
  private midwayCalls: number;
  private skippedMidway = false;
  /** In CHUNKS_CUT: the call after the cut did not begin a chunk, so no later call is read as chunk framing. */
  private chunksUnframed = false;
  /** In a call that may begin the message after a lost one: a first line that does not parse skips the call too. */
  private resyncing = false;
  private upgradeAfter = false;
  private firstNs = 0n;
  private lastNs = 0n;

  /**
   * `joinedMidway`: the stream's first bytes may be in the middle of a message, because capture began while the
   * connection was open (a connection open before tracing began, one open when the collector restarted). Calls that
   * do not begin with a start line are then skipped, and the first that does starts the stream (the skipped message
   * is counted, joined_mid_message). Otherwise the first bytes are a message's start, or the stream is not HTTP.
   */
  constructor(
    private readonly pairer: MessagePairer,
    joinedMidway = false,
  ) {
    this.midwayCalls = joinedMidway ? MIDWAY_CALLS : 0;
  }

  get carriesRequests(): boolean {
    return this.carries === REQUESTS;
  }

  /** Set by the pairer when the other direction claimed the opposite role. */
  expect(carriesRequests: boolean): void {
    if (this.carries === UNKNOWN) this.carries = carriesRequests ? REQUESTS : RESPONSES;
  }

  /**
   * Feeds the bytes the kernel copied of one call. `callLength` is what the call wrote or read; when the copy was
   * cut short it is larger than `bytes.length`, and the missing bytes are skipped if they fall in a counted body.
   */
  feed(bytes: Buffer, timeNs: bigint, callLength: number = bytes.length): void {
    this.feedRange(bytes, 0, bytes.length, timeNs, callLength);
  }

  /**
   * As feed, for the copied bytes at bytes[start, end): a ring record's, read in place (no Buffer per record). Nothing
   * outside that range is read.
   */
  feedRange(bytes: Buffer, start: number, end: number, timeNs: bigint, callLength: number): void {
    if (this.state >= STOPPED) return;
    if (this.state === CHUNKS_CUT && !this.resumeAfterCut(bytes, start, end, timeNs, callLength)) return;
    if (this.state === RESYNC) {
      // Still in the lost message: a call of body bytes, or of none (sendfile), goes with it, uncounted again. The
      // next message must show its whole start line in one call: a body call that only begins like one is skipped
      // rather than joined to the next call's line (a start line split across calls after a loss is not seen).
      if (end === start || !plausibleStartPrefix(bytes, start, end) || indexOfByte(bytes, LF, start, end) < 0) return;
      this.resyncing = true;
    }
    if (this.state === RESYNC || this.state === MIDWAY) this.state = START;
    let at = start;
    while (at < end && this.state < RESYNC) {
      switch (this.state) {
        case BODY:
        case CHUNK_DATA: {
          const taken = Math.min(this.remaining, end - at);
          this.remaining -= taken;
          this.consumed(taken, timeNs);
          at += taken;
          if (this.remaining === 0) {
            if (this.state === BODY) this.complete();
            else this.state = CHUNK_DATA_END;
          }
          break;
        }
        case UNTIL_CLOSE:
          this.consumed(end - at, timeNs);
          at = end;
          break;
        default:
          at = this.line(bytes, at, end, timeNs);
      }
    }
    const copied = end - start;
    if (callLength > copied) this.skip(callLength - copied, timeNs);
  }

  /**
   * The connection closed: a body that ends at close is complete; anything else in flight is counted. A response
   * whose head had come still answered its request, though the close cut its body (a client that closes without
   * reading an error's body, as wget does, or abandons a download): it ends with the body bytes that came, so the
   * status the client got is reported rather than no response at all.
   */
  end(): void {
    // A chunked body the last copies cut ended in the bytes they missed: nothing came after them.
    if (this.state === UNTIL_CLOSE || this.state === CHUNKS_CUT) this.complete();
    else if (this.state < STOPPED && (this.messageBytes > 0 || this.carryLength > 0)) {
      this.pairer.reject('incomplete_at_close');
      if (this.carries === RESPONSES && this.state >= BODY && this.state <= TRAILERS) this.complete();
    }
    this.stop();
  }

  stop(): void {
    this.state = STOPPED;
    this.carry = null;
    this.carryLength = 0;
  }

  private consumed(count: number, timeNs: bigint): void {
    if (this.messageBytes === 0) this.firstNs = timeNs;
    this.messageBytes += count;
    this.lastNs = timeNs;
  }

  /** Bytes the copy missed: they extend a body being counted, or the message is lost. */
  private skip(missing: number, timeNs: bigint): void {
    switch (this.state) {
      case STOPPED:
      case AWAITING_UPGRADE:
      case MIDWAY: // the rest of a skipped call
      case RESYNC:
        return;
      case UNTIL_CLOSE:
        this.consumed(missing, timeNs);
        return;
      case BODY:
      case CHUNK_DATA:
        if (missing <= this.remaining) {
          this.remaining -= missing;
          this.consumed(missing, timeNs);
          if (this.remaining === 0) {
            if (this.state === BODY) this.complete();
            else this.state = CHUNK_DATA_END;
          }
          return;
        }
        if (this.state === CHUNK_DATA) return this.cutInChunks(missing, timeNs);
        return this.bodyOverrun(timeNs);
      case CHUNK_SIZE:
      case CHUNK_DATA_END:
      case TRAILERS:
        this.cutInChunks(missing, timeNs);
        return;
      default:
        if (this.resyncing) {
          // A call after a lost message that only looked like the next one's start: more of the lost message.
          this.resetMessage();
          this.state = RESYNC;
          return;
        }
        this.lose('truncated_headers'); // START or HEADERS: the copy ended in a head
    }
  }

  /**
   * The missing bytes of a call ended this body and began the next message: this one is complete, the next one is
   * lost (so a response stream also lets go of the request it answered, and later ones pair as they should), unless
   * this message switched protocols (stopped, or waiting for the answer), after which no HTTP message follows.
   */
  private bodyOverrun(timeNs: bigint): void {
    const upgrading = this.upgradeAfter;
    this.consumed(this.remaining, timeNs);
    this.remaining = 0;
    this.complete();
    if (!upgrading) this.lose('truncated_body');
  }

  /**
   * The copy missed chunk framing (a writer that sends a chunked body in one call larger than the copy: nginx's
   * autoindex, Node's res.end): the missing bytes count as body, and the next call tells whether they ended it.
   */
  private cutInChunks(missing: number, timeNs: bigint): void {
    this.unframedBody(missing, timeNs);
    this.carryLength = 0;
    this.blockBytes = 0;
    this.state = CHUNKS_CUT;
  }

  /** Bytes of a chunked body whose framing was not seen: body, and a request's progress for its latency. */
  private unframedBody(count: number, timeNs: bigint): void {
    this.consumed(count, timeNs);
    if (this.carries === REQUESTS) this.pairer.requestProgress(this.messageBytes - this.headerBytes, timeNs);
  }

  /**
   * A call after a cut inside a chunked body. One that starts with a start line of this direction says the body
   * ended before it: the message is complete, at the time of the call before. The first call after the cut that
   * starts with a chunk-size line says it goes on (writers send whole chunks per call). Any other call is more of
   * the body, whose framing is then lost: a reader's calls end wherever its buffer does (nginx reads a request
   * body 8 KiB at a time), so its chunk-size lines lie inside calls, past the copy. Its bytes are counted up to the
   * next start line or the close: the body's size is exact when the next message begins a call (requests and
   * responses in turn); a message that begins inside such a call is not seen. Returns whether this call is to be
   * parsed.
   */
  private resumeAfterCut(bytes: Buffer, start: number, stop: number, timeNs: bigint, callLength: number): boolean {
    const newline = indexOfByte(bytes, LF, start, stop);
    const end = newline < 0 ? -1 : lineContentEnd(bytes, start, newline + 1);
    const startsMessage = end >= 0 && (this.carries === REQUESTS ? parseRequestLine(bytes, start, end) !== null : parseStatusLine(bytes, start, end) !== null);
    if (startsMessage) {
      this.complete();
      return true;
    }
    if (!this.chunksUnframed && end > start && holdsChunk(bytes, start, newline + 1, stop, callLength, chunkSizeOf(bytes, start, end))) {
      this.state = CHUNK_SIZE;
      return true;
    }
    this.chunksUnframed = true;
    this.unframedBody(callLength, timeNs);
    return false;
  }

  /** Drops the message in flight, counted, and skips calls up to one that begins with a start line (RESYNC). */
  private lose(kind: RejectionKind): void {
    this.pairer.reject(kind);
    this.pairer.lost(this);
    this.resetMessage();
    this.state = RESYNC;
  }

  private fail(kind: RejectionKind): void {
    this.pairer.reject(kind);
    this.pairer.failed();
  }

  /** The request stream may go on: the response declined the upgrade. */
  resume(): void {
    if (this.state === AWAITING_UPGRADE) this.state = START;
  }

  /** Consumes up to one line (CRLF or LF ended) of bytes[at, end); returns where it stopped. */
  private line(bytes: Buffer, at: number, end: number, timeNs: bigint): number {
    const newline = indexOfByte(bytes, LF, at, end);
    const stop = newline < 0 ? end : newline + 1;
    const taken = stop - at;
    if (this.blockBytes + taken > MAX_HEADER_BYTES) {
      if (this.state === START && this.midwayCalls > 0) this.skipMidway();
      else this.fail(this.state === START || this.state === HEADERS ? 'header_too_large' : 'bad_chunk');
      return stop;
    }
    if (this.state === START && this.messageBytes === 0 && this.carryLength === 0 && (bytes[at] === CR || bytes[at] === LF)) {
      return at + 1; // Stray line ends between messages (some clients add CRLF after a body).
    }
    this.blockBytes += taken;
    this.consumed(taken, timeNs);
    if (newline < 0) {
      this.append(bytes, at, stop);
      if (this.state === START && !plausibleStartPrefix(this.carry!, 0, this.carryLength)) this.failStart();
      return stop;
    }
    if (this.carryLength > 0) {
      this.append(bytes, at, stop);
      const length = this.carryLength;
      this.carryLength = 0;
      this.lineComplete(this.carry!, 0, lineContentEnd(this.carry!, 0, length));
    } else {
      this.lineComplete(bytes, at, lineContentEnd(bytes, at, stop));
    }
    return stop;
  }

  private append(bytes: Buffer, from: number, to: number): void {
    const needed = this.carryLength + (to - from);
    if (this.carry === null || this.carry.length < needed) {
      const grown = Buffer.allocUnsafe(Math.min(MAX_HEADER_BYTES, Math.max(256, needed * 2)));
      if (this.carry !== null) this.carry.copy(grown, 0, 0, this.carryLength);
      this.carry = grown;
    }
    bytes.copy(this.carry, this.carryLength, from, to);
    this.carryLength = needed;
  }

  private lineComplete(line: Buffer, start: number, end: number): void {
    switch (this.state) {
      case START:
        this.startLine(line, start, end);
        return;
      case HEADERS:
        if (end > start) {
          if (!readHeaderLine(line, start, end, this.framing)) this.fail('bad_header');
        } else {
          this.headersEnd();
        }
        return;
      case CHUNK_SIZE:
        this.chunkSize(line, start, end);
        return;
      case CHUNK_DATA_END:
        if (end > start) this.fail('bad_chunk');
        else this.state = CHUNK_SIZE;
        return;
      case TRAILERS:
        if (end === start) this.complete();
        else if (!readHeaderLine(line, start, end, this.framing)) this.fail('bad_chunk');
        return;
    }
  }

  /**
   * A first line that is not HTTP/1.x: on a stream nothing showed to be HTTP yet, another protocol, or, on a stream
   * joined midway, the middle of a message.
   */
  private failStart(): void {
    if (this.resyncing) {
      this.resetMessage();
      this.state = RESYNC;
      return;
    }
    if (this.spokeHttp) this.fail(this.carries === REQUESTS ? 'bad_request_line' : 'bad_status_line');
    else if (this.midwayCalls > 0) this.skipMidway();
    else this.fail('not_http');
  }

  /** Skips the rest of this call: the stream was joined in the middle of a message (see the constructor). */
  private skipMidway(): void {
    this.midwayCalls--;
    this.skippedMidway = true;
    this.resetMessage();
    this.state = MIDWAY;
  }

  /** The role is claimed once a start line parsed: a line skipped midway says nothing of the stream. */
  private startLine(line: Buffer, start: number, end: number): void {
    const isStatus = startsLikeStatusLine(line, start, end);
    const carries = this.carries !== UNKNOWN ? this.carries : isStatus ? RESPONSES : REQUESTS;
    if (carries === REQUESTS) {
      this.requestLine = isStatus ? null : parseRequestLine(line, start, end);
      if (this.requestLine === null) return this.failStart();
    } else {
      const status = isStatus ? parseStatusLine(line, start, end) : null;
      if (status === null) return this.failStart();
      this.status = status.status;
    }
    if (this.carries === UNKNOWN) this.pairer.claim(this, carries === REQUESTS);
    if (this.skippedMidway) this.pairer.reject('joined_mid_message');
    this.spokeHttp = true;
    this.resyncing = false;
    this.skippedMidway = false;
    this.midwayCalls = 0;
    this.state = HEADERS;
  }

  private headersEnd(): void {
    this.headerBytes = this.messageBytes;
    this.blockBytes = 0;
    const framing = this.framing;
    if (framing.contentLength === -2) return this.fail('bad_header');
    if (this.carries === REQUESTS) this.requestHeadersEnd();
    else this.responseHeadersEnd();
  }

  private requestHeadersEnd(): void {
    const line = this.requestLine!;
    const framing = this.framing;
    this.pairer.requestHead(line, this.headerBytes, this.firstNs);
    this.upgradeAfter = line.method === 'CONNECT' || (framing.upgrade && framing.connectionUpgrade);
    if (line.method === 'CONNECT') return this.complete();
    // A request with a Transfer-Encoding other than chunked cannot be framed (RFC 9112 §6.3): reject it.
    if (framing.transferEncoding && !framing.chunked) return this.fail('bad_header');
    this.bodyFrom(framing.transferEncoding ? CHUNKED_BODY : Math.max(framing.contentLength, 0));
  }

  private responseHeadersEnd(): void {
    const status = this.status;
    if (status >= 100 && status < 200 && status !== 101) {
      // An interim response (100 Continue, 103 Early Hints): the final one is still to come.
      this.resetMessage();
      this.state = START;
      return;
    }
    const method = this.pairer.answeredMethod();
    this.upgradeAfter = status === 101 || (method === 'CONNECT' && status >= 200 && status < 300);
    if (this.upgradeAfter || method === 'HEAD' || status === 204 || status === 304) return this.complete();
    const framing = this.framing;
    // Without chunked framing or a length, a response ends when the connection closes (RFC 9112 §6.3).
    const untilClose = framing.transferEncoding || framing.contentLength < 0;
    this.bodyFrom(framing.chunked ? CHUNKED_BODY : untilClose ? BODY_UNTIL_CLOSE : framing.contentLength);
  }

  /** length: bytes, or CHUNKED_BODY, or BODY_UNTIL_CLOSE. */
  private bodyFrom(length: number): void {
    if (length === CHUNKED_BODY) this.state = CHUNK_SIZE;
    else if (length === BODY_UNTIL_CLOSE) this.state = UNTIL_CLOSE;
    else if (length === 0) this.complete();
    else {
      this.remaining = length;
      this.state = BODY;
    }
  }

  private chunkSize(line: Uint8Array, start: number, end: number): void {
    const size = chunkSizeOf(line, start, end);
    if (size < 0) return this.fail('bad_chunk');
    this.blockBytes = 0;
    if (size === 0) {
      this.state = TRAILERS;
    } else {
      this.remaining = size;
      this.state = CHUNK_DATA;
    }
  }

  private complete(): void {
    const bodyBytes = this.messageBytes - this.headerBytes;
    if (this.carries === REQUESTS) this.pairer.requestEnd(bodyBytes, this.lastNs);
    else this.pairer.responseEnd(this.status, this.headerBytes, bodyBytes, this.firstNs, this.lastNs);
    const upgrade = this.upgradeAfter;
    this.resetMessage();
    this.state = START;
    if (!upgrade) return;
    // A request that asked to switch protocols waits for its response to say yes (stop) or no (resume).
    if (this.carries === REQUESTS) this.state = AWAITING_UPGRADE;
    else this.pairer.upgraded();
  }

  private resetMessage(): void {
    resetFraming(this.framing);
    this.messageBytes = 0;
    this.headerBytes = 0;
    this.blockBytes = 0;
    this.carryLength = 0;
    this.remaining = 0;
    this.upgradeAfter = false;
    this.requestLine = null;
    this.chunksUnframed = false;
  }
}

/**
 * Where `byte` is in bytes[from, end), or -1. Buffer.indexOf (memchr) has no end: over a whole buffer it is the
 * fastest, but over a ring it would read on past the record, so there the first bytes are scanned here (most lines
 * are short; a call into C++ costs about as much as scanning them) and the rest of a long line through a view that
 * ends where the record does. bench http-parse (494-byte browser-like requests): a scan alone 1.7 -> 1.1 M
 * messages/s.
 */
export function indexOfByte(bytes: Buffer, byte: number, from: number, end: number): number {
  if (end === bytes.length) return bytes.indexOf(byte, from);
  const scanned = Math.min(end, from + SCAN_BYTES);
  for (let i = from; i < scanned; i++) if (bytes[i] === byte) return i;
  if (scanned === end) return -1;
  const found = bytes.subarray(scanned, end).indexOf(byte);
  return found < 0 ? -1 : scanned + found;
}

/** End of a line's content: before its LF and an optional CR. */
function lineContentEnd(line: Uint8Array, start: number, stop: number): number {
  let end = stop - 1;
  if (end > start && line[end - 1] === CR) end--;
  return end;
}

/**
 * Whether a call that begins with a chunk-size line, of `size` (-1: none), holds that chunk, as a writer that sends
 * whole chunks per call makes it: the size line, the data and the CRLF after it (after the last chunk, the blank line
 * that ends the body) fit in the call's length, and the CRLF is there where the copy shows it. Body bytes that read
 * as a size line (hex digits: a digest, a number, a line of 'c's) fail this almost always, where taking them for
 * framing would swallow every later message of the stream as chunk data, or stop it at the next line that is not
 * framing. Calls that end wherever a writer's buffer does (Go's net/http) fail it too, and so does a last chunk with
 * trailers: their bytes then count as body up to the next start line, which keeps the sizes exact.
 */
function holdsChunk(bytes: Uint8Array, start: number, dataStart: number, stop: number, callLength: number, size: number): boolean {
  if (size < 0) return false;
  const crlf = dataStart + size;
  if (crlf - start + 2 > callLength) return false;
  if (crlf >= stop) return true;
  return bytes[crlf] === CR && (crlf + 1 >= stop || bytes[crlf + 1] === LF);
}

/** The size a chunk-size line gives (at most 12 hex digits, then its end or extensions after `;`), or -1 when it is not one. */
function chunkSizeOf(line: Uint8Array, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end && i - start <= 12; i++) {
    const digit = hexValue(line[i]!);
    if (digit < 0) break;
    size = size * 16 + digit;
  }
  const next = line[i];
  if (i === start || i - start > 12 || (i < end && next !== 0x3b && next !== 0x20 && next !== 0x09)) return -1;
  return size;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}
