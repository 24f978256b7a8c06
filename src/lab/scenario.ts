/**
 * `sidecarless lab -f FILE`: a described cluster (cluster-description.ts) up on this node for policy scenarios by
 * hand: its pods and addresses printed, the requested reachability matrices drawn, and everything removed on
 * Ctrl-C (or at once with `once`). Meanwhile `ip netns exec <netns> …` runs anything inside a pod.
 */
import { readFileSync } from 'node:fs';
import type { LabProtocol } from './agents/protocol.js';
import { parseClusterDescription } from './cluster-description.js';
import { formatMatrix, probeMatrix, startDescribedCluster } from './reachability.js';

export interface ScenarioOptions {
  file: string;
  probes: ReadonlyArray<{ port: number; protocol: LabProtocol }>;
  timeoutMs: number;
  /** Remove the cluster once the probes are printed instead of waiting for a signal. */
  once: boolean;
}

export async function runScenario(options: ScenarioOptions): Promise<number> {
  const description = parseClusterDescription(readFileSync(options.file, 'utf8'), options.file);
  const described = await startDescribedCluster(description, { name: 'scenario' });
  try {
    for (const [key, pod] of described.pods) console.log(`${key.padEnd(40)} ${pod.ip.padEnd(15)} netns ${pod.netns}  cgroup ${pod.podCgroupPath}`);
    for (const probe of options.probes) console.log(`\n${formatMatrix(await probeMatrix(described, probe, options.timeoutMs))}`);
    if (!options.once) {
      console.log('\nup; Ctrl-C removes the pods, their objects and namespaces');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return 0;
  } finally {
    await described.destroy();
  }
}
