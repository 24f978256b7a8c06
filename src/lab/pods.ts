/**
 * A local "cluster lab": pods on this node for the demo, integration tests and benchmarks. A pod is what the
 * kernel sees of a Kubernetes pod: a network namespace with eth0 (one end of a veth pair whose other end is on a
 * per-lab bridge) holding an address of the lab's /24, a default route via the bridge, and a cgroup v2 directory
 * that every process started in the pod joins before it runs, named as the kubelet names a container's cgroup
 * (kubelet-cgroup.ts) below the lab's own cgroup. A lab with an API server (cluster.ts) also writes the pods as
 * Kubernetes objects; here a pod's uid is then the object's, else a random one.
 *
 * Everything a lab creates is named after its id (names.ts) and recorded (registry.ts) before it is created, so
 * destroy() — also run on exit, SIGINT and SIGTERM — and destroyAll() after a crashed run find it all
 * (teardown.ts). Creating and destroying are synchronous so that they also work in an exit handler.
 */
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { SidecarlessError } from '../common/errors.js';
import { Cgroup } from '../ebpf/cgroup.js';
import { cgroup2Root } from '../ebpf/preflight.js';
import { containerScope, newContainerId, newPodUid, podSlice, type QosClass } from './kubelet-cgroup.js';
import { addLoss, type PacketLoss } from './loss.js';
import { labNames, newLabId } from './names.js';
import { ownerAlive, records, thisProcess } from './registry.js';
import { run } from './run.js';
import { claimSubnet, maxPods, type Subnet } from './subnet.js';
import { labIdsOnHost, teardown, teardownPod } from './teardown.js';

export interface LabOptions {
  /** Free text naming the lab in records and picking its default subnet. */
  name: string;
  /** A count (pods named pod0, pod1, ...) or the pod names: lowercase letters, digits and '-'. addPod adds more. */
  pods: number | readonly string[];
  /** An IPv4 /24 such as '10.213.7.0/24'; default: a free 10.213.<n>.0/24. */
  subnet?: string;
}

export interface PodOptions {
  /** The pod's address is subnet.host(index); default: the lowest free index, so a removed pod's address is reused. */
  index?: number;
  /** Default: a random one (a lab with an API server passes the Pod object's). */
  uid?: string;
  /** Names the cgroup (kubelet-cgroup.ts); default besteffort. */
  qos?: QosClass;
  /** The Pod object this pod is, when the lab wrote one. */
  kubernetes?: { namespace: string; name: string };
}

export class Pod {
  readonly ip: string;
  readonly netns: string;
  readonly hostVeth: string;
  readonly uid: string;
  readonly qos: QosClass;
  readonly containerId: string;
  /** The pod's cgroup (kubepods-...-pod<uid>.slice): holds its container's. */
  readonly podCgroupPath: string;
  /** The container's cgroup (cri-containerd-<containerId>.scope), which every process of the pod joins. */
  readonly cgroup: Cgroup;
  readonly kubernetes: { namespace: string; name: string } | undefined;
  /** Processes spawned in the pod; removing it must also kill one that has not reached its cgroup yet. */
  readonly children = new Set<ChildProcess>();

  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly index: number,
    options: Omit<PodOptions, 'index'> = {},
  ) {
    this.ip = lab.subnet.host(index);
    this.netns = labNames.netns(lab.id, name);
    this.hostVeth = labNames.hostVeth(lab.id, index);
    this.uid = options.uid ?? newPodUid();
    this.qos = options.qos ?? 'besteffort';
    this.containerId = newContainerId();
    this.kubernetes = options.kubernetes;
    const identity = { qos: this.qos, podUid: this.uid, containerId: this.containerId };
    const labCgroup = labNames.cgroupDir(lab.id);
    this.podCgroupPath = join(cgroup2Root(), labCgroup, podSlice(identity));
    this.cgroup = Cgroup.create(join(labCgroup, containerScope(identity)));
  }

  /**
   * One more container of the pod (a sidecar's, or a fresh one per run so that its cgroup's counters start at
   * zero): a cgroup of its own in the pod's slice, named as the kubelet names a container's. The pod's netns is
   * shared; removing the pod removes it.
   */
  addContainer(): Cgroup {
    return Cgroup.create(join(labNames.cgroupDir(this.lab.id), containerScope({ qos: this.qos, podUid: this.uid, containerId: newContainerId() })));
  }

  /**
   * sh joins the container's cgroup, then execs `ip netns exec`, which execs the command: one pid throughout, in
   * the cgroup before the command runs. The cgroup comes first because `ip netns exec` remounts /sys for the
   * namespace, which hides the cgroup2 mount below /sys/fs/cgroup.
   */
  private argv(command: string, args: readonly string[], container = this.cgroup): string[] {
    const procs = join(container.path, 'cgroup.procs');
    return ['-c', 'echo $$ > "$1" && shift && exec ip netns exec "$@"', 'sh', procs, this.netns, command, ...args];
  }

  /**
   * Starts a command inside the pod's netns and cgroup (`container`: one of addContainer's instead); destroy()
   * kills it if it still runs.
   */
  spawn(command: string, args: readonly string[] = [], options: SpawnOptions & { container?: Cgroup } = {}): ChildProcess {
    const { container, ...spawnOptions } = options;
    const child = spawn('sh', this.argv(command, args, container), spawnOptions);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Pids of the processes spawned in the pod that still run. */
  childPids(): number[] {
    return [...this.children].flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
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

  constructor(
    readonly id: string,
    readonly name: string,
    readonly subnet: Subnet,
  ) {
    this.bridge = labNames.bridge(id);
  }

  /** The lab's own cgroup, above every pod's kubepods slices: tracing it traces every pod, also those added later. */
  get cgroupPath(): string {
    return join(cgroup2Root(), labNames.cgroupDir(this.id));
  }

  pod(name: string): Pod {
    const pod = this.pods.find((p) => p.name === name);
    if (!pod) throw new RangeError(`lab ${this.name} has no pod ${name}; it has ${this.pods.map((p) => p.name).join(', ')}`);
    return pod;
  }

  /**
   * Builds one more pod: cgroup, netns, veth on the bridge, address, route. Throws when the name or the index is
   * taken; a pod that fails halfway is removed again before the error is rethrown.
   */
  addPod(name: string, options: PodOptions = {}): Pod {
    checkPodName(name);
    if (this.pods.some((p) => p.name === name)) throw new RangeError(`lab ${this.name} already has a pod ${name}`);
    const index = options.index ?? this.freeIndex();
    if (!Number.isInteger(index) || index < 0 || index >= maxPods) throw new RangeError(`lab ${this.name}: pod index ${index} is not in 0..${maxPods - 1}`);
    const holder = this.pods.find((p) => p.index === index);
    if (holder) throw new RangeError(`lab ${this.name}: pod ${holder.name} holds index ${index} (${holder.ip}); remove it first`);
    const pod = new Pod(this, name, index, options);
    this.pods.push(pod);
    const inPod = (...args: string[]) => run('ip', ['-n', pod.netns, ...args]);
    undoOnFailure(
      () => {
        run('ip', ['netns', 'add', pod.netns]);
        // The peer is created directly inside the namespace, so it can be called eth0 from the start.
        run('ip', ['link', 'add', pod.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns]);
        run('ip', ['link', 'set', pod.hostVeth, 'master', this.bridge, 'up']);
        inPod('addr', 'add', `${pod.ip}/24`, 'dev', 'eth0');
        inPod('link', 'set', 'eth0', 'up');
        inPod('link', 'set', 'lo', 'up');
        inPod('route', 'add', 'default', 'via', this.subnet.gateway);
      },
      () => this.removePod(name),
      this.id,
    );
    return pod;
  }

  /** Kills the pod's processes and removes its cgroups, loss tables, veth and netns; its index becomes free. */
  removePod(name: string): void {
    const pod = this.pod(name);
    teardownPod({ labId: this.id, index: pod.index, netns: pod.netns, hostVeth: pod.hostVeth, cgroupPath: pod.podCgroupPath }, pod.childPids());
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  private freeIndex(): number {
    const taken = new Set(this.pods.map((p) => p.index));
    for (let index = 0; index < maxPods; index++) if (!taken.has(index)) return index;
    throw new RangeError(`lab ${this.name} has ${maxPods} pods, as many as its /24 holds`);
  }

  /**
   * Kills the pods' processes and removes cgroups, loss tables, veths, bridge, namespaces and the Kubernetes
   * objects it wrote. Safe to call twice; after a partial failure it throws, and calling it again (or
   * destroyAll) retries what is left.
   */
  destroy(): void {
    teardown(this.id, this.pods.flatMap((pod) => pod.childPids()));
    live.delete(this);
  }
}

/** Runs build; when it throws, runs undo and rethrows build's error (naming undo's too when that fails as well). */
function undoOnFailure(build: () => void, undo: () => void, labId: string): void {
  try {
    build();
  } catch (err) {
    try {
      undo();
    } catch (cleanup) {
      throw new SidecarlessError(`${(err as Error).message}; cleaning up failed as well: ${(cleanup as Error).message}`, {
        context: { component: 'lab', labId },
        cause: err,
      });
    }
    throw err;
  }
}

function checkPodName(name: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) throw new RangeError(`lab pod name "${name}": use up to 32 of a-z, 0-9, '-'`);
}

function podNames(pods: LabOptions['pods']): string[] {
  const names = typeof pods === 'number' ? Array.from({ length: pods }, (_, i) => `pod${i}`) : [...pods];
  if (names.length > maxPods) throw new RangeError(`createLab: at most ${maxPods} pods, not ${names.length}`);
  names.forEach(checkPodName);
  if (new Set(names).size !== names.length) throw new RangeError(`createLab: pod names repeat: ${names.join(', ')}`);
  return names;
}

function build(lab: Lab, names: readonly string[]): void {
  run('ip', ['link', 'add', lab.bridge, 'type', 'bridge']);
  run('ip', ['addr', 'add', `${lab.subnet.gateway}/24`, 'dev', lab.bridge]);
  run('ip', ['link', 'set', lab.bridge, 'up']);
  for (const name of names) lab.addPod(name);
}

/** Builds a lab; on failure removes what was built before rethrowing. */
export function createLab(options: LabOptions): Lab {
  const names = podNames(options.pods);
  installHandlers();
  const id = newLabId();
  const lab = new Lab(id, options.name, claimSubnet({ id, name: options.name }, options.subnet));
  live.add(lab);
  undoOnFailure(() => build(lab, names), () => lab.destroy(), id);
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
