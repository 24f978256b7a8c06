/**
 * Node flags for the collector's process, wherever it is started (src/lab/collector-process.ts, a container's
 * command). A 1 MB semi-space instead of Node's default 16 MB. Grown to 16 MB, the young generation exceeds the
 * old generation's headroom (~15 MB over ~10 MB live), and V8 then runs a full mark-compact after about every
 * scavenge; measured at 2,000 connections/s, that was ~1 mark-compact a second and 0.03 -> 0.02 cores with 2 MB,
 * and RSS 113 -> 99 MB. 1 MB rather than 2: kafkajs' request buffers (./allocator.ts) are freed only when a GC
 * finds them dead, and a smaller young generation finds them sooner; measured at the highest rate (7k-11k
 * connections/s), runs alternated: peak RSS 96-98 MB against 105-115 MB, CPU per connection +3 % (within noise).
 * Events are encoded as they arrive (./packer.ts), so few objects outlive a scavenge anyway.
 */
export const COLLECTOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
