/**
 * glibc's malloc raises its mmap threshold to the size of every large block it frees (up to 32 MB, and its trim
 * threshold to twice that), after which such blocks come from the heap and stay there, fragmented, once freed.
 * kafkajs builds each request in buffers that double up to the request's size (MBs at the highest rates), so the
 * collector's heap grew with the rate: RSS 90 -> 100 MB from 2,000 connections/s to ~11k/s. Fixing both thresholds
 * at glibc's own defaults keeps large buffers in mmap (returned on free) and the heap trimmed: 84 -> 91 MB over the
 * same runs, CPU within noise.
 */
import { libcCalls } from '../ebpf/native.js';

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const GLIBC_DEFAULT_THRESHOLD = 128 * 1024;

/** Call once at start; a C library that ignores these settings keeps its own behaviour. */
export function fixMallocThresholds(): void {
  libcCalls.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD);
  libcCalls.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD);
}
