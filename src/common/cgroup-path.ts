/**
 * A cgroup path -> the pod and container it belongs to, from the names the kubelet and the container runtimes give
 * cgroups. Pure: no I/O. The API server never sees cgroup ids, so this is how a flow's cgroup id meets a pod.
 *
 * The kubelet makes one cgroup per pod, below a QoS-class parent (none for Guaranteed pods), and the runtime one per
 * container below it:
 *
 *   systemd driver   kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, "-" as "_">.slice/<container>
 *                    kubepods.slice/kubepods-pod<uid>.slice/<container>                         (Guaranteed)
 *                    with <container> = cri-containerd-<id>.scope | crio-<id>.scope | docker-<id>.scope
 *                    A kubelet with another cgroup root prefixes every slice name: kind's is
 *                    kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod<uid>.slice/...
 *   cgroupfs driver  kubepods/besteffort/pod<uid>/<container>, kubepods/pod<uid>/<container>   (Guaranteed)
 *                    with <container> = <id> (containerd, Docker) | crio-<id> (CRI-O)
 *
 * <id> is the runtime's 64-hex container id, as in the pod's status.containerStatuses[].containerID. The pod's own
 * cgroup gives the pod uid without a container. So does a cgroup of the pod that is not a container: CRI-O's
 * `crio-conmon-<id>.scope` holds conmon, the runtime's monitor of one container, which the kubelet accounts to the
 * pod but which is not one of its containers (its id would name a container the process is not part of). A cgroup
 * below a container's (a workload nesting cgroups, systemd in a container) belongs to that container. The pause
 * container of containerd and Docker has a cgroup of its own like any container, with the sandbox's id, which no
 * containerStatuses entry holds: its pod uid still holds.
 *
 * Anything else (system services, user sessions, kubepods' own slices, a layout this does not know) has neither.
 */

export interface CgroupIdentity {
  /** The pod's metadata.uid (dashes, as the API server writes it), or null when the cgroup is not a pod's. */
  podUid: string | null;
  /** The container id without the runtime prefix, or null when the cgroup is not (below) a container's. */
  containerId: string | null;
}

const NONE: CgroupIdentity = Object.freeze({ podUid: null, containerId: null });

/** A pod uid: an RFC 4122 uuid, or a static pod's 32-hex config hash. systemd names write its dashes as "_". */
const UID = '([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})';
/** systemd: the slice name repeats its parents' names, whatever the kubelet's cgroup root prefixes them with. */
const SYSTEMD_POD = new RegExp(`^(?:.+-)?kubepods(?:-burstable|-besteffort)?-pod${UID}\\.slice$`);
const CGROUPFS_POD = new RegExp(`^pod${UID}$`);
const CGROUPFS_QOS = new Set(['burstable', 'besteffort']);
/** Either driver's container cgroup; crio-conmon-<id> does not match ("conmon-" is not hex). */
const CONTAINER = /^(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})(?:\.scope)?$/;

/** The pod uid in a pod cgroup's name, if `parts[index]` is one (cgroupfs names are checked against their parents). */
function podUidAt(parts: readonly string[], index: number): string | undefined {
  const part = parts[index]!;
  const systemd = SYSTEMD_POD.exec(part);
  if (systemd) return systemd[1]!.replaceAll('_', '-');
  const cgroupfs = CGROUPFS_POD.exec(part);
  if (!cgroupfs) return undefined;
  const parent = parts[index - 1];
  const underKubepods = parent === 'kubepods' || (parent !== undefined && CGROUPFS_QOS.has(parent) && parts[index - 2] === 'kubepods');
  return underKubepods ? cgroupfs[1]!.replaceAll('_', '-') : undefined;
}

/** `path`: below the cgroup v2 mount, with or without the leading "/" (as in /proc/<pid>/cgroup, or relative). */
export function parseCgroupPath(path: string): CgroupIdentity {
  const parts = path.split('/').filter((part) => part !== '');
  for (let index = 0; index < parts.length; index++) {
    const podUid = podUidAt(parts, index);
    if (podUid === undefined) continue;
    const container = parts[index + 1] === undefined ? null : CONTAINER.exec(parts[index + 1]!);
    return { podUid, containerId: container ? container[1]! : null };
  }
  return NONE;
}
