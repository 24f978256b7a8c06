/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * An installation's `retired` flag (one per object, pinned with the installation's maps): the collector sets it when
 * another layout replaces the installation (src/collector/installed-source.ts), and from then on its programs do
 * nothing, leaving every event to the new layout's programs, attached beside them. Then the old ring holds all it
 * ever will once the runs that read the flag unset have ended: unpinning the links alone detaches the programs later,
 * from a kernel worker, and the ring could take records after it was read to its end. An array lookup, which the
 * verifier inlines: a load from the map's memory.
 */
#ifndef SL_RETIRE_H
#define SL_RETIRE_H

#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} retired SEC(".maps");

static __always_inline bool sl_retired(void)
{
	__u32 zero = 0, *flag = bpf_map_lookup_elem(&retired, &zero);

	return flag && *flag;
}

#endif /* SL_RETIRE_H */
