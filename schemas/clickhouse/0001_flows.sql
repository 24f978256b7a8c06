-- One row per flow event (schemas/avro/flows.v1.avsc): a TCP connection seen from one side, interim or final.
-- Counters are cumulative per connection: totals come from the newest row of each connection (see README queries).
-- Migration 1 (rules for these files: src/common/clickhouse/migrations.ts). {{database}} and {{ttl_days}} are
-- filled in from validated configuration.
CREATE TABLE IF NOT EXISTS {{database}}.flows
(
    time DateTime64(9) CODEC(Delta, ZSTD(1)),
    ts DateTime MATERIALIZED toDateTime(time),
    start_time DateTime64(9) CODEC(Delta, ZSTD(1)),
    connection_id String CODEC(ZSTD(1)),
    k8s_node_name LowCardinality(String),
    record_kind Enum8('interim' = 1, 'final' = 2),
    record_seq UInt32,
    observer_side Enum8('client' = 1, 'server' = 2),
    network_transport LowCardinality(String),
    network_type Enum8('ipv4' = 4, 'ipv6' = 6),
    client_address IPv6,
    client_port UInt16,
    server_address IPv6,
    server_port UInt16,
    bytes_client_to_server UInt64 CODEC(T64, ZSTD(1)),
    bytes_server_to_client UInt64 CODEC(T64, ZSTD(1)),
    segments_client_to_server UInt64 CODEC(T64, ZSTD(1)),
    segments_server_to_client UInt64 CODEC(T64, ZSTD(1)),
    rtt_us UInt32 COMMENT '0 = no RTT sample yet',
    rtt_var_us UInt32,
    retransmits UInt32,
    syn_retransmits UInt32,
    connect_latency_us UInt32 COMMENT '0 = unknown (server side, or no handshake)',
    handshake_completed Bool,
    close_reason LowCardinality(String),
    process_pid UInt32 COMMENT '0 = owner never seen in process context',
    thread_id UInt32,
    process_executable_name LowCardinality(String),
    cgroup_id UInt64,
    network_namespace_inode UInt64,
    sampling_rate UInt32,
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (server_address, server_port, ts, connection_id, record_seq)
TTL ts + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
