/**
 * The topics of DESIGN.md, by role, with their retention: the catalog every role creates (ensureTopics) and reads.
 */
import type { TopicSpec } from '../common/kafka/topics.js';
import { DEADLETTER } from './deadletter.js';
import { FLOWS } from './flows.js';
import { HTTP } from './http.js';
import { METADATA } from './metadata.js';
import { POLICIES } from './policies.js';
import { VERDICTS } from './verdicts.js';

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
 *
 * Metadata is also history: a replay of the events still retained joins each with the metadata of its own time,
 * so the states and tombstones an event may be joined with must outlive it. Its compaction therefore spares every
 * record younger than the events' retention (min.compaction.lag.ms: a superseded state stays until then) and keeps
 * tombstones as long (delete.retention.ms: a deletion stays visible to a reader that replays from the beginning).
 * Policies are not: the enforcer replays them for current state only (no event is joined with the policy of its
 * time; a verdict carries the policy name it was decided by), so compaction may drop what is superseded at once.
 */
export function topicSpecs(prefix = 'sidecarless.', options: TopicCatalogOptions = {}): Record<TopicRole, TopicSpec> {
  const partitions = options.partitions ?? 6;
  const base = options.replicationFactor === undefined ? { partitions } : { partitions, replicationFactor: options.replicationFactor };
  const timed = (name: string, retentionMs: number): TopicSpec => ({
    ...base,
    topic: `${prefix}${name}`,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(retentionMs) },
  });
  const compacted = (name: string, historyMs?: number): TopicSpec => ({
    ...base,
    topic: `${prefix}${name}`,
    configs: { 'cleanup.policy': 'compact', ...(historyMs !== undefined && { 'min.compaction.lag.ms': String(historyMs), 'delete.retention.ms': String(historyMs) }) },
    ...(historyMs !== undefined && { minimums: { 'min.compaction.lag.ms': historyMs, 'delete.retention.ms': historyMs } }),
  });
  const retentionMs = options.retentionMs ?? 7 * day;
  return {
    flows: timed(FLOWS.topic, retentionMs),
    http: timed(HTTP.topic, retentionMs),
    verdicts: timed(VERDICTS.topic, retentionMs),
    metadata: compacted(METADATA.topic, retentionMs),
    policies: compacted(POLICIES.topic),
    deadletter: timed(DEADLETTER.topic, options.deadLetterRetentionMs ?? 30 * day),
  };
}

