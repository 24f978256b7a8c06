/**
 * A ClickHouse server for the local stack: Debian's clickhouse-server package (an old 18.16 release), started
 * with a generated config under .stack/clickhouse instead of /etc, so it needs no root-owned directories and
 * never collides with a system instance. It proves the HTTP transport; the modern schema runs on chdb.
 *
 * 1. Write config.xml and users.xml (regenerated on every start, so a changed port takes effect).
 * 2. Start the server detached; the config path in its command line marks the process as ours.
 * 3. Ready when `SELECT 1` answers over HTTP.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SidecarlessError } from '../../common/errors.js';
import { clickHouseHttpPort, clickHouseTcpPort, localClickHouseUrl, localHost } from './endpoints.js';
import { displayPath, ensurePortsFree, logFile, runningPid, spawnDetached, stackDir, stopProcess, waitFor } from './processes.js';
import type { ServiceStatus, StackService } from './service.js';

const name = 'clickhouse';
const home = join(stackDir, 'clickhouse');
const configFile = join(home, 'config.xml');
const usersFile = join(home, 'users.xml');
const binaries = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server'];
const readyTimeoutMs = 30_000;
const stopGraceMs = 15_000;

/** Where one server listens and keeps its files; `extra` is XML added inside the root element (cluster settings). */
export interface ClickHouseServerLayout {
  home: string;
  httpPort: number;
  tcpPort: number;
  usersFile: string;
  extra?: string;
}

// 18.16 still uses the <yandex> root element. The logger writes to the console only, which the caller sends to a
// log file of the server's own. Caches are sized for a laptop, not for a server.
export function clickHouseServerConfig(layout: ClickHouseServerLayout): string {
  const { home } = layout;
  return `<?xml version="1.0"?>
<!-- Generated on every start by src/lab/stack/clickhouse-server.ts; edit it there. -->
<yandex>
  <logger>
    <level>information</level>
    <console>1</console>
  </logger>
  <listen_host>${localHost}</listen_host>
  <http_port>${layout.httpPort}</http_port>
  <tcp_port>${layout.tcpPort}</tcp_port>
  <path>${home}/data/</path>
  <tmp_path>${home}/tmp/</tmp_path>
  <user_files_path>${home}/user_files/</user_files_path>
  <format_schema_path>${home}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <timezone>UTC</timezone>
  <users_config>${layout.usersFile}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
${layout.extra ?? ''}</yandex>
`;
}

/** The directories a server's config names, created before it starts. */
export function makeClickHouseDirectories(home: string): void {
  for (const dir of ['data', 'tmp', 'user_files', 'format_schemas']) mkdirSync(join(home, dir), { recursive: true });
}

// The `default` user has no password, which is acceptable only because the server listens on loopback and the
// user is additionally restricted to loopback peers.
export function clickHouseUsersConfig(): string {
  return `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>2000000000</max_memory_usage>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`;
}

export function clickHouseServerBinary(): string {
  const found = binaries.find((path) => existsSync(path));
  if (found === undefined) {
    throw new SidecarlessError(`no clickhouse-server at ${binaries.join(' or ')}; run \`bash deploy/local/setup.sh\` to install it`, {
      context: { component: name },
    });
  }
  return found;
}

/** Whether the server at `url` answers SELECT 1 over HTTP. */
export async function answersQuery(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/?query=${encodeURIComponent('SELECT 1')}`, { signal: AbortSignal.timeout(2000) });
    return response.ok && (await response.text()) === '1\n';
  } catch {
    return false;
  }
}

export const clickHouseServer: StackService = {
  name,

  async up() {
    if (runningPid(name, configFile) === undefined) {
      await ensurePortsFree(name, localHost, {
        SIDECARLESS_STACK_CLICKHOUSE_HTTP_PORT: clickHouseHttpPort,
        SIDECARLESS_STACK_CLICKHOUSE_TCP_PORT: clickHouseTcpPort,
      });
      const binary = clickHouseServerBinary();
      makeClickHouseDirectories(home);
      writeFileSync(configFile, clickHouseServerConfig({ home, httpPort: clickHouseHttpPort, tcpPort: clickHouseTcpPort, usersFile }));
      writeFileSync(usersFile, clickHouseUsersConfig());
      spawnDetached({ name, command: binary, args: [`--config-file=${configFile}`], marker: configFile, cwd: home });
    }
    try {
      await waitFor(
        async () => {
          if (runningPid(name, configFile) === undefined) throw new Error('the ClickHouse process exited during start-up');
          return answersQuery(localClickHouseUrl);
        },
        { timeoutMs: readyTimeoutMs, what: `ClickHouse at ${localClickHouseUrl} to answer SELECT 1` },
      );
    } catch (error) {
      await stopProcess(name, configFile, stopGraceMs);
      throw new SidecarlessError(`${(error as Error).message}; see ${displayPath(logFile(name))}`, {
        context: { component: name },
        cause: error,
      });
    }
  },

  async down() {
    await stopProcess(name, configFile, stopGraceMs);
  },

  async status(): Promise<ServiceStatus> {
    const pid = runningPid(name, configFile);
    return pid === undefined ? { running: false, endpoint: localClickHouseUrl } : { running: true, pid, endpoint: localClickHouseUrl };
  },
};
