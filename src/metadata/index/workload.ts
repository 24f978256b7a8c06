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
import type { OwnerReference } from '../../events/metadata.js';
import type { History, PodState } from './history.js';
import type { Instant } from './instant.js';

export type WorkloadName = Pick<OwnerReference, 'kind' | 'name'>;

/** Owner kinds whose own controller is the workload. */
const INTERMEDIATE = new Set(['ReplicaSet', 'Job']);

/**
 * Allocates nothing: returns the owner reference it found, or the pod's event (kind `Pod`, the pod's name). The
 * answer is kept in the pod's state, with the owner's state it was read from, and reused while the time falls in
 * that state's interval (a new owner state ends it; an owner not known yet is looked up again on the next join).
 */
export function workloadAt(pod: PodState, at: Instant, objects: ReadonlyMap<string, History>): WorkloadName {
  const known = pod.workload;
  const source = pod.workloadSource;
  if (known !== undefined && (source === null || source.holds(at))) return known;
  const owner = pod.event.owner;
  if (owner === null || !INTERMEDIATE.has(owner.kind)) return remember(pod, owner ?? pod.event, null);
  const ownerState = objects.get(owner.uid)?.at(at);
  return ownerState === undefined ? owner : remember(pod, ownerState.event.owner ?? owner, ownerState);
}

function remember(pod: PodState, workload: WorkloadName, source: PodState['workloadSource']): WorkloadName {
  pod.workload = workload;
  pod.workloadSource = source;
  return workload;
}
