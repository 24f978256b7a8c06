/**
 * The enforcer's map keys (bpf/include/records.h, read by bpf/policy.bpf.c) and their enums. Addresses are 128-bit
 * numbers, IPv4 v4-mapped (as src/events/networkpolicy/cidr.ts holds them), written as 16 big-endian bytes; identities and
 * cgroup ids little-endian, as the programs read them from other maps; the port of a policy key big-endian, because
 * its blocks are prefixes of the port's bits. Every padding byte is written as zero: hash keys compare all bytes.
 * The mirrors are registered in ./layouts.ts; test/ebpf/records-golden.test.ts pins each codec to compiler-made
 * bytes (fixtures/sl_*_key.hex).
 */
import type { Codec } from '../map.js';

export const POLICY_DIRECTION = { enum: 'sl_policy_direction', prefix: 'SL_DIRECTION_', values: { ingress: 1, egress: 2 } } as const;
export const PolicyDirection = POLICY_DIRECTION.values;
export type PolicyDirectionNumber = (typeof PolicyDirection)[keyof typeof PolicyDirection];

export const POLICY_FLAG = { enum: 'sl_policy_flag', prefix: 'SL_POLICY_FLAG_', values: { audit: 0x1 } } as const;
export const PolicyFlag = POLICY_FLAG.values;

export const CGROUP_IDENTITY_KEY = { struct: 'sl_cgroup_identity_key', size: 16, offsets: { cgroup_id: 0, generation: 8, _pad0: 9 } } as const;
export const ENDPOINT_KEY = { struct: 'sl_endpoint_key', size: 20, offsets: { addr: 0, generation: 16, _pad0: 17 } } as const;
export const PREFIX_KEY = { struct: 'sl_prefix_key', size: 24, offsets: { prefixlen: 0, generation: 4, _pad0: 5, addr: 8 } } as const;
export const ISOLATION_KEY = { struct: 'sl_isolation_key', size: 16, offsets: { subject: 0, generation: 8, direction: 9, _pad0: 10 } } as const;
export const POLICY_KEY = {
  struct: 'sl_policy_key',
  size: 32,
  offsets: { prefixlen: 0, generation: 4, direction: 5, protocol: 6, _pad0: 7, subject: 8, peer: 16, port: 24, _pad1: 26 },
} as const;
export const UDP_FLOW_KEY = { struct: 'sl_udp_flow_key', size: 32, offsets: { socket_cookie: 0, peer_addr: 8, peer_port: 24, _pad0: 26 } } as const;

/** Bits of a policy key before its port: generation, direction, protocol, padding, subject, peer. */
export const POLICY_KEY_PORT_BIT = 160;
/** Bits of a prefix key before its address: generation and padding. */
export const PREFIX_KEY_ADDRESS_BIT = 32;

export interface CgroupIdentityKey {
  cgroupId: bigint;
  generation: number;
}

export interface EndpointKey {
  /** 128 bits, IPv4 v4-mapped. */
  address: bigint;
  generation: number;
}

export interface PrefixKey {
  /** The network address, 128 bits, IPv4 v4-mapped. */
  address: bigint;
  /** In the 128-bit space (an IPv4 /8 is 104). */
  length: number;
  generation: number;
}

export interface IsolationKey {
  subject: bigint;
  direction: PolicyDirectionNumber;
  generation: number;
}

export interface PolicyKey {
  generation: number;
  direction: PolicyDirectionNumber;
  /** IANA number; 0: any. */
  protocol: number;
  subject: bigint;
  peer: bigint;
  /** First port of the block. */
  port: number;
  /** Leading bits of the port the block fixes (16: one port, 0: all). */
  bits: number;
}

export interface UdpFlowKey {
  socketCookie: bigint;
  peerAddress: bigint;
  peerPort: number;
}

const MASK_64 = (1n << 64n) - 1n;

export function writeAddress(address: bigint, target: Buffer, offset: number): void {
  target.writeBigUInt64BE(address >> 64n, offset);
  target.writeBigUInt64BE(address & MASK_64, offset + 8);
}

export function readAddress(source: Buffer, offset: number): bigint {
  return (source.readBigUInt64BE(offset) << 64n) | source.readBigUInt64BE(offset + 8);
}

/** Zeroes the key, then writes its fields: padding is zero whatever the buffer held. */
const fresh = (target: Buffer, size: number): Buffer => target.fill(0, 0, size);

export const cgroupIdentityKeyCodec: Codec<CgroupIdentityKey> = {
  size: CGROUP_IDENTITY_KEY.size,
  encode(key, target) {
    fresh(target, this.size).writeBigUInt64LE(key.cgroupId, CGROUP_IDENTITY_KEY.offsets.cgroup_id);
    target.writeUInt8(key.generation, CGROUP_IDENTITY_KEY.offsets.generation);
  },
  decode: (source, offset) => ({
    cgroupId: source.readBigUInt64LE(offset + CGROUP_IDENTITY_KEY.offsets.cgroup_id),
    generation: source.readUInt8(offset + CGROUP_IDENTITY_KEY.offsets.generation),
  }),
};

export const endpointKeyCodec: Codec<EndpointKey> = {
  size: ENDPOINT_KEY.size,
  encode(key, target) {
    writeAddress(key.address, fresh(target, this.size), ENDPOINT_KEY.offsets.addr);
    target.writeUInt8(key.generation, ENDPOINT_KEY.offsets.generation);
  },
  decode: (source, offset) => ({
    address: readAddress(source, offset + ENDPOINT_KEY.offsets.addr),
    generation: source.readUInt8(offset + ENDPOINT_KEY.offsets.generation),
  }),
};

export const prefixKeyCodec: Codec<PrefixKey> = {
  size: PREFIX_KEY.size,
  encode(key, target) {
    fresh(target, this.size).writeUInt32LE(PREFIX_KEY_ADDRESS_BIT + key.length, PREFIX_KEY.offsets.prefixlen);
    target.writeUInt8(key.generation, PREFIX_KEY.offsets.generation);
    writeAddress(key.address, target, PREFIX_KEY.offsets.addr);
  },
  decode: (source, offset) => ({
    address: readAddress(source, offset + PREFIX_KEY.offsets.addr),
    length: source.readUInt32LE(offset + PREFIX_KEY.offsets.prefixlen) - PREFIX_KEY_ADDRESS_BIT,
    generation: source.readUInt8(offset + PREFIX_KEY.offsets.generation),
  }),
};

export const isolationKeyCodec: Codec<IsolationKey> = {
  size: ISOLATION_KEY.size,
  encode(key, target) {
    fresh(target, this.size).writeBigUInt64LE(key.subject, ISOLATION_KEY.offsets.subject);
    target.writeUInt8(key.generation, ISOLATION_KEY.offsets.generation);
    target.writeUInt8(key.direction, ISOLATION_KEY.offsets.direction);
  },
  decode: (source, offset) => ({
    subject: source.readBigUInt64LE(offset + ISOLATION_KEY.offsets.subject),
    direction: source.readUInt8(offset + ISOLATION_KEY.offsets.direction) as PolicyDirectionNumber,
    generation: source.readUInt8(offset + ISOLATION_KEY.offsets.generation),
  }),
};

export const policyKeyCodec: Codec<PolicyKey> = {
  size: POLICY_KEY.size,
  encode(key, target) {
    const o = POLICY_KEY.offsets;
    fresh(target, this.size).writeUInt32LE(POLICY_KEY_PORT_BIT + key.bits, o.prefixlen);
    target.writeUInt8(key.generation, o.generation);
    target.writeUInt8(key.direction, o.direction);
    target.writeUInt8(key.protocol, o.protocol);
    target.writeBigUInt64LE(key.subject, o.subject);
    target.writeBigUInt64LE(key.peer, o.peer);
    target.writeUInt16BE(key.port, o.port);
  },
  decode(source, offset) {
    const o = POLICY_KEY.offsets;
    return {
      generation: source.readUInt8(offset + o.generation),
      direction: source.readUInt8(offset + o.direction) as PolicyDirectionNumber,
      protocol: source.readUInt8(offset + o.protocol),
      subject: source.readBigUInt64LE(offset + o.subject),
      peer: source.readBigUInt64LE(offset + o.peer),
      port: source.readUInt16BE(offset + o.port),
      bits: source.readUInt32LE(offset + o.prefixlen) - POLICY_KEY_PORT_BIT,
    };
  },
};

export const udpFlowKeyCodec: Codec<UdpFlowKey> = {
  size: UDP_FLOW_KEY.size,
  encode(key, target) {
    fresh(target, this.size).writeBigUInt64LE(key.socketCookie, UDP_FLOW_KEY.offsets.socket_cookie);
    writeAddress(key.peerAddress, target, UDP_FLOW_KEY.offsets.peer_addr);
    target.writeUInt16LE(key.peerPort, UDP_FLOW_KEY.offsets.peer_port);
  },
  decode: (source, offset) => ({
    socketCookie: source.readBigUInt64LE(offset + UDP_FLOW_KEY.offsets.socket_cookie),
    peerAddress: readAddress(source, offset + UDP_FLOW_KEY.offsets.peer_addr),
    peerPort: source.readUInt16LE(offset + UDP_FLOW_KEY.offsets.peer_port),
  }),
};
