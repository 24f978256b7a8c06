/**
 * A local "cluster lab": pods on this node for the demo, integration tests and benchmarks. A pod is what the
 * kernel sees of a Kubernetes pod: a network namespace with eth0 (one end of a veth pair whose other end is on a
 * per-lab bridge) holding an address of the lab's /24, a default route via the bridge, and a cgroup v2 directory
 * that every process started in the pod joins before it runs.
 *
 * Everything a lab creates is named after its id (names.ts) and recorded (registry.ts) before it is created, so
 * destroy() — also run on exit, SIGINT and SIGTERM — and destroyAll() after a crashed run find it all
 * (teardown.ts). Creating and destroying are synchronous so that they also work in an exit handler.
 */
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { SidecarlessError } from '../common/errors.js';
import { Cgroup } from '../ebpf/cgroup.js';
import { addLoss, type PacketLoss } from './loss.js';
import { labNames, newLabId } from './names.js';
import { ownerAlive, records, thisProcess } from './registry.js';
import { run } from './run.js';
import { claimSubnet, maxPods, type Subnet } from './subnet.js';
import { labIdsOnHost, teardown } from './teardown.js';

export interface LabOptions {
  /** Free text naming the lab in records and picking its default subnet. */
  name: string;
  /** A count (pods named pod0, pod1, ...) or the pod names: lowercase letters, digits and '-'. */
  pods: number | readonly string[];
  /** An IPv4 /24 such as '10.213.7.0/24'; default: a free 10.213.<n>.0/24. */
  subnet?: string;
}

export class Pod {
  readonly ip: string;
  readonly netns: string;
  readonly hostVeth: string;
  readonly cgroup: Cgroup;

  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly index: number,
  ) {
    this.ip = lab.subnet.host(index);
    this.netns = labNames.netns(lab.id, name);
    this.hostVeth = labNames.hostVeth(lab.id, index);
    this.cgroup = Cgroup.create(join(labNames.cgroupDir(lab.id), name));
  }

  /**
   * sh joins the pod's cgroup, then execs `ip netns exec`, which execs the command: one pid throughout, in the
   * cgroup before the command runs. The cgroup comes first because `ip netns exec` remounts /sys for the
   * namespace, which hides the cgroup2 mount below /sys/fs/cgroup.
   */
  private argv(command: string, args: readonly string[]): string[] {
    const procs = join(this.cgroup.path, 'cgroup.procs');
    return ['-c', 'echo $$ > "$1" && shift && exec ip netns exec "$@"', 'sh', procs, this.netns, command, ...args];
  }

  /** Starts a command inside the pod's netns and cgroup; destroy() kills it if it still runs. */
  spawn(command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('sh', this.argv(command, args), options);
    this.lab.track(child);
    return child;
  }

  /** Runs a command inside the pod's netns and cgroup to completion; returns its stdout, throws on failure. */
  exec(command: string, args: readonly string[] = [], options: { input?: string; timeoutMs?: number } = {}): string {
    return execFileSync('sh', this.argv(command, args), {
      encoding: 'utf8',
      input: options.input,
      timeout: options.timeoutMs ?? 30_000,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /**
   * Drops `percent` of the TCP packets this pod sends from `sport` (see loss.ts for where and why). Calling it
   * again for the same port replaces the rule; destroy() removes it too.
   */
  dropOutgoing(options: { sport: number; percent: number }): PacketLoss {
    return addLoss(labNames.lossTable(this.lab.id, this.index, options.sport), this.hostVeth, options.sport, options.percent);
  }

  /**
   * The pod netns's SNMP counters under nstat's names ('TcpRetransSegs', 'TcpExtTCPLostRetransmit', ...):
   * /proc/net/{snmp,netstat} show the namespace of the process reading them.
   */
  netStats(): Record<string, number> {
    const lines = this.exec('cat', ['/proc/net/snmp', '/proc/net/netstat']).split('\n');
    const stats: Record<string, number> = {};
    // Each group is a header line of field names followed by a line of values, both prefixed "Group:".
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const [group = '', ...fields] = lines[i]!.split(' ');
      const values = lines[i + 1]!.split(' ').slice(1);
      fields.forEach((field, j) => (stats[group.slice(0, -1) + field] = Number(values[j])));
    }
    return stats;
  }
}

/** Labs of this process not yet destroyed, for the exit and signal handlers. */
const live = new Set<Lab>();

export class Lab {
  readonly bridge: string;
  readonly pods: Pod[] = [];
  private readonly children = new Set<ChildProcess>();

  constructor(
    readonly id: string,
    readonly name: string,
    readonly subnet: Subnet,
  ) {
    this.bridge = labNames.bridge(id);
  }

  pod(name: string): Pod {
    const pod = this.pods.find((p) => p.name === name);
    if (!pod) throw new RangeError(`lab ${this.name} has no pod ${name}; it has ${this.pods.map((p) => p.name).join(', ')}`);
    return pod;
  }

  /**
   * Pod.spawn registers its children: destroy() must also kill one that has not reached its cgroup yet (sh runs
   * for a moment before it writes cgroup.procs), which cgroup.kill would miss.
   */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /**
   * Kills the pods' processes and removes cgroups, loss tables, veths, bridge and namespaces. Safe to call
   * twice; after a partial failure it throws, and calling it again (or destroyAll) retries what is left.
   */
  destroy(): void {
    const pids = [...this.children].flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
    teardown(this.id, pids);
    live.delete(this);
  }
}

function podNames(pods: LabOptions['pods']): string[] {
  const names = typeof pods === 'number' ? Array.from({ length: pods }, (_, i) => `pod${i}`) : [...pods];
  if (names.length < 1 || names.length > maxPods) throw new RangeError(`createLab: between 1 and ${maxPods} pods, not ${names.length}`);
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) throw new RangeError(`createLab: pod name "${name}": use up to 32 of a-z, 0-9, '-'`);
  }
  if (new Set(names).size !== names.length) throw new RangeError(`createLab: pod names repeat: ${names.join(', ')}`);
  return names;
}

function build(lab: Lab, names: readonly string[]): void {
  run('ip', ['link', 'add', lab.bridge, 'type', 'bridge']);
  run('ip', ['addr', 'add', `${lab.subnet.gateway}/24`, 'dev', lab.bridge]);
  run('ip', ['link', 'set', lab.bridge, 'up']);
  names.forEach((name, index) => {
    const pod = new Pod(lab, name, index);
    lab.pods.push(pod);
    const inPod = (...args: string[]) => run('ip', ['-n', pod.netns, ...args]);
    run('ip', ['netns', 'add', pod.netns]);
    // The peer is created directly inside the namespace, so it can be called eth0 from the start.
    run('ip', ['link', 'add', pod.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns]);
    run('ip', ['link', 'set', pod.hostVeth, 'master', lab.bridge, 'up']);
    inPod('addr', 'add', `${pod.ip}/24`, 'dev', 'eth0');
    inPod('link', 'set', 'eth0', 'up');
    inPod('link', 'set', 'lo', 'up');
    inPod('route', 'add', 'default', 'via', lab.subnet.gateway);
  });
}

/** Builds a lab; on failure removes what was built before rethrowing. */
export function createLab(options: LabOptions): Lab {
  const names = podNames(options.pods);
  installHandlers();
  const id = newLabId();
  const lab = new Lab(id, options.name, claimSubnet({ id, name: options.name }, options.subnet));
  live.add(lab);
  try {
    build(lab, names);
  } catch (err) {
    try {
      lab.destroy();
    } catch (cleanup) {
      throw new SidecarlessError(`${(err as Error).message}; cleaning up failed as well: ${(cleanup as Error).message}`, {
        context: { component: 'lab', labId: id },
        cause: err,
      });
    }
    throw err;
  }
  return lab;
}

/**
 * Destroys this process's labs and every lab left on the host by a process that no longer runs (a crashed or
 * killed test run). Labs of other live processes — a concurrent test run — are left alone. Returns the ids of
 * the labs removed.
 */
export function destroyAll(): string[] {
  const me = thisProcess();
  const othersLive = new Set(
    records()
      .filter((r) => r.ownerPid !== me.ownerPid && ownerAlive(r))
      .map((r) => r.id),
  );
  const ids = new Set([...labIdsOnHost(), ...records().map((r) => r.id)]);
  const failures: string[] = [];
  const destroyed: string[] = [];
  for (const id of ids) {
    if (othersLive.has(id)) continue;
    try {
      const lab = [...live].find((l) => l.id === id);
      if (lab) lab.destroy();
      else teardown(id);
      destroyed.push(id);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  if (failures.length > 0) throw new SidecarlessError(failures.join('\n'), { context: { component: 'lab' } });
  return destroyed;
}

/** Tears down this process's labs; used where exceptions must not escape. */
function destroyLive(): void {
  for (const lab of live) {
    try {
      lab.destroy();
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
    }
  }
}

let handlersInstalled = false;

function onSignal(signal: NodeJS.Signals): void {
  destroyLive();
  // With no other handler, keep the signal's default outcome (the process ends by that signal) instead of
  // swallowing it; an application that handles the signal itself decides on its own.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', destroyLive);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
