/**
 * The flows kind writes each ring record's FlowEvent as Avro itself (FlowEventWriter, no event object): its messages
 * must be the very bytes the flows schema's encoder wrote for the same records before, and its partitions the ones
 * the connection id string gave. fixtures/flow-encoding.json holds those, made with the encoder it replaced
 * (decodeFlowRecord -> toFlowEvent -> avsc) for the records of test/helpers/flow-records.ts and bench/collector's
 * pool of 50,000; since flows.v2, those messages decoded and encoded again by avsc with the v2 schema.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildRecords, POOL } from '../../bench/collector.js';
import { ConnectionEnds } from '../../src/collector/connection-ends.js';
import { flowsKind } from '../../src/collector/flows/index.js';
import { loadRegistry } from '../../src/common/avro.js';
import { FLOW_RECORD, FlowRecordView } from '../../src/ebpf/records/flow.js';
import { FLOWS, type FlowBatch } from '../../src/events/flows.js';
import { edgeFlowRecords, refusedFlowRecords } from '../helpers/flow-records.js';

interface Fixture {
  node: string;
  epoch: string;
  wall_offset_ns: string;
  partitions: number;
  edge: { partitions: number[]; message: string };
  bench_pool: { records: number; events_per_message: number; messages: number; sha256: string };
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/flows/fixtures/flow-encoding.json', import.meta.url)), 'utf8')) as Fixture;
const registry = loadRegistry();
const codec = registry.codec<FlowBatch>(FLOWS.subject);
const offsetNs = BigInt(fixture.wall_offset_ns);
const context = { nodeName: fixture.node, epoch: fixture.epoch, firstConnId: 0n, toWallNs: (ns: bigint) => ns + offsetNs, connectionEnds: new ConnectionEnds() };

/** The flows kind's packing, and its transform handing out each record as the collector gets it. */
function flows() {
  const packing = flowsKind.packing(context, registry, fixture.partitions);
  let item: FlowRecordView | undefined;
  const transform = flowsKind.transform(context, (record) => (item = record), {} as never);
  const read = (view: DataView, offset = 0) => {
    transform.record(view, offset, FLOW_RECORD.size);
    return item!;
  };
  return { packing, read };
}

describe('flow encoding', () => {
  it('writes the records of every branch into the bytes and partitions of the schema encoder it replaced', () => {
    const { packing, read } = flows();
    const message = packing.messageBuilder();
    const partitions = edgeFlowRecords().map((view) => {
      const record = read(view);
      message.add(record);
      return packing.partitionOf(record);
    });
    assert.deepEqual(partitions, fixture.edge.partitions);
    assert.equal(message.seal().toString('hex'), fixture.edge.message);
  });

  it('packs bench/collector\'s 50,000 records into the same 64-event messages per partition, byte for byte', () => {
    const { packing, read } = flows();
    const { view } = buildRecords();
    assert.equal(POOL, fixture.bench_pool.records);
    const builders = Array.from({ length: fixture.partitions }, () => packing.messageBuilder());
    const messages: Buffer[][] = builders.map(() => []);
    for (let i = 0; i < POOL; i++) {
      const record = read(view, i * FLOW_RECORD.size);
      const partition = packing.partitionOf(record);
      builders[partition]!.add(record);
      if (builders[partition]!.size === fixture.bench_pool.events_per_message) messages[partition]!.push(builders[partition]!.seal());
    }
    builders.forEach((builder, partition) => builder.size > 0 && messages[partition]!.push(builder.seal()));
    const hash = createHash('sha256');
    for (const list of messages) for (const message of list) hash.update(message);
    assert.equal(messages.flat().length, fixture.bench_pool.messages);
    assert.equal(hash.digest('hex'), fixture.bench_pool.sha256);
  });

  it('reads back through the flows schema with the values of the records', () => {
    const { events } = codec.decodeFrom(Buffer.from(fixture.edge.message, 'hex'), codec);
    assert.equal(events.length, edgeFlowRecords().length);
    assert.deepEqual({ ...events[0] }, {
      connection_id: 'node-ä.example/e7/1000',
      k8s_node_name: 'node-ä.example',
      record_kind: 'final',
      record_seq: 1,
      observer_side: 'client',
      start_time_ns: 8_000_000_000_000n + offsetNs,
      time_ns: 9_000_000_000_000n + offsetNs,
      network_transport: 'tcp',
      network_type: 'ipv4',
      client_address: '10.244.1.7',
      client_port: 50123,
      server_address: '10.96.0.10',
      server_port: 8080,
      bytes_client_to_server: 1200n,
      bytes_server_to_client: 56000n,
      segments_client_to_server: 12n,
      segments_server_to_client: 40n,
      rtt_us: 250,
      rtt_var_us: 31,
      retransmits: 0,
      syn_retransmits: 0,
      connect_latency_us: 180,
      handshake_completed: true,
      close_reason: 'normal',
      process_pid: 4242,
      thread_id: 4243,
      process_executable_name: 'curl',
      cgroup_id: 5001n,
      network_namespace_inode: 4026531992n,
      sampling_rate: 1,
      started_before_tracing: false,
    });
    assert.deepEqual(
      events.map((event) => event.close_reason),
      ['normal', 'normal', 'open', 'refused', 'connect_timeout', 'reset_received', 'reset_sent', 'aborted', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal', 'normal'],
    );
    // Only the record flagged adopted, a server side without a connect time, started before tracing.
    assert.deepEqual(events.map((event, i) => event.started_before_tracing && i), [...Array(23).fill(false), 23]);
    assert.deepEqual([events[23]!.observer_side, events[23]!.connect_latency_us], ['server', null]);
    assert.deepEqual([events[9]!.process_pid, events[9]!.process_executable_name], [null, null]);
    assert.equal(events[11]!.process_executable_name, 'c\u00e9t\u00e9\u00ff\u0080');
    assert.equal(events[13]!.bytes_server_to_client, 2n ** 63n - 1n);
    assert.equal(events[15]!.connection_id, `node-ä.example/e7/${2n ** 64n - 1n}`);
    assert.deepEqual(events.slice(18, 22).map((event) => [event.client_address, event.server_address, event.network_type]), [
      ['fd00::1', '2001:db8::8a2e:370:7334:0', 'ipv6'],
      ['::1', '2001:db8:0:1::1', 'ipv6'],
      ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::', 'ipv6'],
      ['10.1.2.3', '64:ff9b::a01:203', 'ipv6'],
    ]);
  });

  it('refuses a value the schema refuses, naming the topic\'s subject, and keeps the message as it was', () => {
    const { packing, read } = flows();
    const message = packing.messageBuilder();
    const [first, second] = edgeFlowRecords();
    message.add(read(first!));
    for (const { record, field } of refusedFlowRecords()) {
      assert.throws(() => message.add(read(record)), /^SidecarlessError: cannot encode sidecarless\.flows\.v2: invalid "(int|long)"/, field);
    }
    message.add(read(second!));
    const expected = packing.messageBuilder();
    expected.add(read(first!));
    expected.add(read(second!));
    assert.equal(message.size, 2);
    assert.deepEqual(message.seal(), expected.seal());
  });
});
