/**
 * Deletes the Kubernetes objects a lab recorded (ledger.ts), synchronously: teardown also runs in exit and signal
 * handlers, where nothing asynchronous completes, so the deleting runs in a child process
 * (delete-recorded-child.ts) that this one waits for. Labs that wrote no objects start no child.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { objectsFile } from '../registry.js';
import { recordedObjects } from './ledger.js';

const child = fileURLToPath(new URL('./delete-recorded-child.js', import.meta.url));
const childTimeoutMs = 60_000;

export function deleteRecordedObjects(labId: string): void {
  if (recordedObjects(labId).length === 0) return;
  try {
    execFileSync(process.execPath, [child, labId], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: childTimeoutMs });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(
      `${stderr || (err as Error).message} (the list is ${objectsFile(labId)}: delete it by hand only if that API server is gone for good)`,
    );
  }
}
