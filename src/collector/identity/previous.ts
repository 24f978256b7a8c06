/**
 * What earlier runs of this node's collector left on the metadata topic: the latest message under each
 * `cgroup/<node>/` key, read to the topic's end offsets at start.
 *
 * Why read it back rather than publish the full set again: a collector that did not run for a while (a node
 * reboot, a crash loop, an upgrade) cannot tombstone cgroups removed meanwhile unless it knows they were published;
 * compaction would keep them forever. And events still in the ring from such a cgroup would otherwise look unknown,
 * and their empty placeholder would replace the real identity as the key's last value. The cost: each start reads
 * the compacted topic once (all nodes' cgroups and the cluster's objects, typically megabytes).
 */
import type { Kafka } from 'kafkajs';
import type { Logger } from '../../common/logger.js';
import { readToEnd } from '../../common/kafka/read-to-end.js';
import { cgroupKey, type CgroupState, type MetadataCodec } from '../../events/metadata.js';

/** Cgroup id -> its last published state, or null when the last message is a tombstone. */
export async function previousIdentities(
  kafka: Kafka,
  topic: string,
  node: string,
  codec: MetadataCodec,
  logger: Logger,
): Promise<Map<bigint, CgroupState | null>> {
  const prefix = cgroupKey(node, 0n).slice(0, -1);
  const previous = new Map<bigint, CgroupState | null>();
  let unreadable = 0;
  const messages = await readToEnd(
    kafka,
    topic,
    (message) => {
      const key = message.key?.toString('utf8');
      if (key === undefined || !key.startsWith(prefix)) return;
      try {
        const change = codec.decode(message.key, message.value, message.timestamp);
        const id = BigInt(key.slice(prefix.length));
        previous.set(id, 'event' in change ? change.event.cgroup : null);
      } catch (error) {
        // Published again by the first scan if the cgroup is still there: nothing is lost by skipping it.
        if (unreadable++ === 0) logger.warn({ err: error, key, offset: message.offset }, 'an unreadable cgroup identity on the metadata topic is skipped');
      }
    },
    { groupPrefix: `sidecarless-collector-${node}`, logger },
  );
  logger.info({ messages, cgroups: previous.size, unreadable }, 'read the cgroup identities published before');
  return previous;
}
