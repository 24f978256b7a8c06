/**
 * Removes everything of one lab, found by name (names.ts) and by the lab's record of Kubernetes objects
 * (kube/ledger.ts) rather than from memory, so the same code cleans a live lab, a half-built one and the leftovers
 * of a crashed process. Order:
 *   1. processes: cgroup.kill on the lab's cgroup (reaches every pod and whatever a command forked), SIGKILL for
 *      anything else in the lab's namespaces (a netns with a process in it outlives `ip netns del`) and for the
 *      given pids
 *   2. cgroups, once the kernel reports them unpopulated (rmdir of a populated cgroup fails with EBUSY), deepest
 *      first
 *   3. loss tables, veths, bridge: deleted explicitly because a deleted netns releases its interfaces
 *      asynchronously, and a check right after destroy would still see them
 *   4. namespaces
 *   5. the Kubernetes objects the lab wrote (kube/delete-recorded.ts), pods first, namespaces last: as with a
 *      kubelet, a pod's containers end before its object goes
 *   6. the registry record that reserved the subnet
 * Every step runs even when an earlier one failed; what could not be removed is reported together at the end.
 * Something that vanished meanwhile (a concurrent teardown, a user's `ip netns del`) is not a failure.
 * teardownPod() does steps 1 to 4 for one pod of a live lab.
 */
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SidecarlessError } from '../common/errors.js';
import { cgroup2Root } from '../ebpf/preflight.js';
import { deleteRecordedObjects } from './kube/delete-recorded.js';
import { tableExists } from './loss.js';
import { labIdOf, labNames } from './names.js';
import { release } from './registry.js';
import { run, sleepSync } from './run.js';

const unpopulatedWithinMs = 5_000;

function netnsNames(): string[] {
  // "name" or "name (id: 3)" per line
  return run('ip', ['netns', 'list']).split('\n').map((line) => line.split(' ')[0] ?? '').filter(Boolean);
}

function linkNames(): string[] {
  return (JSON.parse(run('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((link) => link.ifname);
}

function lossTables(): string[] {
  const listing = JSON.parse(run('nft', ['-j', 'list', 'tables', 'netdev'])) as { nftables: { table?: { name: string } }[] };
  return listing.nftables.flatMap((entry) => (entry.table ? [entry.table.name] : []));
}

function cgroupDirs(): string[] {
  return readdirSync(cgroup2Root(), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
}

/** Ids of every lab with something left on this host. */
export function labIdsOnHost(): Set<string> {
  const ids = [
    ...netnsNames().map((name) => labIdOf('linkOrNetns', name)),
    ...linkNames().map((name) => labIdOf('linkOrNetns', name)),
    ...lossTables().map((name) => labIdOf('lossTable', name)),
    ...cgroupDirs().map((name) => labIdOf('cgroupDir', name)),
  ];
  return new Set(ids.filter((id): id is string => id !== undefined));
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function waitUnpopulated(cgroupPath: string): void {
  const deadline = Date.now() + unpopulatedWithinMs;
  while (readFileSync(join(cgroupPath, 'cgroup.events'), 'utf8').includes('populated 1')) {
    if (Date.now() > deadline) throw new Error(`${cgroupPath} still has processes ${unpopulatedWithinMs} ms after cgroup.kill`);
    sleepSync(5);
  }
}

function removeDeepestFirst(cgroupPath: string): void {
  for (const entry of readdirSync(cgroupPath, { withFileTypes: true })) {
    if (entry.isDirectory()) removeDeepestFirst(join(cgroupPath, entry.name));
  }
  rmdirSync(cgroupPath);
}

/** Collects what could not be removed instead of stopping at the first failure. */
class Removal {
  readonly failures: string[] = [];

  step(what: string, action: () => void, stillThere: () => boolean): void {
    try {
      action();
    } catch (err) {
      if (stillThere()) this.failures.push(`${what}: ${(err as Error).message}`);
    }
  }

  /** Kills what runs in the cgroup tree, in the network namespaces and under the pids (step 2 above). */
  killProcesses(cgroupPath: string, namespaces: readonly string[], pids: readonly number[]): void {
    this.step(`kill ${cgroupPath}`, () => existsSync(cgroupPath) && writeFileSync(join(cgroupPath, 'cgroup.kill'), '1'), () => existsSync(cgroupPath));
    for (const netns of namespaces) {
      this.step(`kill in ${netns}`, () => run('ip', ['netns', 'pids', netns]).split('\n').filter(Boolean).map(Number).forEach(kill), () => existsSync(`/run/netns/${netns}`));
    }
    pids.forEach(kill);
  }

  cgroupTree(cgroupPath: string): void {
    this.step(`cgroup ${cgroupPath}`, () => existsSync(cgroupPath) && (waitUnpopulated(cgroupPath), removeDeepestFirst(cgroupPath)), () => existsSync(cgroupPath));
  }

  lossTables(prefix: string): void {
    for (const table of lossTables().filter((name) => name.startsWith(prefix))) {
      this.step(`nft table ${table}`, () => run('nft', ['delete', 'table', 'netdev', table]), () => tableExists(table));
    }
  }

  links(links: readonly string[]): void {
    for (const link of links) this.step(`link ${link}`, () => run('ip', ['link', 'del', link]), () => existsSync(`/sys/class/net/${link}`));
  }

  namespaces(namespaces: readonly string[]): void {
    for (const netns of namespaces) this.step(`netns ${netns}`, () => run('ip', ['netns', 'del', netns]), () => existsSync(`/run/netns/${netns}`));
  }
}

export function teardown(labId: string, pids: readonly number[] = []): void {
  const removal = new Removal();
  const namespaces = netnsNames().filter((name) => labIdOf('linkOrNetns', name) === labId);
  const labCgroupPath = join(cgroup2Root(), labNames.cgroupDir(labId));
  removal.killProcesses(labCgroupPath, namespaces, pids);
  removal.cgroupTree(labCgroupPath);
  removal.lossTables(`sl${labId}_`);
  const links = linkNames().filter((name) => labIdOf('linkOrNetns', name) === labId);
  const bridge = labNames.bridge(labId);
  // Veths before the bridge they are attached to.
  removal.links([...links.filter((name) => name !== bridge), ...links.filter((name) => name === bridge)]);
  removal.namespaces(namespaces);
  removal.step('Kubernetes objects', () => deleteRecordedObjects(labId), () => true);

  if (removal.failures.length > 0) {
    // Keep the record so destroyAll() finds the lab again.
    throw new SidecarlessError(`lab ${labId}: teardown left things behind; destroyAll() retries: ${removal.failures.join('; ')}`, {
      context: { component: 'lab', labId },
    });
  }
  release(labId);
}

/** What teardownPod needs to know of a pod: where its parts are. */
export interface PodParts {
  labId: string;
  index: number;
  netns: string;
  hostVeth: string;
  /** Absolute path of the pod's cgroup (the pod slice, holding its container's). */
  cgroupPath: string;
}

/** Removes one pod of a lab: its processes, cgroups, loss tables, veth and namespace. Safe to call twice. */
export function teardownPod(pod: PodParts, pids: readonly number[]): void {
  const removal = new Removal();
  removal.killProcesses(pod.cgroupPath, [pod.netns], pids);
  removal.cgroupTree(pod.cgroupPath);
  removal.lossTables(labNames.lossTablesOf(pod.labId, pod.index));
  removal.links([pod.hostVeth]);
  removal.namespaces([pod.netns]);
  if (removal.failures.length > 0) {
    throw new SidecarlessError(`lab ${pod.labId}: removing pod ${pod.netns} left things behind; destroy() removes them: ${removal.failures.join('; ')}`, {
      context: { component: 'lab', labId: pod.labId },
    });
  }
}
