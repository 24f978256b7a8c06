/**
 * Start-up errors of `sidecarless collector`, as an operator meets them: the process exits 1 with one fatal line
 * naming the setting or capability, and it does so before it ever talks to Kafka (the brokers given here do not
 * exist, so an error about them, or a hang, would fail the test). A failed first start leaves no pins behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { cgroup2Root } from '../../src/ebpf/preflight.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));
const DEADLINE_MS = 20_000;
const PIN_DIRECTORY = `/sys/fs/bpf/sidecarless-test-startup-${process.pid}`;

interface Exit {
  code: number | null;
  fatal: Record<string, unknown> | undefined;
}

/** Runs the collector (optionally behind a command such as setpriv) and resolves when it exits, killing it at the deadline. */
function runCollector(env: Record<string, string>, wrapper: string[] = []): Promise<Exit> {
  const command = [...wrapper, process.execPath, bin, 'collector'];
  const child = spawn(command[0]!, command.slice(1), {
    env: {
      ...process.env,
      SIDECARLESS_KAFKA_BROKERS: '127.0.0.1:1',
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
      SIDECARLESS_COLLECTOR_PIN_DIRECTORY: PIN_DIRECTORY,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ msg: line });
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, fatal: lines.find((line) => line.level === 60) });
    }),
  );
}

function assertFatal(exit: Exit, pattern: RegExp, configKey?: string): void {
  assert.equal(exit.code, 1, `exit code (null: still running at the deadline); fatal line: ${JSON.stringify(exit.fatal)}`);
  assert.equal(existsSync(PIN_DIRECTORY), false, 'a failed first start leaves no pins');
  assert.ok(exit.fatal, 'one fatal log line');
  assert.match(String(exit.fatal.msg), pattern);
  assert.doesNotMatch(String(exit.fatal.msg), /kafka|broker|ECONNREFUSED/i, 'the collector stopped before Kafka');
  if (configKey !== undefined) assert.equal((exit.fatal.context as { configKey?: string } | undefined)?.configKey, configKey);
}

// A start that wrongly succeeded would leave its programs pinned: removed whatever the tests found.
after(() => rmSync(PIN_DIRECTORY, { recursive: true, force: true }));

describe('collector start-up errors', () => {
  it('names collector.cgroups when a cgroup does not exist', async () => {
    const missing = `sidecarless-missing-${process.pid}`;
    const exit = await runCollector({ SIDECARLESS_COLLECTOR_CGROUPS: missing });
    assertFatal(exit, new RegExp(`config collector\\.cgroups: no cgroup at ${join(cgroup2Root(), missing)}`), 'collector.cgroups');
  });

  it('refuses an absolute path outside the cgroup v2 mount instead of moving it below the mount', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'sidecarless-not-a-cgroup-'));
    try {
      const exit = await runCollector({ SIDECARLESS_COLLECTOR_CGROUPS: outside });
      assertFatal(exit, new RegExp(`config collector\\.cgroups: ${outside} is not below the cgroup v2 mount ${cgroup2Root()}`), 'collector.cgroups');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('refuses an empty cgroup list: nothing would be traced', async () => {
    const exit = await runCollector({ SIDECARLESS_COLLECTOR_CGROUPS: '' });
    assertFatal(exit, /config collector\.cgroups: is empty, so nothing would be traced/, 'collector.cgroups');
  });

  it('names the missing capabilities before connecting to Kafka', async () => {
    // Root without any capability: the bounding set is emptied before exec, so the collector's effective set is empty.
    const exit = await runCollector({ SIDECARLESS_COLLECTOR_CGROUPS: cgroup2Root() }, ['setpriv', '--bounding-set=-all', '--inh-caps=-all', '--']);
    assertFatal(exit, /capability CAP_BPF.*capability CAP_PERFMON/);
  });

  it('refuses a pin directory another collector holds: two would read one ring', async () => {
    const unlock = new PinDirectory(PIN_DIRECTORY).lock()!;
    try {
      const exit = await runCollector({ SIDECARLESS_COLLECTOR_CGROUPS: cgroup2Root() });
      assert.equal(exit.code, 1);
      assert.match(String(exit.fatal?.msg), new RegExp(`${PIN_DIRECTORY} is in use, another collector runs on it: stop that one first, or give this one its own collector.pinDirectory`));
    } finally {
      unlock();
      rmSync(PIN_DIRECTORY, { recursive: true, force: true });
    }
  });
});
