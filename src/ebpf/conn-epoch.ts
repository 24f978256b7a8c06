/**
 * Which run of the kernel's conn id counter a conn id comes from. Conn ids (bpf/include/conn.h) count up from 0 in
 * the `conn_ids` map, which is pinned: they go on across collector restarts and program replacements, and start
 * again from 0 only when that map is created anew (first install on a node, after an uninstall, after a reboot,
 * which empties bpffs). The epoch names that map: this boot's id and the map's kernel id, which no other map of
 * this boot has (ids are handed out in sequence). So `<node>/<epoch>/<conn id>` is the same for one connection
 * before and after a restart, and never names two connections.
 */
import fs from 'node:fs';
import { u32Codec, u64Codec } from './codecs.js';
import type { PinnedMap } from './pinned-map.js';

const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replaceAll('-', '').slice(0, 12);

/** Where a reader of conn ids joins the counter's run: which run, and the id it hands out next. */
export interface ConnIdRun {
  epoch: string;
  /** Ids below it were handed out before: their connections were open when the reader began. */
  next: bigint;
}

export function connIdRun(connIds: PinnedMap): ConnIdRun {
  return { epoch: `${bootId}-${connIds.id}`, next: connIds.typed(u32Codec, u64Codec).lookup(0) ?? 0n };
}
