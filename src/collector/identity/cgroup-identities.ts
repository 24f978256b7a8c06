/**
 * The node-local identity of cgroups on the metadata topic (src/events/metadata.ts): for every cgroup this
 * collector's flows can carry, a Cgroup event keyed `cgroup/<node>/<cgroup id>` with its path and the pod and
 * container the path names (src/common/cgroup-path.ts). The API server never sees cgroup ids; the enricher joins flows with
 * these by (node, cgroup id).
 *
 *   start        reads what earlier runs of this node's collector left on the topic (`previous`), so a restart
 *                publishes only what changed, and cgroups removed while no collector ran get their tombstone. Ids
 *                whose last message is a tombstone count as gone from then on, so records of such a cgroup still in
 *                the ring bring no placeholder back after the tombstone; they are not taken as seen, though, because
 *                after a reboot the kernel hands the same ids out again: an event from one makes a scan, which
 *                publishes the new cgroup.
 *   scans        at start, every `scanMs`, and soon (at most one per RESCAN_GAP_MS) after an event carries a cgroup
 *                id not known yet or the tree changed (changed(): src/ebpf/cgroup-watch.ts): a new cgroup or a changed path
 *                is published; a cgroup gone is a tombstone whose message timestamp is the scan that found it gone.
 *                The same state is never published twice.
 *   unknown ids  a cgroup id still not found by the scan after the event (it is already gone: a short-lived
 *                process) is published with an empty path and neither pod nor container, rather than holding its
 *                events back, and counted (drop reason cgroup_gone); the next scan tombstones it.
 *   ordering     the Collector's send loop (EventPrerequisites) produces a message only when every identity its
 *                events need is acknowledged by Kafka: a reader that has read the metadata topic up to end offsets
 *                fetched after it received the flows has seen them. Tickets (./tickets.ts): each note of an
 *                unknown id and each scan round takes a new number, and a round acknowledged passes every number up
 *                to its own, so an event waits at most for the round that was running or due when it was read.
 *   Kafka down   the round retries the same messages; tickets stay unmet, so flows wait with the identities (the
 *                collector's queue bounds them; its drop accounting applies).
 *   refused      messages the broker refuses for good are counted (drop reason kafka_rejected) and their round passes
 *                its tickets (flows do not wait for what may never be taken); the maps are put back as they were
 *                before them, so the next scan makes the same changes again: an identity refused is not taken for
 *                published, and a tombstone refused does not leave the key's last state on the compacted topic.
 *
 * Memory: the live cgroups, plus the ids gone in the last GONE_MEMORY_MS (events of a removed cgroup still in the
 * ring or the queue must not look unknown).
 */
import type { Meter } from '@opentelemetry/api';
import type { KeyedMessage } from '../../common/kafka/sink.js';
import type { Logger } from '../../common/logger.js';
import type { Sink } from '../../common/pipeline.js';
import { createDropCounter, type DropCounter } from '../../common/telemetry.js';
import { cgroupKey, metadataEvent, type CgroupState, type MetadataEvent } from '../../events/metadata.js';
import type { EventPrerequisites } from '../collector.js';
import { parseCgroupPath } from '../../common/cgroup-path.js';
import { Tickets } from './tickets.js';

export const IDENTITY_DROP_REMEDIES = {
  cgroup_gone:
    'a flow carried a cgroup that was removed before a scan saw it (one that lived less than ~0.1 s, or on a node whose inotify limit refused its watch: ' +
    'raise fs.inotify.max_user_watches or lower collector.cgroupScanMs): published without a pod, so its flows have none',
  kafka_rejected:
    'the broker refused cgroup identity messages (a bug, or the metadata topic\'s max.message.bytes; the error is logged): each scan tries them again, ' +
    'and until one is taken the flows of those cgroups have no pod',
} as const;

export interface CgroupIdentityDeps {
  /** config.node.name: in keys, events and the source (`collector/<node>`). */
  node: string;
  /** The cgroups whose sockets flows can carry, id -> path below the cgroup v2 mount; throws when it cannot tell. */
  scan(): ReadonlyMap<bigint, string>;
  /** Called once, at stop, after the last scan: releases what scanning holds (the tree watch). */
  close?(): void;
  /** The latest state earlier runs published for each cgroup id, null for a tombstone (./previous.ts). */
  previous(): Promise<ReadonlyMap<bigint, CgroupState | null>>;
  sink: Sink<KeyedMessage[]>;
  encode(event: MetadataEvent): Buffer;
  logger: Logger;
  meter: Meter;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

export interface CgroupIdentityOptions {
  /** collector.cgroupScanMs. */
  scanMs: number;
}

/** After an unknown cgroup id, the next scan comes this soon (a burst of new ids costs one scan per gap). */
export const RESCAN_GAP_MS = 100;
/** A removed cgroup's id is still known this long: records of its last connections may still be read. */
const GONE_MEMORY_MS = 10 * 60_000;
/** At most this many messages per produce request (an initial scan on a busy node has thousands). */
const MESSAGES_PER_SEND = 1000;
const MAX_BACKOFF_MS = 5000;

/** A message that brings the topic closer to the scan, and how to undo what it changed in the maps if it is refused. */
interface Change {
  message: KeyedMessage;
  revert(): void;
}

const sameState = (a: CgroupState, b: CgroupState) =>
  a.cgroup_path === b.cgroup_path && a.k8s_pod_uid === b.k8s_pod_uid && a.container_id === b.container_id;

export interface CgroupIdentityStats {
  /** Messages Kafka acknowledged: identities (placeholders included) and tombstones. */
  states: number;
  tombstones: number;
  /** By reason (IDENTITY_DROP_REMEDIES). */
  drops: Record<string, number>;
}

export class CgroupIdentities {
  readonly stats: CgroupIdentityStats = { states: 0, tombstones: 0, drops: {} };
  /** Every id an event may carry without a new scan: published (or being), awaiting a scan, or recently gone. */
  private readonly seen = new Set<bigint>();
  /** Ids noted by events and not yet scanned for. */
  private readonly awaiting = new Set<bigint>();
  /** The tree changed since the last scan began (changed()). */
  private treeChanged = false;
  /** Live cgroups as published (acknowledged, or in the round being produced). */
  private readonly states = new Map<bigint, CgroupState>();
  /** Removed cgroups (tombstoned), by when: forgotten after GONE_MEMORY_MS. */
  private readonly gone = new Map<bigint, number>();
  private readonly tickets = new Tickets();
  private lastScanAt = Number.NEGATIVE_INFINITY;
  private scanFailing = false;
  private refusing = false;
  private running = false;
  /** Ends the wait for the next round (an unknown id). */
  private wake: (() => void) | undefined;
  /** Ends any wait (stop). */
  private interrupt: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly source: string;
  private readonly drops: DropCounter;
  private readonly published;
  private readonly scanSeconds;

  /** Resolves with the error if the loop fails in a way it cannot recover from; the role then stops. */
  readonly failed: Promise<unknown> = new Promise((resolve) => (this.fail = resolve));
  private fail!: (error: unknown) => void;

  constructor(
    private readonly deps: CgroupIdentityDeps,
    private readonly options: CgroupIdentityOptions,
  ) {
    this.now = deps.now ?? Date.now;
    this.source = `collector/${deps.node}`;
    this.drops = createDropCounter(deps.meter, deps.logger, { name: 'collector.identity', remedies: IDENTITY_DROP_REMEDIES });
    this.published = deps.meter.createCounter('sidecarless.collector.cgroup_changes', {
      description: 'Cgroup identities (state) and removals (tombstone) acknowledged by Kafka',
      unit: '{message}',
    });
    this.scanSeconds = deps.meter.createHistogram('sidecarless.collector.cgroup_scan_duration', { description: 'Time to walk the traced cgroups', unit: 's' });
    deps.meter
      .createObservableGauge('sidecarless.collector.cgroups', { description: 'Live cgroups whose identity is published', unit: '{cgroup}' })
      .addCallback((result) => result.observe(this.states.size));
  }

  /** The Collector's hold on events until the identities of their cgroups are on Kafka. */
  prerequisites<Event>(cgroupIdOf: (event: Event) => bigint): EventPrerequisites<Event> {
    return {
      note: (event) => this.note(cgroupIdOf(event)),
      ticket: () => this.tickets.current(),
      met: (ticket) => this.tickets.met(ticket),
      whenMet: (ticket, signal) => this.tickets.whenMet(ticket, signal),
    };
  }

  /** The hot path: one lookup for an id already seen. */
  note(cgroupId: bigint): void {
    if (this.seen.has(cgroupId)) return;
    this.seen.add(cgroupId);
    this.awaiting.add(cgroupId);
    this.tickets.next();
    this.wake?.();
  }

  /** A cgroup was created or removed below the traced ones: the next scan comes within RESCAN_GAP_MS. */
  changed(): void {
    this.treeChanged = true;
    this.wake?.();
  }

  start(): void {
    this.running = true;
    this.loopDone = this.run().catch((error: unknown) => {
      this.deps.logger.fatal({ err: error }, 'cgroup identity loop failed');
      this.running = false;
      this.fail(error);
    });
  }

  /** Stops scanning and producing (after the collectors stopped: their last sends wait for it), then the sink. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.running = false;
      this.interrupt?.();
      await this.loopDone;
      this.deps.close?.();
      this.drops.flush();
      await this.deps.sink.shutdown();
    })();
    return this.stopping;
  }

  private async run(): Promise<void> {
    if (!(await this.loadPrevious())) return;
    while (this.running) {
      await this.round();
      await this.untilNextRound();
    }
  }

  /** What earlier runs published; retried while Kafka cannot answer. False when stopped first. */
  private async loadPrevious(): Promise<boolean> {
    for (let backoffMs = 100; this.running; backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS)) {
      let previous: ReadonlyMap<bigint, CgroupState | null>;
      try {
        previous = await this.deps.previous();
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'cannot read the cgroup identities published before; retrying (flows wait for them)');
        await this.pause(backoffMs);
        continue;
      }
      const readAt = this.now();
      for (const [id, state] of previous) {
        if (state === null) {
          this.gone.set(id, readAt);
          continue;
        }
        this.states.set(id, state);
        this.seen.add(id);
      }
      return true;
    }
    return false;
  }

  /** One scan, and what changed produced; once Kafka acknowledged that, the number the round took as it began passes. */
  private async round(): Promise<void> {
    const covers = this.tickets.next();
    const awaiting = [...this.awaiting];
    this.awaiting.clear();
    // Cleared before the scan: a change during it brings another round.
    this.treeChanged = false;
    const at = this.now();
    this.lastScanAt = at;
    let found: ReadonlyMap<bigint, string>;
    try {
      const started = performance.now();
      found = this.deps.scan();
      this.scanSeconds.record((performance.now() - started) / 1000);
    } catch (error) {
      // Nothing is concluded from a scan that failed (it would tombstone every cgroup): the next round tries again.
      if (!this.scanFailing) this.deps.logger.error({ err: error }, 'cannot read the traced cgroups; flows wait until a scan succeeds');
      this.scanFailing = true;
      for (const id of awaiting) this.awaiting.add(id);
      return;
    }
    if (this.scanFailing) this.deps.logger.info('the traced cgroups can be read again');
    this.scanFailing = false;
    const changes = this.changes(found, awaiting, at);
    for (let i = 0; i < changes.length && this.running; i += MESSAGES_PER_SEND) {
      const sent = changes.slice(i, i + MESSAGES_PER_SEND);
      const outcome = await this.produce(sent.map((change) => change.message));
      if (outcome === 'stopped') return;
      if (outcome === 'refused') for (const change of sent) change.revert();
    }
    this.tickets.pass(covers);
    this.forget(at);
  }

  /** The messages that bring the topic from what was published to what the scan found; the maps follow at once. */
  private changes(found: ReadonlyMap<bigint, string>, awaiting: readonly bigint[], at: number): Change[] {
    const changes: Change[] = [];
    for (const [id, path] of found) {
      const { podUid, containerId } = parseCgroupPath(path);
      const state: CgroupState = { k8s_node_name: this.deps.node, cgroup_id: id, cgroup_path: path, k8s_pod_uid: podUid, container_id: containerId };
      const before = this.states.get(id);
      if (before !== undefined && sameState(before, state)) continue;
      const goneAt = this.gone.get(id);
      // Refused, the state the topic still holds (if any) is what a later change or tombstone starts from. A gone
      // time put back lands behind later ones in `gone`: forget() then keeps it a little longer, never shorter.
      const revert = () => {
        if (before === undefined) this.states.delete(id);
        else this.states.set(id, before);
        if (goneAt !== undefined) this.gone.set(id, goneAt);
      };
      changes.push({ message: this.stateMessage(state, at), revert });
      this.states.set(id, state);
      this.seen.add(id);
      this.gone.delete(id);
    }
    for (const [id, before] of this.states) {
      if (found.has(id)) continue;
      const revert = () => {
        this.gone.delete(id);
        this.states.set(id, before);
      };
      changes.push({ message: { key: cgroupKey(this.deps.node, id), value: null, timestampMs: String(at) }, revert });
      this.states.delete(id);
      this.gone.set(id, at);
    }
    for (const id of awaiting) {
      // Noted before the first round, an id published by an earlier run may be found, or have just been tombstoned.
      if (found.has(id) || this.gone.has(id)) continue;
      const state: CgroupState = { k8s_node_name: this.deps.node, cgroup_id: id, cgroup_path: '', k8s_pod_uid: null, container_id: null };
      // Refused, a placeholder is not tried again: the cgroup is gone, so the topic holding nothing under its key says
      // the same (no pod), and there is nothing to tombstone. The id is remembered as gone, like a tombstoned one.
      const revert = () => {
        this.states.delete(id);
        this.gone.set(id, at);
      };
      changes.push({ message: this.stateMessage(state, at), revert });
      this.states.set(id, state);
      this.drop('cgroup_gone', 1);
    }
    return changes;
  }

  private stateMessage(state: CgroupState, at: number): KeyedMessage {
    const key = cgroupKey(this.deps.node, state.cgroup_id);
    const event = metadataEvent({ object_key: key, kind: 'Cgroup', source: this.source, change_time_ns: BigInt(at) * 1_000_000n, cgroup: state });
    return { key, value: this.deps.encode(event), timestampMs: String(at) };
  }

  /** Once Kafka acknowledged or refused for good the messages, or when stopped first. */
  private async produce(messages: KeyedMessage[]): Promise<'acknowledged' | 'refused' | 'stopped'> {
    let failingSince: number | undefined;
    for (let backoffMs = 100; this.running; backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS)) {
      const result = await this.deps.sink.send(messages);
      if (result.ok) {
        const tombstones = messages.filter((message) => message.value === null).length;
        this.stats.tombstones += tombstones;
        this.stats.states += messages.length - tombstones;
        if (tombstones > 0) this.published.add(tombstones, { change: 'tombstone' });
        if (tombstones < messages.length) this.published.add(messages.length - tombstones, { change: 'state' });
        if (failingSince !== undefined) this.deps.logger.info({ outageMs: this.now() - failingSince }, 'Kafka takes cgroup identities again');
        if (this.refusing) this.deps.logger.info('Kafka takes cgroup identities again after refusing some');
        this.refusing = false;
        return 'acknowledged';
      }
      if (!result.retriable) {
        this.drop('kafka_rejected', messages.length);
        // Once per spell of refusals: every scan tries them again (the drop counter reports each interval).
        if (!this.refusing) this.deps.logger.error({ error: result.error, messages: messages.length }, 'Kafka refused cgroup identity messages; each scan tries them again');
        this.refusing = true;
        return 'refused';
      }
      if (failingSince === undefined) {
        failingSince = this.now();
        this.deps.logger.warn({ error: result.error }, 'Kafka unavailable; cgroup identities, and the flows that need them, wait');
      }
      await this.pause(backoffMs);
    }
    return 'stopped';
  }

  private drop(reason: keyof typeof IDENTITY_DROP_REMEDIES, count: number): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + count;
    this.drops.add(reason, count);
  }

  /** Ids gone longer than GONE_MEMORY_MS are forgotten (the map is in the order they went). */
  private forget(at: number): void {
    for (const [id, goneAt] of this.gone) {
      if (at - goneAt < GONE_MEMORY_MS) break;
      this.gone.delete(id);
      this.seen.delete(id);
    }
  }

  /** Until the next scan is due: scanMs after the last, or RESCAN_GAP_MS after it once an unknown id waits or the tree changed. */
  private async untilNextRound(): Promise<void> {
    while (this.running) {
      const due = this.lastScanAt + (this.awaiting.size > 0 || this.treeChanged ? RESCAN_GAP_MS : this.options.scanMs);
      const wait = due - this.now();
      if (wait <= 0) return;
      await this.pause(wait, true);
    }
  }

  /** Sleeps up to `ms`; stop() ends it early, and so does note() (an unknown id) if `untilNoted`. */
  private async pause(ms: number, untilNoted = false): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.interrupt = resolve;
      if (untilNoted) this.wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.wake = undefined;
    this.interrupt = undefined;
  }
}
