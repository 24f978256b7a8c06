/**
 * For integration tests that need the local stack (`node bin/sidecarless.js stack up`, which `npm test` runs
 * first): a quick reachability check with a message that says how to fix it, instead of a client retrying for a
 * minute, and names that cannot collide with earlier or concurrent runs.
 */
import { randomBytes } from 'node:crypto';
import { acceptsConnections } from '../../src/lab/stack/processes.js';

export async function requireStackService(what: string, host: string, port: number): Promise<void> {
  if (!(await acceptsConnections(host, port))) {
    throw new Error(`${what} is not reachable at ${host}:${port}; start the local stack with \`node bin/sidecarless.js stack up\``);
  }
}

/** prefix + time + random; only characters valid in both Kafka topic names and ClickHouse identifiers. */
export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}
