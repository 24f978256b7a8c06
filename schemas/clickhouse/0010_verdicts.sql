-- One row per verdicts.v1 event (schemas/avro/verdicts.v1.avsc): a policy decision of one node's kernel
-- (bpf/policy.bpf.c), named by the enforcer with the state it had applied (the deciding policies and, for allows, the
-- rules; the subject and peer pods), and joined by the enricher with the Kubernetes identity of its source and
-- destination at the decision's time (the identity columns of `flows`, migration 4, the subject as the observing end:
-- the source at egress, the destination at ingress).
-- verdict: deny and audit_deny (would be denied: only audit-mode policies select the subject) are all reported;
-- allow and audit_allow one in enforcer.allowSampleEvery (0: none), so counts of allows are of the sample.
-- policies: for denials the policies that select the subject for the direction, none of whose rules allows it; for
-- allows the policies whose rules allow it ('<namespace>/<name>', sorted). rules: the allowing rules
-- ('<namespace>/<name> <direction>[<index>]'), empty for denials.
-- source: the end that opens the connection or sends the datagram. An egress decision at connect() on a socket not
-- bound yet has source :: (0.0.0.0 mapped) and port 0: the kernel knows no more; its source identity then comes
-- from the collector's cgroup identities, and subject_k8s_* from the enforcer's cgroup walk either way.
-- Unknown is a sentinel, not NULL: the empty string for names and peer_prefix, 0 for identities (peer_identity 0: the peer address is
-- no known pod's).
-- Exactly once like `flows`: inserts carry the batch's deduplication token, kept in the deduplication window, and the
-- table is partitioned by day of the decision. Migration 10 (rules: src/common/clickhouse/migrations.ts).
CREATE TABLE IF NOT EXISTS {{database}}.verdicts
(
    time DateTime64(9) COMMENT 'when the kernel decided' CODEC(Delta, ZSTD(1)),
    ts DateTime MATERIALIZED toDateTime(time),
    k8s_node_name LowCardinality(String),
    verdict Enum8('allow' = 1, 'deny' = 2, 'audit_deny' = 3, 'audit_allow' = 4),
    direction Enum8('ingress' = 1, 'egress' = 2) COMMENT 'the side of the subject pod: egress (it opens or sends), ingress (it receives)',
    hook Enum8('connect' = 1, 'sendmsg' = 2, 'ingress' = 3) COMMENT 'cgroup connect4/6, sendmsg4/6 (unconnected UDP), cgroup_skb ingress',
    policies Array(LowCardinality(String)) COMMENT 'the deciding policies, namespace/name, sorted',
    rules Array(LowCardinality(String)) COMMENT 'the allowing rules (allows only)',
    network_transport LowCardinality(String),
    network_type Enum8('ipv4' = 4, 'ipv6' = 6),
    source_address IPv6,
    source_port UInt16 COMMENT '0: an egress socket not bound yet',
    destination_address IPv6,
    destination_port UInt16,
    cgroup_id UInt64 COMMENT 'the cgroup of the subject socket',
    subject_identity UInt64 COMMENT 'the policy identity of the subject pod (src/enforcer/compile/identities.ts)',
    subject_k8s_namespace_name LowCardinality(String) COMMENT 'the subject pod as the enforcer named it',
    subject_k8s_pod_name LowCardinality(String),
    peer_identity UInt64 COMMENT 'the pod identity of the peer address; 0: no known pod holds it',
    peer_prefix LowCardinality(String) COMMENT 'the longest ipBlock prefix of the policies holding the peer address',
    peer_k8s_namespace_name LowCardinality(String) COMMENT 'the peer pod as the enforcer named it',
    peer_k8s_pod_name LowCardinality(String),
    generation UInt8 COMMENT 'the map generation (0 or 1) the kernel decided with',
    source_k8s_namespace_name LowCardinality(String),
    source_k8s_pod_name LowCardinality(String),
    source_k8s_pod_uid String,
    source_k8s_workload_kind LowCardinality(String),
    source_k8s_workload_name LowCardinality(String),
    source_k8s_service_name LowCardinality(String),
    source_k8s_node_name LowCardinality(String),
    source_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4),
    source_labels Map(LowCardinality(String), String),
    source_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3),
    destination_k8s_namespace_name LowCardinality(String),
    destination_k8s_pod_name LowCardinality(String),
    destination_k8s_pod_uid String,
    destination_k8s_workload_kind LowCardinality(String),
    destination_k8s_workload_name LowCardinality(String),
    destination_k8s_service_name LowCardinality(String),
    destination_k8s_node_name LowCardinality(String),
    destination_endpoint_kind Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4),
    destination_labels Map(LowCardinality(String), String),
    destination_enrichment Enum8('hit' = 1, 'miss' = 2, 'late' = 3),
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (subject_k8s_namespace_name, verdict, ts, k8s_node_name, cgroup_id)
TTL ts + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
