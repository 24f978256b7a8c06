/**
 * `sidecarless observe [--kind flow,http,verdict] [--namespace NS] [--workload NAME] [--pod NAME] [--port N]
 * [--format text|json] [--from-beginning] [--count N] [--config PATH]`: the event topics live, each event named at
 * its own time (src/enricher/observe/), one line each on stdout; Ctrl-C stops.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.js';
import { describeError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import type { ObservedKind, ObserveFilter } from '../enricher/observe/observed-line.js';
import { whenStdoutClosed, type Command } from './command.js';

const usage =
  'usage: sidecarless observe [--kind flow,http,verdict] [--namespace NS] [--workload NAME] [--pod NAME] [--port N] [--format text|json] [--from-beginning] [--count N] [--config PATH]';
const KINDS: readonly ObservedKind[] = ['flow', 'http', 'verdict'];

export const observeCommand: Command = {
  summary: 'follow flows, HTTP exchanges and policy verdicts live, each named by Kubernetes at its own time, filtered',
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        options: {
          kind: { type: 'string' },
          namespace: { type: 'string' },
          workload: { type: 'string' },
          pod: { type: 'string' },
          port: { type: 'string' },
          format: { type: 'string' },
          'from-beginning': { type: 'boolean' },
          count: { type: 'string' },
          config: { type: 'string' },
        },
      });
    } catch (error) {
      console.error(`observe: ${(error as Error).message}\n${usage}`);
      return 2;
    }
    const { kind = 'flow,http', namespace, workload, pod, port, format = 'text', 'from-beginning': fromBeginning = false, count, config: configPath } = parsed.values;
    const kinds = kind.split(',');
    const serverPort = port === undefined ? undefined : Number(port);
    const limit = count === undefined ? undefined : Number(count);
    const problem = kinds.find((each) => !KINDS.includes(each as ObservedKind))
      ? `--kind takes flow, http and verdict, comma-separated, not ${kind}`
      : serverPort !== undefined && !(Number.isInteger(serverPort) && serverPort >= 1 && serverPort <= 65535)
        ? `--port takes a port (1-65535), not ${port}`
        : limit !== undefined && !(Number.isInteger(limit) && limit > 0)
          ? `--count takes a whole number above 0, not ${count}`
          : !['text', 'json'].includes(format)
            ? `--format takes text or json, not ${format}`
            : undefined;
    if (problem !== undefined) {
      console.error(`observe: ${problem}\n${usage}`);
      return 2;
    }
    const filter: ObserveFilter = { namespace, workload, pod, serverPort };
    let stopped: () => void = () => {};
    const stop = new Promise<void>((resolve) => (stopped = resolve));
    process.once('SIGINT', () => stopped());
    process.once('SIGTERM', () => stopped());
    whenStdoutClosed(() => stopped());
    try {
      const config = loadConfig({ argv: configPath === undefined ? [] : ['--config', configPath] });
      const logger = createLogger({ name: 'sidecarless-observe', level: process.env.SIDECARLESS_LOG_LEVEL ?? 'warn' });
      const { observe } = await import('../enricher/observe/observe.js');
      await observe(
        config,
        logger,
        {
          kinds: kinds as ObservedKind[],
          filter,
          format: format as 'text' | 'json',
          fromBeginning,
          count: limit,
          write: (line) => process.stdout.write(`${line}\n`),
          ready: (description) => console.error(`observing ${description}; Ctrl-C stops`),
        },
        stop,
      );
      return 0;
    } catch (error) {
      console.error(`observe: ${describeError(error)}`);
      return 1;
    }
  },
};
