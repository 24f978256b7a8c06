/**
 * The cgroups below the roots the policy programs are attached to (enforcer.cgroups): where the node's pods'
 * container cgroups are found, by the pod uid their names carry (src/common/cgroup-path.ts).
 */
import { Cgroup, outermost } from '../../ebpf/cgroup.js';

/** A walk of the cgroups below `paths` (checked now: a missing one throws, naming it); id → path below the mount. */
export function cgroupWalker(paths: readonly string[]): () => Map<bigint, string> {
  const roots = outermost(paths.map((path) => Cgroup.at(path)));
  return () => new Map(roots.flatMap((root) => root.descendants().map(({ id, path }) => [id, path] as const)));
}
