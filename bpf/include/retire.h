/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * What user space says of one installation of an object: index 0 of its `retired` map (one per installation,
 * pinned with its maps; src/collector/installed-source.ts writes it for the collector's kinds, and the enforcer its
 * id only, src/enforcer/apply/kernel.ts), a 64-bit word:
 *   - bit 0, retired: set when another layout replaces the installation. From then on its programs do nothing,
 *     leaving every event to the new layout's programs, attached beside them; once the runs that read it unset have
 *     ended, the old ring holds all it ever will. Unpinning the links alone detaches the programs later, from a
 *     kernel worker, and the ring could take records after it was read to its end.
 *   - bits 1-63, the installation's id: the kernel's id of this very map, unique among the installations of a node
 *     (0 until user space writes it), for programs that must tell their own marks from another layout's
 *     (bpf/http.bpf.c http_last_calls) or find whether they are the one to report (bpf/policy.bpf.c).
 * An array lookup, which the verifier inlines: a load from the map's memory.
 */
#ifndef SL_RETIRE_H
#define SL_RETIRE_H

#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} retired SEC(".maps");

static __always_inline __u64 sl_installation_word(void)
{
	__u32 zero = 0;
	__u64 *word = bpf_map_lookup_elem(&retired, &zero);

	return word ? *word : 0;
}

/* Bit 0 of the word. */
#define SL_RETIRED 1ULL

static __always_inline bool sl_retired(void)
{
	return sl_installation_word() & SL_RETIRED;
}

#endif /* SL_RETIRE_H */
