/**
 * `sidecarless policy apply -f FILE | delete NAMESPACE/NAME | list [-o yaml] | explain --from NS/POD --to NS/POD
 * --port P[/PROTO]`: NetworkPolicies on the policies topic for clusters without the API server watch, and for tests;
 * explain replays metadata.v1 and policies.v1 to their ends, compiles them and reads the verdict from the MapState. `apply` validates every document of the file first and
 * publishes nothing if any is invalid (each problem printed with its document, field path and reason; exit 1).
 * Configuration (Kafka, topic prefix): src/common/config.ts, `--config PATH` or SIDECARLESS_* variables.
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { stringify } from 'yaml';
import type { Kafka } from 'kafkajs';
import { loadRegistry, type Registry } from '../common/avro.js';
import { loadConfig } from '../common/config.js';
import { describeError } from '../common/errors.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { ensureTopics } from '../common/kafka/topics.js';
import { createLogger, type Logger } from '../common/logger.js';
import { compilePolicies } from '../enforcer/compile/compile.js';
import { explain } from '../enforcer/compile/explain.js';
import { explanationLines } from '../enforcer/compile/explain-report.js';
import { replayClusterView } from '../enforcer/metadata-replay.js';
import { PolicyTopic } from '../enforcer/policy-topic.js';
import { parsePolicies, PolicyDocumentError } from '../events/networkpolicy/document.js';
import { policyFromEvent } from '../events/networkpolicy/event.js';
import { policyDocument } from '../events/networkpolicy/render.js';
import type { Protocol } from '../events/networkpolicy/types.js';
import { topicSpecs } from '../events/topics.js';
import { parsePortProtocol, type Command } from './command.js';

const USAGE = `usage: sidecarless policy apply -f FILE | delete NAMESPACE/NAME | list [-o yaml]
                          | explain --from NAMESPACE/POD --to NAMESPACE/POD --port PORT[/TCP|UDP|SCTP]   [--config PATH]`;

/** Takes `flag VALUE` or `flag=VALUE` out of args. */
function takeOption(args: string[], ...flags: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    for (const flag of flags) {
      if (arg === flag) return args.splice(i, 2)[1];
      if (arg.startsWith(`${flag}=`)) return args.splice(i, 1)[0]!.slice(flag.length + 1);
    }
  }
  return undefined;
}

/** Arguments left after a verb's own: only `--config PATH` may remain. */
function leftoverProblem(rest: string[]): string | null {
  const args = [...rest];
  takeOption(args, '--config');
  return args.length === 0 ? null : `unexpected argument ${JSON.stringify(args[0])}`;
}

interface Connection {
  kafka: Kafka;
  registry: Registry;
  logger: Logger;
  policies: PolicyTopic;
  metadataTopic: string;
}

/** Kafka per the configuration, with the policies topic created if missing (and the metadata topic, if asked). */
async function connect(rest: string[], withMetadata = false): Promise<Connection> {
  const config = loadConfig({ argv: rest });
  const logger = createLogger({ level: 'warn', name: 'policy' });
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'policy'), logger);
  const specs = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, withMetadata ? [specs.policies, specs.metadata] : [specs.policies], logger);
  } finally {
    await admin.disconnect();
  }
  const registry = loadRegistry();
  return { kafka, registry, logger, policies: new PolicyTopic(kafka, specs.policies.topic, registry, logger), metadataTopic: specs.metadata.topic };
}

async function apply(args: string[]): Promise<number> {
  const file = takeOption(args, '-f', '--filename');
  if (file === undefined || file === '') {
    console.error(`policy apply: expected -f FILE\n${USAGE}`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    console.error(`policy apply: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? describeError(error)}`);
    return 1;
  }
  let policies;
  try {
    policies = parsePolicies(text);
  } catch (error) {
    if (!(error instanceof PolicyDocumentError)) throw error;
    console.error(`policy apply: ${file} is refused, nothing was published:\n${error.message}`);
    return 1;
  }
  const source = `cli/${userInfo().username}@${hostname()}`;
  await writing(args, (topic) => topic.publish(policies, source));
  for (const policy of policies) console.log(`${policy.namespace}/${policy.name} published`);
  return 0;
}

/** Connects, writes to the policies topic, and disconnects the producer whatever happened. */
async function writing(args: string[], write: (topic: PolicyTopic) => Promise<void>): Promise<void> {
  const { policies: topic } = await connect(args);
  try {
    await write(topic);
  } finally {
    await topic.shutdown();
  }
}

async function remove(args: string[]): Promise<number> {
  const key = args.shift();
  if (key === undefined || !/^[^/\s]+\/[^/\s]+$/.test(key)) {
    console.error(`policy delete: expected NAMESPACE/NAME\n${USAGE}`);
    return 2;
  }
  await writing(args, (topic) => topic.delete(key));
  console.log(`${key} deleted`);
  return 0;
}

async function list(args: string[]): Promise<number> {
  const output = takeOption(args, '-o', '--output') ?? 'table';
  if (output !== 'table' && output !== 'yaml') {
    console.error(`policy list: -o takes table or yaml\n${USAGE}`);
    return 2;
  }
  const live = await (await connect(args)).policies.live();
  const events = [...live.values()].sort((a, b) => (a.policy_key < b.policy_key ? -1 : 1));
  if (output === 'yaml') {
    process.stdout.write(events.map((event) => stringify(policyDocument(policyFromEvent(event)))).join('---\n'));
  } else {
    for (const event of events) {
      const changed = new Date(Number(event.change_time_ns / 1_000_000n)).toISOString();
      console.log([event.policy_key, event.policy_types.join(','), event.audit ? 'audit' : 'enforce', event.source, changed].join('\t'));
    }
  }
  return 0;
}

async function explainCommand(args: string[]): Promise<number> {
  const from = takeOption(args, '--from');
  const to = takeOption(args, '--to');
  const probe = parsePortProtocol<Protocol>(takeOption(args, '--port'), ['TCP', 'UDP', 'SCTP']);
  if (from === undefined || to === undefined || probe === undefined) {
    console.error(`policy explain: expected --from NAMESPACE/POD --to NAMESPACE/POD --port PORT[/TCP|UDP|SCTP]\n${USAGE}`);
    return 2;
  }
  const connection = await connect(args, true);
  const [cluster, live] = await Promise.all([replayClusterView(connection.kafka, connection.metadataTopic, connection.registry, connection.logger), connection.policies.live()]);
  const compiled = compilePolicies([...live.values()].map(policyFromEvent), cluster);
  const ends = [from, to].map((name) => {
    const pod = cluster.pods.find((p) => `${p.namespace}/${p.name}` === name);
    return pod === undefined || pod.ips.length === 0 ? undefined : { identity: compiled.identities.ofPod.get(name), ip: pod.ips[0]! };
  });
  const missing = [from, to].filter((_, i) => ends[i] === undefined);
  if (missing.length > 0) {
    console.error(`policy explain: ${missing.join(', ')}: no such running pod with an IP in ${connection.metadataTopic} (is \`sidecarless metadata\` publishing?)`);
    return 1;
  }
  const explanation = explain(compiled, ends[0]!, ends[1]!, probe.port, probe.protocol);
  for (const line of explanationLines(from, to, probe.port, probe.protocol, explanation)) console.log(line);
  return 0;
}

export const policyCommand: Command = {
  summary: 'publish, delete and list NetworkPolicies on the policies topic',
  async run(args) {
    const [verb, ...rest] = args;
    const own = verb === 'apply' ? ['-f', '--filename'] : verb === 'list' ? ['-o', '--output'] : verb === 'explain' ? ['--from', '--to', '--port'] : [];
    const others = [...rest];
    for (const flag of own) takeOption(others, flag);
    if (verb === 'delete') others.shift();
    const problem = leftoverProblem(others);
    if (problem !== null) {
      console.error(`policy ${verb}: ${problem}\n${USAGE}`);
      return 2;
    }
    try {
      if (verb === 'apply') return await apply(rest);
      if (verb === 'delete') return await remove(rest);
      if (verb === 'list') return await list(rest);
      if (verb === 'explain') return await explainCommand(rest);
    } catch (error) {
      console.error(`policy ${verb}: ${describeError(error)}`);
      return 1;
    }
    console.error(USAGE);
    return verb === undefined || verb === 'help' || verb === '--help' ? 0 : 2;
  },
};
