/**
 * Starts an agent in a cgroup of its own: sh writes its pid to cgroup.procs, then execs the command, so the
 * agent is in the cgroup from its first instruction and its pid is the child's (its cgroup's cpu.stat then holds
 * all its CPU time, and tests can list that cgroup as traced).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Cgroup } from '../ebpf/cgroup.js';

export function spawnInCgroup(cgroup: Cgroup, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return spawn('sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', `${cgroup.path}/cgroup.procs`, command, ...args], options);
}
