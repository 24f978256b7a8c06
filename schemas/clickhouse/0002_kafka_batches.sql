-- One row per batch of Kafka messages the enricher stores, written before the batch's insert
-- (src/enricher/batch-ledger.ts says how it is read and written):
-- - a restart replays the latest recorded batch of a partition exactly (the same messages, so the same rows and the
--   same deduplication token), which ClickHouse deduplicates part by part: an insert whose rows span two days of
--   `flows` is two parts, and a crash can fall between them;
-- - the fingerprints of a batch's first and last message tell whether the topic still holds what was stored from
--   it: a topic deleted and recreated starts its offsets again with other messages, which the enricher then stores
--   as the next generation of that topic partition (its offsets and tokens apart from the earlier ones).
-- Rows expire with the flows they describe. Migration 2 (rules for these files: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.kafka_batches
(
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    generation UInt32 COMMENT '0, then +1 each time the topic partition was found recreated (or truncated)',
    first_offset UInt64,
    last_offset UInt64,
    first_fingerprint String COMMENT 'of the first message (timestamp, key, value); empty = unknown (migration 3)',
    last_fingerprint String COMMENT 'of the last message',
    recorded_at DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY (kafka_topic, kafka_partition, generation, last_offset)
TTL recorded_at + INTERVAL {{ttl_days}} DAY
