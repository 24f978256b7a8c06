/**
 * bench/overhead-measure.ts's split of a component's cores by thread: per thread id between the two samples, named as
 * at the second. The embedded ClickHouse engine's pool threads rename themselves per job, so a split by name alone
 * counted what a thread had run under its earlier name (a CI run saw an enricher's threads sum to 0.76 cores per
 * 1,000 requests/s where its cgroup used 0.67).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { threadCoresBetween, type Sample } from '../../bench/overhead-measure.js';
import type { ThreadCpu } from '../../src/lab/usage.js';

const sampleOf = (threads: Array<[tid: number, name: string, cpuSeconds: number]>): Sample => ({
  atMs: 0,
  cpuUsec: new Map(),
  threadCpuSeconds: new Map([['enricher', new Map<number, ThreadCpu>(threads.map(([tid, name, cpuSeconds]) => [tid, { name, cpuSeconds }]))]]),
  bpfRunNs: new Map(),
});

describe('threadCoresBetween', () => {
  it("counts each thread's CPU between the samples under its name at the second, a renamed one included", () => {
    const from = sampleOf([[7, 'MergeMutate', 5.0], [8, 'QueryCompPipeEx', 1.0], [9, 'main thread', 2.0]]);
    // Thread 7 ran a query after its merge; thread 10 started between the samples; thread 9 did nothing.
    const to = sampleOf([[7, 'QueryCompPipeEx', 5.2], [8, 'QueryCompPipeEx', 1.1], [9, 'main thread', 2.0], [10, 'BgSchPool', 0.05]]);
    assert.deepEqual(threadCoresBetween(from, to, 2), { enricher: { QueryCompPipeEx: 0.15, BgSchPool: 0.025 } });
  });

  it('leaves out a component none of whose threads ran', () => {
    const idle = sampleOf([[7, 'main thread', 1.0]]);
    assert.deepEqual(threadCoresBetween(idle, idle, 1), {});
  });
});
