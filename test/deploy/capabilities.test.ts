/**
 * The collector and the enforcer run on this kernel with exactly the capabilities their DaemonSets grant (read from
 * the built production overlay), as uid 0 with nothing else in the bounding set, as in their pods: the collector
 * loads and attaches flows and HTTP capture (raw tracepoints and sock_ops on a cgroup) and pins
 * them, and its CPU policy may leave SCHED_IDLE (not without CAP_SYS_NICE); the enforcer loads its cgroup programs
 * and maps; both stop in order. Against the stack's Kafka, with this run's topics, pins and cgroups, all removed
 * afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Cgroup } from '../../src/ebpf/cgroup.js';
import { spawnInCgroup } from '../../src/lab/cgroup-spawn.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { startEnforcerProcess, type EnforcerProcess } from '../../src/lab/enforcer-process.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { deployDir, kustomize, parseManifests, workloads } from './kubectl.js';

/** Connects to a server of its own on loopback, then exits 0 once the connection closed. */
const ONE_CONNECTION = `const net = require('node:net');
const server = net.createServer((socket) => socket.end()).listen(0, '127.0.0.1', () => {
  net.connect(server.address().port, '127.0.0.1').on('close', () => server.close(() => process.exit(0))).resume();
});`;

/**
 * What src/collector/cpu-policy.ts asks of the kernel, in a process `launcher` starts with RLIMIT_NICE 0 (as a
 * container has it; a higher limit would allow it without the capability): this thread to SCHED_IDLE, then back to
 * SCHED_OTHER; each call's result and the errno of the second.
 */
function leaveIdle(launcher: readonly string[]): { idle: number; normal: number; errno: number } {
  const script = `const { libcCalls, lastErrno } = await import(${JSON.stringify(new URL('../../src/ebpf/native.js', import.meta.url).href)});
    const idle = libcCalls.schedSetScheduler(0, 5, new Int32Array(1));
    const normal = libcCalls.schedSetScheduler(0, 0, new Int32Array(1));
    console.log(JSON.stringify({ idle, normal, errno: normal === 0 ? 0 : lastErrno() }));`;
  const [command, ...args] = ['prlimit', '--nice=0:0', '--', ...launcher, process.execPath, '--input-type=module', '-e', script];
  const result = spawnSync(command!, args, { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as { idle: number; normal: number; errno: number };
}

/** setpriv: only `capabilities` stay in the bounding set (so in the effective set of uid 0), none inheritable. */
function withOnly(capabilities: readonly string[]): string[] {
  return ['setpriv', `--bounding-set=-all,${capabilities.map((c) => `+${c.toLowerCase()}`).join(',')}`, '--inh-caps=-all', '--'];
}

describe('the DaemonSets\' capabilities are enough on the real kernel', () => {
  const granted = new Map<string, readonly string[]>();
  const { config, env } = testConfig({ SIDECARLESS_HTTP_ENABLED: 'true' });
  const collectorPins = env.SIDECARLESS_COLLECTOR_PIN_DIRECTORY!;
  const enforcerPins = `/sys/fs/bpf/sidecarless-test-enforcer-${randomBytes(4).toString('hex')}`;
  const traced = Cgroup.create(`sidecarless-test-deploy-${randomBytes(4).toString('hex')}`);
  let collector: CollectorProcess | undefined;
  let enforcer: EnforcerProcess | undefined;

  before(async () => {
    for (const { name, pod } of workloads(parseManifests(await kustomize(join(deployDir, 'overlays', 'production'))))) {
      granted.set(name, pod.containers[0]!.securityContext?.capabilities?.add ?? []);
    }
  });

  after(() =>
    cleanUpAll([
      ['collector', () => collector?.kill()],
      ['enforcer', () => enforcer?.kill()],
      ['collector pins', () => existsSync(collectorPins) && uninstallCollectorPins(env)],
      ['enforcer pins', () => rmSync(enforcerPins, { recursive: true, force: true })],
      ['traced cgroup', () => traced.remove()],
      ['topics', () => dropTestData(config, undefined)],
    ]),
  );

  it('the collector loads, attaches and pins flows and HTTP capture with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN only', async () => {
    const capabilities = granted.get('sidecarless-collector')!;
    assert.deepEqual(capabilities, ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_NICE']);
    collector = await startCollectorProcess(env, () => [traced.path], withOnly(capabilities));
    const kinds = ['flows', 'http'].filter((kind) => existsSync(join(collectorPins, kind)));
    assert.deepEqual(kinds, ['flows', 'http'], 'both kinds pinned');
    // One TCP connection in the traced cgroup: a flow record from each end, through the ring it reads.
    const connection = spawnInCgroup(traced, process.execPath, ['-e', ONE_CONNECTION], { stdio: 'ignore' });
    const [code] = (await once(connection, 'exit')) as [number | null];
    assert.equal(code, 0);
    // Both ends' final records are in the ring once the sockets closed; the collector drains it as it stops.
    const stats = await collector.stop('flows');
    assert.equal(stats.eventsProduced, 2);
    assert.deepEqual(Object.entries(stats.drops).filter(([, count]) => count > 0), []);
  });

  it('the collector\'s CPU policy may leave SCHED_IDLE with its capabilities, and not without CAP_SYS_NICE', () => {
    const capabilities = granted.get('sidecarless-collector')!;
    assert.deepEqual(leaveIdle(withOnly(capabilities)), { idle: 0, normal: 0, errno: 0 });
    assert.deepEqual(leaveIdle(withOnly(capabilities.filter((c) => c !== 'SYS_NICE'))), { idle: 0, normal: -1, errno: 1 }, 'EPERM');
  });

  it('the enforcer loads, attaches and pins its programs with CAP_BPF and CAP_NET_ADMIN only', async () => {
    const capabilities = granted.get('sidecarless-enforcer')!;
    assert.deepEqual(capabilities, ['BPF', 'NET_ADMIN']);
    const enforcerEnv = { ...env, SIDECARLESS_ENFORCER_CGROUPS: traced.path, SIDECARLESS_ENFORCER_PIN_DIRECTORY: enforcerPins };
    enforcer = await startEnforcerProcess(enforcerEnv, 60_000, withOnly(capabilities));
    assert.equal(enforcer.applies(), 1, 'the replayed state applied once');
    assert.ok(existsSync(join(enforcerPins, 'policy')), 'programs and maps pinned');
    await enforcer.stop();
    assert.equal(enforcer.child.exitCode, 0, JSON.stringify(enforcer.logs.slice(-3)));
  });
});
