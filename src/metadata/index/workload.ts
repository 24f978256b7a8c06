/**
 * The workload of a pod at a time: its top controller, following controller owner references as they were then.
 *   Pod → ReplicaSet → its controller (a Deployment, or another controller such as a rollout)
 *   Pod → Job → its controller (a CronJob)
 *   Pod → StatefulSet, DaemonSet, or any other direct controller: that controller
 *   a ReplicaSet or Job without a controller (at the time), or whose object the index does not know: itself
 *   a bare pod (no controller): kind `Pod`, the pod's name
 * Only the reference's kind and name are needed (an object's name never changes), so the top controller's own
 * object need not be known; the ReplicaSet's or Job's must, to read its owner at the time.
 */
import type { MetadataEvent, OwnerReference } from '../../events/metadata.js';
import type { History } from './history.js';

export type WorkloadName = Pick<OwnerReference, 'kind' | 'name'>;

/** Owner kinds whose own controller is the workload. */
const INTERMEDIATE = new Set(['ReplicaSet', 'Job']);

/** Allocates nothing: returns the owner reference it found, or the pod's event (kind `Pod`, the pod's name). */
export function workloadAt(pod: MetadataEvent, time: bigint, objects: ReadonlyMap<string, History>): WorkloadName {
  const owner = pod.owner;
  if (owner === null) return pod;
  if (!INTERMEDIATE.has(owner.kind)) return owner;
  return objects.get(owner.uid)?.at(time)?.event.owner ?? owner;
}
