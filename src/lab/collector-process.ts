/**
 * `sidecarless collector` as a separate process in a cgroup of its own (role-process.ts), as in production, for tests
 * and benchmarks: tests can list that cgroup as traced and prove its own Kafka traffic never becomes a flow, and
 * benchmarks can read its CPU time from that cgroup and its memory from /proc. Its kernel programs outlive it
 * (pinned in collector.pinDirectory): `uninstallCollectorPins` removes them, as `sidecarless collector --uninstall`
 * does.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CollectorStats } from '../collector/collector.js';
import { COLLECTOR_NODE_FLAGS } from '../collector/node-flags.js';
import type { Cgroup } from '../ebpf/cgroup.js';
import { startRoleProcess } from './role-process.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

export interface CollectorProcess {
  pid: number;
  cgroup: Cgroup;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** SIGTERM, then resolves to the final counts of one record kind, as it logs them on an orderly stop. */
  stop(kind?: string): Promise<CollectorStats>;
  /** SIGKILL (a crash, an OOM kill), then removes its cgroup; safe to call after stop() or twice. */
  kill(): Promise<void>;
}

/**
 * Starts `sidecarless collector` in a fresh cgroup; `cgroupsToTrace` may include its own (it must be ignored).
 * `launcher` runs it (a command that execs its arguments, e.g. setpriv with the capabilities a pod grants).
 */
export async function startCollectorProcess(env: Record<string, string>, cgroupsToTrace: (agent: Cgroup) => string[], launcher: readonly string[] = []): Promise<CollectorProcess> {
  const role = await startRoleProcess('collector', 'collector running', (cgroup) => ({ ...env, SIDECARLESS_COLLECTOR_CGROUPS: cgroupsToTrace(cgroup).join(',') }), {
    launcher,
    nodeFlags: COLLECTOR_NODE_FLAGS,
    // Generous: a collector's start loads and attaches its programs, on a machine other tests load too.
    timeoutMs: 120_000,
  });
  const { logs } = role;
  return {
    pid: role.pid,
    cgroup: role.cgroup,
    logs,
    kill: () => role.kill(),
    async stop(kind = 'flows') {
      // Its orderly stop drains to Kafka for up to collector.shutdownTimeoutMs (10 s by default), then exits.
      await role.stop(60_000);
      const final = logs.find((entry) => entry.msg === 'collector final counts');
      if (!final) throw new Error(`collector stopped without its final counts: ${JSON.stringify(logs.slice(-3))}`);
      const stats = (final.stats as Record<string, CollectorStats>)[kind];
      if (!stats) throw new Error(`collector's final counts have no record kind ${kind}: ${JSON.stringify(final.stats)}`);
      return stats;
    },
  };
}

/** Runs `sidecarless collector --uninstall` with the collector's environment; resolves to what it printed. */
export function uninstallCollectorPins(env: Record<string, string>): string {
  const result = spawnSync(process.execPath, [bin, 'collector', '--uninstall'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`collector --uninstall exited ${result.status}: ${result.stderr}`);
  return result.stdout.trim();
}
