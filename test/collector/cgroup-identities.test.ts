/**
 * The cgroup identity publisher with in-memory parts: a scan answered from a map, a clock the test moves (a scan
 * runs only when the test moves it past the next one's due time), sinks in memory, the real metadata codec. What is
 * published, when, exactly once, and that the Collector sends no flow before the identity of its cgroup is
 * acknowledged, also while Kafka refuses the identities.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { CgroupIdentities, RESCAN_GAP_MS } from '../../src/collector/identity/cgroup-identities.js';
import { loadRegistry } from '../../src/common/avro.js';
import type { KeyedMessage, OutMessage } from '../../src/common/kafka/sink.js';
import { createLogger } from '../../src/common/logger.js';
import { MemorySink, type SinkResult } from '../../src/common/pipeline.js';
import { bindMetadataCodec, cgroupKey, type CgroupState, type MetadataChange } from '../../src/events/metadata.js';
import type { FlowRecordView } from '../../src/ebpf/records/flow.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { FakeRing, memoryCollector } from '../helpers/memory-collector.js';
import { cgroupEvent, tombstone as cgroupTombstone } from '../helpers/metadata.js';

const codec = bindMetadataCodec(loadRegistry());
const NODE = 'node-1';
const SCAN_MS = 50;
const UID = '55c6c714-b240-4dec-9a45-57b61696ab6e';
const POD = `/t/kubepods.slice/kubepods-pod${UID.replaceAll('-', '_')}.slice`;
const containerId = (n: number) => String(n).repeat(64).slice(0, 64);
const containerPath = (n: number) => `${POD}/cri-containerd-${containerId(n)}.scope`;

/** A node's cgroups, a clock, and the publisher over them. */
class Harness {
  readonly cgroups = new Map<bigint, string>([
    [1n, '/t'],
    [2n, POD],
    [3n, containerPath(3)],
  ]);
  clock = 1_760_000_000_000;
  scans = 0;
  readonly sink = new MemorySink<KeyedMessage[]>();
  readonly identities: CgroupIdentities;

  constructor(previous: ReadonlyMap<bigint, CgroupState | null> = new Map()) {
    this.identities = new CgroupIdentities(
      {
        node: NODE,
        scan: () => {
          this.scans++;
          return new Map(this.cgroups);
        },
        previous: async () => previous,
        sink: this.sink,
        encode: (event) => codec.encode(event),
        logger: createLogger({ level: 'silent' }),
        meter: metrics.getMeter('test'),
        now: () => this.clock,
      },
      { scanMs: SCAN_MS },
    );
  }

  /** Moves the clock by `ms` and waits for the scan that makes due. */
  async advance(ms: number): Promise<void> {
    const scans = this.scans;
    this.clock += ms;
    await until(() => this.scans === scans + 1, `a scan after ${ms} ms`);
  }

  /** Every message Kafka acknowledged, decoded, in order (plain objects, as the expected ones are). */
  published(): MetadataChange[] {
    return structuredClone(this.sink.accepted.flat().map((message) => codec.decode(Buffer.from(message.key), message.value, String(message.timestampMs))));
  }
}

function until(condition: () => boolean, what: string): Promise<void> {
  return waitFor(async () => condition(), { timeoutMs: 5_000, what });
}

const state = (id: bigint, path: string, podUid: string | null = null, container: string | null = null): CgroupState => ({
  k8s_node_name: NODE,
  cgroup_id: id,
  cgroup_path: path,
  k8s_pod_uid: podUid,
  container_id: container,
});

const ns = (ms: number) => BigInt(ms) * 1_000_000n;
/** The Cgroup event the publisher writes for a state observed at `atMs`. */
const identity = (cgroup: CgroupState, atMs: number): MetadataChange => cgroupEvent(cgroup, ns(atMs));
const tombstone = (id: bigint, atMs: number): MetadataChange => cgroupTombstone(cgroupKey(NODE, id), ns(atMs));
const down: SinkResult = { ok: false, error: 'broker down', retriable: true };
const refused: SinkResult = { ok: false, error: 'message too large', retriable: false };

describe('cgroup identities', () => {
  it('publishes every cgroup at start, then only what changed: new ones, changed paths, and tombstones at the scan that found them gone', async () => {
    const h = new Harness();
    const start = h.clock;
    h.identities.start();
    try {
      await until(() => h.sink.accepted.length === 1, 'the first scan published');
      assert.deepEqual(h.published(), [
        identity(state(1n, '/t'), start),
        identity(state(2n, POD, UID), start),
        identity(state(3n, containerPath(3), UID, containerId(3)), start),
      ]);
      await h.advance(SCAN_MS);
      assert.equal(h.sink.accepted.length, 1, 'an unchanged scan publishes nothing');

      h.cgroups.delete(3n);
      h.cgroups.set(4n, containerPath(4));
      h.cgroups.set(1n, '/t2');
      await h.advance(SCAN_MS);
      await until(() => h.sink.accepted.length === 2, 'the changes published');
      const at = start + 2 * SCAN_MS;
      assert.deepEqual(h.published().slice(3), [identity(state(1n, '/t2'), at), identity(state(4n, containerPath(4), UID, containerId(4)), at), tombstone(3n, at)]);
      await h.advance(SCAN_MS);
      assert.equal(h.sink.accepted.length, 2);
      assert.deepEqual(h.identities.stats, { states: 5, tombstones: 1, drops: {} });
    } finally {
      await h.identities.stop();
    }
    assert.equal(h.sink.shutdowns, 1);
  });

  it('after a restart publishes only what changed since the earlier run; an id it tombstoned may be a new cgroup (ids repeat after a reboot)', async () => {
    const h = new Harness(
      new Map<bigint, CgroupState | null>([
        [2n, state(2n, POD, UID)],
        [3n, state(3n, containerPath(3), UID, containerId(3))],
        [5n, state(5n, containerPath(5), UID, containerId(5))],
        [9n, null],
      ]),
    );
    h.cgroups.delete(3n);
    const start = h.clock;
    h.identities.start();
    try {
      await until(() => h.sink.accepted.length === 1, 'the first scan published');
      assert.deepEqual(h.published(), [identity(state(1n, '/t'), start), tombstone(3n, start), tombstone(5n, start)]);
      h.cgroups.set(9n, '/t/new');
      const prerequisites = h.identities.prerequisites<bigint>((id) => id);
      prerequisites.note(9n);
      await h.advance(RESCAN_GAP_MS);
      await until(() => h.sink.accepted.length === 2, 'the id tombstoned before, found again');
      assert.deepEqual(h.published().slice(3), [identity(state(9n, '/t/new'), start + RESCAN_GAP_MS)]);
    } finally {
      await h.identities.stop();
    }
  });

  it('after a restart, an event from a cgroup tombstoned before and not found brings no placeholder back, until the id is forgotten', async () => {
    const h = new Harness(new Map<bigint, CgroupState | null>([[9n, null]]));
    const prerequisites = h.identities.prerequisites<bigint>((id) => id);
    h.identities.start();
    try {
      await until(() => h.sink.accepted.length === 1, 'the first scan published');
      prerequisites.note(9n);
      const ticket = prerequisites.ticket();
      assert.equal(prerequisites.met(ticket), false, 'an id tombstoned before is scanned for: it may be a new cgroup');
      await h.advance(RESCAN_GAP_MS);
      await until(() => prerequisites.met(ticket), 'the scan for it');
      assert.equal(h.published().length, 3);
      assert.deepEqual(h.identities.stats.drops, {});

      // Ten minutes on (the publisher's memory of gone ids), the id is unknown again.
      await h.advance(10 * 60_000);
      prerequisites.note(9n);
      await h.advance(RESCAN_GAP_MS);
      await until(() => h.sink.accepted.length === 2, 'a placeholder for the forgotten id');
      assert.deepEqual(h.published().slice(3), [identity(state(9n, ''), h.clock)]);
      assert.deepEqual(h.identities.stats.drops, { cgroup_gone: 1 });
    } finally {
      await h.identities.stop();
    }
  });

  it('an event from an unknown cgroup: a scan at once, its identity acknowledged before the ticket passes; not found, an empty placeholder, counted, and tombstoned next', async () => {
    const h = new Harness();
    const prerequisites = h.identities.prerequisites<bigint>((id) => id);
    const before = prerequisites.ticket();
    h.identities.start();
    try {
      await until(() => h.sink.accepted.length === 1, 'the first scan published');
      assert.ok(prerequisites.met(before));
      prerequisites.note(3n);
      assert.ok(prerequisites.met(prerequisites.ticket()), 'an id already published needs nothing more');

      h.cgroups.set(6n, containerPath(6));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const send = h.sink.send.bind(h.sink);
      h.sink.send = async (messages) => (await held, send(messages));
      prerequisites.note(6n);
      prerequisites.note(7n);
      const ticket = prerequisites.ticket();
      assert.equal(prerequisites.met(ticket), false);
      const met = prerequisites.whenMet(ticket, new AbortController().signal);
      await h.advance(RESCAN_GAP_MS);
      assert.equal(prerequisites.met(ticket), false, 'not while Kafka has not acknowledged');
      release();
      await met;
      const at = h.clock;
      assert.deepEqual(h.published().slice(3), [identity(state(6n, containerPath(6), UID, containerId(6)), at), identity(state(7n, ''), at)]);
      assert.deepEqual(h.identities.stats.drops, { cgroup_gone: 1 });

      await h.advance(SCAN_MS);
      await until(() => h.sink.accepted.length === 3, 'the placeholder tombstoned');
      assert.deepEqual(h.published().slice(5), [tombstone(7n, at + SCAN_MS)]);
      prerequisites.note(7n);
      assert.ok(prerequisites.met(prerequisites.ticket()), 'a removed cgroup is still known');
    } finally {
      await h.identities.stop();
    }
  });

  it('what the broker refuses is counted and published again by the next scan: identities, and tombstones', async () => {
    const h = new Harness();
    const start = h.clock;
    h.sink.script.push(refused);
    h.identities.start();
    try {
      await until(() => h.identities.stats.drops.kafka_rejected === 3, 'the first scan refused');
      assert.deepEqual(h.published(), []);
      await h.advance(SCAN_MS);
      await until(() => h.sink.accepted.length === 1, 'the refused identities published again');
      const at = start + SCAN_MS;
      assert.deepEqual(h.published(), [
        identity(state(1n, '/t'), at),
        identity(state(2n, POD, UID), at),
        identity(state(3n, containerPath(3), UID, containerId(3)), at),
      ]);

      h.cgroups.delete(3n);
      h.cgroups.set(1n, '/t2');
      h.sink.script.push(refused);
      await h.advance(SCAN_MS);
      await until(() => h.identities.stats.drops.kafka_rejected === 5, 'the changes refused');
      // Refused again while the changed cgroup goes too: its last state on the topic gets the tombstone.
      h.cgroups.delete(1n);
      await h.advance(SCAN_MS);
      await until(() => h.sink.accepted.length === 2, 'the refused tombstone published again');
      assert.deepEqual(h.published().slice(3), [tombstone(1n, start + 3 * SCAN_MS), tombstone(3n, start + 3 * SCAN_MS)]);
      await h.advance(SCAN_MS);
      assert.equal(h.sink.accepted.length, 2, 'nothing twice');
      assert.deepEqual(h.identities.stats, { states: 3, tombstones: 2, drops: { kafka_rejected: 5 } });
    } finally {
      await h.identities.stop();
    }
  });

  it('the collector produces no flow before the identity of its cgroup is acknowledged, also while Kafka refuses identities', async () => {
    const h = new Harness();
    const log: string[] = [];
    const identitySend = h.sink.send.bind(h.sink);
    h.sink.send = async (messages) => {
      const result = await identitySend(messages);
      log.push(`identities ${result.ok ? 'acknowledged' : 'refused'}: ${messages.map((m) => m.key).join(' ')}`);
      return result;
    };
    const flows = new MemorySink<OutMessage[]>();
    const flowSend = flows.send.bind(flows);
    flows.send = async (messages) => {
      log.push(`flows: ${messages.reduce((sum, m) => sum + m.events, 0)} events`);
      return flowSend(messages);
    };
    const ring = new FakeRing();
    const collector = memoryCollector(ring, flows, { prerequisites: h.identities.prerequisites<FlowRecordView>((record) => record.cgroupId) });
    ring.add(2, 3n);
    collector.start();
    h.identities.start();
    try {
      await until(() => collector.stats.eventsProduced === 2, 'the flows of a cgroup found by the first scan');
      h.sink.script.push(down, down);
      h.cgroups.set(8n, containerPath(8));
      ring.add(4, 8n);
      await until(() => collector.stats.recordsRead === 6, 'the flows of a new cgroup read');
      await h.advance(RESCAN_GAP_MS);
      await until(() => collector.stats.eventsProduced === 6, 'the flows of the new cgroup produced');
    } finally {
      await collector.stop();
      await h.identities.stop();
    }
    assert.deepEqual(log, [
      `identities acknowledged: cgroup/${NODE}/1 cgroup/${NODE}/2 cgroup/${NODE}/3`,
      'flows: 2 events',
      `identities refused: cgroup/${NODE}/8`,
      `identities refused: cgroup/${NODE}/8`,
      `identities acknowledged: cgroup/${NODE}/8`,
      'flows: 4 events',
    ]);
  });
});
