-- Request rate, errors and duration (RED) per minute, filled from `http_requests` by the view of migration 9: per
-- observing side, client workload, server workload, the Service the server address belongs to, method, route and
-- status class, the requests that started in the minute, the errors among them, body bytes each way, and the
-- duration distribution on the log scale of `flow_edges_1m` (migration 5): duration_code holds the quantilesTiming
-- state of each answered request's code round(56 * ln(duration µs)) (0 to 1023: 1 µs to 85.8 s, longer durations
-- clamped, shorter ones 1 µs), whose quantiles quantileTiming keeps exactly (it counts every value below 1024
-- apart), so a quantile decodes to exp(code / 56) µs within 0.9% (half a step of e^(1/56)):
--   arrayMap(code -> exp(code / 56), quantilesTimingMerge(0.5, 0.9, 0.99)(duration_code))  -- µs; nan: no answered request
-- The same scale as the RTTs, and for the same reason: nearly every row of a busy cluster is its own key at insert
-- (routes x statuses x edges), where a t-digest state per row costs more than the rest of the view (bench/enrich-join
-- measured it for flows), and one decoding rule serves both rollups.
-- Errors (what counts): a response with status 500-599, or no response at all (outcome 'unanswered': the connection
-- closed first). 4xx are the caller's errors, not the server's (OTel marks only 5xx as a server span error), and are
-- still there by status class. Status class: '1xx' to '5xx' by the status's hundreds, 'none' when no response came,
-- 'other' for a status outside 100-599.
-- observer_side is part of the key because an exchange between two traced pods is seen, and counted, from both
-- sides: query one side ('server' counts what servers answered, 'client' what callers saw, network included).
-- Exactly once like `flow_edges_1m`: deduplicated by the token of the `http_requests` insert, partitioned by day
-- like `http_requests`. Kept at least 30 days. Migration 8 (rules: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.http_red_1m
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
    http_request_method LowCardinality(String),
    http_route LowCardinality(String),
    status_class Enum8('none' = 0, '1xx' = 1, '2xx' = 2, '3xx' = 3, '4xx' = 4, '5xx' = 5, 'other' = 6),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64) COMMENT 'status 500-599, or no response (unanswered)',
    request_body_bytes SimpleAggregateFunction(sum, UInt64),
    response_body_bytes SimpleAggregateFunction(sum, UInt64),
    duration_code AggregateFunction(quantilesTiming(0.5, 0.9, 0.99), UInt16) COMMENT 'round(56 ln(duration µs)) of the answered requests: a quantile q is exp(q / 56) µs'
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, observer_side, server_k8s_namespace_name, server_k8s_workload_kind, server_k8s_workload_name, server_k8s_service_name,
          http_route, http_request_method, status_class, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name)
TTL minute + toIntervalDay(greatest(30, {{ttl_days}}))
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
