/**
 * `sidecarless collector`: flows from this node's kernel to Kafka. Configuration: see src/common/config.ts.
 * `sidecarless collector --uninstall`: removes what the collector leaves in the kernel between runs (its programs,
 * pinned in collector.pinDirectory), e.g. when the DaemonSet is deleted rather than upgraded.
 */
import { startCollector, uninstallCollector } from '../collector/index.js';
import type { Command } from './command.js';
import { loadConfig } from '../common/config.js';
import { describeError } from '../common/errors.js';
import { runRole } from '../common/role.js';

function uninstall(args: string[]): number {
  try {
    const removed = uninstallCollector(loadConfig({ argv: args }));
    console.log(removed ? `removed ${removed}: the collector's programs are detached` : 'nothing installed');
    return 0;
  } catch (error) {
    console.error(`collector --uninstall failed: ${describeError(error)}`);
    return 1;
  }
}

export const collectorCommand: Command = {
  summary: 'trace TCP connections of the configured cgroups and produce flow events to Kafka (--uninstall: remove its kernel programs)',
  run: async (args) => (args.includes('--uninstall') ? uninstall(args.filter((arg) => arg !== '--uninstall')) : runRole('collector', args, startCollector)),
};
