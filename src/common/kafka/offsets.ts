/**
 * A topic's offsets (admin.fetchTopicOffsets), asked again while its partitions' leaders are not serving yet.
 *
 * kafkajs retries that call only for an unknown topic and gives up at once on NOT_LEADER_OR_FOLLOWER or
 * LEADER_NOT_AVAILABLE, which a topic created a moment earlier (by this process or another one starting beside it)
 * answers until the broker has taken up its leadership: `createTopics({ waitForLeaders })` waits for the metadata
 * to name a leader, not for that leader to answer. Seen in CI: a role starting right after creating its topic
 * failed its start on ListOffsets.
 */
import type { Admin } from 'kafkajs';
import { whileRetriable } from './retriable.js';

type TopicOffsets = Awaited<ReturnType<Admin['fetchTopicOffsets']>>;

const DEFAULT_TIMEOUT_MS = 10_000;

export async function fetchTopicOffsets(admin: Admin, topic: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TopicOffsets> {
  return whileRetriable(() => admin.fetchTopicOffsets(topic), timeoutMs);
}
