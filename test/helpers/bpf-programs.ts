/**
 * The kernel's view of pinned programs, through bpftool rather than the code under test: which programs the links
 * pinned in a directory hold, and whether a program still exists. Other processes on this machine load programs of
 * the same names at the same time, so tests follow programs by id, never by counting names.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { pinsBelow } from '../../src/ebpf/pins.js';
import { waitFor } from '../../src/lab/stack/processes.js';

/** Program id of each link pinned below `directory` (any depth), by the link's path relative to it. */
export function pinnedPrograms(directory: string): Map<string, number> {
  const programs = new Map<string, number>();
  for (const pin of pinsBelow(directory, 'links')) {
    const link = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', pin], { encoding: 'utf8' })) as { prog_id: number };
    programs.set(path.relative(directory, pin), link.prog_id);
  }
  return programs;
}

export function programExists(id: number): boolean {
  return spawnSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;
}

/** A program is freed shortly after its last link goes (the kernel defers it): waits until every one is gone. */
export function waitForProgramsGone(ids: Iterable<number>): Promise<void> {
  const left = [...ids];
  return waitFor(async () => left.every((id) => !programExists(id)), { timeoutMs: 5_000, what: `programs ${left.join(', ')} to be freed` });
}
