/**
 * The few header fields that decide where a message ends (Content-Length, Transfer-Encoding, Connection, Upgrade),
 * recognised by comparing bytes in place. No header value is ever turned into a string or kept.
 */

/** What the header block said about framing; reset per message. */
export interface Framing {
  /** -1 when absent, -2 when malformed or conflicting. */
  contentLength: number;
  /** Transfer-Encoding present. */
  transferEncoding: boolean;
  /** Transfer-Encoding's last coding is `chunked`. */
  chunked: boolean;
  /** Upgrade header together with `Connection: upgrade`. */
  upgrade: boolean;
  connectionUpgrade: boolean;
}

export function emptyFraming(): Framing {
  return { contentLength: -1, transferEncoding: false, chunked: false, upgrade: false, connectionUpgrade: false };
}

export function resetFraming(framing: Framing): void {
  framing.contentLength = -1;
  framing.transferEncoding = false;
  framing.chunked = false;
  framing.upgrade = false;
  framing.connectionUpgrade = false;
}

const COLON = 0x3a;
const bytesOf = (text: string): Buffer => Buffer.from(text, 'latin1');
const CONTENT_LENGTH = bytesOf('content-length');
const TRANSFER_ENCODING = bytesOf('transfer-encoding');
const CONNECTION = bytesOf('connection');
const UPGRADE = bytesOf('upgrade');
const CHUNKED = bytesOf('chunked');

const isWhitespace = (byte: number): boolean => byte === 0x20 || byte === 0x09;

/** line[start, start + name.length) equals the lower-case `name`, ignoring ASCII case. */
function equalsIgnoringCase(line: Uint8Array, start: number, name: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) if ((line[start + i]! | 0x20) !== name[i]) return false;
  return true;
}

/** Whether a comma-separated list in line[start, end) holds `token` (any case) as one of its elements. */
function listHasToken(line: Uint8Array, start: number, end: number, token: Uint8Array): boolean {
  let i = start;
  while (i < end) {
    while (i < end && (isWhitespace(line[i]!) || line[i] === 0x2c)) i++;
    let elementEnd = i;
    while (elementEnd < end && line[elementEnd] !== 0x2c) elementEnd++;
    let trimmed = elementEnd;
    while (trimmed > i && isWhitespace(line[trimmed - 1]!)) trimmed--;
    if (trimmed - i === token.length && equalsIgnoringCase(line, i, token)) return true;
    i = elementEnd + 1;
  }
  return false;
}

/** Whether the last element of the list in line[start, end) is `token`. */
function listEndsWithToken(line: Uint8Array, start: number, end: number, token: Uint8Array): boolean {
  let trimmed = end;
  while (trimmed > start && isWhitespace(line[trimmed - 1]!)) trimmed--;
  const tokenStart = trimmed - token.length;
  if (tokenStart < start || !equalsIgnoringCase(line, tokenStart, token)) return false;
  return tokenStart === start || line[tokenStart - 1] === 0x2c || isWhitespace(line[tokenStart - 1]!);
}

function parseContentLength(line: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && isWhitespace(line[i]!)) i++;
  let trimmed = end;
  while (trimmed > i && isWhitespace(line[trimmed - 1]!)) trimmed--;
  // 15 digits stay exact in a double and are far beyond any body the kernel will show.
  if (trimmed === i || trimmed - i > 15) return -2;
  let value = 0;
  for (; i < trimmed; i++) {
    const digit = line[i]! - 0x30;
    if (digit < 0 || digit > 9) return -2;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * Reads one header line line[start, end) (no CRLF) into `framing`. Returns false when the line is not a header
 * field (no colon, empty name, whitespace before the colon) or a Content-Length is malformed or conflicting.
 */
export function readHeaderLine(line: Uint8Array, start: number, end: number, framing: Framing): boolean {
  let colon = start;
  while (colon < end && line[colon] !== COLON) {
    if (line[colon]! <= 0x20) return false;
    colon++;
  }
  if (colon === start || colon === end) return false;
  const nameLength = colon - start;
  const valueStart = colon + 1;
  switch (nameLength) {
    case CONTENT_LENGTH.length:
      if (equalsIgnoringCase(line, start, CONTENT_LENGTH)) {
        const value = parseContentLength(line, valueStart, end);
        if (value < 0 || (framing.contentLength >= 0 && framing.contentLength !== value)) return false;
        framing.contentLength = value;
      }
      return true;
    case TRANSFER_ENCODING.length:
      if (equalsIgnoringCase(line, start, TRANSFER_ENCODING)) {
        framing.transferEncoding = true;
        framing.chunked = listEndsWithToken(line, valueStart, end, CHUNKED);
      }
      return true;
    case CONNECTION.length:
      if (equalsIgnoringCase(line, start, CONNECTION)) {
        framing.connectionUpgrade ||= listHasToken(line, valueStart, end, UPGRADE);
      }
      return true;
    case UPGRADE.length:
      if (equalsIgnoringCase(line, start, UPGRADE)) framing.upgrade = true;
      return true;
    default:
      return true;
  }
}
