/** The cluster view as of now: metadata.v1 read from its beginning to the end offsets of the moment the read began. */
import type { Kafka } from 'kafkajs';
import type { Registry } from '../common/avro.js';
import { readToEnd } from '../common/kafka/read-to-end.js';
import type { Logger } from '../common/logger.js';
import { bindMetadataCodec } from '../events/metadata.js';
import { ClusterViewBuilder } from './cluster-view.js';
import type { ClusterView } from './compile/cluster.js';

export async function replayClusterView(kafka: Kafka, topic: string, registry: Registry, logger: Logger): Promise<ClusterView> {
  const codec = bindMetadataCodec(registry);
  const builder = new ClusterViewBuilder();
  await readToEnd(kafka, topic, (message) => builder.apply(codec.decode(message.key, message.value, message.timestamp)), { groupPrefix: 'sidecarless-policy-metadata', logger });
  return builder.view();
}
