/**
 * `sidecarless init [--config PATH] [--reapply]`: creates every topic of the catalog (src/events/topics.ts) that is
 * missing and brings the ClickHouse database up to the last migration (schemas/clickhouse/), then exits: what a
 * deployment runs once before its roles (deploy/k8s: the sidecarless-init Job). Each role also ensures the topics it uses, and the
 * enricher migrates at start; init does it all at once, with credentials that may create topics and tables where the
 * roles' may not, and makes a wrong Kafka or ClickHouse setting fail once, with the setting's name, before any role
 * starts. Idempotent: a second run creates and applies nothing. `--reapply` runs the applied migrations' schema
 * statements again (migrations.ts): on a ClickHouse cluster, what a node added since lacks is created on it.
 * Exit 0 when everything exists, 1 otherwise.
 */
import { createClickHouse } from '../common/clickhouse/client.js';
import { migrate } from '../common/clickhouse/migrations.js';
import { loadConfig } from '../common/config.js';
import { describeError, SidecarlessError } from '../common/errors.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { ensureTopics } from '../common/kafka/topics.js';
import { createLogger } from '../common/logger.js';
import { topicSpecs } from '../events/topics.js';
import type { Command } from './command.js';

const USAGE = 'usage: sidecarless init [--config PATH] [--reapply]';

/** The first argument that is not `--config PATH`, `--config=PATH` (loadConfig reads those) or `--reapply`. */
function unexpectedArgument(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config') i++;
    else if (!args[i]!.startsWith('--config=') && args[i] !== '--reapply') return args[i];
  }
  return undefined;
}

export const initCommand: Command = {
  summary: 'create the Kafka topics and apply the ClickHouse migrations, then exit',
  async run(args) {
    let logger = createLogger({ name: 'sidecarless-init' });
    try {
      const unexpected = unexpectedArgument(args);
      if (unexpected !== undefined) {
        console.error(`init: unexpected argument ${JSON.stringify(unexpected)}\n${USAGE}`);
        return 2;
      }
      const config = loadConfig({ argv: args.filter((arg) => arg !== '--reapply') });
      logger = createLogger({ name: 'sidecarless-init', level: config.log.level });
      const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'init'), logger);
      const specs = Object.values(topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions }));
      const admin = kafka.admin();
      await admin.connect();
      let created: string[];
      try {
        created = await ensureTopics(admin, specs, logger);
      } finally {
        await admin.disconnect();
      }
      logger.info({ created, existing: specs.length - created.length }, 'kafka topics ensured');
      const { database, ttlDays, cluster } = config.clickhouse;
      const clickhouse = await createClickHouse({ ...config.clickhouse, database: undefined });
      try {
        const migrated = await migrate(clickhouse, { database, ttlDays, cluster, reapply: args.includes('--reapply') });
        logger.info({ database, applied: migrated.applied, reapplied: migrated.reapplied }, 'clickhouse schema migrated');
        if (migrated.newer.length > 0) logger.warn({ database, versions: migrated.newer }, 'clickhouse schema has migrations newer than this release');
      } finally {
        await clickhouse.close();
      }
      return 0;
    } catch (error) {
      const known = error instanceof SidecarlessError;
      logger.fatal(known ? { context: error.context } : { err: error }, `init failed: ${describeError(error)}`);
      return 1;
    }
  },
};
