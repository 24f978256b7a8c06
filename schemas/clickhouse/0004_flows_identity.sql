-- The Kubernetes identity of both ends of a flow, as the enricher's event-time join found it at the connection's
-- start (src/metadata/index/identity.ts): namespace, pod (name and uid: two pods can reuse one name), workload
-- (the top controller: Deployment through its ReplicaSet, CronJob through its Job, ...), the Service the address
-- belongs to, the node, the allow-listed pod labels (enricher.labels), what the address was, and the join's status.
-- Rows written before this migration were never joined. Their defaults say so: names empty, endpoint kind
-- 'unknown', no labels, and enrichment 'late' ("written without the metadata it needed: no owner known"), not
-- 'miss', which claims that complete metadata named no owner and would pass old rows off as external traffic.
-- One ALTER: ClickHouse changes the table's metadata once, and old parts read the defaults until merged.
-- Migration 4 (rules: src/common/clickhouse/migrations.ts).
ALTER TABLE {{database}}.flows
    ADD COLUMN IF NOT EXISTS client_k8s_namespace_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_k8s_pod_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_k8s_pod_uid String,
    ADD COLUMN IF NOT EXISTS client_k8s_workload_kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_k8s_workload_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_k8s_service_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_k8s_node_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS client_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4) DEFAULT 'unknown',
    ADD COLUMN IF NOT EXISTS client_labels Map(LowCardinality(String), String),
    ADD COLUMN IF NOT EXISTS client_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3) DEFAULT 'late',
    ADD COLUMN IF NOT EXISTS server_k8s_namespace_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_k8s_pod_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_k8s_pod_uid String,
    ADD COLUMN IF NOT EXISTS server_k8s_workload_kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_k8s_workload_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_k8s_service_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_k8s_node_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS server_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4) DEFAULT 'unknown',
    ADD COLUMN IF NOT EXISTS server_labels Map(LowCardinality(String), String),
    ADD COLUMN IF NOT EXISTS server_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3) DEFAULT 'late'
