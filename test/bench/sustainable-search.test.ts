/**
 * The highest sustainable rate's rule (bench/http-live-traffic.ts searchSustainable): the first rate, from the top
 * fraction of the closed-loop capacity down, whose p90 stays under the bound and, when losses are counted, during
 * which nothing was lost. The loads are scripted: what is tested is the rule, not a machine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { searchSustainable, SUSTAINED_P90_US, type LoadResult } from '../../bench/http-live-traffic.js';

function result(rate: number, p90: number): LoadResult {
  const latency = { p50: p90 / 2, p90, p99: 2 * p90, p999: 3 * p90, max: 4 * p90 };
  return { requests: 5 * rate, answered: 5 * rate, errors: 0, seconds: 5, achieved_per_s: rate, connections: 16, latency_us: latency, service_us: latency, max_rss_kb: 10_240 };
}

describe('searchSustainable', () => {
  it('stops at the first rate whose p90 is within the bound when losses are not counted', async () => {
    const p90ByRate = new Map([[8_000, 3 * SUSTAINED_P90_US], [7_000, SUSTAINED_P90_US]]);
    const found = await searchSustainable(10_000, async (rate) => result(rate, p90ByRate.get(rate) ?? 100));
    assert.deepEqual([found.highest, found.sustained], [7_000, true]);
    assert.deepEqual(found.tried.map((step) => [step.rate, step.lost]), [[8_000, undefined], [7_000, undefined]]);
  });

  it('goes on down past a fast rate that lost records, reports each step\'s losses, and lets each backlog drain', async () => {
    let lost = 0n;
    const events: string[] = [];
    // 8,000 and 7,000/s are fast enough, but the ring overflows at them (100 and then 3 records); 6,000 loses none.
    const lossByRate = new Map([[8_000, 100n], [7_000, 3n]]);
    const found = await searchSustainable(
      10_000,
      async (rate) => {
        events.push(`load ${rate}`);
        lost += lossByRate.get(rate) ?? 0n;
        return result(rate, 200);
      },
      { soFar: () => lost, recover: async () => void events.push('recover') },
    );
    assert.deepEqual([found.highest, found.sustained], [6_000, true]);
    assert.deepEqual(found.tried.map((step) => [step.rate, step.lost]), [[8_000, 100], [7_000, 3], [6_000, 0]]);
    // Before the first step (the closed-loop probe's backlog), and after each step that lost records.
    assert.deepEqual(events, ['recover', 'load 8000', 'recover', 'load 7000', 'recover', 'load 6000']);
  });

  it('a rate that loses nothing but queues is not sustained either, and needs no pause after it', async () => {
    const events: string[] = [];
    const found = await searchSustainable(
      10_000,
      async (rate) => (events.push(`load ${rate}`), result(rate, rate >= 7_000 ? 2 * SUSTAINED_P90_US : 500)),
      { soFar: () => 0n, recover: async () => void events.push('recover') },
    );
    assert.deepEqual([found.highest, found.sustained], [6_000, true]);
    assert.deepEqual(found.tried.map((step) => step.lost), [0, 0, 0]);
    assert.deepEqual(events, ['recover', 'load 8000', 'load 7000', 'load 6000']);
  });

  it('says so when no rate is sustained: the lowest rate tried is reported, not called sustained', async () => {
    let lost = 0n;
    const found = await searchSustainable(10_000, async (rate) => ((lost += 1n), result(rate, 200)), { soFar: () => lost, recover: async () => undefined });
    assert.deepEqual([found.highest, found.sustained], [2_000, false]);
    assert.equal(found.tried.length, 7);
    assert.ok(found.tried.every((step) => step.lost === 1));
  });
});
