/**
 * The cgroups whose sockets this collector's flows can carry: every cgroup at or below a traced one (the sock_ops
 * program runs for descendants too, bpf/include/conn.h), except the collector's own, which the kernel never traces.
 */
import { outermost, type Cgroup } from '../../ebpf/cgroup.js';

/** Cgroup id -> path below the cgroup v2 mount; throws when the tree cannot be read (never a partial answer). */
export function scanTracedCgroups(traced: readonly Cgroup[], own: bigint): Map<bigint, string> {
  const found = new Map<bigint, string>();
  for (const root of outermost(traced)) {
    for (const { id, path } of root.descendants()) if (id !== own) found.set(id, path);
  }
  return found;
}
