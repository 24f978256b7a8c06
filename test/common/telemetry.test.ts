import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ConfigError } from '../../src/common/errors.js';
import { createDropCounter, startTelemetry } from '../../src/common/telemetry.js';
import { freePort, TestReader } from '../helpers/telemetry.js';

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe('telemetry', () => {
  it('serves a counter on /metrics in Prometheus text', async (t) => {
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: await freePort() });
    t.after(() => telemetry.shutdown());
    const counter = telemetry.meter('test').createCounter('sidecarless.test.events', { description: 'Events seen by the test' });
    counter.add(3, { kind: 'probe' });
    counter.add(1, { kind: 'probe' });

    const response = await fetch(`http://127.0.0.1:${telemetry.port}/metrics`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.ok(
      text.includes(
        '# HELP sidecarless_test_events_total Events seen by the test\n' +
          '# TYPE sidecarless_test_events_total counter\n' +
          'sidecarless_test_events_total{kind="probe"} 4\n',
      ),
      text,
    );
  });

  it('answers /healthz with 200 while every check passes and 503 when one fails', async (t) => {
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: await freePort() });
    t.after(() => telemetry.shutdown());
    let connected = true;
    telemetry.addHealthCheck('kafka', () => (connected ? { ok: true } : { ok: false, detail: 'broker unreachable' }));
    telemetry.addHealthCheck('ring', () => ({ ok: true }));
    const url = `http://127.0.0.1:${telemetry.port}/healthz`;

    const healthy = await fetch(url);
    assert.equal(healthy.status, 200);
    assert.deepEqual(await healthy.json(), { ok: true, checks: { kafka: { ok: true }, ring: { ok: true } } });

    connected = false;
    const sick = await fetch(url);
    assert.equal(sick.status, 503);
    assert.deepEqual(await sick.json(), { ok: false, checks: { kafka: { ok: false, detail: 'broker unreachable' }, ring: { ok: true } } });

    telemetry.addHealthCheck('ring', () => {
      throw new Error('ring detached');
    });
    connected = true;
    assert.deepEqual(telemetry.health().checks.ring, { ok: false, detail: 'ring detached' });
  });

  it('shuts down once however often it is called, and frees the port', async () => {
    const port = await freePort();
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: port });
    await fetch(`http://127.0.0.1:${port}/metrics`); // leaves a keep-alive connection open
    const first = telemetry.shutdown();
    assert.equal(telemetry.shutdown(), first);
    await first;
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });

  it('serves nothing on port 0 while meters still reach other readers', async () => {
    const reader = new TestReader();
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0, readers: [reader] });
    assert.equal(telemetry.port, undefined);
    telemetry.meter('test').createCounter('sidecarless.test.events').add(2, { kind: 'x' });
    assert.deepEqual(await reader.sum('sidecarless.test.events', 'kind'), { x: 2 });
    await telemetry.shutdown();
  });

  it('fails fast, naming telemetry.metricsPort, when the port is taken', async (t) => {
    const first = await startTelemetry({ host: '127.0.0.1', metricsPort: await freePort() });
    t.after(() => first.shutdown());
    await assert.rejects(startTelemetry({ host: '127.0.0.1', metricsPort: first.port! }), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.context.configKey, 'telemetry.metricsPort');
      assert.match(error.message, /EADDRINUSE; change telemetry.metricsPort/);
      return true;
    });
  });
});

describe('createDropCounter', () => {
  it('counts every drop by reason and logs a summary at most once per interval', async () => {
    const reader = new TestReader();
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0, readers: [reader] });
    const { logger, lines } = capturingLogger();
    let clock = 1_000_000;
    const drops = createDropCounter(telemetry.meter('test'), logger, {
      name: 'collector.queue',
      remedies: { queue_full: 'raise collector.queueEvents', encode_error: 'a bug: the event is logged' },
      intervalMs: 10_000,
      now: () => clock,
    });

    drops.add('queue_full'); // the first drop is reported at once
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, 'collector.queue dropped 1 (queue_full=1) since the last report; queue_full: raise collector.queueEvents');
    assert.deepEqual(lines[0]!.drops, { queue_full: 1 });
    assert.deepEqual(lines[0]!.remedies, { queue_full: 'raise collector.queueEvents' });
    assert.equal(lines[0]!.level, 40);

    clock += 5_000;
    drops.add('queue_full', 10);
    clock += 4_999;
    drops.add('encode_error');
    assert.equal(lines.length, 1, 'nothing more within the interval');

    clock += 1;
    drops.add('queue_full', 2);
    assert.equal(lines.length, 2);
    assert.equal(
      lines[1]!.msg,
      'collector.queue dropped 13 (queue_full=12, encode_error=1) since the last report; queue_full: raise collector.queueEvents; encode_error: a bug: the event is logged',
    );

    clock += 1;
    drops.add('encode_error');
    drops.flush();
    drops.flush();
    assert.equal(lines.length, 3, 'flush reports what is pending, once');
    assert.deepEqual(lines[2]!.drops, { encode_error: 1 });

    clock += 10_000;
    drops.add('mystery');
    assert.match(String(lines[3]!.msg), /mystery: no remedy is known for this reason: report it as a bug$/);

    assert.deepEqual(await reader.sum('sidecarless.collector.queue.drops', 'reason'), { queue_full: 13, encode_error: 2, mystery: 1 });
    await telemetry.shutdown();
  });
});
