/** `sidecarless demo`: the pipeline on this node with embedded defaults (src/lab/demo.ts). */
import type { Command } from './command.js';

export const demoCommand: Command = {
  summary: 'three pods on this node, their TCP connections through Kafka into ClickHouse, top connections printed',
  run: async () => (await import('../lab/demo.js')).runDemo(),
};
