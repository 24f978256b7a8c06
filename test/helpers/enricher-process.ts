/**
 * The enricher as a separate process, for tests that kill it: `bin/sidecarless.js enricher` with a test's
 * environment (its stderr kept for the failure message), how far its consumer group committed, and its exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Admin } from 'kafkajs';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

/** The end of a process's stderr kept for a failure message. */
const KEPT_LOG_BYTES = 64 * 1024;

export class EnricherProcesses {
  private readonly children = new Set<ChildProcess>();
  private readonly logs = new WeakMap<ChildProcess, string>();

  /** Starts one with the test's environment over this process's. */
  start(env: Record<string, string>): ChildProcess {
    const child = spawn(process.execPath, [bin, 'enricher'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.add(child);
    this.logs.set(child, '');
    // Read as it comes: a full pipe would stop the process.
    child.stderr!.on('data', (chunk: Buffer) => this.logs.set(child, (this.logs.get(child)! + chunk.toString('utf8')).slice(-KEPT_LOG_BYTES)));
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** The end of what the process wrote to stderr (its logs). */
  log(child: ChildProcess): string {
    return this.logs.get(child) ?? '';
  }

  /** SIGKILLs whatever still runs (in after(), whatever failed). */
  killAll(): void {
    for (const child of this.children) child.kill('SIGKILL');
  }
}

export function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Messages the group has committed on the topic, over its partitions. */
export async function committed(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return (offsets?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}
