/**
 * bench/enricher: flow rows per CPU-second from FlowBatch messages into the `flows` table.
 *
 *   1. Events: bench/collector's synthetic kernel records through FlowRecordView -> flowEventReader (the collector's Avro, decoded) (v4 and v6
 *      addresses, byte counters above 2^32, null RTT/pid), timed an hour ago (inside the table's TTL); packed 64 per
 *      FlowBatch message per partition the way the collector packs them. The same messages are produced to a fresh
 *      topic, so a Kafka batch and an in-memory batch of the same partition hold the same offsets.
 *   2. Embedded engine (chdb in this process: its parsing, sorting and compression count in our CPU time), one
 *      database per variant, each created by the shipped migrations:
 *        rowbinary      the real Enricher + ClickHouseSink (RowBinary file read by INSERT ... SELECT FROM file())
 *                       + BatchLedger (a row recorded before each insert), fed in-memory batches of BATCH_BYTES
 *                       (what one Kafka fetch of enricher.batchBytes holds): the insert path alone, no consumer;
 *        jsoneachrow    baseline, the path as it was: every event of a batch held as a row object of text values,
 *                       then client.insert JSONEachRow (which SETs the token on the chdb session: its own client);
 *        tsv            the same held rows as TabSeparated text, built with little per-row work, handed to chdb's
 *                       raw Buffer insert with the token on the query: the best a text format did here;
 *        end_to_end     the real enricher role (startEnricher: consumer group, commits) reading the topic, timed
 *                       by its own rows_inserted counter: from start (role start-up and group join included) and
 *                       from its first insert (the steady state) to its last.
 *      Each path first stores its batches once into a scratch table, untimed (JIT, the engine's first inserts).
 *      Same-run ratios against the baseline. tsv and jsoneachrow run on the first BASELINE_EVENTS only (slower).
 *   3. HTTP: the same batches through the same Enricher and row encoder, posted as RowBinary to the Debian
 *      ClickHouse 18.16 server of the local stack. It cannot hold the modern table, so a legacy table takes the
 *      very same bytes: times UInt64 ns (DateTime64(9) is Int64 ns), addresses FixedString(16) (IPv6 is 16 bytes),
 *      String for LowCardinality(String), UInt8 for Bool; no TTL, codecs or deduplication token (18.16 lacks
 *      insert_deduplication_token, so those inserts carry none; nor the batch ledger, whose table it cannot hold
 *      either, so no batch is recorded). The server's CPU is read from /proc as well.
 *   4. Verify, reading back: exact row counts; every table equal to the baseline's rows (EXCEPT both ways, all
 *      columns) over the baseline's offsets, and end_to_end equal to rowbinary; a sample of rows compared field by
 *      field with the events (exact byte counts, addresses as IPv6, DateTime64(9) nanoseconds); sums over every row;
 *      no temporary insert file left behind. Then the topics, consumer group, databases and the data directory go.
 *   One JSON line; floor: 200k rows per CPU-second into the embedded engine, both insert-only and end to end from
 *   Kafka in the steady state (the start-up-inclusive end-to-end figure is reported beside it). Merges running
 *   during a run are in its CPU; those the engine runs after the last insert are measured apart (merge_tail_cpu_s):
 *   meets_floor counts them, meets_floor_before_merge_tail does not.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { loadRegistry } from '../src/common/avro.js';
import { createClickHouse } from '../src/common/clickhouse/client.js';
import { migrate } from '../src/common/clickhouse/migrations.js';
import { loadConfig } from '../src/common/config.js';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { startTelemetry } from '../src/common/telemetry.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../src/events/flows.js';
import { flowEventReader } from '../src/collector/flows/transform.js';
import { FLOW_RECORD, FlowRecordView } from '../src/ebpf/records/flow.js';
import type { SinkResult } from '../src/common/pipeline.js';
import { BatchLedger, type Ledger } from '../src/enricher/batch-ledger.js';
import { ClickHouseSink } from '../src/enricher/clickhouse-sink.js';
import { Enricher, type KafkaBatch } from '../src/enricher/enricher.js';
import { FLOW_COLUMNS, nanosToDateTime64, toFlowRow, type FlowRow, type FlowRows } from '../src/enricher/flow-row.js';
import { startEnricher } from '../src/enricher/index.js';
import type { EndpointIdentity } from '../src/metadata/index/identity.js';
import { localClickHouseUrl, localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { stackDir } from '../src/lab/stack/processes.js';
import { buildRecords, POOL } from './collector.js';
import {
  count,
  cpuSeconds,
  enricherDeps,
  handleAll,
  type Ingested,
  kafkaBatches,
  measure,
  measureIngest,
  mergesDone,
  noMetadata,
  packMessages,
  produceMessages,
  queryRows,
  round,
  watchRowsInserted,
} from './enricher-pipeline.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 640_000);
const BASELINE_EVENTS = Number(process.env.BENCH_BASELINE_EVENTS ?? 128_000);
const EVENTS_PER_MESSAGE = 64;
const PARTITIONS = 2;
/** Bytes per batch, in memory and for the role's fetches: the default of enricher.batchBytes unless overridden. */
const BATCH_BYTES = Number(process.env.BENCH_BATCH_BYTES ?? loadConfig({ argv: [], env: {} }).enricher.batchBytes);
const FLOOR_ROWS_PER_CPU_S = 200_000;
const E2E_TIMEOUT_MS = 90_000;

/** CPU seconds of the local ClickHouse server process, or undefined when it cannot be read. */
function serverCpuSeconds(): number | undefined {
  try {
    const pid = readFileSync(join(stackDir, 'pids', 'clickhouse.pid'), 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return undefined;
  }
}

interface Built {
  /** Each partition's FlowBatch messages, in offset order. */
  partitions: Buffer[][];
  /** Candidates for the field-by-field check (the other events are dropped as soon as encoded: see below). */
  candidates: FlowEvent[];
  sumBytes: bigint;
}

/**
 * Events an hour ago (the table's TTL drops expired rows), connection ids unique per cycle through the pool, packed
 * per partition like the collector's Packer. Only the sample outlives its message: hundreds of thousands of event
 * objects kept alive would make every major GC of the measured runs walk them, a cost production does not have.
 */
function buildMessages(total: number, candidatesBelow: number, encode: (events: FlowEvent[]) => Buffer): Built {
  const { view } = buildRecords();
  const offsetNs = BigInt(Date.now() - 3_600_000) * 1_000_000n - 1_000_000_000_000n;
  const candidates: FlowEvent[] = [];
  const every = Math.max(1, Math.floor(candidatesBelow / 2000));
  let sumBytes = 0n;
  const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
  const record = new FlowRecordView();
  function* events(): Generator<FlowEvent> {
    let toEvent: ((record: FlowRecordView) => FlowEvent) | undefined;
    for (let i = 0; i < total; i++) {
      if (i % POOL === 0) toEvent = flowEventReader({ nodeName: 'bench-node', epoch: `c${i / POOL}`, toWallNs: (ns: bigint) => ns + offsetNs }, codec);
      const event = toEvent!(record.point(view, (i % POOL) * FLOW_RECORD.size, FLOW_RECORD.size));
      sumBytes += event.bytes_client_to_server + event.bytes_server_to_client;
      if (i < candidatesBelow && i % every === 0) candidates.push(event);
      yield event;
    }
  }
  const partitions = packMessages(events(), PARTITIONS, EVENTS_PER_MESSAGE, encode);
  return { partitions, candidates, sumBytes };
}

/**
 * The batch handling as it was before RowBinary, for the baselines: decode every message, hold one row per event,
 * then insert them all with the same token the Enricher uses (no stored-offset skip: every table starts empty).
 */
async function handleAllHeld(registry: ReturnType<typeof loadRegistry>, batches: KafkaBatch[], insert: (rows: FlowRow[], token: string) => Promise<void>): Promise<void> {
  for (const batch of batches) {
    const rows: FlowRow[] = [];
    for (const message of batch.messages) {
      const position = { topic: batch.topic, partition: batch.partition, offset: message.offset };
      for (const event of registry.resolve<FlowBatch>(FLOWS.subject, message.value!).value.events) rows.push(toFlowRow(event, noMetadata.joinFlow(event), position));
    }
    await insert(rows, `${batch.topic}/${batch.partition}/${batch.messages[0]!.offset}-${batch.messages.at(-1)!.offset}`);
  }
}

/** The sink as it was: one object of text values per row, client.insert JSONEachRow (the token SET on the session). */
function jsonEachRowInsert(client: ClickHouseClient, table: string) {
  return async (rows: FlowRow[], token: string): Promise<void> => {
    await client.insert({
      table,
      values: rows.map(jsonRow),
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: token, insert_deduplicate: 1 },
    });
  };
}

/** One end's identity columns, as JSONEachRow takes them. */
function identityJson(end: 'client' | 'server', identity: EndpointIdentity): Record<string, unknown> {
  return {
    [`${end}_k8s_namespace_name`]: identity.k8s_namespace_name,
    [`${end}_k8s_pod_name`]: identity.k8s_pod_name,
    [`${end}_k8s_pod_uid`]: identity.k8s_pod_uid,
    [`${end}_k8s_workload_kind`]: identity.k8s_workload_kind,
    [`${end}_k8s_workload_name`]: identity.k8s_workload_name,
    [`${end}_k8s_service_name`]: identity.k8s_service_name,
    [`${end}_k8s_node_name`]: identity.k8s_node_name,
    [`${end}_endpoint_kind`]: identity.kind,
    [`${end}_labels`]: identity.labels,
    [`${end}_enrichment`]: identity.status,
  };
}

function jsonRow({ event, identities, position }: FlowRow): Record<string, unknown> {
  return {
    time: nanosToDateTime64(event.time_ns),
    start_time: nanosToDateTime64(event.start_time_ns),
    connection_id: event.connection_id,
    k8s_node_name: event.k8s_node_name,
    record_kind: event.record_kind,
    record_seq: event.record_seq,
    observer_side: event.observer_side,
    network_transport: event.network_transport,
    network_type: event.network_type,
    client_address: event.client_address,
    client_port: event.client_port,
    server_address: event.server_address,
    server_port: event.server_port,
    bytes_client_to_server: event.bytes_client_to_server.toString(),
    bytes_server_to_client: event.bytes_server_to_client.toString(),
    segments_client_to_server: event.segments_client_to_server.toString(),
    segments_server_to_client: event.segments_server_to_client.toString(),
    rtt_us: event.rtt_us ?? 0,
    rtt_var_us: event.rtt_var_us ?? 0,
    retransmits: event.retransmits,
    syn_retransmits: event.syn_retransmits,
    connect_latency_us: event.connect_latency_us ?? 0,
    handshake_completed: event.handshake_completed,
    close_reason: event.close_reason,
    process_pid: event.process_pid ?? 0,
    thread_id: event.thread_id ?? 0,
    process_executable_name: event.process_executable_name ?? '',
    cgroup_id: event.cgroup_id.toString(),
    network_namespace_inode: event.network_namespace_inode.toString(),
    sampling_rate: event.sampling_rate,
    started_before_tracing: event.started_before_tracing,
    ...identityJson('client', identities.client),
    ...identityJson('server', identities.server),
    kafka_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
  };
}

/** TabSeparated with as little per-row work as text allows, through chdb's raw (Buffer, per-query settings) insert. */
function tabSeparatedInsert(client: ClickHouseClient, table: string) {
  // chdb's own raw insert, reached through the connection createClickHouse built (bench only).
  const chdb = (client as unknown as { connection: { chdb: { rawInsert(p: Record<string, unknown>): Promise<unknown> } } }).connection.chdb;
  return async (rows: FlowRow[], token: string): Promise<void> => {
    let text = '';
    for (const { event: e, identities, position } of rows) {
      text +=
        `${dateTime64(e.time_ns)}\t${dateTime64(e.start_time_ns)}\t${tsv(e.connection_id)}\t${tsv(e.k8s_node_name)}\t${e.record_kind}\t${e.record_seq}\t` +
        `${e.observer_side}\t${tsv(e.network_transport)}\t${e.network_type}\t${e.client_address}\t${e.client_port}\t${e.server_address}\t${e.server_port}\t` +
        `${e.bytes_client_to_server}\t${e.bytes_server_to_client}\t${e.segments_client_to_server}\t${e.segments_server_to_client}\t${e.rtt_us ?? 0}\t` +
        `${e.rtt_var_us ?? 0}\t${e.retransmits}\t${e.syn_retransmits}\t${e.connect_latency_us ?? 0}\t${e.handshake_completed ? 1 : 0}\t${tsv(e.close_reason)}\t` +
        `${e.process_pid ?? 0}\t${e.thread_id ?? 0}\t${tsv(e.process_executable_name ?? '')}\t${e.cgroup_id}\t${e.network_namespace_inode}\t${e.sampling_rate}\t${e.started_before_tracing ? 1 : 0}\t` +
        `${identityTsv(identities.client)}\t${identityTsv(identities.server)}\t` +
        `${tsv(position.topic)}\t${position.partition}\t${position.offset}\n`;
    }
    await chdb.rawInsert({
      table,
      columns: FLOW_COLUMNS.map(([name]) => name),
      values: Buffer.from(text, 'utf8'),
      format: 'TabSeparated',
      settings: { insert_deduplication_token: token, insert_deduplicate: 1 },
    });
  };
}

/** One end's identity columns as TabSeparated fields (the Map as its text form, {'key':'value',...}). */
function identityTsv(identity: EndpointIdentity): string {
  const quoted = (text: string) => `'${text.replace(/[\\']/g, (c) => `\\${c}`)}'`;
  const labels = `{${Object.entries(identity.labels).map(([key, value]) => `${quoted(key)}:${quoted(value)}`).join(',')}}`;
  return [
    identity.k8s_namespace_name,
    identity.k8s_pod_name,
    identity.k8s_pod_uid,
    identity.k8s_workload_kind,
    identity.k8s_workload_name,
    identity.k8s_service_name,
    identity.k8s_node_name,
    identity.kind,
    labels,
    identity.status,
  ]
    .map(tsv)
    .join('\t');
}

/** "<seconds>.<9 digits>" by slicing the decimal digits: no BigInt division. */
function dateTime64(ns: bigint): string {
  const digits = ns.toString();
  return digits.length > 9 ? `${digits.slice(0, -9)}.${digits.slice(-9)}` : nanosToDateTime64(ns);
}

function tsv(text: string): string {
  return /[\t\n\\]/.test(text) ? text.replace(/[\t\n\\]/g, (c) => (c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\\\')) : text;
}

/** The Debian 18.16 server's version of the flows table: same column order, types whose RowBinary bytes match. */
function legacyDdl(table: string): string {
  const legacyType = (type: string) => {
    if (type === 'DateTime64(9)') return 'UInt64';
    if (type === 'IPv6') return 'FixedString(16)';
    if (type === 'Bool') return 'UInt8';
    // 18.16 has no Map. An empty Map's bytes (a zero count) are an empty Array's, and every bench row's labels are
    // empty (no metadata); its Array(Tuple(...)) reads other bytes than later versions write.
    if (type === 'Map(String, String)') return 'Array(String)';
    return type;
  };
  const columns = FLOW_COLUMNS.map(([name, type]) => `${name} ${legacyType(type)}`).join(', ');
  return `CREATE TABLE ${table} (${columns}) ENGINE = MergeTree PARTITION BY toDate(toDateTime(intDiv(time, 1000000000))) ORDER BY (server_address, server_port, time, connection_id, record_seq)`;
}

/** 18.16 cannot hold the ledger's table (LowCardinality, TTL): every batch is new to it, and none is recorded. */
const NO_LEDGER: Ledger = { latest: async () => undefined, boundaryWithin: async () => undefined, record: async () => ({ ok: true }) };

/** Posts the rows as the ClickHouseSink does over HTTP, minus the token settings 18.16 does not know. */
class LegacyHttpSink {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly table: string,
  ) {}

  async insert(rows: FlowRows): Promise<SinkResult> {
    const result = await this.client.exec({
      query: `INSERT INTO ${this.table} (${FLOW_COLUMNS.map(([name]) => name).join(', ')}) FORMAT RowBinary`,
      values: Readable.from([rows.bytes()], { objectMode: false }),
    });
    result.stream.resume();
    await new Promise<void>((resolve, reject) => result.stream.once('end', resolve).once('error', reject));
    return { ok: true };
  }
}

/** Rows of `a` missing from `b` plus rows of `b` missing from `a`, over every column, limited to `where`. */
async function difference(client: ClickHouseClient, a: string, b: string, where: string): Promise<number> {
  const side = (x: string, y: string) => `SELECT count() AS n FROM (SELECT * FROM ${x} WHERE ${where} EXCEPT SELECT * FROM ${y} WHERE ${where})`;
  const [left] = await queryRows<{ n: string }>(client, side(a, b));
  const [right] = await queryRows<{ n: string }>(client, side(b, a));
  return Number(left!.n) + Number(right!.n);
}

/** Field-by-field check of sampled rows against their events; returns the mismatches. */
async function sampleMismatches(client: ClickHouseClient, table: string, expected: Map<string, FlowEvent>, legacy = false): Promise<string[]> {
  const time = (column: string) => (legacy ? `toString(${column})` : `toString(toUnixTimestamp64Nano(${column}))`);
  const address = (column: string) => (legacy ? `IPv6NumToString(${column})` : `toString(${column})`);
  const ids = [...expected.keys()].map((id) => `'${id}'`).join(',');
  const rows = await queryRows<Record<string, string | number>>(
    client,
    `SELECT connection_id, ${time('time')} AS time_ns, ${time('start_time')} AS start_ns, ${address('client_address')} AS client,
            ${address('server_address')} AS server, client_port, server_port, toString(bytes_client_to_server) AS c2s,
            toString(bytes_server_to_client) AS s2c, toString(segments_client_to_server) AS segs_c2s, rtt_us, process_pid,
            process_executable_name AS comm, toString(record_kind) AS kind, toString(observer_side) AS side, toString(network_type) AS type,
            toString(handshake_completed) AS handshake, close_reason, toString(cgroup_id) AS cgroup
     FROM ${table} WHERE connection_id IN (${ids})`,
  );
  const problems: string[] = [];
  if (rows.length !== expected.size) problems.push(`${table}: ${rows.length} sampled rows found, ${expected.size} expected`);
  const ipv6Text = (text: string) => (text.includes(':') ? text : `::ffff:${text}`);
  for (const row of rows) {
    const e = expected.get(String(row.connection_id))!;
    const want: Record<string, string | number> = {
      connection_id: e.connection_id,
      time_ns: e.time_ns.toString(),
      start_ns: e.start_time_ns.toString(),
      client: ipv6Text(e.client_address),
      server: ipv6Text(e.server_address),
      client_port: e.client_port,
      server_port: e.server_port,
      c2s: e.bytes_client_to_server.toString(),
      s2c: e.bytes_server_to_client.toString(),
      segs_c2s: e.segments_client_to_server.toString(),
      rtt_us: e.rtt_us ?? 0,
      process_pid: e.process_pid ?? 0,
      comm: e.process_executable_name ?? '',
      kind: legacy ? String(e.record_kind) : e.record_kind,
      side: e.observer_side,
      type: e.network_type,
      handshake: legacy ? (e.handshake_completed ? '1' : '0') : String(e.handshake_completed),
      close_reason: e.close_reason,
      cgroup: e.cgroup_id.toString(),
    };
    for (const [key, value] of Object.entries(want)) {
      if (String(row[key]) !== String(value)) problems.push(`${table} ${e.connection_id} ${key}: got ${row[key]}, want ${value}`);
    }
  }
  return problems.slice(0, 10);
}

export async function run(): Promise<Record<string, unknown>> {
  const stamp = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const name = `slbench_${stamp}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-enricher-'));
  const registry = loadRegistry();
  const codec = registry.codec<FlowBatch>(FLOWS.subject);
  const logger = createLogger({ level: 'error', destination: 2 });
  const kafka = createKafka({ brokers: [...localKafkaBrokers], clientId: 'sidecarless-bench-enricher' }, logger);
  const admin = kafka.admin();
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  const prefix = `${name}.`;
  const topic = `${prefix}flows.v1`;
  // The role makes the http and verdicts topics too (it reads them).
  const topicsToDelete = [topic, `${prefix}http.v1`, `${prefix}verdicts.v1`, `${prefix}metadata.v1`, `${prefix}deadletter.v1`];
  const groupId = `${name}-enricher`;
  const databases = { warmup: `${name}_warm`, rowbinary: `${name}_rb`, tsv: `${name}_tsv`, json: `${name}_json`, e2e: `${name}_e2e` };
  const legacyDatabase = `${name}_legacy`;
  let client: ClickHouseClient | undefined;
  let http: ClickHouseClient | undefined;
  await admin.connect();
  try {
    // 1. Events, messages, and the same messages in Kafka.
    const { partitions, candidates, sumBytes } = buildMessages(EVENTS, BASELINE_EVENTS, (batch) => codec.encode({ events: batch }));
    const messages = partitions.reduce((sum, list) => sum + list.length, 0);
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
    await produceMessages(kafka, topic, partitions);
    const all = kafkaBatches(topic, partitions, Number.MAX_SAFE_INTEGER, BATCH_BYTES);
    const subset = kafkaBatches(topic, partitions, BASELINE_EVENTS, BATCH_BYTES);
    // The sample: candidates that the baseline's batches hold (every table has those rows), at most 500.
    const inSubset = new Set<string>();
    for (const batch of subset.batches) for (const message of batch.messages) for (const e of codec.decodeFrom(message.value!, codec).events) inSubset.add(e.connection_id);
    const sample = new Map(candidates.filter((e) => inSubset.has(e.connection_id)).slice(0, 500).map((e) => [e.connection_id, e]));

    // Avro decode alone, for the split of the costs.
    const decode = await measure(EVENTS, async () => {
      for (const list of partitions) for (const frame of list) registry.resolve<FlowBatch>(FLOWS.subject, frame);
    });

    // 2. Embedded engine.
    client = await createClickHouse({ embeddedPath: dataDir });
    for (const database of Object.values(databases)) await migrate(client, { database, ttlDays: 7 });
    const table = (variant: keyof typeof databases) => `${databases[variant]}.flows`;
    const ledger = (variant: keyof typeof databases) => new BatchLedger(client!, `${databases[variant]}.kafka_batches`);
    // Warm-up, untimed, each path on the batches it is measured on (into a scratch table): JIT, and the engine's
    // first inserts, which cost it 2-3x more than later ones (its memory, caches and thread pools settle).
    await handleAll(new Enricher(enricherDeps(new ClickHouseSink(client, table('warmup')), ledger('warmup'), telemetry, 'warm')), all.batches);
    await handleAllHeld(registry, subset.batches, tabSeparatedInsert(client, table('warmup')));
    // Its own client: client.insert on chdb SETs the token on the session, which would stay for later queries.
    const jsonClient = await createClickHouse({ embeddedPath: dataDir });
    await handleAllHeld(registry, subset.batches, jsonEachRowInsert(jsonClient, table('warmup')));
    // Its merges must not run into the measured runs.
    await client.command({ query: `DROP TABLE ${table('warmup')} SYNC` });

    // Each run is followed by the merges its inserts caused (reported apart and together): their CPU is part of the
    // cost of ingesting into a MergeTree, and must not leak into the next run.
    await mergesDone(client);
    const rowbinary = await measureIngest(all.events, client, () =>
      handleAll(new Enricher(enricherDeps(new ClickHouseSink(client!, table('rowbinary')), ledger('rowbinary'), telemetry, 'rb')), all.batches),
    );
    const tsv = await measureIngest(subset.events, client, () => handleAllHeld(registry, subset.batches, tabSeparatedInsert(client!, table('tsv'))));
    const json = await measureIngest(subset.events, client, () => handleAllHeld(registry, subset.batches, jsonEachRowInsert(jsonClient, table('json'))));
    await jsonClient.close();

    const config = loadConfig({
      argv: [],
      env: {
        SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
        SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix,
        SIDECARLESS_KAFKA_PARTITIONS: String(PARTITIONS),
        SIDECARLESS_CLICKHOUSE_DATABASE: databases.e2e,
        SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: dataDir,
        SIDECARLESS_ENRICHER_GROUP_ID: groupId,
        SIDECARLESS_ENRICHER_BATCH_BYTES: String(BATCH_BYTES),
        SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
        SIDECARLESS_LOG_LEVEL: 'error',
      },
    });
    // Timed by the role's own rows_inserted counter: CPU is read the moment each insert is counted, so neither
    // polling nor the stop afterwards is measured, and the steady state starts exactly at the first insert.
    let e2eStored = 0;
    let first: { rows: number; cpu: number } | undefined;
    let allStored: () => void = () => {};
    const stored = new Promise<void>((resolve) => (allStored = resolve));
    const watched = watchRowsInserted(telemetry, (rows) => {
      e2eStored += rows;
      first ??= { rows, cpu: cpuSeconds() };
      if (e2eStored >= all.events) allStored();
    });
    const e2eWall = performance.now();
    const e2eCpu = cpuSeconds();
    const role = await startEnricher({ config, logger, telemetry: watched });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stored, new Promise((resolve) => (timer = setTimeout(resolve, E2E_TIMEOUT_MS)))]);
    clearTimeout(timer);
    const e2eEnd = cpuSeconds();
    const e2eWallS = (performance.now() - e2eWall) / 1000;
    const tail = (await measure(all.events, () => mergesDone(client!))).cpu_s;
    // Bounded: a broker that went away mid-run must not hang the bench.
    await Promise.race([role.stop(), new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
    const e2e: Ingested = {
      rows: e2eStored,
      cpu_s: round(e2eEnd - e2eCpu, 3),
      wall_s: round(e2eWallS, 3),
      rows_per_cpu_s: Math.round(e2eStored / (e2eEnd - e2eCpu)),
      rows_per_wall_s: Math.round(e2eStored / e2eWallS),
      merge_tail_cpu_s: tail,
      rows_per_cpu_s_with_merge_tail: Math.round(e2eStored / (e2eEnd - e2eCpu + tail)),
    };
    const steadyRows = e2eStored - (first?.rows ?? 0);
    const steadyCpu = e2eEnd - (first?.cpu ?? e2eCpu);
    const steady = {
      rows: steadyRows,
      cpu_s: round(steadyCpu, 3),
      rows_per_cpu_s: Math.round(steadyRows / steadyCpu),
      rows_per_cpu_s_with_merge_tail: Math.round(steadyRows / (steadyCpu + tail)),
    };

    // 3. HTTP to the Debian 18.16 server.
    http = await createClickHouse({ url: localClickHouseUrl });
    await http.command({ query: `CREATE DATABASE IF NOT EXISTS ${legacyDatabase}` });
    const legacyTable = `${legacyDatabase}.flows`;
    await http.command({ query: legacyDdl(legacyTable) });
    await mergesDone(client);
    const serverBefore = serverCpuSeconds();
    const httpRun = await measure(all.events, () => handleAll(new Enricher(enricherDeps(new LegacyHttpSink(http!, legacyTable), NO_LEDGER, telemetry, 'http')), all.batches));
    const serverAfter = serverCpuSeconds();
    const serverCpu = serverBefore !== undefined && serverAfter !== undefined ? serverAfter - serverBefore : undefined;

    // 4. Verify.
    const counts = {
      rowbinary: await count(client, table('rowbinary')),
      tsv: await count(client, table('tsv')),
      json: await count(client, table('json')),
      end_to_end: await count(client, table('e2e')),
      http_legacy: await count(http, legacyTable),
    };
    const subsetWhere = subset.batches
      .map((batch) => `(kafka_partition = ${batch.partition} AND kafka_offset BETWEEN ${batch.messages[0]!.offset} AND ${batch.messages.at(-1)!.offset})`)
      .join(' OR ');
    const differences = {
      rowbinary_vs_json: await difference(client, table('rowbinary'), table('json'), subsetWhere),
      tsv_vs_json: await difference(client, table('tsv'), table('json'), subsetWhere),
      end_to_end_vs_rowbinary: await difference(client, table('e2e'), table('rowbinary'), '1'),
    };
    const mismatches = [
      ...(await sampleMismatches(client, table('rowbinary'), sample)),
      ...(await sampleMismatches(client, table('json'), sample)),
      ...(await sampleMismatches(http, legacyTable, sample, true)),
    ];
    const sums = {
      rowbinary: (await queryRows<{ s: string }>(client, `SELECT toString(sum(toUInt128(bytes_client_to_server) + bytes_server_to_client)) AS s FROM ${table('rowbinary')}`))[0]!.s,
      http_legacy: (await queryRows<{ s: string }>(http, `SELECT toString(sum(bytes_client_to_server) + sum(bytes_server_to_client)) AS s FROM ${legacyTable}`))[0]!.s,
    };
    const leftoverFiles = readdirSync(join(dataDir, 'sidecarless-inserts')).length;
    const exact =
      counts.rowbinary === all.events &&
      counts.end_to_end === all.events &&
      counts.http_legacy === all.events &&
      counts.tsv === subset.events &&
      counts.json === subset.events &&
      Object.values(differences).every((n) => n === 0) &&
      sample.size >= 100 &&
      mismatches.length === 0 &&
      sums.rowbinary === sumBytes.toString() &&
      sums.http_legacy === sumBytes.toString() &&
      leftoverFiles === 0;

    const floorWithMerges = rowbinary.rows_per_cpu_s_with_merge_tail >= FLOOR_ROWS_PER_CPU_S && steady.rows_per_cpu_s_with_merge_tail >= FLOOR_ROWS_PER_CPU_S;
    const floorBeforeTail = rowbinary.rows_per_cpu_s >= FLOOR_ROWS_PER_CPU_S && steady.rows_per_cpu_s >= FLOOR_ROWS_PER_CPU_S;
    return {
      bench: 'enricher',
      events: all.events,
      messages,
      events_per_message: EVENTS_PER_MESSAGE,
      partitions: PARTITIONS,
      batch_bytes: BATCH_BYTES,
      batch_messages: all.batches[0]!.messages.length,
      baseline_events: subset.events,
      avro_decode_events_per_cpu_s: decode.rows_per_cpu_s,
      embedded: {
        engine: 'chdb (in this process: its CPU counts)',
        insert_only_rowbinary_file: rowbinary,
        insert_only_tsv_raw: tsv,
        insert_only_jsoneachrow_baseline: json,
        end_to_end_from_kafka: e2e,
        end_to_end_after_first_insert: steady,
        rowbinary_vs_jsoneachrow: round(rowbinary.rows_per_cpu_s / json.rows_per_cpu_s, 2),
        rowbinary_vs_tsv: round(rowbinary.rows_per_cpu_s / tsv.rows_per_cpu_s, 2),
        end_to_end_vs_jsoneachrow: round(e2e.rows_per_cpu_s / json.rows_per_cpu_s, 2),
      },
      http_debian_18_16: {
        ...httpRun,
        path: 'same Enricher and RowBinary encoder, client.exec over HTTP; no deduplication token (18.16 lacks it)',
        legacy_table: 'times UInt64 ns, addresses FixedString(16), LowCardinality(String) as String, Bool as UInt8; no TTL/codecs',
        server_cpu_s: serverCpu === undefined ? null : round(serverCpu, 2),
        rows_per_cpu_s_client_and_server: serverCpu === undefined ? null : Math.round(all.events / (httpRun.cpu_s + serverCpu)),
      },
      verify: { counts, differences, sample_rows: sample.size, sample_mismatches: mismatches, sum_bytes: sums, expected_sum_bytes: sumBytes.toString(), leftover_insert_files: leftoverFiles },
      exact,
      floor: { insert_only_and_end_to_end_steady_rows_per_cpu_s: FLOOR_ROWS_PER_CPU_S },
      // Conservative: merges that follow the last insert counted too.
      meets_floor: floorWithMerges && exact,
      meets_floor_before_merge_tail: floorBeforeTail && exact,
    };
  } finally {
    if (http) {
      await http.command({ query: `DROP DATABASE IF EXISTS ${legacyDatabase}` }).catch(() => {});
      await http.close();
    }
    if (client) {
      for (const database of Object.values(databases)) await client.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => {});
      await client.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    await admin.deleteTopics({ topics: topicsToDelete }).catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect();
    await telemetry.shutdown();
  }
}
