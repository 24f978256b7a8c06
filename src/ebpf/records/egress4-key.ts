/**
 * struct sl_egress4_key (bpf/include/records.h): key of connect_guard's deny map. The address is kept in network
 * byte order, as the kernel hands it to cgroup/connect4; the port in host order. EGRESS4_KEY is registered in
 * ./layouts.ts; test/ebpf/records-golden.test.ts pins the codec to compiler-made bytes (fixtures/sl_egress4_key.hex).
 */
import type { Codec } from '../map.js';

export const EGRESS4_KEY = {
  struct: 'sl_egress4_key',
  size: 8,
  offsets: { daddr: 0, dport: 4, _pad0: 6 },
} as const;

export interface Egress4Key {
  /** Dotted IPv4. */
  daddr: string;
  dport: number;
}

export const egress4KeyCodec: Codec<Egress4Key> = {
  size: EGRESS4_KEY.size,
  encode(key, target) {
    const octets = key.daddr.split('.');
    for (let i = 0; i < 4; i++) target[EGRESS4_KEY.offsets.daddr + i] = Number(octets[i]);
    target.writeUInt16LE(key.dport, EGRESS4_KEY.offsets.dport);
    target.writeUInt16LE(0, EGRESS4_KEY.offsets._pad0);
  },
  decode(source, offset) {
    const a = offset + EGRESS4_KEY.offsets.daddr;
    return {
      daddr: `${source[a]}.${source[a + 1]}.${source[a + 2]}.${source[a + 3]}`,
      dport: source.readUInt16LE(offset + EGRESS4_KEY.offsets.dport),
    };
  },
};
