/** The kafkajs RequestQueue fixes (src/common/kafka/request-queue.ts): no timer when there is nothing to check. */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import '../../src/common/kafka/client.js';
import { PATCHED_KAFKAJS_VERSION } from '../../src/common/kafka/request-queue.js';

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  inflight: Map<number, object>;
  scheduleCheckPendingRequests(): void;
  scheduleRequestTimeoutCheck(): void;
  destroy(): void;
}
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (options: object) => Queue;

function queue(): Queue {
  return new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, enforceRequestTimeout: true, clientId: 't', broker: 'b', logger: { namespace: () => pino({ level: 'silent' }) } });
}

describe('kafkajs request queue', () => {
  it('is the kafkajs the fixes were written for (another version is left unpatched: review the fixes, then bump)', () => {
    assert.equal((createRequire(import.meta.url)('kafkajs/package.json') as { version: string }).version, PATCHED_KAFKAJS_VERSION);
  });

  it('arms no timer with nothing pending and no throttling', () => {
    const q = queue();
    q.scheduleCheckPendingRequests();
    assert.equal(q.throttleCheckTimeoutId, null);
  });

  it('still checks pending requests, and the end of a throttle', () => {
    for (const setUp of [(q: Queue) => q.pending.push({}), (q: Queue) => (q.throttledUntil = Date.now() + 1000)]) {
      const q = queue();
      setUp(q);
      q.scheduleCheckPendingRequests();
      assert.notEqual(q.throttleCheckTimeoutId, null);
      q.destroy();
    }
  });

  it('still times out an in-flight request, within a second of its timeout', async () => {
    const q = queue();
    let timedOut = false;
    q.inflight.set(1, { sentAt: Date.now() - 200, requestTimeout: 100, timeoutRequest: () => (timedOut = true) });
    q.scheduleRequestTimeoutCheck();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    q.destroy();
    assert.equal(timedOut, true);
  });
});
