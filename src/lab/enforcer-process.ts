/**
 * `sidecarless enforcer` as a separate process (role-process.ts: in a cgroup of its own), as on a node, for tests
 * that kill it and for benchmarks: running once it logged "enforcer running"; its "policy state applied" lines count
 * its applies. Killed, only its pins enforce.
 */
import { startRoleProcess, type RoleProcess } from './role-process.js';

export interface EnforcerProcess extends RoleProcess {
  /** How many states it applied so far. */
  applies(): number;
}

/** `launcher` runs it (a command that execs its arguments, e.g. setpriv with the capabilities a pod grants). */
export async function startEnforcerProcess(env: Record<string, string>, timeoutMs = 60_000, launcher: readonly string[] = []): Promise<EnforcerProcess> {
  const role = await startRoleProcess('enforcer', 'enforcer running', env, { timeoutMs, launcher });
  return { ...role, applies: () => role.logs.filter((entry) => entry.msg === 'policy state applied').length };
}
