/**
 * The `sidecarless` command: one executable, one sub-command per role. Each sub-command lives in its own module
 * and is loaded only when invoked, so `sidecarless stack status` never loads libbpf or ClickHouse.
 */
import type { Command } from './command.js';

const commands: Record<string, () => Promise<Command>> = {
  stack: async () => (await import('./stack.js')).stackCommand,
  bench: async () => (await import('./bench.js')).benchCommand,
  collector: async () => (await import('./collector.js')).collectorCommand,
  enricher: async () => (await import('./enricher.js')).enricherCommand,
  enforcer: async () => (await import('./enforcer.js')).enforcerCommand,
  metadata: async () => (await import('./metadata.js')).metadataCommand,
  policy: async () => (await import('./policy.js')).policyCommand,
  init: async () => (await import('./init.js')).initCommand,
  query: async () => (await import('./query.js')).queryCommand,
  observe: async () => (await import('./observe.js')).observeCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  lab: async () => (await import('./lab.js')).labCommand,
};

function usage(): string {
  const lines = Object.keys(commands).map((name) => `  ${name}`);
  return `usage: sidecarless <command> [args]\ncommands:\n${lines.join('\n')}`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name === undefined ? undefined : commands[name];
  if (!load) {
    console.error(usage());
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2;
  }
  const command = await load();
  return command.run(rest);
}
