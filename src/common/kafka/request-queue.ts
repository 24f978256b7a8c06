/**
 * A fix for kafkajs 2.2.4 (unmaintained, so it cannot come from upstream), applied once when the Kafka client
 * module loads. After a connection's first response, RequestQueue.scheduleCheckPendingRequests re-arms a timer
 * with a negative delay (Node runs it after 1 ms) even when nothing is pending and nothing is throttled, and the
 * timer arms it again: every connection that has answered once wakes the process ~1,000 times a second for good
 * (kafkajs issues #1556, #1704). Measured on the collector at 500 connections/s: ~900 wake-ups a second and
 * ~0.02 cores of its ~0.04. With nothing pending and no throttling there is nothing to check: a request pushed
 * later is sent at once or schedules its own check.
 */
import { createRequire } from 'node:module';

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

const require = createRequire(import.meta.url);
const { prototype } = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue };
const schedule = prototype.scheduleCheckPendingRequests;

prototype.scheduleCheckPendingRequests = function (this: RequestQueue) {
  if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
  schedule.call(this);
};
