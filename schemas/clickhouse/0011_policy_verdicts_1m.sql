-- Policy decisions per minute, filled from every insert into `verdicts` (migration 10): per verdict, direction,
-- deciding policy, source workload and destination workload (namespace, kind, name as the join named them), the
-- number of decisions. What Grafana shows of policy verdicts: denials per policy and edge, audit would-be denials
-- before a policy is enforced.
-- A decision that names several policies (a denial by two policies that both isolate the subject) counts once under
-- each; one that names none would be counted under policy '' rather than vanish in the arrayJoin (the kernel reports
-- decisions only for pods some policy selects, so each names one today). Allows are a sample
-- (enforcer.allowSampleEvery): their counts are of the reported ones. A source not named by the join (an egress
-- socket not bound yet, on a node without the collector's cgroup identities) is counted under empty names.
-- One statement (a view with its own engine, not a TO table and a view): the migrations after this one were taken
-- when it was written. Query it by its name, summing `decisions` (rows of one key merge in the background).
-- Exactly once like `flow_edges_1m`: the enricher inserts with deduplicate_blocks_in_dependent_materialized_views = 1,
-- and the view's table is partitioned by day like `verdicts` with a deduplication window. Kept at least 30 days.
-- Migration 11 (rules: src/common/clickhouse/migrations.ts).
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.policy_verdicts_1m
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, verdict, direction, policy, destination_k8s_namespace_name, destination_k8s_workload_kind, destination_k8s_workload_name,
          source_k8s_namespace_name, source_k8s_workload_kind, source_k8s_workload_name)
TTL minute + toIntervalDay(greatest(30, {{ttl_days}}))
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
AS SELECT
    toStartOfMinute(toDateTime(time)) AS minute,
    verdict,
    direction,
    arrayJoin(if(empty(policies), [''], policies)) AS policy,
    source_k8s_namespace_name,
    source_k8s_workload_kind,
    source_k8s_workload_name,
    destination_k8s_namespace_name,
    destination_k8s_workload_kind,
    destination_k8s_workload_name,
    count() AS decisions
FROM {{database}}.verdicts
GROUP BY minute, verdict, direction, policy, source_k8s_namespace_name, source_k8s_workload_kind, source_k8s_workload_name,
         destination_k8s_namespace_name, destination_k8s_workload_kind, destination_k8s_workload_name
