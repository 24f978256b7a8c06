/**
 * The connection id every event of a socket carries (<node>/<epoch>/<kernel conn id>, record-kind.ts's
 * connectionId), written as bytes for the kinds that write their events' Avro themselves (flows, http): the prefix
 * once per collector run, the digits per event, no string made; and the partition Kafka's default partitioner
 * would pick from that id, so that every event of a connection, whatever its topic, takes the same partition.
 */
import type { U64 } from '../ebpf/records/u64.js';
import { partitionOfBytes } from '../common/kafka/partitioner.js';
import { connectionIdPrefix, type CollectorContext } from './record-kind.js';

/** A u64 in decimal. */
const MAX_DIGITS = 20;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class ConnectionIdBytes {
  private readonly prefixLength: number;
  /** The id last written: its first `length` bytes (write's result). */
  readonly bytes: Buffer;

  constructor(context: Pick<CollectorContext, 'nodeName' | 'epoch'>) {
    const prefix = Buffer.from(connectionIdPrefix(context));
    this.prefixLength = prefix.length;
    this.bytes = Buffer.allocUnsafe(prefix.length + MAX_DIGITS);
    prefix.copy(this.bytes);
  }

  /** The most bytes an id takes. */
  get maxBytes(): number {
    return this.bytes.length;
  }

  /** Writes the id of `connId` into `bytes`; returns its length. */
  write(connId: U64): number {
    const id = this.bytes;
    const pos = this.prefixLength;
    if (typeof connId === 'bigint') {
      if (connId > MAX_SAFE) return pos + id.write(connId.toString(), pos, 'latin1');
      connId = Number(connId);
    }
    // A safe integer is below 10^16: its last nine digits and the rest each take integer operations.
    const high = Math.floor(connId / 1e9);
    const low = connId - high * 1e9;
    return high === 0 ? writeDigits(low, 0, id, pos) : writeDigits(low, 9, id, writeDigits(high, 0, id, pos));
  }

  /** The partition of `connId`'s events: murmur2 of its id, as Kafka's default partitioner. */
  partitionOf(connId: U64, partitions: number): number {
    return partitionOfBytes(this.bytes, this.write(connId), partitions);
  }
}

/** `value` (below 2^31) in decimal, zero-padded to `width` digits, at `pos`; returns the position after it. */
function writeDigits(value: number, width: number, target: Uint8Array, pos: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = (rest / 10) | 0) digits++;
  if (digits < width) digits = width;
  const end = pos + digits;
  for (let at = end - 1, rest = value; at >= pos; at--, rest = (rest / 10) | 0) target[at] = 0x30 + (rest % 10);
  return end;
}
