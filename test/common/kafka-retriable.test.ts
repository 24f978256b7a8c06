/** whileRetriable: how a role's admin calls wait out a Kafka cluster that is still starting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SidecarlessError } from '../../src/common/errors.js';
import { whileRetriable } from '../../src/common/kafka/retriable.js';

/** A call that fails with `errors` in turn, then answers `value`; counts its calls. */
function failingFirst<T>(errors: Error[], value: T): { call: () => Promise<T>; calls: () => number } {
  let calls = 0;
  return {
    call: async () => {
      const error = errors[calls++];
      if (error !== undefined) throw error;
      return value;
    },
    calls: () => calls,
  };
}

const notHosted = () => new SidecarlessError('This server does not host this topic-partition', { retriable: true });

describe('whileRetriable', () => {
  it('asks again while the error is retriable, reporting each, and returns the answer', async () => {
    const reported: unknown[] = [];
    const errors = [notHosted(), notHosted(), notHosted()];
    const call = failingFirst(errors, 'partitions: 2');
    assert.equal(await whileRetriable(call.call, 10_000, (error) => reported.push(error)), 'partitions: 2');
    assert.equal(call.calls(), 4);
    assert.deepEqual(reported, errors);
  });

  it('throws a non-retriable error at once', async () => {
    const refused = new SidecarlessError('topic exists with cleanup.policy=delete but needs compact');
    const call = failingFirst([refused], 'never');
    await assert.rejects(whileRetriable(call.call, 10_000), (error) => error === refused);
    assert.equal(call.calls(), 1);
  });

  it('throws the last retriable error once the deadline has passed', async () => {
    const errors = Array.from({ length: 1_000 }, notHosted);
    const call = failingFirst(errors, 'never');
    const started = Date.now();
    await assert.rejects(whileRetriable(call.call, 300), (error) => error === errors[call.calls() - 1]);
    assert.ok(Date.now() - started >= 300, 'gave up before the deadline');
    assert.ok(call.calls() >= 2 && call.calls() <= 10, `${call.calls()} calls in 300 ms at one per 100 ms`);
  });
});
