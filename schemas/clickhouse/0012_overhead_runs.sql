-- One row per mode and offered rate of a `sidecarless bench overhead` run (bench/overhead-report.ts): what a request
-- and the node pay for mesh telemetry with nothing attached (mode 'baseline'), with sidecarless (mode 'ebpf':
-- collector with L4 and HTTP capture, enforcer with a policy set, enricher) and with a sidecar proxy in each pod
-- (mode 'sidecar': the proxy named in `proxy`, standing in for Envoy). The rows of one run share run_id and
-- started_at; compare modes within a run (same machine, same minute).
-- Latency in µs from each request's due time (open-loop: queueing included). added_*: this mode's percentile less
-- the baseline's at the same offered rate of the same run (0 in the baseline's own rows); NULL where no baseline
-- ran at that rate, and for rate 'max' (each mode at its own highest sustainable rate).
-- Cores: CPU seconds per second of load, from each component's cgroup (cpu.stat usage_usec); the mesh is every
-- component but the traffic's two ends ('load generator', 'server'): collector, enforcer, enricher and 'bpf
-- programs' (in-kernel run time of their programs) for ebpf, 'client proxy' and 'server proxy' for sidecar.
-- Memory: summed peak RSS (VmHWM) of each component's processes, MB. No TTL: a benchmark's history is kept.
-- Migration 12 (rules: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.overhead_runs
(
    run_id String,
    started_at DateTime64(3) COMMENT 'when the run began (UTC)',
    host LowCardinality(String),
    load_average_1m Float32 COMMENT 'the machine''s 1-minute load average at the start (a shared machine is noisy)',
    proxy LowCardinality(String) COMMENT 'the sidecar mode''s proxy and version, e.g. HAProxy 2.6.12-1+deb12u4',
    mode LowCardinality(String) COMMENT 'baseline, ebpf or sidecar',
    rate LowCardinality(String) COMMENT 'the offered rate as asked: requests/s, or max (the highest the mode sustains)',
    offered_rps UInt32 COMMENT 'requests/s the load generator offered',
    achieved_rps Float64 COMMENT 'requests/s answered',
    requests UInt64 COMMENT 'requests in the measured window',
    seconds Float32 COMMENT 'length of the measured window',
    connections UInt16 COMMENT 'keep-alive connections of the load generator',
    p50_us Float64,
    p90_us Float64,
    p99_us Float64,
    p999_us Float64,
    added_p50_us Nullable(Float64),
    added_p90_us Nullable(Float64),
    added_p99_us Nullable(Float64),
    added_p999_us Nullable(Float64),
    mesh_cores Float64 COMMENT 'cores of the mode''s own components (0 for baseline)',
    mesh_cores_per_1k_rps Float64 COMMENT 'mesh_cores per 1,000 requests/s achieved',
    total_cores_per_1k_rps Float64 COMMENT 'every component''s cores (BPF programs not added twice) per 1,000 requests/s',
    mesh_memory_mb Float64 COMMENT 'summed peak RSS of the mode''s own components',
    component_cores Map(LowCardinality(String), Float64) COMMENT 'cores by component',
    component_cores_per_1k_rps Map(LowCardinality(String), Float64),
    component_memory_mb Map(LowCardinality(String), Float64) COMMENT 'peak RSS by component, MB',
    exact UInt8 COMMENT '1 when the mode''s counts agree: load generator = nginx log = each proxy''s log; http events = 2 per request'
)
ENGINE = MergeTree
ORDER BY (started_at, run_id, mode, offered_rps)
