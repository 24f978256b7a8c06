/**
 * Where the local stack listens. One module so the stack, the tests and the demo agree on the addresses; every
 * port can be moved with an environment variable when the default collides with something on the machine.
 */
import { ConfigError } from '../../common/errors.js';

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(name, `expected a TCP port (1-65535), got "${raw}"`);
  }
  return port;
}

/** The stack binds loopback only: it has no authentication. */
export const localHost = '127.0.0.1';

export const kafkaPort = portFromEnv('SIDECARLESS_STACK_KAFKA_PORT', 19092);
export const kafkaControllerPort = portFromEnv('SIDECARLESS_STACK_KAFKA_CONTROLLER_PORT', 19093);
export const clickHouseHttpPort = portFromEnv('SIDECARLESS_STACK_CLICKHOUSE_HTTP_PORT', 18123);
export const clickHouseTcpPort = portFromEnv('SIDECARLESS_STACK_CLICKHOUSE_TCP_PORT', 19000);

export const localKafkaBrokers: readonly string[] = [`${localHost}:${kafkaPort}`];
export const localClickHouseUrl = `http://${localHost}:${clickHouseHttpPort}`;

export const etcdClientPort = portFromEnv('SIDECARLESS_STACK_ETCD_PORT', 12379);
export const etcdPeerPort = portFromEnv('SIDECARLESS_STACK_ETCD_PEER_PORT', 12380);
export const kubeApiServerPort = portFromEnv('SIDECARLESS_STACK_KUBE_APISERVER_PORT', 16443);

export const localEtcdUrl = `http://${localHost}:${etcdClientPort}`;
export const localKubeApiServerUrl = `https://${localHost}:${kubeApiServerPort}`;
