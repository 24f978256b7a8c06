/**
 * Wiring of the collector role: the kernel probe, Kafka, the Avro codec and the Collector pipeline.
 */
import { loadRegistry } from '../common/avro.js';
import { createKafka, ensureTopics, kafkaOptionsFromConfig, topicSpecs } from '../common/kafka.js';
import { BootClock } from '../ebpf/clock.js';
import type { RoleContext, RunningRole } from '../cli/role.js';
import { Collector } from './collector.js';
import { FLOWS_SUBJECT, type FlowBatch, type FlowEvent } from './flow-event.js';
import { FlowProbe } from './flow-probe.js';
import { KafkaSink } from './kafka-sink.js';

export async function startCollector({ config, logger, telemetry }: RoleContext): Promise<RunningRole & { collector: Collector }> {
  const codec = loadRegistry().codec<FlowBatch>(FLOWS_SUBJECT);
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'collector'), logger);
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
  const admin = kafka.admin();
  await admin.connect();
  let partitions: number;
  try {
    await ensureTopics(admin, [topics.flows, topics.deadletter]);
    const metadata = await admin.fetchTopicMetadata({ topics: [topics.flows.topic] });
    partitions = metadata.topics[0]?.partitions.length ?? 0;
  } finally {
    await admin.disconnect();
  }

  const probe = FlowProbe.load(config.collector);
  const clock = new BootClock();
  const resync = setInterval(() => clock.resync(), 60_000);
  const sink = new KafkaSink(kafka, topics.flows.topic, config.node.name);
  const collector = new Collector(
    {
      reader: probe.reader,
      sink,
      partitions,
      encode: (events: FlowEvent[]) => codec.encode({ events }),
      context: { nodeName: config.node.name, epoch: Date.now().toString(36), toWallNs: (ns) => clock.toWallNs(ns) },
      takeKernelDrops: () => probe.takeKernelDrops(),
      stopSources: () => probe.detachPrograms(),
      logger: logger.child({ role: 'collector' }),
      meter: telemetry.meter('sidecarless.collector'),
    },
    config.collector,
  );
  telemetry.addHealthCheck('kafka_queue', () => ({ ok: collector.queuedEvents < config.collector.queueEvents, detail: `${collector.queuedEvents} events queued` }));
  collector.start();
  logger.info({ topic: topics.flows.topic, partitions, cgroups: config.collector.cgroups }, 'collector running');
  return {
    collector,
    failed: collector.failed,
    async stop() {
      clearInterval(resync);
      await collector.stop();
      probe.close();
      logger.info({ stats: collector.stats }, 'collector final counts');
    },
  };
}
