/**
 * The topics of DESIGN.md, by role, with their retention: the catalog every role creates (ensureTopics) and reads.
 */
import type { TopicSpec } from '../common/kafka/topics.js';
import { FLOWS } from './flows.js';
import { METADATA } from './metadata.js';

export type TopicRole = 'flows' | 'http' | 'verdicts' | 'metadata' | 'policies' | 'deadletter';

export interface TopicCatalogOptions {
  partitions?: number;
  replicationFactor?: number;
  /** Retention of the event topics (flows, http, verdicts). */
  retentionMs?: number;
  /** Retention of the dead-letter topic. */
  deadLetterRetentionMs?: number;
}

const day = 24 * 60 * 60 * 1000;

/**
 * The topics of DESIGN.md. Events expire by time; metadata and policies are compacted because replaying them must
 * rebuild current state (the latest value per key, deletions as tombstones) however old it is. Dead letters are
 * kept longer than events: someone has to look at them.
 */
export function topicSpecs(prefix = 'sidecarless.', options: TopicCatalogOptions = {}): Record<TopicRole, TopicSpec> {
  const partitions = options.partitions ?? 6;
  const base = options.replicationFactor === undefined ? { partitions } : { partitions, replicationFactor: options.replicationFactor };
  const timed = (name: string, retentionMs: number): TopicSpec => ({
    ...base,
    topic: `${prefix}${name}`,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(retentionMs) },
  });
  const compacted = (name: string): TopicSpec => ({ ...base, topic: `${prefix}${name}`, configs: { 'cleanup.policy': 'compact' } });
  const retentionMs = options.retentionMs ?? 7 * day;
  return {
    flows: timed(FLOWS.topic, retentionMs),
    http: timed('http.v1', retentionMs),
    verdicts: timed('verdicts.v1', retentionMs),
    metadata: compacted(METADATA.topic),
    policies: compacted('policies.v1'),
    deadletter: timed('deadletter.v1', options.deadLetterRetentionMs ?? 30 * day),
  };
}

