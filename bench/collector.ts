/**
 * bench/collector: flow events per CPU-second through the whole collector pipeline to a real Kafka broker.
 *
 *   1. Build a pool of real `struct sl_flow_record` bytes (FLOW_RECORD offsets): varied connection ids, sides,
 *      ports, v4-mapped and v6 addresses, byte counters above 2^32, interim and final records.
 *   2. Drive the real Collector (flowsKind.transform (FlowRecordView) -> Packer/Outbox -> FlowEventWriter (Avro FlowBatch) -> KafkaSink,
 *      acks=all, idempotent producer) with an in-memory ring reader over those bytes. The reader stands for a ring
 *      the kernel keeps full: it hands out records only while the collector holds fewer than half its queue, so
 *      a run measures the rate the collector sustains without loss (a drop would be counted and fail the run).
 *   3. Runs alternate (so machine noise hits all alike): baseline eventsPerMessage=1 (one event per Kafka
 *      message), packed eventsPerMessage=64 (the default before it became 1,000; kept so that runs compare with
 *      earlier ones), and identities: packed, with the collector's cgroup identities (src/collector/identity/)
 *      noting each event's cgroup (64 distinct, as the pool has) and every send waiting until their identities
 *      are acknowledged on a metadata topic of its own, as the collector runs.
 *      Each run: CPU-seconds of this process
 *      (process.cpuUsage: every thread, GC and libuv included) from start until stop() returned, i.e. every event
 *      acknowledged by Kafka. The broker runs on the same machine, so wall-clock rates are reported but the
 *      per-CPU-second rate is the figure.
 *   4. Verify: consume each run's topic back, decode every FlowBatch, count events and compare a checksum of the
 *      byte counters and connection ids with the records generated; message counts equal the topic end offsets.
 *   5. Delete the topics and the consumer group. One JSON line; floor: packed >= 300k events per CPU-second with
 *      zero drops and exact counts.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { loadRegistry, type Codec, type Registry } from '../src/common/avro.js';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { startTelemetry } from '../src/common/telemetry.js';
import { Collector } from '../src/collector/collector.js';
import { FLOWS, type FlowBatch } from '../src/events/flows.js';
import { loadConfig } from '../src/common/config.js';
import { ConnectionEnds } from '../src/collector/connection-ends.js';
import { flowsKind } from '../src/collector/flows/index.js';
import { KafkaSink, KeyedKafkaSink } from '../src/common/kafka/sink.js';
import { CgroupIdentities } from '../src/collector/identity/cgroup-identities.js';
import { bindMetadataCodec } from '../src/events/metadata.js';
import type { RecordHandler } from '../src/ebpf/ringbuf.js';
import { FLOW_RECORD, FlowFlag, FlowKind, FlowSide, TcpState, type FlowRecordView } from '../src/ebpf/records/flow.js';
import { RecordType } from '../src/ebpf/records/header.js';

const BROKER = process.env.SIDECARLESS_KAFKA_BROKERS ?? '127.0.0.1:19092';
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 6);
/** Distinct records in the pool; runs cycle through it. */
export const POOL = 50_000;
const PACKED_EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const BASELINE_EVENTS = Number(process.env.BENCH_BASELINE_EVENTS ?? 100_000);
const EVENTS_PER_MESSAGE = 64;
const QUEUE_EVENTS = 200_000;
const FLOOR_EVENTS_PER_CPU_S = 300_000;
const RUN_TIMEOUT_MS = 60_000;
/** BENCH_VERIFY=0 skips reading the topics back (for profiling the produce path alone); the run then fails its floor. */
const VERIFY = process.env.BENCH_VERIFY !== '0';

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** What the pool's records add up to, for checking what comes back from Kafka. */
export interface PoolSums {
  bytes: bigint[];
  connIds: bigint[];
}

/**
 * POOL flow records back to back, as the kernel writes them (little-endian, 16-byte v4-mapped or v6 addresses).
 * Also the source of bench/enricher's events.
 */
export function buildRecords(): { view: DataView; sums: PoolSums } {
  const size = FLOW_RECORD.size;
  const o = FLOW_RECORD.offsets;
  const buffer = new ArrayBuffer(POOL * size);
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  const sums: PoolSums = { bytes: [], connIds: [] };
  const comms = ['curl', 'nginx', 'node', 'postgres', 'envoy-free', 'java'];
  const baseNs = 1_000_000_000_000n; // ~17 min of uptime, in monotonic ns
  for (let i = 0; i < POOL; i++) {
    const at = i * size;
    const side = i % 2 === 0 ? FlowSide.client : FlowSide.server;
    const final = i % 3 !== 0;
    view.setUint16(at + 0, RecordType.flow, true);
    view.setUint16(at + 2, FLOW_RECORD.version, true);
    view.setUint32(at + 4, size, true);
    const startNs = baseNs + BigInt(i) * 1_000_003n;
    view.setBigUint64(at + 8, startNs + 5_000_000_000n + BigInt(i % 1000), true);
    const connId = 0x1_0000_0000n + BigInt(i * 7919);
    view.setBigUint64(at + o.conn_id, connId, true);
    view.setBigUint64(at + o.start_ns, startNs, true);
    view.setBigUint64(at + o.cgroup_id, 4000n + BigInt(i % 64), true);
    const sent = BigInt(i) * 1_000_003n + (i % 7 === 0 ? 5_000_000_000n : 0n);
    const received = BigInt(i % 4096) * 1460n;
    view.setBigUint64(at + o.bytes_sent, sent, true);
    view.setBigUint64(at + o.bytes_received, received, true);
    view.setUint32(at + o.segs_sent, 10 + (i % 500), true);
    view.setUint32(at + o.segs_received, 8 + (i % 300), true);
    view.setUint32(at + o.srtt_us, i % 11 === 0 ? 0 : 50 + (i % 900), true);
    view.setUint32(at + o.rttvar_us, 10 + (i % 40), true);
    view.setUint32(at + o.retransmits, i % 13 === 0 ? 2 : 0, true);
    view.setUint32(at + o.syn_retransmits, i % 97 === 0 ? 1 : 0, true);
    view.setUint32(at + o.connect_us, side === FlowSide.client ? 80 + (i % 200) : 0, true);
    view.setUint32(at + o.netns_ino, 4026531840 + (i % 8), true);
    view.setUint32(at + o.pid, i % 17 === 0 ? 0 : 1000 + (i % 3000), true);
    view.setUint32(at + o.tid, 1000 + (i % 3100), true);
    view.setUint32(at + o.record_seq, final ? 1 + (i % 4) : i % 4, true);
    const v6 = i % 5 === 0;
    view.setUint16(at + o.family, v6 ? 10 : 2, true);
    view.setUint16(at + o.client_port, 32768 + (i % 28000), true);
    view.setUint16(at + o.server_port, [80, 443, 5432, 8080, 9092][i % 5]!, true);
    view.setUint8(at + o.side, side);
    view.setUint8(at + o.kind, final ? FlowKind.final : FlowKind.interim);
    view.setUint8(at + o.last_state, [TcpState.FIN_WAIT1, TcpState.LAST_ACK, TcpState.SYN_SENT, TcpState.CLOSE_WAIT][i % 4]!);
    view.setUint8(at + o.flags, FlowFlag.established | (i % 19 === 0 ? FlowFlag.rstReceived : 0));
    for (const [field, host] of [[o.client_addr, i % 65536], [o.server_addr, (i * 31) % 256]] as const) {
      if (v6) {
        bytes.set([0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host >> 8, host & 0xff], at + field);
      } else {
        bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 244, host >> 8, host & 0xff], at + field);
      }
    }
    const comm = comms[i % comms.length]!;
    for (let c = 0; c < comm.length; c++) bytes[at + o.comm + c] = comm.charCodeAt(c);
    sums.bytes.push(sent + received);
    sums.connIds.push(connId);
  }
  return { view, sums };
}

/**
 * A ring the kernel keeps full: `total` records cycling through the pool. Holds records back while the collector
 * queues more than `highWater` events, as a real ring holds them while the reader is busy.
 */
class MemoryRing {
  handed = 0;
  constructor(
    private readonly view: DataView,
    private readonly total: number,
    private readonly queued: () => number,
    private readonly highWater: number,
  ) {}

  drain(handler: RecordHandler, maxRecords = Number.MAX_SAFE_INTEGER): number {
    const room = this.highWater - this.queued();
    const count = Math.min(maxRecords, this.total - this.handed, room);
    if (count <= 0) return 0;
    const size = FLOW_RECORD.size;
    for (let i = 0; i < count; i++) handler(this.view, ((this.handed + i) % POOL) * size, size);
    this.handed += count;
    return count;
  }

  /** What it holds back is never lost (it stands for the kernel keeping the ring full without dropping). */
  fill(): number {
    return 0;
  }

  wait(timeoutMs: number): Promise<boolean> {
    // Full ring: readable again as soon as the collector has room, which a short timer approximates.
    return new Promise((resolve) => setTimeout(() => resolve(this.handed < this.total), Math.min(timeoutMs, 1)));
  }
}

interface RunResult {
  label: string;
  topic: string;
  eventsPerMessage: number;
  events: number;
  cpuSeconds: number;
  wallSeconds: number;
  eventsProduced: number;
  messagesProduced: number;
  drops: Record<string, number>;
}

const CONTEXT = { nodeName: 'bench-node', epoch: 'bench', firstConnId: 0n, toWallNs: (ns: bigint) => ns + 1_764_000_000_000_000_000n, connectionEnds: new ConnectionEnds() };
/** The pool's cgroup ids (buildRecords) as a node's containers, for the identities runs. */
const POOL_CGROUPS = new Map(
  Array.from({ length: 64 }, (_, i) => [
    4000n + BigInt(i),
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0000${String(i).padStart(4, '0')}_1b8d_4c3f_9a2e_5d6f7a8b9c0d.slice/cri-containerd-${String(i).padStart(64, 'a')}.scope`,
  ]),
);

/** The collector's cgroup identities over the pool's cgroups, producing to `topic`. */
function poolIdentities(kafka: Kafka, topic: string, telemetry: Awaited<ReturnType<typeof startTelemetry>>, label: string): CgroupIdentities {
  const metadataCodec = bindMetadataCodec(loadRegistry());
  return new CgroupIdentities(
    {
      node: CONTEXT.nodeName,
      scan: () => POOL_CGROUPS,
      previous: async () => new Map(),
      sink: new KeyedKafkaSink(kafka, topic),
      encode: (event) => metadataCodec.encode(event),
      logger: createLogger({ level: 'warn', destination: 2 }),
      meter: telemetry.meter(`bench.collector.${label}.identities`),
    },
    { scanMs: 2000 },
  );
}

async function runOnce(
  kafka: Kafka,
  registry: Registry,
  view: DataView,
  telemetry: Awaited<ReturnType<typeof startTelemetry>>,
  { label, topic, events, eventsPerMessage, metadataTopic }: { label: string; topic: string; events: number; eventsPerMessage: number; metadataTopic?: string },
): Promise<RunResult> {
  const logger = createLogger({ level: 'warn', destination: 2 });
  const sink = new KafkaSink(kafka, topic, 'bench-node');
  const identities = metadataTopic === undefined ? undefined : poolIdentities(kafka, metadataTopic, telemetry, label);
  let collector: Collector<FlowRecordView> | undefined;
  const ring = new MemoryRing(view, events, () => collector!.queuedEvents, QUEUE_EVENTS / 2);
  collector = new Collector(
    {
      kind: flowsKind.name,
      // The in-memory ring has no kernel drops.
      source: { reader: ring, fill: () => ring.fill(), takeKernelDrops: () => [], kernelDropRemedies: {} },
      transform: (emit) => flowsKind.transform(CONTEXT, emit, loadConfig({ argv: [], env: {} })),
      packing: flowsKind.packing(CONTEXT, registry, PARTITIONS),
      sink,
      ...(identities && { prerequisites: identities.prerequisites<FlowRecordView>((record) => flowsKind.cgroupId(record)) }),
      logger,
      meter: telemetry.meter(`bench.collector.${label}`),
    },
    { queueEvents: QUEUE_EVENTS, eventsPerMessage, flushMs: 200, shutdownTimeoutMs: 20_000 },
  );
  const wallStart = performance.now();
  const cpuStart = cpuSeconds();
  identities?.start();
  collector.start();
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  while (ring.handed < events && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  await collector.stop();
  await identities?.stop();
  const cpu = cpuSeconds() - cpuStart;
  const wall = (performance.now() - wallStart) / 1000;
  return {
    label,
    topic,
    eventsPerMessage,
    events,
    cpuSeconds: cpu,
    wallSeconds: wall,
    eventsProduced: collector.stats.eventsProduced,
    messagesProduced: collector.stats.messagesProduced,
    drops: { ...collector.stats.drops },
  };
}

interface ReadBack {
  endMessages: number;
  messages: number;
  events: number;
  bytes: bigint;
  connIds: bigint;
  badHeaders: number;
}

/**
 * Reads the topics back to their end offsets with one consumer: counts messages and events (and checks each
 * message's event-count header) and sums the byte counters and kernel connection ids of every event.
 */
async function readBack(kafka: Kafka, admin: Admin, codec: Codec<FlowBatch>, topics: string[], groupId: string): Promise<Map<string, ReadBack>> {
  const found = new Map<string, ReadBack>();
  let left = 0;
  for (const topic of topics) {
    const endMessages = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
    found.set(topic, { endMessages, messages: 0, events: 0, bytes: 0n, connIds: 0n, badHeaders: 0 });
    left += endMessages;
  }
  if (left === 0) return found;
  const consumer = kafka.consumer({ groupId, maxBytes: 32 << 20, maxBytesPerPartition: 8 << 20 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const into = found.get(batch.topic)!;
        for (const message of batch.messages) {
          const { events } = codec.decodeFrom(message.value!, codec);
          into.messages++;
          into.events += events.length;
          if (Number(message.headers?.['sidecarless-events']?.toString()) !== events.length) into.badHeaders++;
          for (const event of events) {
            into.bytes += event.bytes_client_to_server + event.bytes_server_to_client;
            into.connIds += BigInt(event.connection_id.slice(event.connection_id.lastIndexOf('/') + 1));
          }
        }
        left -= batch.messages.length;
        if (left <= 0) done();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([finished, new Promise((resolve) => (timer = setTimeout(resolve, 60_000)))]);
    clearTimeout(timer);
  } finally {
    await consumer.disconnect();
  }
  return found;
}

function expectedSums(sums: PoolSums, events: number): { bytes: bigint; connIds: bigint } {
  let bytes = 0n;
  let connIds = 0n;
  const cycles = Math.floor(events / POOL);
  const rest = events % POOL;
  for (let i = 0; i < POOL; i++) {
    const times = BigInt(cycles + (i < rest ? 1 : 0));
    bytes += sums.bytes[i]! * times;
    connIds += sums.connIds[i]! * times;
  }
  return { bytes, connIds };
}

export async function run(): Promise<Record<string, unknown>> {
  const registry = loadRegistry();
  const codec = registry.codec<FlowBatch>(FLOWS.subject);
  const kafka = createKafka({ brokers: [BROKER], clientId: 'sidecarless-bench-collector' }, createLogger({ level: 'error', destination: 2 }));
  const admin = kafka.admin();
  await admin.connect();
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  const stamp = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const topics: string[] = [];
  const groups: string[] = [];
  const { view, sums } = buildRecords();
  const plan = [
    { label: 'warmup', eventsPerMessage: EVENTS_PER_MESSAGE, events: 200_000 },
    { label: 'baseline_1', eventsPerMessage: 1, events: BASELINE_EVENTS },
    { label: 'packed_1', eventsPerMessage: EVENTS_PER_MESSAGE, events: PACKED_EVENTS },
    { label: 'identities_1', eventsPerMessage: EVENTS_PER_MESSAGE, events: PACKED_EVENTS },
    { label: 'baseline_2', eventsPerMessage: 1, events: BASELINE_EVENTS },
    { label: 'packed_2', eventsPerMessage: EVENTS_PER_MESSAGE, events: PACKED_EVENTS },
    { label: 'identities_2', eventsPerMessage: EVENTS_PER_MESSAGE, events: PACKED_EVENTS },
  ].filter((step) => step.events > 0);
  try {
    const specs = plan.map((step) => ({
      ...step,
      topic: `sidecarless-bench-collector-${stamp}-${step.label}`,
      ...(step.label.startsWith('identities') && { metadataTopic: `sidecarless-bench-collector-${stamp}-${step.label}-metadata` }),
    }));
    const metadataTopics = specs.flatMap((spec) => spec.metadataTopic ?? []);
    topics.push(...specs.map((s) => s.topic), ...metadataTopics);
    await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })) });
    const results: RunResult[] = [];
    for (const spec of specs) results.push(await runOnce(kafka, registry, view, telemetry, spec));
    // Each identities run publishes the pool's 64 cgroups once.
    const identityMessages = new Map<string, number>();
    for (const topic of metadataTopics) identityMessages.set(topic, (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0));

    const groupId = `sidecarless-bench-collector-${stamp}`;
    groups.push(groupId);
    const started = performance.now();
    const flowTopics = specs.map((spec) => spec.topic);
    const backs = VERIFY
      ? await readBack(kafka, admin, codec, flowTopics, groupId)
      : new Map<string, ReadBack>(flowTopics.map((t) => [t, { endMessages: -1, messages: 0, events: 0, bytes: 0n, connIds: 0n, badHeaders: 0 }]));
    const verifySeconds = (performance.now() - started) / 1000;
    const checked = results.map((result, i) => {
      const back = backs.get(result.topic)!;
      const metadataTopic = specs[i]!.metadataTopic;
      const identities = metadataTopic === undefined ? undefined : identityMessages.get(metadataTopic);
      const want = expectedSums(sums, result.events);
      const dropped = Object.values(result.drops).reduce((a, b) => a + b, 0);
      const exact =
        dropped === 0 &&
        result.eventsProduced === result.events &&
        back.events === result.events &&
        back.messages === back.endMessages &&
        back.endMessages === result.messagesProduced &&
        back.badHeaders === 0 &&
        back.bytes === want.bytes &&
        back.connIds === want.connIds &&
        (identities === undefined || identities === POOL_CGROUPS.size);
      return { ...result, dropped, back, identities, exact };
    });
    const measured = checked.filter((r) => r.label !== 'warmup');
    const total = (prefix: string) => {
      const runs = measured.filter((r) => r.label.startsWith(prefix));
      const events = runs.reduce((a, r) => a + r.events, 0);
      const cpu = runs.reduce((a, r) => a + r.cpuSeconds, 0);
      const wall = runs.reduce((a, r) => a + r.wallSeconds, 0);
      return runs.length === 0 ? { events_per_cpu_s: 0, events_per_wall_s: 0 } : { events_per_cpu_s: Math.round(events / cpu), events_per_wall_s: Math.round(events / wall) };
    };
    const baseline = total('baseline');
    const packed = total('packed');
    const identities = total('identities');
    const exact = checked.every((r) => r.exact);
    const drops = checked.reduce((a, r) => a + r.dropped, 0);
    return {
      bench: 'collector',
      path: 'flow record bytes -> flowsKind.transform (FlowRecordView) -> Packer/Outbox -> FlowEventWriter (Avro FlowBatch) -> KafkaSink (acks=all, idempotent) -> broker',
      partitions: PARTITIONS,
      packed_events_per_message: EVENTS_PER_MESSAGE,
      packed_events_per_cpu_s: packed.events_per_cpu_s,
      packed_events_per_wall_s: packed.events_per_wall_s,
      baseline_one_event_per_message_events_per_cpu_s: baseline.events_per_cpu_s,
      baseline_events_per_wall_s: baseline.events_per_wall_s,
      packed_vs_baseline: Number((packed.events_per_cpu_s / baseline.events_per_cpu_s).toFixed(2)),
      identities_events_per_cpu_s: identities.events_per_cpu_s,
      identities_vs_packed: Number((identities.events_per_cpu_s / packed.events_per_cpu_s).toFixed(3)),
      runs: checked.map((r) => ({
        label: r.label,
        events: r.events,
        events_per_message: r.eventsPerMessage,
        cpu_s: Number(r.cpuSeconds.toFixed(3)),
        wall_s: Number(r.wallSeconds.toFixed(3)),
        events_per_cpu_s: Math.round(r.events / r.cpuSeconds),
        acked_events: r.eventsProduced,
        messages: r.messagesProduced,
        read_back_events: r.back.events,
        read_back_messages: r.back.messages,
        topic_end_offsets_sum: r.back.endMessages,
        ...(r.identities !== undefined && { identity_messages: r.identities }),
        drops: r.drops,
        exact: r.exact,
      })),
      drops,
      exact_counts_and_checksums: exact,
      verify_wall_s: Number(verifySeconds.toFixed(1)),
      floor: { packed_events_per_cpu_s: FLOOR_EVENTS_PER_CPU_S, drops: 0 },
      meets_floor: packed.events_per_cpu_s >= FLOOR_EVENTS_PER_CPU_S && drops === 0 && exact,
    };
  } finally {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {});
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
    await admin.disconnect();
    await telemetry.shutdown();
  }
}

