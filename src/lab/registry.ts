/**
 * One record file per lab under /run (tmpfs: gone after a reboot, like the namespaces themselves). The file is
 * named after the lab's subnet and created exclusively, so writing it also reserves the subnet against createLab
 * in concurrent processes. It names the owner process (pid plus start time, so a recycled pid does not count),
 * which lets destroyAll tell a live lab of a concurrent test run from the leftovers of a crashed one.
 * The record is written before anything else of the lab exists and removed after everything else is gone, together
 * with the lab's list of the Kubernetes objects it wrote (kube/ledger.ts).
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = '/run/sidecarless-lab';

export interface LabRecord {
  id: string;
  name: string;
  /** 'a.b.c.0/24' */
  subnet: string;
  ownerPid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot). */
  ownerStart: string;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function thisProcess(): Pick<LabRecord, 'ownerPid' | 'ownerStart'> {
  return { ownerPid: process.pid, ownerStart: startTimeOf(process.pid) ?? '' };
}

export function ownerAlive(record: LabRecord): boolean {
  return startTimeOf(record.ownerPid) === record.ownerStart;
}

function fileOf(subnet: string): string {
  return join(dir, `${subnet.replace('/', '_')}.json`);
}

/** False when another lab holds the subnet. */
export function reserve(record: LabRecord): boolean {
  for (let attempt = 0; ; attempt++) {
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(fileOf(record.subnet), JSON.stringify(record), { flag: 'wx' });
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // release() in another process removed the emptied directory between our mkdir and write.
      if (code !== 'ENOENT' || attempt > 3) throw err;
    }
  }
}

export function records(): LabRecord[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.json'));
  } catch {
    return [];
  }
  const found: LabRecord[] = [];
  for (const file of files) {
    try {
      found.push(JSON.parse(readFileSync(join(dir, file), 'utf8')) as LabRecord);
    } catch {
      // released meanwhile
    }
  }
  return found;
}

/**
 * The list of a lab's Kubernetes objects: beside the records, and not a record itself (no .json). The directory
 * exists while the lab's record does.
 */
export function objectsFile(labId: string): string {
  return join(dir, `${labId}.kube-objects`);
}

export function release(labId: string): void {
  rmSync(objectsFile(labId), { force: true });
  for (const record of records()) {
    if (record.id === labId) rmSync(fileOf(record.subnet), { force: true });
  }
  try {
    rmdirSync(dir);
  } catch {
    // other labs still hold records, or the directory is already gone
  }
}
