// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * layouts: not a program. Programs reach ring records through void pointers, so the compiler leaves their struct
 * types out of the programs' BTF; this object keeps one variable of each records.h type so that its BTF holds
 * every shared layout. test/ebpf/records-layout.test.ts reads it (without loading) and checks each TS decoder's
 * offsets and sizes against it.
 */
#include "vmlinux.h"
#include "records.h"

struct sl_record_header sl_layout_record_header;
struct sl_probe_record sl_layout_probe_record;
struct sl_flow_record sl_layout_flow_record;
struct sl_egress4_key sl_layout_egress4_key;
struct sl_conn_state sl_layout_conn_state;
