-- Feeds http_red_1m (migration 8) from every insert into `http_requests`: each exchange counts once, in the minute
-- its request started (the minute of its `http_requests` day partition, which exactly once needs: migration 5).
-- Errors, status classes and the duration code as migration 8 says; an unanswered request gives no sample, and a
-- negative duration (the server answered before the request's body ended, e.g. a 413) counts as the shortest, 1 µs.
-- Exactly once: the enricher inserts with deduplicate_blocks_in_dependent_materialized_views = 1 (migration 5).
-- Migration 9 (rules: src/common/clickhouse/migrations.ts).
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.http_red_1m_view TO {{database}}.http_red_1m AS
SELECT
    toStartOfMinute(toDateTime(start_time)) AS minute,
    observer_side,
    client_k8s_namespace_name,
    client_k8s_workload_kind,
    client_k8s_workload_name,
    server_k8s_namespace_name,
    server_k8s_workload_kind,
    server_k8s_workload_name,
    server_k8s_service_name,
    http_request_method,
    http_route,
    multiIf(outcome = 'unanswered', 'none', http_response_status_code BETWEEN 100 AND 599, concat(toString(intDiv(http_response_status_code, 100)), 'xx'), 'other') AS status_class,
    count() AS requests,
    countIf(outcome = 'unanswered' OR http_response_status_code BETWEEN 500 AND 599) AS errors,
    sum(http_request_body_size) AS request_body_bytes,
    sum(http_response_body_size) AS response_body_bytes,
    quantilesTimingStateIf(0.5, 0.9, 0.99)(toUInt16(least(1023, round(56 * ln(greatest(duration_ns / 1000, 1))))), outcome != 'unanswered') AS duration_code
FROM {{database}}.http_requests
GROUP BY minute, observer_side, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name,
         server_k8s_namespace_name, server_k8s_workload_kind, server_k8s_workload_name, server_k8s_service_name,
         http_request_method, http_route, status_class
