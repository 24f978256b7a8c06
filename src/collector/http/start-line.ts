/**
 * Request and status lines, decoded from bytes in place: only the method, the target and the status code become
 * values; everything else is checked and skipped.
 */

const SPACE = 0x20;
/** OTel's known HTTP methods; anything else is reported as `_OTHER` with the original kept aside. */
export const KNOWN_METHODS = ['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE'] as const;
const KNOWN_METHOD_BYTES = KNOWN_METHODS.map((method) => Buffer.from(method, 'latin1'));
/** The longest method token accepted before the bytes are taken as not HTTP. */
export const MAX_METHOD_LENGTH = 20;

export interface RequestLine {
  /** Known method, or null when `methodOriginal` holds an extension method. */
  method: string | null;
  methodOriginal: string | null;
  target: string;
  minorVersion: number;
}

export interface StatusLine {
  status: number;
  minorVersion: number;
}

/** Method token characters as requests use them (upper-case letters, `-`, `_`). */
function isMethodByte(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || byte === 0x2d || byte === 0x5f;
}

/** `HTTP/1.x` at `at`: the minor version (0 or 1), or -1. */
function httpVersionAt(line: Uint8Array, at: number, end: number): number {
  if (end - at < 8) return -1;
  if (line[at] !== 0x48 || line[at + 1] !== 0x54 || line[at + 2] !== 0x54 || line[at + 3] !== 0x50) return -1;
  if (line[at + 4] !== 0x2f || line[at + 5] !== 0x31 || line[at + 6] !== 0x2e) return -1;
  const minor = line[at + 7]!;
  return minor === 0x30 ? 0 : minor === 0x31 ? 1 : -1;
}

const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f];

/** True when a line starting at `start` is (or begins) a status line: `HTTP/`. */
export function startsLikeStatusLine(line: Uint8Array, start: number, end: number): boolean {
  for (let i = 0; i < HTTP_SLASH.length && start + i < end; i++) if (line[start + i] !== HTTP_SLASH[i]) return false;
  return true;
}

/**
 * Whether the first bytes of a message (maybe only a few) can still become a request or status line: lets a stream
 * that is not HTTP be recognised from its first bytes instead of after a full line.
 */
export function plausibleStartPrefix(line: Uint8Array, start: number, end: number): boolean {
  if (startsLikeStatusLine(line, start, end)) return true;
  const scanEnd = Math.min(end, start + MAX_METHOD_LENGTH + 1);
  for (let i = start; i < scanEnd; i++) {
    const byte = line[i]!;
    if (byte === SPACE) return i > start;
    if (!isMethodByte(byte)) return false;
  }
  return scanEnd - start <= MAX_METHOD_LENGTH;
}

function knownMethod(line: Uint8Array, start: number, end: number): string | null {
  const length = end - start;
  for (let m = 0; m < KNOWN_METHOD_BYTES.length; m++) {
    const bytes = KNOWN_METHOD_BYTES[m]!;
    if (bytes.length !== length || bytes[0] !== line[start]) continue;
    let i = 1;
    while (i < length && bytes[i] === line[start + i]) i++;
    if (i === length) return KNOWN_METHODS[m]!;
  }
  return null;
}

/** `METHOD SP target SP HTTP/1.x` in line[start, end) (no CRLF), or null when it is not one. */
export function parseRequestLine(line: Buffer, start: number, end: number): RequestLine | null {
  let methodEnd = start;
  while (methodEnd < end && isMethodByte(line[methodEnd]!)) methodEnd++;
  if (methodEnd === start || methodEnd - start > MAX_METHOD_LENGTH || line[methodEnd] !== SPACE) return null;
  const targetStart = methodEnd + 1;
  let targetEnd = targetStart;
  while (targetEnd < end && line[targetEnd] !== SPACE) targetEnd++;
  if (targetEnd === targetStart || targetEnd === end) return null;
  for (let i = targetStart; i < targetEnd; i++) if (line[i]! <= SPACE || line[i] === 0x7f) return null;
  if (end - (targetEnd + 1) !== 8) return null;
  const minorVersion = httpVersionAt(line, targetEnd + 1, end);
  if (minorVersion < 0) return null;
  const method = knownMethod(line, start, methodEnd);
  return {
    method,
    methodOriginal: method === null ? line.toString('latin1', start, methodEnd) : null,
    target: line.toString('latin1', targetStart, targetEnd),
    minorVersion,
  };
}

function isDigit(byte: number | undefined): byte is number {
  return byte !== undefined && byte >= 0x30 && byte <= 0x39;
}

/** `HTTP/1.x SP ddd [SP reason]` in line[start, end), or null. */
export function parseStatusLine(line: Uint8Array, start: number, end: number): StatusLine | null {
  const minorVersion = httpVersionAt(line, start, end);
  if (minorVersion < 0 || line[start + 8] !== SPACE) return null;
  const code = start + 9;
  const a = line[code];
  const b = line[code + 1];
  const c = line[code + 2];
  if (!isDigit(a) || !isDigit(b) || !isDigit(c) || a === 0x30) return null;
  if (code + 3 < end && line[code + 3] !== SPACE) return null;
  return { status: (a - 0x30) * 100 + (b - 0x30) * 10 + (c - 0x30), minorVersion };
}
