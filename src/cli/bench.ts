/**
 * `sidecarless bench <name>... [--flag value ...]`: runs benchmarks from bench/, each printing one JSON line on
 * stdout. With no name, runs them all in order. Flags go to the one benchmark named before them, when it takes any
 * (`bench overhead --rates 1000,max --seconds 5`).
 */
import { UsageError } from '../../bench/usage-error.js';
import type { Command } from './command.js';

type Benchmark = (args: readonly string[]) => Promise<Record<string, unknown>>;

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  ringbuf: async () => (await import('../../bench/ringbuf.js')).run,
  avro: async () => (await import('../../bench/avro.js')).run,
  collector: async () => (await import('../../bench/collector.js')).run,
  enricher: async () => (await import('../../bench/enricher.js')).run,
  'enrich-join': async () => (await import('../../bench/enrich-join.js')).run,
  'flows-live': async () => (await import('../../bench/flows-live.js')).run,
  'http-parse': async () => (await import('../../bench/http-parse.js')).run,
  'http-live': async () => (await import('../../bench/http-live.js')).run,
  'syscall-tracing': async () => (await import('../../bench/syscall-tracing.js')).run,
  'policy-overhead': async () => (await import('../../bench/policy-overhead.js')).run,
  'policy-propagation': async () => (await import('../../bench/policy-propagation.js')).run,
  overhead: async () => (await import('../../bench/overhead.js')).run,
};
/** The benchmarks that take flags; the others would ignore them silently. */
const takingFlags = new Set(['overhead']);

export const benchCommand: Command = {
  summary: `run benchmarks (${Object.keys(benchmarks).join(', ')}); one JSON line each; overhead takes --rates, --seconds, --warm, --modes, --connections, --json`,
  async run(args) {
    const firstFlag = args.findIndex((arg) => arg.startsWith('-'));
    const [given, flags] = firstFlag === -1 ? [args, []] : [args.slice(0, firstFlag), args.slice(firstFlag)];
    const names = given.length > 0 ? given : Object.keys(benchmarks);
    const unknown = names.filter((name) => !(name in benchmarks));
    if (unknown.length > 0) {
      console.error(`unknown benchmark: ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}`);
      return 2;
    }
    if (flags.length > 0 && (names.length !== 1 || !takingFlags.has(names[0]!))) {
      console.error(`bench: flags (${flags.join(' ')}) go to one benchmark that takes them (${[...takingFlags].join(', ')}), named before them`);
      return 2;
    }
    for (const name of names) {
      const benchmark = await benchmarks[name]!();
      try {
        process.stdout.write(`${JSON.stringify(await benchmark(flags))}\n`);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        console.error(error.message);
        return 2;
      }
    }
    return 0;
  },
};
