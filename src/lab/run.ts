/**
 * Runs the iproute2 and nft commands a lab is built from, synchronously: teardown must also work inside
 * process.on('exit'), where nothing asynchronous runs, and building a lab is a few dozen short commands.
 */
import { execFileSync } from 'node:child_process';
import { SidecarlessError } from '../common/errors.js';

export function run(command: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new SidecarlessError(
      `lab: \`${[command, ...args].join(' ')}\` failed: ${stderr || (err as Error).message} ` +
        '(the lab needs root, iproute2 and nftables; deploy/local/setup.sh installs them)',
      { context: { component: 'lab' }, cause: err },
    );
  }
}

/** Blocks the thread; teardown polls the kernel between steps where it cannot await. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
