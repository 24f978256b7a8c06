/**
 * The metadata topic as the metadata role and the collectors write it, for the enricher's integration tests: one
 * event per message keyed by its object key, tombstones as null values whose message timestamp is the deletion
 * time, watermarks; and a Deployment's pod with what names it (Deployment, ReplicaSet, pod, and the cgroup its
 * node's collector saw).
 */
import type { Producer } from 'kafkajs';
import { loadRegistry } from '../../src/common/avro.js';
import { bindMetadataCodec, metadataEvent, watermarkKey, type MetadataChange } from '../../src/events/metadata.js';
import { cgroupChange, objectChange, ownerRef, podChange } from './metadata.js';

const codec = bindMetadataCodec(loadRegistry());

/** The source of the helpers' Kubernetes objects (test/helpers/metadata.ts). */
export const KUBERNETES_SOURCE = 'kubernetes/test';

/** Now, in nanoseconds. */
export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/**
 * Publishes the changes in order, each under its key, stamped as the metadata role stamps them: a state with its
 * change time, a tombstone with its deletion time, a watermark with its time.
 */
export async function publishMetadata(producer: Producer, topic: string, changes: readonly MetadataChange[]): Promise<void> {
  await producer.send({
    topic,
    messages: changes.map((change) =>
      'deleted' in change
        ? { key: change.key, value: null, timestamp: String(change.time_ns / 1_000_000n) }
        : { key: change.key, value: codec.encode(change.event), timestamp: String(change.event.change_time_ns / 1_000_000n) },
    ),
  });
}

/** The source has published everything it observed up to `atNs`. */
export function watermarkChange(atNs: bigint, source = KUBERNETES_SOURCE): MetadataChange {
  const key = watermarkKey(source);
  return { key, event: metadataEvent({ object_key: key, kind: 'Watermark', source, change_time_ns: atNs }) };
}

export interface DeploymentPodSpec {
  namespace: string;
  deployment: string;
  /** The pod's name is `<deployment>-rs-<suffix>`, its uid `pod-<deployment>-<suffix>`. */
  suffix: string;
  ip: string;
  node: string;
  cgroupId: bigint;
  labels?: Record<string, string>;
  /** Creation and change time of every object. */
  at: bigint;
}

/** The pod's name, uid and the changes that name it, from its Deployment down to its cgroup. */
export function deploymentPod(spec: DeploymentPodSpec): { name: string; uid: string; changes: MetadataChange[] } {
  const { namespace, deployment, suffix, at } = spec;
  const replicaSet = `${deployment}-rs`;
  const name = `${replicaSet}-${suffix}`;
  const uid = `pod-${deployment}-${suffix}`;
  return {
    name,
    uid,
    changes: [
      objectChange('Deployment', { uid: `deploy-${deployment}`, name: deployment, namespace, at }),
      objectChange('ReplicaSet', { uid: `rs-${deployment}`, name: replicaSet, namespace, owner: ownerRef('Deployment', deployment, `deploy-${deployment}`), at }),
      podChange({ uid, name, namespace, node: spec.node, ips: [spec.ip], owner: ownerRef('ReplicaSet', replicaSet, `rs-${deployment}`), labels: spec.labels ?? {}, at }),
      cgroupChange({ node: spec.node, id: spec.cgroupId, podUid: uid, at }),
    ],
  };
}
