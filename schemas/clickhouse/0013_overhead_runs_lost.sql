-- What the ebpf mode's kernel programs lost while a window of `sidecarless bench overhead` was measured (records
-- the rings could not take, programs the kernel skipped: bench/overhead-report.ts `lost_while_measured`). A window
-- that lost records measured the cost of the rest, so its cores and latency read as cheaper than the traffic was.
-- NULL where nothing was counted: the modes without our programs, and the rows of runs made before this migration.
-- Migration 13 (rules: src/common/clickhouse/migrations.ts).
ALTER TABLE {{database}}.overhead_runs
    ADD COLUMN IF NOT EXISTS lost_while_measured Nullable(UInt64) COMMENT 'records the ebpf mode''s programs lost during the window; NULL: not counted (other modes, older runs)'
