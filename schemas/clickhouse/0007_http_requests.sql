-- One row per http.v1 event (schemas/avro/http.v1.avsc): an HTTP/1.x request and its response as one side of the
-- connection saw them, with the Kubernetes identity of both ends as the enricher's event-time join found it at the
-- request's start (the identity columns of `flows`, migration 4). Never a header, cookie, body or query string: the
-- collector drops them before the event exists, and this table has no column that could hold them.
-- Unknown is a sentinel, not NULL: status 0, response times 0 (1970), sizes and duration 0 when no response came
-- (outcome 'unanswered'). observer_side: an exchange between two traced pods is seen from both sides; query one.
-- Exactly once like `flows`: inserts carry the batch's deduplication token, kept in the deduplication window, and
-- the table is partitioned by day like `flows` (a crash can cut an insert between two day parts; its replay finds
-- the same parts under the same token). Migration 7 (rules: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.http_requests
(
    start_time DateTime64(9) COMMENT 'request_start_time_ns: kernel time of the call that carried the first request byte' CODEC(Delta, ZSTD(1)),
    ts DateTime MATERIALIZED toDateTime(start_time),
    request_end_time DateTime64(9) CODEC(Delta, ZSTD(1)),
    response_start_time DateTime64(9) COMMENT '0 = no response' CODEC(Delta, ZSTD(1)),
    response_end_time DateTime64(9) COMMENT '0 = no response' CODEC(Delta, ZSTD(1)),
    duration_ns Int64 COMMENT 'response first byte - request last byte (negative: answered before the request ended); 0 = no response' CODEC(T64, ZSTD(1)),
    connection_id String CODEC(ZSTD(1)),
    exchange_seq UInt32,
    k8s_node_name LowCardinality(String),
    observer_side Enum8('client' = 1, 'server' = 2),
    outcome Enum8('complete' = 1, 'upgraded' = 2, 'unanswered' = 3),
    http_request_method LowCardinality(String),
    http_request_method_original LowCardinality(String) COMMENT 'only when the method is _OTHER',
    network_protocol_version LowCardinality(String),
    url_path String CODEC(ZSTD(1)),
    http_route LowCardinality(String),
    http_response_status_code UInt16 COMMENT '0 = no response',
    http_request_header_size UInt64 CODEC(T64, ZSTD(1)),
    http_request_body_size UInt64 CODEC(T64, ZSTD(1)),
    http_response_header_size UInt64 CODEC(T64, ZSTD(1)),
    http_response_body_size UInt64 CODEC(T64, ZSTD(1)),
    network_transport LowCardinality(String),
    network_type Enum8('ipv4' = 4, 'ipv6' = 6),
    client_address IPv6,
    client_port UInt16,
    server_address IPv6,
    server_port UInt16,
    process_pid UInt32 COMMENT '0 = unknown',
    process_executable_name LowCardinality(String),
    cgroup_id UInt64,
    client_k8s_namespace_name LowCardinality(String),
    client_k8s_pod_name LowCardinality(String),
    client_k8s_pod_uid String,
    client_k8s_workload_kind LowCardinality(String),
    client_k8s_workload_name LowCardinality(String),
    client_k8s_service_name LowCardinality(String),
    client_k8s_node_name LowCardinality(String),
    client_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4),
    client_labels Map(LowCardinality(String), String),
    client_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3),
    server_k8s_namespace_name LowCardinality(String),
    server_k8s_pod_name LowCardinality(String),
    server_k8s_pod_uid String,
    server_k8s_workload_kind LowCardinality(String),
    server_k8s_workload_name LowCardinality(String),
    server_k8s_service_name LowCardinality(String),
    server_k8s_node_name LowCardinality(String),
    server_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4),
    server_labels Map(LowCardinality(String), String),
    server_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3),
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(start_time)
ORDER BY (server_k8s_namespace_name, server_k8s_workload_name, http_route, ts, connection_id, exchange_seq)
TTL ts + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
