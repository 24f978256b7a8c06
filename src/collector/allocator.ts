/**
 * How the collector's C heap gives memory back. kafkajs copies every produced value on its way to the socket (three
 * times since ../common/kafka/encoder.ts, seven before), each copy in a fresh buffer, and V8 frees those buffers
 * only when a GC finds their owners dead.
 *
 * glibc's malloc raises its mmap threshold to the size of every large block it frees (up to 32 MB, and its trim
 * threshold to twice that), after which such blocks come from the heap and stay there, fragmented, once freed.
 * kafkajs' request buffers reach MBs at the highest rates, so the collector's heap grew with the rate: RSS 90 ->
 * 100 MB from 2,000 connections/s to ~11k/s. Fixing both thresholds at glibc's own defaults keeps large buffers in
 * mmap (returned on free) and the heap trimmed: 84 -> 91 MB over the same runs, CPU within noise. Free blocks
 * below the top of the heap stay resident all the same: `TrimAfterSends` returns their pages at most once a second
 * (about 0.5 ms of CPU a second at ~11k connections/s; steady RSS 100-109 -> 90-100 MB there, same runs alternated).
 */
import type { Sink, SinkResult } from '../common/pipeline.js';
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
 * A sink that returns the heap's free pages to the kernel after a send, at most once every TRIM_EVERY_MS (malloc_trim
 * walks every arena). After sends, because their buffers are what there is to return, and an idle collector, which
 * sends nothing, then never wakes for it (a timer did, once a second).
 */
export class TrimAfterSends<Batch> implements Sink<Batch> {
  private trimmedAt = performance.now();

  constructor(private readonly sink: Sink<Batch>) {}

  async send(batch: Batch): Promise<SinkResult> {
    const result = await this.sink.send(batch);
    const now = performance.now();
    if (now - this.trimmedAt >= TRIM_EVERY_MS) {
      this.trimmedAt = now;
      libcCalls.mallocTrim(0);
    }
    return result;
  }

  shutdown(): Promise<void> {
    return this.sink.shutdown();
  }
}
