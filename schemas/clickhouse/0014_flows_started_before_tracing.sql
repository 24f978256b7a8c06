-- Whether the connection was open before tracing could see it start (flows.v2 `started_before_tracing`): the
-- collector's first start on a node with long-lived connections, a cgroup newly traced. Such a row's start_time is
-- when tracing first saw the connection and its connect_latency_us is 0 (unknown); its byte and segment counters are
-- still the kernel's since the connection began, so the rollups count them as for any other connection.
-- Rows written before this migration, and events written with flows.v1, read false.
-- Migration 14 (rules: src/common/clickhouse/migrations.ts).
ALTER TABLE {{database}}.flows
    ADD COLUMN IF NOT EXISTS started_before_tracing Bool DEFAULT false COMMENT 'open before tracing saw it start: start_time is when tracing first saw it'
