-- Feeds flow_edges_1m (migration 5) from every insert into `flows`, from final rows only: a connection's counters
-- are cumulative (each interim row repeats what the rows before it counted), so its final row alone holds its
-- totals, and summing only final rows counts each connection once. A connection counts in the minute it ended.
-- Failed: the handshake never completed, or the connection was refused or timed out while connecting. RTT: the log
-- code of migration 5 (rtt_us 0: no sample; the code is computed for every row, so ln reads at least 1).
-- The rollup starts with the rows inserted after this migration: older rows carry no workload identity.
-- Exactly once: see migration 5 (the enricher inserts with deduplicate_blocks_in_dependent_materialized_views = 1).
-- Migration 6 (rules: src/common/clickhouse/migrations.ts).
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.flow_edges_1m_view TO {{database}}.flow_edges_1m AS
SELECT
    toStartOfMinute(toDateTime(time)) AS minute,
    observer_side,
    client_k8s_namespace_name,
    client_k8s_workload_kind,
    client_k8s_workload_name,
    server_k8s_namespace_name,
    server_k8s_workload_kind,
    server_k8s_workload_name,
    server_k8s_service_name,
    server_port,
    count() AS connections,
    countIf(NOT handshake_completed OR close_reason IN ('refused', 'connect_timeout')) AS failed_connections,
    sum(bytes_client_to_server) AS bytes_client_to_server,
    sum(bytes_server_to_client) AS bytes_server_to_client,
    sum(retransmits) AS retransmits,
    quantilesTimingStateIf(0.5, 0.9, 0.99)(toUInt16(least(1023, round(56 * ln(greatest(rtt_us, 1))))), rtt_us > 0) AS rtt_code
FROM {{database}}.flows
WHERE record_kind = 'final'
GROUP BY minute, observer_side, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name,
         server_k8s_namespace_name, server_k8s_workload_kind, server_k8s_workload_name, server_k8s_service_name, server_port
