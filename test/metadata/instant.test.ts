import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FOREVER } from '../../src/metadata/index/history.js';
import { atOrBefore, Instant, secondsOf } from '../../src/metadata/index/instant.js';

const NOW = 1_764_000_000_123_456_789n;

describe('instants', () => {
  it('compares exactly, near a bound (the bigints decide) and far from it (the seconds do)', () => {
    const cases: Array<[bigint, bigint, boolean]> = [
      [NOW, NOW, true],
      [NOW, NOW - 1n, false],
      [NOW - 1n, NOW, true],
      [1_764_000_000_999_999_999n, 1_764_000_001_000_000_000n, true], // across a second boundary, 1 ns apart
      [1_764_000_001_000_000_000n, 1_764_000_000_999_999_999n, false],
      [NOW, NOW + 2_500_000_000n, true],
      [NOW + 2_500_000_000n, NOW, false],
      [NOW - 86_400_000_000_000n, NOW, true],
      [0n, NOW, true],
      [NOW, 0n, false],
      [NOW, FOREVER, true],
      [FOREVER, NOW, false],
      [FOREVER - 1n, FOREVER, true], // both clamped to the same seconds: the bigints decide
      [FOREVER, FOREVER - 1n, false],
    ];
    assert.deepEqual(
      cases.map(([a, b]) => [a, b, atOrBefore(a, secondsOf(a), b, secondsOf(b))]),
      cases,
    );
  });

  it('tells whether an instant falls in [from, to)', () => {
    const at = new Instant().set(NOW);
    const within = (from: bigint, to: bigint) => at.within(from, secondsOf(from), to, secondsOf(to));
    assert.equal(within(NOW, NOW + 1n), true);
    assert.equal(within(NOW + 1n, FOREVER), false);
    assert.equal(within(0n, NOW), false);
    assert.equal(within(0n, NOW + 1n), true);
    assert.equal(within(NOW - 10_000_000_000n, FOREVER), true);
  });
});
