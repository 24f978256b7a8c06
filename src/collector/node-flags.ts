/**
 * Node flags for the collector's process, wherever it is started (src/lab/collector-process.ts, a container's
 * command). A 1 MB semi-space instead of Node's default 16 MB. Grown to 16 MB, the young generation exceeds the
 * old generation's headroom (~15 MB over ~10 MB live), and V8 then runs a full mark-compact after about every
 * scavenge; measured at 2,000 connections/s, that was ~1 mark-compact a second and 0.03 -> 0.02 cores with 2 MB,
 * and RSS 113 -> 99 MB. 1 MB rather than 2: kafkajs' request buffers (./allocator.ts) are freed only when a GC
 * finds them dead, and a smaller young generation finds them sooner; measured at the highest rate (7k-11k
 * connections/s), runs alternated: peak RSS 96-98 MB against 105-115 MB, CPU per connection +3 % (within noise).
 * Events are encoded as they arrive (./packer.ts), so few objects outlive a scavenge anyway.
 *
 * --no-memory-reducer: once a process goes quiet, V8's memory reducer runs up to three full mark-compacts, seconds
 * apart, to shrink a heap that holds start-up garbage; for an idle collector that was the largest cost of its first
 * minute (measured with the collector alone, tracing an empty cgroup, first 40 s after start, runs alternated:
 * 0.0046-0.0055 cores with it, 0.0019-0.0029 without; peak RSS 84 MB either way). Under load it does nothing: V8 only
 * reduces memory when allocation has slowed down, and ordinary collections keep the heap small then.
 */
export const COLLECTOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--no-memory-reducer'];
