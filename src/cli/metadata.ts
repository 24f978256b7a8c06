/**
 * `sidecarless metadata [--file PATH]`: Kubernetes objects as events on the metadata topic, from the API server
 * (metadata.kubeconfig) or, with --file (or metadata.file), from a YAML file of manifests. One per cluster.
 * Configuration: see src/common/config.ts.
 */
import { runRole } from '../common/role.js';
import { startMetadata } from '../metadata/role.js';
import type { Command } from './command.js';

/** `--file PATH` or `--file=PATH` taken out of the arguments; the rest goes to the configuration. */
function takeFile(args: string[]): { file?: string; rest: string[] } | { error: string } {
  const rest: string[] = [];
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('--file=')) file = arg.slice('--file='.length);
    else if (arg === '--file') file = args[++i];
    else {
      rest.push(arg);
      continue;
    }
    if (file === undefined || file === '' || file.startsWith('--')) return { error: 'expected a file path after --file' };
  }
  return file === undefined ? { rest } : { file, rest };
}

export const metadataCommand: Command = {
  summary: 'publish Kubernetes objects (from the API server, or a YAML file with --file PATH) to the metadata topic',
  async run(args) {
    const parsed = takeFile(args);
    if ('error' in parsed) {
      console.error(`metadata: ${parsed.error}\nusage: sidecarless metadata [--file PATH] [--config PATH]`);
      return 2;
    }
    return runRole('metadata', parsed.rest, (context) => startMetadata(context, parsed.file === undefined ? {} : { file: parsed.file }));
  },
};
