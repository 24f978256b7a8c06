/**
 * How the collector's C heap gives memory back. kafkajs copies every produce request about seven times on its way
 * to the socket, each copy in a fresh zero-filled buffer (grown by doubling), and V8 frees those buffers only when
 * a GC finds their owners dead: at ~11k connections/s, 20-30 MB of them wait at any time, most above 16 KB.
 *
 * glibc's malloc raises its mmap threshold to the size of every large block it frees (up to 32 MB, and its trim
 * threshold to twice that), after which such blocks come from the heap and stay there, fragmented, once freed: RSS
 * grew with the rate (90 -> 100 MB from 2,000 connections/s to ~11k/s). So the thresholds are fixed: blocks from
 * 16 KB up are mapped on their own and unmapped when freed (at ~11k/s the heap's share of RSS 29 -> 13 MB; those
 * are a few hundred mappings a second, CPU within noise), and once a second `trimMallocHeap` returns the free pages
 * inside the heap too (about 0.5 ms of CPU a second at ~11k/s; steady RSS ~5 MB lower).
 */
import { libcCalls } from '../ebpf/native.js';

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const MMAP_THRESHOLD = 16 * 1024;
const TRIM_THRESHOLD = 128 * 1024;
const TRIM_EVERY_MS = 1000;

/** Call once at start; a C library that ignores these settings keeps its own behaviour. */
export function fixMallocThresholds(): void {
  libcCalls.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
  libcCalls.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
}

/** Returns the heap's free pages to the kernel once a second until the returned function is called. */
export function trimMallocHeap(): () => void {
  const timer = setInterval(() => libcCalls.mallocTrim(0), TRIM_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
