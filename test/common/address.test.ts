import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIPv6, isPrivateAddress, normalizeAddress } from '../../src/common/address.js';

describe('address text', () => {
  it('normalizes to one canonical form', () => {
    const cases: Array<[string, string]> = [
      ['10.0.0.1', '10.0.0.1'],
      ['::ffff:10.0.0.1', '10.0.0.1'],
      ['::FFFF:10.0.0.1', '10.0.0.1'],
      ['0:0:0:0:0:ffff:a00:1', '10.0.0.1'],
      ['::ffff:0a00:0001', '10.0.0.1'],
      ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
      ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      // Not addresses, or not parsable: as they came.
      ['node-a.example', 'node-a.example'],
      ['1:2:3', '1:2:3'],
      ['1::2::3', '1::2::3'],
      ['::ffff:10.0.0.256', '::ffff:10.0.0.256'],
      ['12345::1', '12345::1'],
      ['1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9'],
    ];
    assert.deepEqual(
      cases.map(([text]) => [text, normalizeAddress(text)]),
      cases,
    );
  });

  it('formats groups as RFC 5952 does', () => {
    assert.equal(formatIPv6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), '2001:db8::1:0:0:1');
    assert.equal(formatIPv6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), '2001:db8:0:1:1:1:1:1');
    assert.equal(formatIPv6([0, 0, 0, 0, 0, 0, 0, 0]), '::');
  });

  it('tells private addresses (RFC 1918, loopback, ULA) from the rest', () => {
    const privateOnes = ['10.0.0.1', '10.255.255.255', '172.16.0.1', '172.31.0.1', '192.168.0.1', '127.0.0.1', '::1', 'fc00::', 'fdff:ffff::1'];
    const publicOnes = ['9.255.255.255', '11.0.0.1', '172.15.0.1', '172.32.0.1', '192.167.0.1', '8.8.8.8', '2001:db8::1', 'fe80::1', 'fc0::1', '::2', '100.64.0.1'];
    assert.deepEqual(privateOnes.filter((address) => !isPrivateAddress(address)), []);
    assert.deepEqual(publicOnes.filter((address) => isPrivateAddress(address)), []);
  });
});
