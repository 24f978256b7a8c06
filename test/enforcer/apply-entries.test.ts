/**
 * MapState ↔ kernel entries (src/enforcer/apply/entries.ts), pure: port ranges become their prefix blocks and come
 * back as the same ranges, adjacent ranges of different audit flags stay apart, addresses and prefixes keep their
 * canonical text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressNumber, addressText, policyEntries, policyKeys, prefixKey, prefixText } from '../../src/enforcer/apply/entries.js';
import { policyEntryKey, type PolicyEntry } from '../../src/enforcer/compile/map-state.js';
import { PolicyFlag } from '../../src/ebpf/records/policy-keys.js';

const entry = (portFirst: number, portLast: number, audit: boolean, protocol: PolicyEntry['protocol'] = 'TCP'): PolicyEntry => ({
  subject: (1n << 62n) | 5n,
  direction: 'ingress',
  protocol,
  peer: (2n << 62n) | 9n,
  portFirst,
  portLast,
  audit,
});

describe('kernel entries of a MapState', () => {
  it('a port range is its prefix blocks: 80-90 is 80-87, 88-89 and 90', () => {
    assert.deepEqual(
      policyKeys(entry(80, 90, false), 1).map(({ port, bits, generation, direction, protocol }) => ({ port, bits, generation, direction, protocol })),
      [
        { port: 80, bits: 13, generation: 1, direction: 1, protocol: 6 },
        { port: 88, bits: 15, generation: 1, direction: 1, protocol: 6 },
        { port: 90, bits: 16, generation: 1, direction: 1, protocol: 6 },
      ],
    );
    assert.deepEqual(policyKeys(entry(0, 65535, false, 'ANY'), 0).map(({ port, bits, protocol }) => [port, bits, protocol]), [[0, 0, 0]]);
  });

  it('reading blocks back gives the ranges, adjacent ranges of different flags apart', () => {
    const entries = [entry(80, 80, false), entry(81, 90, true), entry(91, 1000, false), entry(1024, 65535, false, 'UDP')];
    const keys = entries.flatMap((e) => policyKeys(e, 0).map((key) => [key, e.audit ? PolicyFlag.audit : 0] as [typeof key, number]));
    assert.equal(keys.length, 1 + 5 + 11 + 6);
    assert.deepEqual(policyEntries(keys.reverse()), new Map(entries.map((e) => [policyEntryKey(e), e])));
  });

  it('addresses and prefixes keep their canonical text', () => {
    for (const text of ['10.1.2.3', '::1', '2001:db8::8a2e:370:7334']) assert.equal(addressText(addressNumber(text)), text);
    assert.equal(addressText(addressNumber('::ffff:0:1')), '0.0.0.1', 'v4-mapped text is the IPv4 address');
    for (const text of ['10.0.0.0/8', '0.0.0.0/0', '2001:db8::/32', '::/0', '192.0.2.7/32']) assert.equal(prefixText(prefixKey(text, 1)), text);
    assert.throws(() => prefixKey('10.0.0.0/33', 0), /not a CIDR prefix: "10.0.0.0\/33"/);
  });
});
