/**
 * Removes everything of one lab, found by name (names.ts) rather than from memory, so the same code cleans a live
 * lab, a half-built one and the leftovers of a crashed process. Order:
 *   1. processes: cgroup.kill for each pod cgroup (reaches whatever a command forked), SIGKILL for anything else
 *      in the lab's namespaces (a netns with a process in it outlives `ip netns del`) and for the given pids
 *   2. cgroups, once the kernel reports them unpopulated (rmdir of a populated cgroup fails with EBUSY)
 *   3. loss tables, veths, bridge: deleted explicitly because a deleted netns releases its interfaces
 *      asynchronously, and a check right after destroy would still see them
 *   4. namespaces, then the registry record that reserved the subnet
 * Every step runs even when an earlier one failed; what could not be removed is reported together at the end.
 * Something that vanished meanwhile (a concurrent teardown, a user's `ip netns del`) is not a failure.
 */
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SidecarlessError } from '../common/errors.js';
import { Cgroup } from '../ebpf/cgroup.js';
import { cgroup2Root } from '../ebpf/preflight.js';
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

export function teardown(labId: string, pids: readonly number[] = []): void {
  const failures: string[] = [];
  const remove = (what: string, action: () => void, stillThere: () => boolean): void => {
    try {
      action();
    } catch (err) {
      if (stillThere()) failures.push(`${what}: ${(err as Error).message}`);
    }
  };
  const namespaces = netnsNames().filter((name) => labIdOf('linkOrNetns', name) === labId);
  const labCgroup = labNames.cgroupDir(labId);
  const labCgroupPath = join(cgroup2Root(), labCgroup);
  const podCgroups = existsSync(labCgroupPath)
    ? readdirSync(labCgroupPath, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(labCgroup, e.name))
    : [];

  for (const pod of podCgroups) {
    remove(`kill ${pod}`, () => writeFileSync(join(cgroup2Root(), pod, 'cgroup.kill'), '1'), () => existsSync(join(cgroup2Root(), pod)));
  }
  for (const netns of namespaces) {
    remove(`kill in ${netns}`, () => run('ip', ['netns', 'pids', netns]).split('\n').filter(Boolean).map(Number).forEach(kill), () => existsSync(`/run/netns/${netns}`));
  }
  pids.forEach(kill);

  for (const pod of podCgroups) {
    const cgroup = Cgroup.create(pod);
    remove(`cgroup ${cgroup.path}`, () => (waitUnpopulated(cgroup.path), cgroup.remove()), () => existsSync(cgroup.path));
  }
  remove(`cgroup ${labCgroupPath}`, () => existsSync(labCgroupPath) && rmdirSync(labCgroupPath), () => existsSync(labCgroupPath));

  for (const table of lossTables().filter((name) => labIdOf('lossTable', name) === labId)) {
    remove(`nft table ${table}`, () => run('nft', ['delete', 'table', 'netdev', table]), () => tableExists(table));
  }
  const links = linkNames().filter((name) => labIdOf('linkOrNetns', name) === labId);
  const bridge = labNames.bridge(labId);
  // Veths before the bridge they are attached to.
  for (const link of [...links.filter((name) => name !== bridge), ...links.filter((name) => name === bridge)]) {
    remove(`link ${link}`, () => run('ip', ['link', 'del', link]), () => existsSync(`/sys/class/net/${link}`));
  }
  for (const netns of namespaces) {
    remove(`netns ${netns}`, () => run('ip', ['netns', 'del', netns]), () => existsSync(`/run/netns/${netns}`));
  }

  if (failures.length > 0) {
    // Keep the record so destroyAll() finds the lab again.
    throw new SidecarlessError(`lab ${labId}: teardown left things behind; destroyAll() retries: ${failures.join('; ')}`, {
      context: { component: 'lab', labId },
    });
  }
  release(labId);
}
