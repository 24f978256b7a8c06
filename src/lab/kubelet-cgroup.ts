/**
 * Cgroup paths named the way the kubelet names them with the systemd cgroup driver and containerd as the runtime,
 * so that whatever parses a real node's cgroup paths (pod uid, container id) can be tested on lab pods:
 *
 *   kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope
 *   kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
 *   kubepods.slice/kubepods-pod<uid>.slice/cri-containerd-<id>.scope          (Guaranteed: no QoS slice)
 *
 * <uid> is the pod uid with '-' written as '_' (systemd reserves '-' in unit names for nesting); <id> is the
 * container id, 64 hex digits, the one the pod's status reports as `containerd://<id>`.
 */
import { randomBytes, randomUUID } from 'node:crypto';

export type QosClass = 'besteffort' | 'burstable' | 'guaranteed';

export interface ContainerIdentity {
  qos: QosClass;
  podUid: string;
  containerId: string;
}

/** The pod's slice, relative to the cgroup the kubelet's hierarchy starts below. */
export function podSlice(identity: Omit<ContainerIdentity, 'containerId'>): string {
  const uid = identity.podUid.replaceAll('-', '_');
  if (identity.qos === 'guaranteed') return `kubepods.slice/kubepods-pod${uid}.slice`;
  return `kubepods.slice/kubepods-${identity.qos}.slice/kubepods-${identity.qos}-pod${uid}.slice`;
}

/** The container's scope (the leaf its processes join), relative like podSlice. */
export function containerScope(identity: ContainerIdentity): string {
  return `${podSlice(identity)}/cri-containerd-${identity.containerId}.scope`;
}

/** A container id as containerd makes them: 32 random bytes in hex. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** A pod uid for a pod no API server knows (the API server gives real ones a UUID of the same form). */
export function newPodUid(): string {
  return randomUUID();
}
