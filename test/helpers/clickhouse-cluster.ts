/**
 * A throwaway ClickHouse cluster on this machine for the tests of clickhouse.cluster: Apache ZooKeeper (its jars
 * collected by deploy/local/setup.sh into .stack/zookeeper-libs) and three of Debian's clickhouse-server (18.16)
 * processes: shard 1 with replicas r1 and r2, shard 2 with replica r3, with distributed DDL (ON CLUSTER) on. All in
 * a temporary directory, on free loopback ports; stop() kills every process and removes the directory.
 *
 * 18.16, not the engine of the shipped schema (chdb embeds ClickHouse 26.7 but no interserver endpoint, so its
 * replicated tables stay read-only): the cluster's behaviour (ON CLUSTER, replication, Distributed inserts and
 * reads, views on the shards) is the same, and the fixtures it runs keep to 18.16's types.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { answersQuery, clickHouseServerBinary, clickHouseServerConfig, clickHouseUsersConfig, makeClickHouseDirectories } from '../../src/lab/stack/clickhouse-server.js';
import { localHost } from '../../src/lab/stack/endpoints.js';
import { stackDir, waitFor } from '../../src/lab/stack/processes.js';
import type { ClickHouseClient } from '@clickhouse/client';
import { freePort } from './telemetry.js';

export const CLUSTER_NAME = 'sidecarless_test';

export interface ClusterNode {
  shard: number;
  replica: string;
  url: string;
  client: ClickHouseClient;
  /** Kills this node's server (SIGKILL): the cluster with a node down. */
  kill(): Promise<void>;
}

export interface ClickHouseClusterLab {
  nodes: ClusterNode[];
  stop(): Promise<void>;
}

const TOPOLOGY = [
  { shard: 1, replica: 'r1' },
  { shard: 1, replica: 'r2' },
  { shard: 2, replica: 'r3' },
] as const;

const readyTimeoutMs = 30_000;

export async function startClickHouseCluster(): Promise<ClickHouseClusterLab> {
  const home = mkdtempSync(join(tmpdir(), 'sidecarless-ch-cluster-'));
  const processes: ChildProcess[] = [];
  const nodes: ClusterNode[] = [];
  // A test process that ends without stop() (a crash, a cancelled run) still takes its servers with it.
  const killOnExit = () => processes.forEach((child) => child.kill('SIGKILL'));
  process.once('exit', killOnExit);
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.client.close()));
    await Promise.all(processes.map(kill));
    process.removeListener('exit', killOnExit);
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const zookeeperPort = await startZooKeeper(home, processes);
    const ports = await Promise.all(TOPOLOGY.map(async () => ({ http: await freePort(), tcp: await freePort(), interserver: await freePort() })));
    const replicasOf = (shard: number) =>
      TOPOLOGY.map((node, i) => (node.shard === shard ? `<replica><host>${localHost}</host><port>${ports[i]!.tcp}</port></replica>` : '')).join('');
    const shards = [1, 2].map((shard) => `<shard><internal_replication>true</internal_replication>${replicasOf(shard)}</shard>`);
    const usersFile = join(home, 'users.xml');
    writeFileSync(usersFile, clickHouseUsersConfig());
    for (const [i, { shard, replica }] of TOPOLOGY.entries()) {
      const port = ports[i]!;
      const nodeHome = join(home, replica);
      makeClickHouseDirectories(nodeHome);
      const extra = `  <interserver_http_port>${port.interserver}</interserver_http_port>
  <interserver_http_host>${localHost}</interserver_http_host>
  <zookeeper><node><host>${localHost}</host><port>${zookeeperPort}</port></node></zookeeper>
  <macros><shard>${shard}</shard><replica>${replica}</replica></macros>
  <remote_servers><${CLUSTER_NAME}>${shards.join('')}</${CLUSTER_NAME}></remote_servers>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
`;
      const configFile = join(nodeHome, 'config.xml');
      writeFileSync(configFile, clickHouseServerConfig({ home: nodeHome, httpPort: port.http, tcpPort: port.tcp, usersFile, extra }));
      const server = spawnLogged(clickHouseServerBinary(), [`--config-file=${configFile}`], join(nodeHome, 'server.log'), nodeHome);
      processes.push(server);
      const url = `http://${localHost}:${port.http}`;
      nodes.push({ shard, replica, url, client: await createClickHouse({ url, cluster: CLUSTER_NAME }), kill: () => kill(server) });
    }
    for (const node of nodes) {
      await waitFor(() => answersQuery(node.url), { timeoutMs: readyTimeoutMs, what: `ClickHouse ${node.replica} at ${node.url} (log: ${join(home, node.replica, 'server.log')})` });
    }
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A standalone ZooKeeper server on a free port, its data in `home`; resolves once it accepts connections. */
async function startZooKeeper(home: string, processes: ChildProcess[]): Promise<number> {
  const libs = join(stackDir, 'zookeeper-libs');
  let jars: string[];
  try {
    jars = readdirSync(libs).filter((name) => name.endsWith('.jar'));
  } catch {
    jars = [];
  }
  if (jars.length === 0) throw new Error(`no ZooKeeper jars in ${libs}; run \`bash deploy/local/setup.sh\``);
  const port = await freePort();
  const data = join(home, 'zookeeper');
  mkdirSync(data);
  const configFile = join(data, 'zoo.cfg');
  writeFileSync(
    configFile,
    [`tickTime=500`, `dataDir=${data}`, `clientPort=${port}`, `clientPortAddress=${localHost}`, 'admin.enableServer=false', '4lw.commands.whitelist=srvr', ''].join('\n'),
  );
  processes.push(
    spawnLogged('java', ['-Xmx256m', '-cp', `${libs}/*`, 'org.apache.zookeeper.server.ZooKeeperServerMain', configFile], join(data, 'zookeeper.log'), data),
  );
  // Its port accepts connections before it serves them, and a ClickHouse 18.16 that meets it then fails its first
  // DDL: wait until `srvr` reports the server's mode.
  await waitFor(async () => (await fourLetterWord(port, 'srvr')).includes('Mode: standalone'), {
    timeoutMs: readyTimeoutMs,
    what: `ZooKeeper on ${localHost}:${port} to serve (log: ${join(data, 'zookeeper.log')})`,
  });
  return port;
}

/** ZooKeeper's answer to a four-letter command, or '' when it cannot be reached. */
function fourLetterWord(port: number, word: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect({ host: localHost, port }, () => socket.end(word));
    socket.setTimeout(2000, () => socket.destroy());
    socket.on('data', (data: Buffer) => (answer += data.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(''));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

function spawnLogged(command: string, args: string[], log: string, cwd: string): ChildProcess {
  const out = openSync(log, 'a');
  try {
    const child = spawn(command, args, { cwd, stdio: ['ignore', out, out] });
    child.on('error', () => undefined); // a command that cannot start shows as the readiness wait's failure
    return child;
  } finally {
    closeSync(out); // the child has its own copy
  }
}

/** Waits until every replica of every replicated table of `database` on `node` has fetched what its shard holds. */
export async function syncReplicas(node: ClusterNode, database: string): Promise<void> {
  const result = await node.client.query({ query: `SELECT table FROM system.replicas WHERE database = '${database}'`, format: 'JSONEachRow' });
  for (const { table } of await result.json<{ table: string }>()) {
    await node.client.command({ query: `SYSTEM SYNC REPLICA ${database}.\`${table}\`` });
  }
}
