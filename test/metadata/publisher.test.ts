/**
 * The metadata publisher against an in-memory sink: a state goes out once per change (never the same state twice,
 * whatever its resourceVersion), deletions are tombstones timed at the deletion, what a previous run published is
 * remembered from the topic, and a watermark is sent alone, only after every change queued before it was
 * acknowledged. Kafka itself: test/metadata/watch.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { pino } from 'pino';
import { loadRegistry } from '../../src/common/avro.js';
import type { KeyedMessage } from '../../src/common/kafka/sink.js';
import { MemorySink, SINK_OK, type Sink, type SinkResult } from '../../src/common/pipeline.js';
import { bindMetadataCodec, metadataEvent, watermarkKey, type MetadataChange, type MetadataEvent } from '../../src/events/metadata.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { MetadataPublisher } from '../../src/metadata/watch/publisher.js';

const codec = bindMetadataCodec(loadRegistry());
const SOURCE = 'kubernetes/unit';

/** A clock that the test moves: each read is the next nanosecond after `now`. */
function testClock(start = 1_000_000_000_000n) {
  let now = start;
  return { clock: () => ++now, set: (ns: bigint) => void (now = ns) };
}

function pod(uid: string, name: string, labels: Record<string, string>, time: bigint, resourceVersion = '1'): MetadataEvent {
  return metadataEvent({ object_key: uid, kind: 'Pod', source: SOURCE, change_time_ns: time, resource_version: resourceVersion, k8s_namespace_name: 'ns', name, labels });
}

function publisher(sink: Sink<KeyedMessage[]>, options: { maxQueued?: number; clock?: () => bigint; watermarkLagMs?: number } = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const p = new MetadataPublisher({
    source: SOURCE,
    codec,
    sink,
    clock: options.clock ?? testClock().clock,
    meter: metrics.getMeter('test'),
    logger,
    maxQueued: options.maxQueued ?? 1000,
    maxBatch: 100,
    ...(options.watermarkLagMs !== undefined && { watermarkLagMs: options.watermarkLagMs }),
  });
  return { publisher: p, lines };
}

/** Every message the sink accepted, decoded: [key, labels or 'tombstone' or 'watermark', timestamp ms]. */
function sent(sink: MemorySink<KeyedMessage[]>): Array<[string, string, string]> {
  return sink.accepted.flat().map((message) => {
    const change = codec.decode(Buffer.from(message.key), message.value, message.timestampMs);
    if (!('event' in change)) return [message.key, 'tombstone', message.timestampMs];
    if (change.event.kind === 'Watermark') return [message.key, 'watermark', message.timestampMs];
    return [message.key, JSON.stringify(change.event.labels), message.timestampMs];
  });
}

/** A sink whose sends wait until the test releases them, answering each with the given result. */
class GatedSink implements Sink<KeyedMessage[]> {
  readonly batches: string[][] = [];
  private release: Array<(result: SinkResult) => void> = [];

  send(batch: KeyedMessage[]): Promise<SinkResult> {
    this.batches.push(batch.map((message) => message.key));
    return new Promise((resolve) => this.release.push(resolve));
  }

  /** Answers the oldest waiting send, then lets the outbox take its next step. */
  async answer(result: SinkResult = SINK_OK): Promise<void> {
    this.release.shift()!(result);
    await new Promise((resolve) => setImmediate(resolve));
  }

  async shutdown(): Promise<void> {}
}

const idle = () => new Promise((resolve) => setImmediate(resolve));

describe('MetadataPublisher', () => {
  it('publishes a state once: a new resourceVersion or change time alone is a duplicate, a label is a change', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const { publisher: p } = publisher(sink);
    p.publish(pod('u1', 'a', { app: 'web' }, 5_000_000n, '10'));
    p.publish(pod('u1', 'a', { app: 'web' }, 6_000_000n, '11'));
    p.publish(pod('u1', 'a', { app: 'web', v: '2' }, 7_000_000n, '12'));
    await p.drain(1000);
    assert.deepEqual(sent(sink), [
      ['u1', '{"app":"web"}', '5'],
      ['u1', '{"app":"web","v":"2"}', '7'],
    ]);
    assert.deepEqual([p.stats.published, p.stats.duplicates], [{ Pod: 2 }, { Pod: 1 }]);
    assert.equal(sink.shutdowns, 1);
  });

  it('tombstones a deletion once, at the time it was observed, and only what it published', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const time = testClock();
    const { publisher: p } = publisher(sink, { clock: time.clock });
    p.publish(pod('u1', 'a', {}, 5_000_000n));
    time.set(8_999_999n);
    p.delete('u1', 'Pod');
    p.delete('u1', 'Pod');
    p.delete('never-published', 'Pod');
    await p.drain(1000);
    assert.deepEqual(sent(sink), [
      ['u1', '{}', '5'],
      ['u1', 'tombstone', '9'],
    ]);
    assert.deepEqual(p.stats.tombstones, { Pod: 1 });
  });

  it('remembers what an earlier run published: equal states stay, changed ones go out, unseen ones of a listed kind get tombstones', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const { publisher: p } = publisher(sink);
    const restored: MetadataChange[] = [
      { key: 'same', event: pod('same', 'same', { a: '1' }, 1n, '5') },
      { key: 'changed', event: pod('changed', 'changed', { a: '1' }, 1n) },
      { key: 'gone', event: pod('gone', 'gone', {}, 1n) },
      { key: 'gone-service', event: { ...pod('gone-service', 'svc', {}, 1n), kind: 'Service' } },
      { key: 'deleted-before', event: pod('deleted-before', 'd', {}, 1n) },
      { key: 'deleted-before', deleted: true, time_ns: 2_000_000n },
      { key: 'other-source', event: { ...pod('other-source', 'o', {}, 1n), source: 'file/unit' } },
      { key: watermarkKey(SOURCE), event: metadataEvent({ object_key: watermarkKey(SOURCE), kind: 'Watermark', source: SOURCE, change_time_ns: 3n }) },
    ];
    for (const change of restored) p.restore(change);
    p.publish(pod('same', 'same', { a: '1' }, 9_000_000n, '77'));
    p.publish(pod('changed', 'changed', { a: '2' }, 9_000_000n));
    assert.equal(p.reconcile('Pod'), 1);
    await p.drain(1000);
    assert.deepEqual(sent(sink).map(([key, state]) => [key, state]), [
      ['changed', '{"a":"2"}'],
      ['gone', 'tombstone'],
    ]);
    assert.deepEqual(p.stats.duplicates, { Pod: 1 });
  });

  it('tombstones the uid a name had when another object now holds the name, just after it was last seen (a deletion the watch missed)', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const time = testClock(1_000_000n);
    const { publisher: p } = publisher(sink, { clock: time.clock });
    p.publish(pod('old', 'web-0', {}, 1_000_000n));
    p.publish(pod('old', 'web-0', {}, 2_000_000n, '2'));
    time.set(3_499_999n);
    p.watermark();
    p.publish(pod('new', 'web-0', {}, 9_000_000n));
    await p.drain(1000);
    // Seen last by the watermark at 3.5 ms (later than the duplicate state seen at 2 ms): gone 1 ns after it.
    assert.deepEqual(sent(sink), [
      ['old', '{}', '1'],
      [watermarkKey(SOURCE), 'watermark', '3'],
      ['old', 'tombstone', '3'],
      ['new', '{}', '9'],
    ]);
  });

  it('times deletions it did not see happen just after the source last saw the object: the last watermark, or the object\'s last state', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const { publisher: p } = publisher(sink, { clock: testClock(50_000_000_000n).clock });
    const w = watermarkKey(SOURCE);
    // Read back: an earlier run's watermark at 7.5 ms, one object last changed before it, one after it.
    p.restore({ key: 'before', event: pod('before', 'before', {}, 5_000_000n) });
    p.restore({ key: 'after', event: pod('after', 'after', {}, 8_200_000n) });
    p.restore({ key: w, event: metadataEvent({ object_key: w, kind: 'Watermark', source: SOURCE, change_time_ns: 7_499_999n }) });
    // Another source's watermark says nothing about this one's.
    p.restore({ key: watermarkKey('file/other'), event: metadataEvent({ object_key: watermarkKey('file/other'), kind: 'Watermark', source: 'file/other', change_time_ns: 40_000_000n }) });
    assert.equal(p.reconcile('Pod'), 2);
    p.deleteUnseen('never-published', 'Pod');
    await p.drain(1000);
    // Not at the time of the reconcile (50 s).
    assert.deepEqual(sent(sink), [
      ['before', 'tombstone', '7'],
      ['after', 'tombstone', '8'],
    ]);
  });

  it('sends a watermark alone, after the changes queued before it were acknowledged; a waiting one is replaced', async () => {
    const sink = new GatedSink();
    const { publisher: p } = publisher(sink);
    p.publish(pod('a', 'a', {}, 1n));
    await idle();
    p.publish(pod('b', 'b', {}, 2n));
    p.watermark();
    p.publish(pod('c', 'c', {}, 3n));
    p.watermark();
    const w = watermarkKey(SOURCE);
    assert.deepEqual(sink.batches, [['a']]);
    await sink.answer();
    assert.deepEqual(sink.batches, [['a'], ['b', 'c']]);
    // A retriable failure: the same batch again, the watermark still behind it.
    await sink.answer({ ok: false, error: 'broker away', retriable: true });
    // After the outbox's back-off (100 ms): nothing else in between.
    await waitFor(async () => sink.batches.length === 3, { timeoutMs: 5000, what: 'the batch sent again' });
    assert.deepEqual(sink.batches, [['a'], ['b', 'c'], ['b', 'c']]);
    await sink.answer();
    assert.deepEqual(sink.batches.at(-1), [w]);
    assert.equal(p.stats.lastWatermarkNs, 0n, 'not acknowledged yet');
    await sink.answer();
    assert.deepEqual(sink.batches, [['a'], ['b', 'c'], ['b', 'c'], [w]]);
    assert.deepEqual([p.stats.watermarks, p.stats.published], [1, { Pod: 3 }]);
    assert.ok(p.stats.lastWatermarkNs > 0n);
  });

  it('claims watermarks the lag behind its clock, and never one that is not later than the last claimed, read back or its own', async () => {
    const sink = new MemorySink<KeyedMessage[]>();
    const time = testClock();
    const { publisher: p } = publisher(sink, { clock: time.clock, watermarkLagMs: 2000 });
    const w = watermarkKey(SOURCE);
    p.restore({ key: w, event: metadataEvent({ object_key: w, kind: 'Watermark', source: SOURCE, change_time_ns: 9_000_000_000n }) });
    time.set(10_999_999_999n);
    p.watermark(); // 9 s: the previous run's
    time.set(11_499_999_999n);
    p.watermark(); // 9.5 s
    p.watermark(); // 9.5 s + 1 ns: later, claimed
    await p.drain(1000);
    assert.deepEqual(sent(sink), [[w, 'watermark', '9500'], [w, 'watermark', '9500']]);
    assert.deepEqual([p.stats.watermarks, p.stats.lastWatermarkNs], [2, 9_500_000_001n]);
  });

  it('isolates a message the broker refuses, sends the others, and publishes that object again at its next change', async () => {
    // Refuses every batch holding the first version of b, as a broker refuses a message that is too large.
    const accepted: string[][] = [];
    const sink: Sink<KeyedMessage[]> = {
      async send(batch) {
        if (batch.some((message) => message.key === 'b' && message.timestampMs === '2')) return { ok: false, error: 'MESSAGE_TOO_LARGE', retriable: false };
        accepted.push(batch.map((message) => message.key));
        return SINK_OK;
      },
      async shutdown() {},
    };
    const { publisher: p, lines } = publisher(sink);
    p.publish(pod('a', 'a', {}, 1_000_000n));
    p.publish(pod('b', 'b', {}, 2_000_000n));
    p.publish(pod('c', 'c', {}, 3_000_000n));
    // b's first version refused and left out, c sent: only then does b change.
    await waitFor(async () => accepted.length === 2, { timeoutMs: 5000, what: 'a and c acknowledged' });
    p.publish(pod('b', 'b', {}, 4_000_000n, '2'));
    await p.drain(1000);
    // a went out alone (the first send starts at once); b and c were refused together, then one at a time.
    assert.deepEqual(accepted, [['a'], ['c'], ['b']]);
    assert.deepEqual(p.stats.published, { Pod: 3 });
    assert.ok(lines.some((line) => line.msg === 'the broker refused a metadata message: MESSAGE_TOO_LARGE' && line.key === 'b'));
  });

  it('keeps each key\'s newest message when the queue overflows, in order, and counts what it skipped', async () => {
    const sink = new GatedSink();
    const { publisher: p, lines } = publisher(sink, { maxQueued: 3 });
    p.publish(pod('a', 'a', { v: '1' }, 1n));
    await idle();
    for (let v = 2; v <= 4; v++) {
      p.publish(pod('a', 'a', { v: String(v) }, BigInt(v)));
      p.publish(pod('b', 'b', { v: String(v) }, BigInt(v)));
    }
    await sink.answer();
    const drained = p.drain(1000);
    await sink.answer();
    await drained;
    // a1 was in flight; a2, b2, a3 and b3 were superseded while the queue was full.
    assert.deepEqual(sink.batches, [['a'], ['a', 'b']]);
    const reported = lines.filter((line) => line.component === 'metadata.publisher').map((line) => (line.drops as Record<string, number>).superseded_while_queued ?? 0);
    assert.equal(reported.reduce((sum, n) => sum + n, 0), 4);
  });

  it('stops within its drain timeout when Kafka does not take the queue, and counts what was left unsent', async () => {
    // One send that never answers (a broker that hangs), then the queue behind it.
    const sink: Sink<KeyedMessage[]> = { send: () => new Promise(() => {}), shutdown: async () => {} };
    const { publisher: p, lines } = publisher(sink);
    for (let i = 0; i < 3; i++) p.publish(pod(`u${i}`, `p${i}`, {}, BigInt(i + 1)));
    p.watermark();
    const started = Date.now();
    await p.drain(200);
    const took = Date.now() - started;
    assert.ok(took >= 190 && took < 1000, `drain took ${took} ms`);
    const report = lines.find((line) => line.component === 'metadata.publisher');
    assert.deepEqual(report?.drops, { unsent_at_stop: 3 });
    assert.deepEqual(p.stats.published, {});
  });
});
