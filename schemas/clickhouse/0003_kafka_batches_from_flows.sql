-- Where each partition stood before kafka_batches existed (the first release kept it only as max(kafka_offset) of
-- flows): one row per topic partition at its highest stored offset, generation 0, without fingerprints. The enricher
-- never replays such a row (its batch is unknown) and treats the offsets up to it as stored, as that release did.
-- Running twice inserts equal rows, which readers take as one. Migration 3 (rules: src/common/clickhouse/migrations.ts).
INSERT INTO {{database}}.kafka_batches (kafka_topic, kafka_partition, generation, first_offset, last_offset)
SELECT kafka_topic, kafka_partition, 0, max(kafka_offset), max(kafka_offset)
FROM {{database}}.flows
GROUP BY kafka_topic, kafka_partition
