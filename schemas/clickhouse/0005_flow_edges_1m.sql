-- Workload-to-workload edges per minute, filled from `flows` by the view of migration 6: per observing side,
-- client workload, server workload, the Service the server address belongs to and the server port, the connections
-- that ended in the minute, the failed ones, bytes each way, retransmits, and the RTT distribution, on a log scale:
-- rtt_code holds the quantilesTiming state of each sampled connection's code round(56 * ln(rtt_us)) (0 to 1023:
-- 1 µs to 85.8 s, longer RTTs clamped), whose quantiles quantileTiming keeps exactly (it counts every value below
-- 1024 apart), so a quantile decodes to exp(code / 56) µs within 0.9% (half a step of e^(1/56)):
--   arrayMap(code -> round(exp(code / 56)), quantilesTimingMerge(0.5, 0.9, 0.99)(rtt_code))  -- µs; nan: no sample
-- Rather than a t-digest state per row, which took most of this rollup's cost: nearly every row of a busy cluster is
-- its own edge-minute at insert (bench/enrich-join). observer_side is part of the key because a connection between
-- two traced pods is seen, and counted, from both sides: query one side.
--
-- Exactly once, like `flows`: the view's insert into this table carries a deduplication token derived from the
-- enricher's token for the `flows` insert, and this table keeps a deduplication window, so a replayed insert adds
-- nothing twice. It is partitioned by day, like `flows`, because ClickHouse deduplicates part by part and a crash
-- can cut an insert between two days: the replay must find the same day parts here as there. With coarser
-- partitions (a month) the cut insert's first day would be a part under the replay's token, and the replay's part
-- (both days) would be dropped whole as its repeat, losing the second day.
-- Kept at least 30 days, longer than the rows it summarizes when clickhouse.ttlDays is longer.
-- Migration 5 (rules: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.flow_edges_1m
(
    minute DateTime,
    observer_side Enum8('client' = 1, 'server' = 2),
    client_k8s_namespace_name LowCardinality(String),
    client_k8s_workload_kind LowCardinality(String),
    client_k8s_workload_name LowCardinality(String),
    server_k8s_namespace_name LowCardinality(String),
    server_k8s_workload_kind LowCardinality(String),
    server_k8s_workload_name LowCardinality(String),
    server_k8s_service_name LowCardinality(String),
    server_port UInt16,
    connections SimpleAggregateFunction(sum, UInt64),
    failed_connections SimpleAggregateFunction(sum, UInt64) COMMENT 'no handshake, or refused, or connect timeout',
    bytes_client_to_server SimpleAggregateFunction(sum, UInt64),
    bytes_server_to_client SimpleAggregateFunction(sum, UInt64),
    retransmits SimpleAggregateFunction(sum, UInt64),
    rtt_code AggregateFunction(quantilesTiming(0.5, 0.9, 0.99), UInt16) COMMENT 'round(56 ln(smoothed RTT µs)) of the connections that had a sample: a quantile q is exp(q / 56) µs'
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, observer_side, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name,
          server_k8s_namespace_name, server_k8s_workload_kind, server_k8s_workload_name, server_k8s_service_name, server_port)
TTL minute + toIntervalDay(greatest(30, {{ttl_days}}))
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
