/**
 * Creates the database and tables the enricher writes (schemas/clickhouse/*.sql), idempotently. Placeholders are
 * filled only with values the configuration already validated (an identifier, an integer).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../common/errors.js';

const SCHEMA_DIR = fileURLToPath(new URL('../../../schemas/clickhouse/', import.meta.url));
const TABLES = ['flows'] as const;

export interface SchemaOptions {
  database: string;
  ttlDays: number;
}

export function tableDdl(table: (typeof TABLES)[number], options: SchemaOptions): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.database)) throw new ConfigError('clickhouse.database', 'expected an identifier');
  if (!Number.isInteger(options.ttlDays) || options.ttlDays < 1) throw new ConfigError('clickhouse.ttlDays', 'expected a positive integer');
  return readFileSync(`${SCHEMA_DIR}${table}.sql`, 'utf8')
    .replaceAll('{{database}}', options.database)
    .replaceAll('{{ttl_days}}', String(options.ttlDays));
}

export async function ensureSchema(client: ClickHouseClient, options: SchemaOptions): Promise<void> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${options.database}` });
  for (const table of TABLES) await client.command({ query: tableDdl(table, options) });
}
