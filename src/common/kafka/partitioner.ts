/**
 * Chooses the partition of a connection's events the way Kafka's default partitioner chooses it from a key
 * (murmur2 of the UTF-8 bytes, positive, modulo the partition count), so flows, HTTP and verdict events of one
 * connection share a partition whichever producer wrote them.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const encoder = new TextEncoder();
const scratch = new Uint8Array(1024);

export function murmur2(bytes: Uint8Array, length = bytes.length): number {
  let h = (SEED ^ length) | 0;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail >= 3) h ^= bytes[blocks + 2]! << 16;
  if (tail >= 2) h ^= bytes[blocks + 1]! << 8;
  if (tail >= 1) {
    h ^= bytes[blocks]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

export function partitionOf(key: string, partitions: number): number {
  // Keys are short ids; the scratch buffer avoids an allocation per event (longer keys fall back to a fresh one).
  const { read, written } = encoder.encodeInto(key, scratch);
  return read === key.length ? partitionOfBytes(scratch, written, partitions) : partitionOfBytes(encoder.encode(key), undefined, partitions);
}

/** The partition of a key given as its UTF-8 bytes (the first `length`). */
export function partitionOfBytes(key: Uint8Array, length: number | undefined, partitions: number): number {
  return (murmur2(key, length) & 0x7fffffff) % partitions;
}
