/**
 * `sidecarless query [--param NAME=VALUE]... [--format table|json] [--config PATH] SQL|-f FILE|-`: one read-only
 * statement against the configured ClickHouse (clickhouse.url, else the embedded engine at clickhouse.embeddedPath,
 * where the demo leaves its tables), its rows printed as a table or as JSON lines. User values go in as query
 * parameters (`{port:UInt16}` in the SQL, `--param port=443`).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createClickHouse } from '../common/clickhouse/client.js';
import { cellText, numericType, queryParameters, readQuery, streamQuery } from '../common/clickhouse/read-query.js';
import { loadConfig } from '../common/config.js';
import { describeError, RejectedValueError } from '../common/errors.js';
import { textTable } from '../common/text-table.js';
import { whenStdoutClosed, type Command } from './command.js';

const usage = 'usage: sidecarless query [--param NAME=VALUE]... [--format table|json] [--config PATH] (SQL | -f FILE | -)';

export const queryCommand: Command = {
  summary: 'run one read-only SQL statement on the ClickHouse tables (server or embedded engine) and print its rows',
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        options: { param: { type: 'string', multiple: true }, format: { type: 'string' }, file: { type: 'string', short: 'f' }, config: { type: 'string' } },
      });
    } catch (error) {
      console.error(`query: ${(error as Error).message}\n${usage}`);
      return 2;
    }
    const { param = [], format = 'table', file, config: configPath } = parsed.values;
    const sources = parsed.positionals.length + (file === undefined ? 0 : 1);
    const problem =
      sources !== 1 ? 'give one statement: as an argument (quoted), with -f FILE, or - to read it from stdin' : !['table', 'json'].includes(format) ? `--format takes table or json, not ${format}` : undefined;
    if (problem !== undefined) {
      console.error(`query: ${problem}\n${usage}`);
      return 2;
    }
    let parameters: Record<string, string>;
    try {
      parameters = queryParameters(param);
    } catch (error) {
      if (!(error instanceof RejectedValueError)) throw error;
      console.error(`query: ${error.message}\n${usage}`);
      return 2;
    }
    const [statement] = parsed.positionals;
    try {
      const sql = file !== undefined ? readFileSync(file, 'utf8') : statement === '-' ? readFileSync(0, 'utf8') : statement!;
      const config = loadConfig({ argv: configPath === undefined ? [] : ['--config', configPath] });
      const client = await createClickHouse(config.clickhouse);
      try {
        // A reader that stops early (`query ... | head`) has what it wanted.
        whenStdoutClosed(() => {});
        if (format === 'json') {
          await streamQuery(client, sql, parameters, (line) => process.stdout.write(`${line}\n`));
        } else {
          const { columns, rows } = await readQuery(client, sql, parameters);
          const lines = textTable(
            columns.map((column) => column.name),
            rows.map((row) => columns.map((column) => cellText(row[column.name]))),
            columns.map((column) => numericType(column.type)),
          );
          process.stdout.write(lines.map((line) => `${line}\n`).join(''));
          console.error(`${rows.length} row${rows.length === 1 ? '' : 's'}`);
        }
      } finally {
        await client.close();
      }
      return 0;
    } catch (error) {
      const reason = describeError(error);
      const readOnly = /readonly mode/.test(reason) ? ' (query only reads: the enricher writes the tables, `sidecarless init` migrates them)' : '';
      console.error(`query: ${reason.trimEnd()}${readOnly}`);
      return 1;
    }
  },
};
