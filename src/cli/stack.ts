/**
 * `sidecarless stack up|down|status [service...]`: the local Kafka, ClickHouse and Kubernetes API server (etcd +
 * kube-apiserver) that tests, the demo and benchmarks run against. The services themselves live in ./stack/.
 */
import { describeError } from '../common/errors.js';
import type { Command } from './command.js';
import { clickHouseServer } from '../lab/stack/clickhouse-server.js';
import { kafkaServer } from '../lab/stack/kafka-server.js';
import { kubernetesServer } from '../lab/stack/kubernetes.js';
import type { ServiceStatus, StackService } from '../lab/stack/service.js';

const services: StackService[] = [kafkaServer, clickHouseServer, kubernetesServer];
const usage = `usage: sidecarless stack up|down|status [${services.map((s) => s.name).join('|')}...]`;
/** `status` exits 3 when something is not running, like an LSB init script, so scripts can test for it. */
const notRunningExitCode = 3;

function line(service: StackService, state: string, status: ServiceStatus, note = ''): string {
  const pid = status.pid === undefined ? '-' : `pid ${status.pid}`;
  return `${service.name.padEnd(11)} ${state.padEnd(8)} ${pid.padEnd(11)} ${status.endpoint}${note ? `  (${note})` : ''}`;
}

async function up(service: StackService): Promise<boolean> {
  const wasRunning = (await service.status()).running;
  const started = Date.now();
  try {
    await service.up();
  } catch (error) {
    console.error(`${service.name}: ${describeError(error)}`);
    return false;
  }
  const note = wasRunning ? 'already running' : `started in ${((Date.now() - started) / 1000).toFixed(1)} s`;
  console.log(line(service, 'ready', await service.status(), note));
  return true;
}

async function down(service: StackService): Promise<boolean> {
  const before = await service.status();
  try {
    await service.down();
  } catch (error) {
    console.error(`${service.name}: ${describeError(error)}`);
    return false;
  }
  console.log(line(service, 'stopped', before, before.running ? '' : 'was not running'));
  return true;
}

export const stackCommand: Command = {
  summary: 'start, stop or inspect the local Kafka, ClickHouse and Kubernetes API server (up | down | status)',

  async run(args) {
    const [action, ...names] = args;
    const unknown = names.filter((name) => !services.some((s) => s.name === name));
    if (unknown.length > 0) {
      console.error(`unknown service ${unknown.join(', ')}\n${usage}`);
      return 2;
    }
    const selected = names.length === 0 ? services : services.filter((s) => names.includes(s.name));
    switch (action) {
      case 'up': {
        // Independent services start concurrently: Kafka's JVM dominates the wait either way (the API server waits for
        // its etcd inside its own service).
        const results = await Promise.all(selected.map(up));
        return results.every(Boolean) ? 0 : 1;
      }
      case 'down': {
        const results = await Promise.all(selected.map(down));
        return results.every(Boolean) ? 0 : 1;
      }
      case 'status': {
        const statuses = await Promise.all(selected.map((s) => s.status()));
        selected.forEach((service, i) => {
          const status = statuses[i]!;
          console.log(line(service, status.running ? 'running' : 'stopped', status));
        });
        return statuses.every((s) => s.running) ? 0 : notRunningExitCode;
      }
      default:
        console.error(usage);
        return action === undefined || action === 'help' || action === '--help' ? 0 : 2;
    }
  },
};
