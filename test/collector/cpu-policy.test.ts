/**
 * The collector's CPU policy (src/collector/cpu-policy.ts) on this kernel's real threads: every thread yields
 * (SCHED_IDLE), returns to the normal policy while a ring is more than half full, yields again once the rings
 * stayed calm; at collector.cpuPolicy normal nothing changes; a real ring filling while nothing drains it (a
 * collector that never gets the CPU) is seen by the watcher thread, which raises every other thread; and a
 * collector process runs with every thread idle but its watcher's.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../src/common/logger.js';
import { CpuPolicy } from '../../src/collector/cpu-policy.js';
import { loadFlowProbe } from '../../src/collector/flows/kernel.js';
import { libcCalls } from '../../src/ebpf/native.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { createLab } from '../../src/lab/pods.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { runTcpClient, startTcpServer } from '../../src/lab/traffic.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { requireStackService } from '../helpers/stack.js';

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const logger = createLogger({ level: 'silent' });

/** The scheduling policy of each thread of a process (field 41 of /proc/PID/task/TID/stat), by thread id. */
function threadPolicies(pid: number | 'self'): Map<number, number> {
  return new Map(
    readdirSync(`/proc/${pid}/task`).flatMap((task): Array<[number, number]> => {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
        // Fields after the command name, which may hold spaces and ends at the last ')': state is field 3.
        return [[Number(task), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3])]];
      } catch {
        return []; // a thread that ended meanwhile
      }
    }),
  );
}

/** Whether every thread of the process but the one left out runs under `policy`. */
const all = (pid: number | 'self', policy: number, leftOut?: number) => async () => {
  const policies = [...threadPolicies(pid)].filter(([thread]) => thread !== leftOut);
  return policies.length > 0 && policies.every(([, each]) => each === policy);
};

/** This test process must not stay idle whatever happens: every thread back to the normal policy. */
function restoreThisProcess(): void {
  for (const task of readdirSync('/proc/self/task')) libcCalls.schedSetScheduler(Number(task), SCHED_OTHER, new Int32Array(1));
}

describe('collector CPU policy', () => {
  after(restoreThisProcess);

  it('yields every thread, leaves idle while a ring is more than half full and yields again once it is calm', async () => {
    let fill = 0;
    const policy = new CpuPolicy('idle', [{ fill: () => 0.05 }, { fill: () => fill }], logger);
    // What the read loops do: check before each drain (an idle ring's loop wakes once a second; here more often).
    const drains = setInterval(() => policy.check(), 50);
    try {
      policy.start();
      assert.deepEqual([...new Set(threadPolicies('self').values())], [SCHED_IDLE]);
      assert.deepEqual(policy.stats, { raised: 0, normal: false });
      fill = 0.6;
      await waitFor(all('self', SCHED_OTHER), { timeoutMs: 5_000, what: 'every thread at the normal policy', intervalMs: 20 });
      assert.deepEqual(policy.stats, { raised: 1, normal: true });
      fill = 0;
      const calmFrom = performance.now();
      await waitFor(all('self', SCHED_IDLE), { timeoutMs: 5_000, what: 'every thread idle again', intervalMs: 20 });
      assert.ok(performance.now() - calmFrom >= 1_900, 'yields only after the rings stayed calm for 2 s');
      assert.deepEqual(policy.stats, { raised: 1, normal: false });
    } finally {
      clearInterval(drains);
      restoreThisProcess();
    }
  });

  it('at cpuPolicy normal changes nothing, however full or calm the rings', async () => {
    let fill = 0.9;
    const policy = new CpuPolicy('normal', [{ fill: () => fill }], logger);
    policy.start();
    policy.check();
    fill = 0;
    // Longer than the calm that makes the idle mode yield.
    const calmUntil = performance.now() + 2_200;
    while (performance.now() < calmUntil) {
      policy.check();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual([...new Set(threadPolicies('self').values())], [SCHED_OTHER]);
    assert.deepEqual(policy.stats, { raised: 0, normal: true });
  });

  it('the watcher thread raises a collector that never gets to drain while a real ring fills', async () => {
    const lab = createLab({ name: 'cpu-policy-watch', pods: ['a', 'b'] });
    const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-cpu-policy-${process.pid}-${randomBytes(3).toString('hex')}`);
    pins.prepare();
    let policy: CpuPolicy | undefined;
    let probe: ReturnType<typeof loadFlowProbe> | undefined;
    try {
      const [a, b] = [lab.pod('a'), lab.pod('b')];
      // A small ring: two final records per connection fill half of it within a few dozen connections.
      probe = loadFlowProbe({ cgroups: [a.cgroup.path, b.cgroup.path], ringBytes: 16_384, maxConnections: 4096, activeTimeoutMs: 60_000 }, pins);
      policy = new CpuPolicy('idle', [probe], logger);
      policy.start();
      await waitFor(async () => policy!.watcherThread !== undefined && (await all('self', SCHED_IDLE, policy!.watcherThread)()), {
        timeoutMs: 5_000,
        what: 'every thread idle but the watcher',
      });
      assert.equal(threadPolicies('self').get(policy.watcherThread!), SCHED_OTHER, 'the watcher stays at the normal policy');
      assert.deepEqual(policy.stats, { raised: 0, normal: false });
      assert.ok(probe.fill() < 0.5, `the ring starts below half full (${probe.fill()})`);

      // Nothing drains the ring and nothing calls check(): only the watcher can see it fill.
      const server = await startTcpServer(b, { port: 7531, expectBytes: 10, replyBytes: 10 });
      const client = await runTcpClient(a, { host: b.ip, port: 7531, durationMs: 1_000, concurrency: 2, sendBytes: 10, expectBytes: 10 });
      await server.stop();
      assert.ok(probe.fill() >= 0.5, `${client.connections} connections filled the ring at least half (${probe.fill()})`);
      await waitFor(async () => policy!.stats.raised === 1 && (await all('self', SCHED_OTHER)()), { timeoutMs: 5_000, what: 'every thread raised by the watcher, once', intervalMs: 20 });
      assert.deepEqual(policy.stats, { raised: 1, normal: true });
    } finally {
      await policy?.stop();
      restoreThisProcess();
      probe?.installation.detach();
      probe?.close();
      pins.remove();
      lab.destroy();
    }
  });

  it('a collector process runs with every thread idle but its ring watcher, and reports it on stop', async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    const { config, env } = testConfig({});
    let collector: CollectorProcess | undefined;
    try {
      collector = await startCollectorProcess(env, (agent) => [agent.path]);
      const watcherLog = () => collector!.logs.find((entry) => String(entry.msg).startsWith('ring watcher running'));
      await waitFor(async () => watcherLog() !== undefined, { timeoutMs: 10_000, what: "the collector's ring watcher" });
      const watcher = Number(watcherLog()!.thread);
      await waitFor(all(collector.pid, SCHED_IDLE, watcher), { timeoutMs: 5_000, what: 'every collector thread idle but the watcher' });
      assert.equal(threadPolicies(collector.pid).get(watcher), SCHED_OTHER, 'the watcher at the normal policy');
      const stats = await collector.stop();
      assert.equal(stats.messagesProduced, 0);
      const final = collector.logs.find((entry) => entry.msg === 'collector final counts')!;
      assert.deepEqual(final.cpuPolicy, { raised: 0, normal: false });
    } finally {
      await collector?.kill();
      uninstallCollectorPins(env);
      await dropTestData(config, undefined);
    }
  });
});
