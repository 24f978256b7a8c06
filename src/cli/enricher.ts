/** `sidecarless enricher`: flow events from Kafka into ClickHouse. Configuration: see src/common/config.ts. */
import { startEnricher } from '../enricher/index.js';
import type { Command } from './command.js';
import { runRole } from '../common/role.js';

export const enricherCommand: Command = {
  summary: 'consume flow events from Kafka and store them in ClickHouse (exactly once)',
  run: (args) => runRole('enricher', args, startEnricher),
};
