/**
 * The gate and hold (src/enricher/metadata-gate.ts) and the sources' watermarks (src/enricher/watermarks.ts) on
 * their own: a scripted metadata progress and a stand-in join, a clock that moves only when the gate waits, and the
 * metrics read from an in-memory reader. The real feed, index, Kafka and ClickHouse: metadata-join.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { pino } from 'pino';
import { MetadataGate, type FlowJoin, type FlowJoiner, type MetadataProgress } from '../../src/enricher/metadata-gate.js';
import { staleAfterMs, Watermarks } from '../../src/enricher/watermarks.js';
import type { FlowEvent } from '../../src/events/flows.js';
import { unnamed, type ConnectionEnds, type EndpointIdentity, type FlowIdentities } from '../../src/metadata/index/identity.js';
import { flowEvent } from '../helpers/flows.js';
import { TestReader } from '../helpers/telemetry.js';

const HOLD_MS = 5000;
const ARRIVED_MS = 1_000_000;

const checkout: EndpointIdentity = { ...unnamed('hit', 'pod'), k8s_namespace_name: 'shop', k8s_pod_name: 'checkout-1', k8s_workload_kind: 'Deployment', k8s_workload_name: 'checkout' };

/** Names the client end of connections from 10.0.0.101 and nothing else: the server end always misses. */
const standIn: FlowJoiner = {
  join: (ends: ConnectionEnds): FlowIdentities => ({ client: ends.client_address === '10.0.0.101' ? checkout : unnamed('miss', 'external'), server: unnamed('miss', 'unknown') }),
};

/** A metadata feed whose state a test scripts: each wait of the gate moves the clock and runs the next step. */
class ScriptedProgress implements MetadataProgress {
  synced = -Infinity;
  through: bigint | undefined;
  requested: number[] = [];
  nowMs = ARRIVED_MS;
  /** Run at each wait, with the time the wait ends; the default lets the time pass. */
  steps: Array<(untilMs: number) => void> = [];

  syncedAt(): number {
    return this.synced;
  }
  confirmedThrough(): bigint | undefined {
    return this.through;
  }
  requestSync(sinceMs: number): void {
    this.requested.push(sinceMs);
  }
  async nextSync(untilMs: number): Promise<void> {
    const step = this.steps.shift();
    if (step) step(untilMs);
    else this.nowMs = untilMs;
  }
}

function setup(progress = new ScriptedProgress()) {
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const gate = new MetadataGate({ progress, index: standIn, holdMs: HOLD_MS, logger, meter: meterProvider.getMeter('test'), now: () => progress.nowMs });
  return { gate, progress, lines, reader };
}

const stillWanted = async () => true;

/** Statuses of both ends of each event through the join. */
function statuses(join: FlowJoin, events: FlowEvent[]): Array<[string, string] | undefined> {
  return events.map((event) => {
    const identities = join.identities(event, event.start_time_ns);
    return identities && [identities.client.status, identities.server.status];
  });
}

/** Connection n starting at `startNs`: the stand-in names its client end when n is 1. */
const eventAt = (n: number, startNs: bigint) => flowEvent(n, { start_time_ns: startNs, client_address: `10.0.0.${100 + n}` });

describe('metadata gate', () => {
  it('opens at once when the feed has caught up since the batch arrived and no source is live: misses stay misses', async () => {
    const { gate, progress, reader } = setup();
    progress.synced = ARRIVED_MS + 1;
    const join = await gate.open(ARRIVED_MS, 5n, stillWanted);
    assert.deepEqual(statuses(join!, [eventAt(1, 1n), eventAt(2, 1n)]), [['hit', 'miss'], ['miss', 'miss']]);
    assert.deepEqual(join!.identities(eventAt(1, 1n), 1n)!.client, checkout);
    assert.deepEqual(progress.requested, []);
    assert.equal(await reader.total('sidecarless.enricher.held_batches'), undefined);
  });

  it('holds a batch until a catch-up that began after it arrived, and then until the watermark passes its bound', async () => {
    const { gate, progress, reader } = setup();
    progress.synced = ARRIVED_MS; // caught up, but in the millisecond the batch arrived: maybe before it
    progress.through = 100n;
    let heldWhileWaiting: number | undefined;
    progress.steps = [
      (until) => {
        progress.nowMs += 20;
        assert.equal(until, ARRIVED_MS + 1000, 'waits at most until the next heartbeat');
        progress.synced = ARRIVED_MS + 5;
      },
      () => {
        progress.nowMs += 700;
        progress.through = 199n; // not yet
      },
      () => {
        progress.nowMs += 300;
        progress.through = 200n;
      },
    ];
    let keepAlives = 0;
    const joinPromise = gate.open(ARRIVED_MS, 200n, async () => {
      keepAlives++;
      heldWhileWaiting = await reader.total('sidecarless.enricher.held_batches');
      return true;
    });
    const join = await joinPromise;
    assert.deepEqual(progress.requested, [ARRIVED_MS], 'asked once for a catch-up after the arrival');
    assert.equal(keepAlives, 3);
    assert.equal(heldWhileWaiting, 1);
    assert.equal(await reader.total('sidecarless.enricher.held_batches'), 0);
    assert.equal(await reader.count('sidecarless.enricher.hold_duration'), 1);
    // Inside the watermark, not expired: a miss is a miss, nothing late.
    assert.deepEqual(statuses(join!, [eventAt(1, 200n), eventAt(2, 150n)]), [['hit', 'miss'], ['miss', 'miss']]);
    // An event beyond the watermark (its producer stamped the message before it): wait for it, do not guess.
    assert.equal(join!.identities(eventAt(2, 201n), 201n), undefined);
    assert.deepEqual(await reader.sum('sidecarless.enricher.late.drops', 'reason'), {});
  });

  it('after the hold, writes the misses beyond the watermark as late, counted by reason, and leaves hits and earlier misses alone', async () => {
    const { gate, progress, reader, lines } = setup();
    progress.synced = ARRIVED_MS + 1;
    progress.through = 100n;
    const join = await gate.open(ARRIVED_MS, 500n, stillWanted);
    assert.equal(progress.nowMs, ARRIVED_MS + HOLD_MS, 'waited the whole hold, in heartbeat-sized steps');
    assert.deepEqual(statuses(join!, [eventAt(1, 300n), eventAt(2, 300n), eventAt(3, 100n), eventAt(4, 500n)]), [
      ['hit', 'late'],
      ['late', 'late'],
      ['miss', 'miss'],
      ['late', 'late'],
    ]);
    assert.deepEqual(join!.identities(eventAt(1, 300n), 300n)!.client, checkout);
    assert.deepEqual(await reader.sum('sidecarless.enricher.late.drops', 'reason'), { metadata_behind: 4 });
    const report = lines.find((line) => line.component === 'enricher.late');
    assert.match(String(report?.msg), /metadata_behind: a metadata source's confirmed watermark had not passed the event's time \(a flow's start, a request's start\) within enricher\.metadataHoldMs/);
  });

  it('after the hold without a catch-up since the batch arrived, writes every miss as late (feed_behind), even with no live source', async () => {
    const { gate, progress, reader } = setup();
    progress.synced = ARRIVED_MS - 1;
    const join = await gate.open(ARRIVED_MS, 1n, stillWanted);
    assert.deepEqual(progress.requested, [ARRIVED_MS, ARRIVED_MS, ARRIVED_MS, ARRIVED_MS, ARRIVED_MS]);
    assert.deepEqual(statuses(join!, [eventAt(1, 1n), eventAt(2, 1n)]), [['hit', 'late'], ['late', 'late']]);
    assert.deepEqual(await reader.sum('sidecarless.enricher.late.drops', 'reason'), { feed_behind: 2 });
  });

  it('gives a held batch up when the consumer no longer wants it', async () => {
    const { gate, progress, reader } = setup();
    progress.synced = ARRIVED_MS - 1;
    assert.equal(await gate.open(ARRIVED_MS, 1n, async () => false), undefined);
    assert.equal(progress.nowMs, ARRIVED_MS + 1000);
    assert.equal(await reader.total('sidecarless.enricher.held_batches'), 0);
  });
});

describe('metadata watermarks', () => {
  const ms = (n: number) => BigInt(n) * 1_000_000n;

  it('takes a source as stopped only after a silence far longer than a hold, a relist or a watermark period', () => {
    assert.equal(staleAfterMs(1000), 120_000);
    assert.equal(staleAfterMs(5000), 120_000);
    assert.equal(staleAfterMs(60_000), 600_000);
  });

  it('confirms what was seen before a catch-up, takes the lowest live source, and ignores a silent one, saying so once', () => {
    const lines: Array<Record<string, unknown>> = [];
    const watermarks = new Watermarks(5000, pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }));
    assert.equal(watermarks.confirmedThrough(10_000), undefined, 'no source: nothing to wait for');
    assert.equal(watermarks.see('kubernetes/c1', ms(9000), 9000), true);
    assert.equal(watermarks.see('collector/n1', ms(8000), 9500), true);
    assert.equal(watermarks.confirmedThrough(10_000), -1n, 'live sources with nothing confirmed yet');
    const seen = watermarks.snapshot();
    assert.equal(watermarks.see('kubernetes/c1', ms(9900), 9900), true, 'seen after the snapshot');
    assert.equal(watermarks.see('kubernetes/c1', ms(9900), 9950), false, 'the same watermark again moves nothing');
    watermarks.confirm(seen);
    assert.equal(watermarks.confirmedThrough(10_000), ms(8000), 'the lowest live source');
    watermarks.confirm(watermarks.snapshot());
    assert.equal(watermarks.confirmedThrough(10_000), ms(8000));
    // collector/n1 last published at 9500: silent for more than 5 s at 14,501.
    assert.equal(watermarks.confirmedThrough(14_501), ms(9900));
    assert.equal(watermarks.confirmedThrough(14_600), ms(9900));
    const ignored = lines.filter((line) => line.source === 'collector/n1');
    assert.equal(ignored.length, 1);
    assert.match(String(ignored[0]!.msg), /^metadata source collector\/n1 has published no watermark for 5\.001 s \(a source silent for 5 s is taken as stopped\)/);
    // It publishes again (an old watermark in a new message still says it is alive): waited for again.
    watermarks.see('collector/n1', ms(8000), 14_700);
    assert.equal(watermarks.confirmedThrough(14_800), ms(8000));
    assert.match(String(lines.at(-1)!.msg), /^metadata source collector\/n1 publishes watermarks again/);
    // Both silent: nothing to wait for.
    assert.equal(watermarks.confirmedThrough(30_000), undefined);
  });
});
