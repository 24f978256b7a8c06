/**
 * The task comm (char[16]) several records carry: NUL-terminated bytes read as latin1, since comm need not be UTF-8.
 * As a string (decodeComm), or as the UTF-8 bytes of that string written in place (writeComm, for encoders that
 * read records straight into messages).
 */
export const COMM_BYTES = 16;

/** The bytes before the first NUL (all 16 when there is none). */
function commLength(view: DataView, offset: number): number {
  let length = 0;
  while (length < COMM_BYTES && view.getUint8(offset + length) !== 0) length++;
  return length;
}

export function decodeComm(view: DataView, offset: number): string {
  let text = '';
  const length = commLength(view, offset);
  for (let i = 0; i < length; i++) text += String.fromCharCode(view.getUint8(offset + i));
  return text;
}

/** Writes the UTF-8 of decodeComm's string at `pos` (at most 2 × COMM_BYTES bytes); returns the position after it. */
export function writeComm(view: DataView, offset: number, target: Uint8Array, pos: number): number {
  const length = commLength(view, offset);
  for (let i = 0; i < length; i++) {
    const byte = view.getUint8(offset + i);
    if (byte < 0x80) {
      target[pos++] = byte;
    } else {
      target[pos++] = 0xc0 | (byte >> 6);
      target[pos++] = 0x80 | (byte & 0x3f);
    }
  }
  return pos;
}
