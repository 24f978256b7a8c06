/**
 * The few fields of a NetObserv flow record (the agent's Kafka value: protobuf message pbflow.Record of its
 * proto/flow.proto) that a benchmark needs to count flows: addresses, ports, protocol, bytes and packets. A
 * hand-written walk over the wire format instead of a protobuf library: six fields, no dependency, and fast
 * enough for hundreds of thousands of records.
 */

export interface NetobservFlow {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** IPPROTO_*: 6 for TCP. */
  protocol: number;
  /** Bytes of the packets (IP headers included), as the agent counted them at the interface. */
  bytes: number;
  packets: number;
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/**
 * Calls visit for each field of the message in buf[start, end): the varint value (as a Number: counters stay far
 * below 2^53 here) or, for a length-delimited or fixed32 field, the offset where its bytes start.
 */
function walk(buf: Buffer, start: number, end: number, visit: (field: number, value: number, valueEnd: number) => void): void {
  let pos = start;
  const varint = (): number => {
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      const byte = buf[pos++]!;
      value += (byte & 0x7f) * shift;
      if (byte < 0x80) return value;
    }
  };
  while (pos < end) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    switch (tag & 7) {
      case VARINT:
        visit(field, varint(), pos);
        break;
      case LENGTH_DELIMITED: {
        const length = varint();
        visit(field, pos, pos + length);
        pos += length;
        break;
      }
      case FIXED32:
        visit(field, pos, pos + 4);
        pos += 4;
        break;
      case FIXED64:
        pos += 8;
        break;
      default:
        throw new RangeError(`not a pbflow.Record: wire type ${tag & 7} at byte ${pos}`);
    }
  }
}

/** pbflow.IP: fixed32 ipv4 = 1 (the address as a big-endian number), bytes ipv6 = 2. */
function address(buf: Buffer, start: number, end: number): string {
  let text = '';
  walk(buf, start, end, (field, at, atEnd) => {
    if (field === 1) text = [3, 2, 1, 0].map((i) => buf[at + i]).join('.');
    else if (field === 2) text = buf.subarray(at, atEnd).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
  });
  return text;
}

export function decodeNetobservFlow(buf: Buffer): NetobservFlow {
  const flow: NetobservFlow = { src: '', dst: '', srcPort: 0, dstPort: 0, protocol: 0, bytes: 0, packets: 0 };
  walk(buf, 0, buf.length, (field, value, end) => {
    if (field === 8) flow.bytes = value;
    else if (field === 9) flow.packets = value;
    else if (field === 6) {
      // pbflow.Network: src_addr = 1, dst_addr = 2
      walk(buf, value, end, (inner, at, atEnd) => {
        if (inner === 1) flow.src = address(buf, at, atEnd);
        else if (inner === 2) flow.dst = address(buf, at, atEnd);
      });
    } else if (field === 7) {
      // pbflow.Transport: src_port = 1, dst_port = 2, protocol = 3
      walk(buf, value, end, (inner, number) => {
        if (inner === 1) flow.srcPort = number;
        else if (inner === 2) flow.dstPort = number;
        else if (inner === 3) flow.protocol = number;
      });
    }
  });
  return flow;
}
