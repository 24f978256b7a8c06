/**
 * Wiring of the metadata role (`sidecarless metadata`, one per cluster): a source of Kubernetes objects, the API
 * server's informers or a YAML file, publishing to the compacted metadata topic.
 *
 * 1. Configuration first (the kubeconfig), so a bad one fails before anything connects.
 * 2. The topic is created if missing, then read back to its end offsets of that moment: the latest message of
 *    every key tells the publisher what this source has already published, so a restart publishes only what
 *    differs, and tombstones what was deleted while no publisher ran (once each kind has been listed).
 * 3. The source starts; a watermark (now - metadata.watermarkLagMs) is queued every metadata.watermarkMs while
 *    the source observes every change.
 * 4. Stop: a last watermark (if the source is synced), the source stops, the queue drains (bounded), the
 *    producer disconnects.
 */
import { loadRegistry } from '../common/avro.js';
import { describeError } from '../common/errors.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { readToEnd } from '../common/kafka/read-to-end.js';
import { KeyedKafkaSink } from '../common/kafka/sink.js';
import { ensureTopics } from '../common/kafka/topics.js';
import type { RoleContext, RunningRole } from '../common/role.js';
import { bindMetadataCodec } from '../events/metadata.js';
import { bindPoliciesCodec } from '../events/policies.js';
import { topicSpecs } from '../events/topics.js';
import { observationClock } from './watch/clock.js';
import { FileSource } from './watch/file-source.js';
import { KubeSource } from './watch/kube-source.js';
import { loadKubeConfig } from './watch/kubeconfig.js';
import { PolicyWatch } from './watch/policy-watch.js';
import { MetadataPublisher } from './watch/publisher.js';

export interface MetadataRoleOptions {
  /** A YAML file to publish instead of watching an API server; overrides metadata.file (`--file`). */
  file?: string;
}

export interface RunningMetadata extends RunningRole {
  publisher: MetadataPublisher;
  source: KubeSource | FileSource;
  /** The NetworkPolicy watch (metadata.networkPolicies, with an API server). */
  policies: PolicyWatch | undefined;
}

/** How long a stop waits for Kafka to take what is queued. */
const DRAIN_TIMEOUT_MS = 10_000;

export async function startMetadata({ config, logger, telemetry }: RoleContext, options: MetadataRoleOptions = {}): Promise<RunningMetadata> {
  const log = logger.child({ role: 'metadata' });
  const file = options.file ?? config.metadata.file;
  const kube = file === undefined ? loadKubeConfig(config.metadata.kubeconfig) : undefined;
  const sourceName = `${file === undefined ? 'kubernetes' : 'file'}/${config.metadata.cluster}`;
  const codec = bindMetadataCodec(loadRegistry());
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'metadata'), logger);
  const { metadata: topic, policies: policiesTopic } = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
  const watchPolicies = kube !== undefined && config.metadata.networkPolicies;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, watchPolicies ? [topic, policiesTopic] : [topic], log);
  } finally {
    await admin.disconnect();
  }

  const meter = telemetry.meter('sidecarless.metadata');
  const clock = observationClock();
  const publisher = new MetadataPublisher({
    source: sourceName,
    codec,
    sink: new KeyedKafkaSink(kafka, topic.topic),
    clock,
    meter,
    logger: log,
    maxQueued: config.metadata.queueMessages,
    watermarkLagMs: config.metadata.watermarkLagMs,
  });
  let undecodable = 0;
  const started = Date.now();
  const messages = await readToEnd(
    kafka,
    topic.topic,
    ({ key, value, timestamp }) => {
      try {
        publisher.restore(codec.decode(key, value, timestamp));
      } catch (error) {
        // Not a message of any sidecarless writer, so not this source's: it does not change what to publish.
        if (undecodable++ === 0) log.warn({ topic: topic.topic, err: describeError(error) }, 'a message of the metadata topic does not decode; ignored while reading back');
      }
    },
    { groupPrefix: `${config.kafka.clientId}-metadata-readback`, logger: log },
  );
  log.info({ topic: topic.topic, messages, undecodable, ms: Date.now() - started, source: sourceName }, 'metadata topic read back');

  const policies = watchPolicies ? await startPolicyWatch() : undefined;
  async function startPolicyWatch(): Promise<PolicyWatch> {
    const policiesCodec = bindPoliciesCodec(loadRegistry());
    const watch = new PolicyWatch({ kubeConfig: kube!.kubeConfig, sink: new KeyedKafkaSink(kafka, policiesTopic.topic), codec: policiesCodec, source: sourceName, meter, logger: log });
    await readToEnd(kafka, policiesTopic.topic, ({ key, value }) => {
      try {
        watch.restore(policiesCodec.decode(key, value));
      } catch (error) {
        log.warn({ topic: policiesTopic.topic, err: describeError(error) }, 'a message of the policies topic does not decode; ignored while reading back');
      }
    }, { groupPrefix: `${config.kafka.clientId}-policies-readback`, logger: log });
    watch.start();
    telemetry.addHealthCheck('network_policies', watch.health);
    return watch;
  }

  const source = kube === undefined
    ? new FileSource({ path: file!, publisher, clock, logger: log })
    : new KubeSource({ kubeConfig: kube.kubeConfig, publisher, clock, meter, logger: log, watermarkLagMs: config.metadata.watermarkLagMs });
  try {
    await source.start();
  } catch (error) {
    await policies?.stop(0);
    await publisher.drain(0);
    throw error;
  }
  const watermarks = setInterval(() => source.ready() && publisher.watermark(), config.metadata.watermarkMs);
  telemetry.addHealthCheck('source', source.health);
  telemetry.addHealthCheck('kafka_queue', () => ({ ok: publisher.stats.queued < config.metadata.queueMessages, detail: `${publisher.stats.queued} messages queued` }));
  log.info({ source: sourceName, topic: topic.topic, ...(kube ? { kubeconfig: kube.from } : { file }) }, 'metadata running');
  return {
    publisher,
    source,
    policies,
    async stop() {
      clearInterval(watermarks);
      if (source.ready()) publisher.watermark();
      await policies?.stop(DRAIN_TIMEOUT_MS);
      await source.stop();
      await publisher.drain(DRAIN_TIMEOUT_MS);
      log.info({ stats: publisher.stats }, 'metadata final counts');
    },
  };
}
