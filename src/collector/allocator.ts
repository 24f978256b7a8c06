/**
 * How the collector's C heap gives memory back. kafkajs copied every produce request about seven times on its way
 * to the socket (three since src/common/kafka/produce-request.ts), each copy in a fresh buffer (grown by doubling),
 * and V8 frees those buffers only when a GC finds their owners dead.
 *
 * glibc's malloc raises its mmap threshold to the size of every large block it frees (up to 32 MB, and its trim
 * threshold to twice that), after which such blocks come from the heap and stay there, fragmented, once freed.
 * kafkajs' request buffers reach MBs at the highest rates, so the collector's heap grew with the rate: RSS 90 ->
 * 100 MB from 2,000 connections/s to ~11k/s. Fixing both thresholds at glibc's own defaults keeps large buffers in
 * mmap (returned on free) and the heap trimmed: 84 -> 91 MB over the same runs, CPU within noise. Free blocks
 * below the top of the heap stay resident all the same: `trimMallocHeap` returns their pages once a second (about
 * 0.5 ms of CPU a second at ~11k connections/s; steady RSS 100-109 -> 90-100 MB there, same runs alternated).
 */
import { libcCalls } from '../ebpf/native.js';

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const GLIBC_DEFAULT_THRESHOLD = 128 * 1024;
const TRIM_EVERY_MS = 1000;

/** Call once at start; a C library that ignores these settings keeps its own behaviour. */
export function fixMallocThresholds(): void {
  libcCalls.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD);
  libcCalls.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD);
}

/**
 * Returns the heap's free pages to the kernel once a second, when `busy()` (how much work was done so far) moved
 * since the last time: an idle collector frees nothing, and malloc_trim walks every arena. Until the returned
 * function is called.
 */
export function trimMallocHeap(busy: () => number): () => void {
  let trimmedAt = busy();
  const timer = setInterval(() => {
    if (busy() === trimmedAt) return;
    trimmedAt = busy();
    libcCalls.mallocTrim(0);
  }, TRIM_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
