/** `sidecarless collector`: flows from this node's kernel to Kafka. Configuration: see src/common/config.ts. */
import { startCollector } from '../collector/index.js';
import type { Command } from './command.js';
import { runRole } from '../common/role.js';

export const collectorCommand: Command = {
  summary: 'trace TCP connections of the configured cgroups and produce flow events to Kafka',
  run: (args) => runRole('collector', args, startCollector),
};
