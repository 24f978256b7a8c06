/** The task comm (char[16]) several records carry: NUL-terminated bytes read as latin1, since comm need not be UTF-8. */
export function decodeComm(view: DataView, offset: number): string {
  let text = '';
  for (let i = 0; i < 16; i++) {
    const byte = view.getUint8(offset + i);
    if (byte === 0) break;
    text += String.fromCharCode(byte);
  }
  return text;
}
