/** Codecs for plain integer keys and values (array indexes, counters, flags); records get their own in records/. */
import type { Codec } from './map.js';

export const u8Codec: Codec<number> = {
  size: 1,
  encode: (value, target) => void target.writeUInt8(value),
  decode: (source, offset) => source.readUInt8(offset),
};

export const u32Codec: Codec<number> = {
  size: 4,
  encode: (value, target) => void target.writeUInt32LE(value),
  decode: (source, offset) => source.readUInt32LE(offset),
};

export const u64Codec: Codec<bigint> = {
  size: 8,
  encode: (value, target) => void target.writeBigUInt64LE(value),
  decode: (source, offset) => source.readBigUInt64LE(offset),
};
