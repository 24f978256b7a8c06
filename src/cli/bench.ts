/**
 * `sidecarless bench <name>...`: runs benchmarks from bench/, each printing one JSON line on stdout.
 * With no name, runs them all in order.
 */
import type { Command } from './command.js';

type Benchmark = () => Promise<Record<string, unknown>>;

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
};

export const benchCommand: Command = {
  summary: `run benchmarks (${Object.keys(benchmarks).join(', ')}); one JSON line each`,
  async run(args) {
    const names = args.length > 0 ? args : Object.keys(benchmarks);
    const unknown = names.filter((name) => !(name in benchmarks));
    if (unknown.length > 0) {
      console.error(`unknown benchmark: ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}`);
      return 2;
    }
    for (const name of names) {
      const benchmark = await benchmarks[name]!();
      process.stdout.write(`${JSON.stringify(await benchmark())}\n`);
    }
    return 0;
  },
};
