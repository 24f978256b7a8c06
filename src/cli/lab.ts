/**
 * `sidecarless lab -f FILE [--probe PORT[/PROTO]]... [--timeout-ms N] [--once]`: a cluster described as Namespace
 * and Pod manifests, up on this node as API objects and pods serving their ports (src/lab/scenario.ts).
 */
import { parseArgs } from 'node:util';
import { parsePortProtocol, type Command } from './command.js';

const usage = 'usage: sidecarless lab -f FILE [--probe PORT[/TCP|/UDP]]... [--timeout-ms N] [--once]';

export const labCommand: Command = {
  summary: 'bring up a cluster described as Namespace and Pod manifests (pods serving their ports) and draw reachability matrices',
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({ args, options: { file: { type: 'string', short: 'f' }, probe: { type: 'string', multiple: true }, 'timeout-ms': { type: 'string' }, once: { type: 'boolean' } } });
    } catch (error) {
      console.error(`lab: ${(error as Error).message}\n${usage}`);
      return 2;
    }
    const { file, probe = [], 'timeout-ms': timeout = '1000', once = false } = parsed.values;
    const probes = probe.map((text) => parsePortProtocol(text, ['TCP', 'UDP'] as const));
    const timeoutMs = Number(timeout);
    const problem =
      file === undefined ? 'give the description with -f FILE' : probes.includes(undefined) ? `--probe takes PORT or PORT/TCP or PORT/UDP, not ${probe[probes.indexOf(undefined)]}` : !(Number.isInteger(timeoutMs) && timeoutMs > 0) ? `--timeout-ms takes a whole number of milliseconds, not ${timeout}` : undefined;
    if (problem !== undefined) {
      console.error(`lab: ${problem}\n${usage}`);
      return 2;
    }
    const { runScenario } = await import('../lab/scenario.js');
    return runScenario({ file: file!, probes: probes.map((p) => p!), timeoutMs, once });
  },
};
