/**
 * The collector's pipeline for one record kind: ring -> item (an event, or the record itself) -> packed messages ->
 * Kafka. Generic: what a kind brings (its kernel source, transform, packing, contract) comes in through
 * CollectorDeps, so HTTP records run the very same loops, drops and metrics as flows (src/collector/kinds.ts lists
 * the kinds).
 *
 *   read loop   sleeps in epoll until the kernel signals records, lets them gather for flushMs (less if the ring
 *               fills), then drains the ring in slices (yielding to the event loop between them), hands each
 *               record to the kind's transform, which emits its events (one per record for flows; none or several
 *               for HTTP) into the Packer; an event that does not fit the bounded queue is dropped and counted
 *               (queue_full). Then ticks the transform, seals partly filled messages and polls the kernel's and
 *               the transform's drop counters. While Kafka takes what is sent and the ring has room, it stops
 *               draining once the queue holds a few sends' worth (QUEUE_BYTES_WHILE_SENDING) and leaves the
 *               backlog in the ring.
 *   send loop   produces the oldest queued messages, once what their events depend on is on Kafka (the kind's
 *               prerequisites: the identities of their cgroups); on a retriable failure keeps them and backs off
 *               (the read loop goes on draining the ring meanwhile), on a permanent one counts their events as
 *               dropped.
 *   stop()      stops reading, takes what the ring holds as far as the queue has room, seals, sends what is
 *               queued within the shutdown deadline (the rest is counted as dropped), then releases the sink. The
 *               kernel programs keep running (they are pinned): what they write from then on waits in the ring for
 *               the next collector, which reads on from where this one stopped.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Meter } from '@opentelemetry/api';
import type { OutMessage } from '../common/kafka/sink.js';
import type { Logger } from '../common/logger.js';
import type { Sink } from '../common/pipeline.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { RecordHandler } from '../ebpf/ringbuf.js';
import { Outbox } from './outbox.js';
import { Packer, type ItemPacking } from './packer.js';
import type { KernelSource, RecordTransform } from './record-kind.js';

/** What governs each drop the collector itself makes (kernel drops bring their own, from the kind). */
export const COLLECTOR_DROP_REMEDIES = {
  queue_full: 'Kafka is slower than the kernel or unreachable: raise collector.queueEvents to ride out longer outages',
  bad_record: 'a record this collector cannot read: left in the ring by programs of another version it replaced, or a bug (the error is logged)',
  encode_error: 'an event the Avro schema refuses (a bug): the event is logged',
  kafka_rejected: 'the broker refused the messages as too large or malformed: lower collector.eventsPerMessage or raise the topic\'s max.message.bytes',
  shutdown_timeout: 'Kafka did not take the queued events before the process stopped: raise collector.shutdownTimeoutMs or fix Kafka first',
} as const;

export interface CollectorOptions {
  queueEvents: number;
  eventsPerMessage: number;
  /** A record waits at most this long (less when the ring fills) before it is read and its message sealed. */
  flushMs: number;
  /** How long stop() may spend sending what is queued. */
  shutdownTimeoutMs?: number;
}

/**
 * What must be on Kafka before the events that depend on it (src/collector/identity/: the identities of the cgroups
 * flows carry): each event is noted as it is read, and a send waits until everything noted before its messages were
 * taken from the queue is acknowledged. A ticket is a position in what was noted: tickets only grow.
 */
export interface EventPrerequisites<Event> {
  /** Called for every event before it is packed, on the hot path: costs a lookup when nothing new is needed. */
  note(event: Event): void;
  /** Covers everything noted so far. */
  ticket(): number;
  /** Whether everything the ticket covers is acknowledged by Kafka. */
  met(ticket: number): boolean;
  /** Resolves once it is, or once `signal` aborts (the wait is then given up, and forgotten by the prerequisites). */
  whenMet(ticket: number, signal: AbortSignal): Promise<void>;
}

export interface CollectorDeps<Event> {
  /** The record kind's name, as in metrics (`record_kind`) and logs. */
  kind: string;
  source: Pick<KernelSource, 'reader' | 'takeKernelDrops' | 'kernelDropRemedies' | 'fill'>;
  /** The kind's transform (RecordKind.transform), made once with the collector's way in for its events. */
  transform(emit: (event: Event) => void): RecordTransform;
  /** Each event's partition of the contract's topic, and its messages (RecordKind.packing). */
  packing: ItemPacking<Event>;
  sink: Sink<OutMessage[]>;
  /** Omitted: events depend on nothing else, and are sent as soon as they are sealed. */
  prerequisites?: EventPrerequisites<Event>;
  /** Called before each drain, when the ring holds the most it will: the CPU policy reads the rings there (./cpu-policy.ts). */
  beforeDrain?: () => void;
  logger: Logger;
  meter: Meter;
}

export interface CollectorStats {
  recordsRead: number;
  eventsProduced: number;
  messagesProduced: number;
  /** Drops by reason, kernel ones included. */
  drops: Record<string, number>;
}

export const READ_SLICE = 4096;
const MESSAGES_PER_SEND = 256;
/**
 * Value bytes in one send. A send becomes one record batch per partition, which the broker refuses above
 * max.message.bytes (1 MiB by default), so this stays well below it (the margin covers keys, headers and record
 * framing). It also bounds the memory a send takes whatever the rate (./allocator.ts: kafkajs copies a request's
 * values, in buffers that live until a GC): 256 KB rather than 768 KB per partition, measured at ~11k
 * connections/s (when kafkajs still made seven copies), same CPU within noise.
 */
const BYTES_PER_SEND = 256 * 1024;
/**
 * A message is sealed once its events take this many bytes, even below collector.eventsPerMessage: half a send, so
 * that a send still carries several, and far below the broker's max.message.bytes (1 MiB by default) whatever the
 * events' size (an HTTP event with paths of http.maxPathBytes takes ~4.5 KB: 1,000 of them would be refused).
 */
export const MESSAGE_BYTES = BYTES_PER_SEND / 2;
/**
 * While Kafka takes what is sent and the ring has room (less than RING_FILL_TO_DRAIN of it unread:
 * KernelSource.fill), the read loop stops draining once the queue holds this many bytes of sealed messages (a send
 * in flight and three more ready), and lets the ring hold the rest: the ring is resident anyway, and records copied out of it faster than Kafka takes
 * them only grew the heap (collector.queueEvents' 500,000 events allow ~75 MB of messages). The queue fills on to
 * collector.queueEvents while Kafka fails or the events' prerequisites wait (then it rides out the outage), and
 * while the ring fills (after an outage, as the queue drains): what neither holds is counted, as queue_full or by
 * the kernel as ringbuf_full.
 */
export const QUEUE_BYTES_WHILE_SENDING = 4 * BYTES_PER_SEND;
export const RING_FILL_TO_DRAIN = 0.5;
const MAX_BACKOFF_MS = 5000;
/**
 * With no signal from the kernel, the read loop still wakes this often: to read the drop counters (a full
 * connection table writes no record to signal) and to drain what a missed signal left. Every wake-up of an idle
 * collector costs JS work (the koffi callback, a drain, a tick): at 1 s these wake-ups and the counter reads were
 * ~40 % of an idle collector's CPU in a perf profile. A stop does not wait for it (the wait is interrupted).
 */
const IDLE_POLL_MS = 5000;
/**
 * The kernel's drop counters are read at most this often (and at stop): a read is a syscall per counter map and per
 * traced program (its skipped runs: 18 for http), ~4 % of the collector's CPU at 1,000 requests/s when it ran
 * after every read cycle (twice a second per kind). So a drop reaches the metric within 5 s; the drop counter
 * logs once per interval anyway.
 */
export const KERNEL_DROPS_EVERY_MS = IDLE_POLL_MS;

export class Collector<Event> {
  readonly stats: CollectorStats = { recordsRead: 0, eventsProduced: 0, messagesProduced: 0, drops: {} };
  private readonly outbox: Outbox;
  private readonly packer: Packer<Event>;
  private readonly queueDrops: DropCounter;
  private readonly kernelDrops: DropCounter;
  private readonly transformDrops: DropCounter;
  private readonly transform: RecordTransform;
  private readonly sendSeconds;
  private readonly counters;
  private readonly attributes: { record_kind: string };
  private reading = false;
  private sending = false;
  private readLoopDone: Promise<void> = Promise.resolve();
  /** Ends the read loop's wait for the ring at once (stop() calls it). */
  private interruptWait: (() => void) | undefined;
  private sendLoopDone: Promise<void> = Promise.resolve();
  private wakeSender: (() => void) | undefined;
  /** Set while the sender cannot send (Kafka fails, or it waits for prerequisites): the queue then takes everything. */
  private senderStalled = false;
  /** Ends the read loop's wait for room in the queue (a send completed, or stop() was called). */
  private wakeReader: (() => void) | undefined;
  /** Ends the send loop's wait for prerequisites at once (stop() aborts it). */
  private readonly stopWaiting = new AbortController();
  private stopping: Promise<void> | undefined;
  private kernelDropsReadAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly deps: CollectorDeps<Event>,
    private readonly options: CollectorOptions,
  ) {
    const { meter, logger, kind } = deps;
    const attributes = { record_kind: kind };
    this.outbox = new Outbox(options.queueEvents);
    this.queueDrops = createDropCounter(meter, logger, { name: 'collector.queue', remedies: COLLECTOR_DROP_REMEDIES, attributes });
    this.kernelDrops = createDropCounter(meter, logger, { name: 'collector.kernel', remedies: deps.source.kernelDropRemedies, attributes });
    this.transform = deps.transform(this.onEvent);
    this.transformDrops = createDropCounter(meter, logger, { name: 'collector.transform', remedies: this.transform.dropRemedies ?? {}, attributes });
    this.packer = new Packer<Event>(this.outbox, {
      eventsPerMessage: options.eventsPerMessage,
      maxMessageBytes: MESSAGE_BYTES,
      partitionOf: (event) => deps.packing.partitionOf(event),
      messageBuilder: () => deps.packing.messageBuilder(),
      onDrop: (reason, count, error) => {
        this.drop(this.queueDrops, reason, count);
        if (error !== undefined) this.deps.logger.error({ err: error, events: count, record_kind: kind }, 'events the Avro schema refuses; dropped');
      },
    });
    this.attributes = attributes;
    this.counters = {
      records: meter.createCounter('sidecarless.collector.records_read', { description: 'Ring records read', unit: '{record}' }),
      events: meter.createCounter('sidecarless.collector.events_produced', { description: 'Events acknowledged by Kafka', unit: '{event}' }),
      messages: meter.createCounter('sidecarless.collector.messages_produced', { description: 'Kafka messages acknowledged', unit: '{message}' }),
    };
    this.sendSeconds = meter.createHistogram('sidecarless.collector.send_duration', { description: 'Time to produce one batch of messages', unit: 's' });
    meter
      .createObservableGauge('sidecarless.collector.queue_depth', { description: 'Events held for Kafka', unit: '{event}' })
      .addCallback((result) => result.observe(this.queuedEvents, attributes));
  }

  /** Resolves with the error if a loop fails in a way it cannot recover from; the role then stops. */
  readonly failed: Promise<unknown> = new Promise((resolve) => (this.fail = resolve));
  private fail!: (error: unknown) => void;

  start(): void {
    this.reading = true;
    this.sending = true;
    this.readLoopDone = this.guard('read loop', () => this.readLoop());
    this.sendLoopDone = this.guard('send loop', () => this.sendLoop());
  }

  /** Background work never throws into the event loop: a failure is logged and ends the role through `failed`. */
  private async guard(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.deps.logger.fatal({ err: error }, `collector ${what} failed`);
      this.reading = false;
      this.fail(error);
    }
  }

  /** Ordered shutdown; safe to call twice (the second call waits for the first). */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  get queuedEvents(): number {
    return this.outbox.events + this.packer.heldEvents;
  }

  private readonly onRecord: RecordHandler = (view, offset, size) => {
    this.stats.recordsRead++;
    try {
      this.transform.record(view, offset, size);
    } catch (error) {
      this.drop(this.queueDrops, 'bad_record', 1);
      this.deps.logger.error({ err: error, record_kind: this.deps.kind }, 'undecodable ring record');
    }
  };

  /** A field initialiser: set before the constructor's body, which hands it to the kind's transform. */
  private readonly onEvent = (event: Event): void => {
    this.deps.prerequisites?.note(event);
    this.packer.add(event);
  };

  /**
   * Drains in cycles, not per record: the kernel signals the first record written after a drain (and, early, a
   * ring a quarter full: ring_wakeup_bytes in bpf/include/common.bpf.h); the loop then lets records gather for
   * flushMs, drains them all, seals and wakes the sender once. An idle ring costs one wake-up per IDLE_POLL_MS,
   * which also reads the kernel's drop counters (a full connection table writes no record to signal). Measured
   * with flows at 500 connections/s against a drain per signal: user+sys 0.088 -> 0.041 cores, in-kernel BPF
   * time 0.012 -> 0.002 (each signal is an irq_work the program pays for); at 2,000/s 0.139 -> 0.055 in all.
   */
  private async readLoop(): Promise<void> {
    while (this.reading) {
      if (await this.waitForRing(IDLE_POLL_MS)) await this.waitForRing(this.options.flushMs);
      let sliceStarted = performance.now();
      while (this.reading) {
        // Leave the backlog in the ring until a send makes room; yield between slices so the send loop runs.
        this.deps.beforeDrain?.();
        if (this.queueFullEnough()) await new Promise<void>((resolve) => (this.wakeReader = resolve));
        else if (this.drainOnce() < READ_SLICE) break;
        else await yieldToLoop();
        // A ring that stays full still seals every flushMs.
        if (performance.now() - sliceStarted >= this.options.flushMs) {
          this.tick();
          sliceStarted = performance.now();
        }
      }
      this.tick();
    }
  }

  /** Whether reading on would only move the backlog from the ring to the heap (QUEUE_BYTES_WHILE_SENDING). */
  private queueFullEnough(): boolean {
    return !this.senderStalled && this.outbox.bytes >= QUEUE_BYTES_WHILE_SENDING && this.deps.source.fill() < RING_FILL_TO_DRAIN;
  }

  /** Resolves true when the kernel signals the ring, false on timeout or when stop() is called. */
  private waitForRing(timeoutMs: number): Promise<boolean> {
    if (!this.reading) return Promise.resolve(false);
    // A promise per wait, not a race with one long-lived "stopped" promise, which would keep a reaction per wait.
    return new Promise((resolve, reject) => {
      this.interruptWait = () => resolve(false);
      this.deps.source.reader.wait(timeoutMs).then(resolve, reject);
    });
  }

  private drainOnce(maxRecords = READ_SLICE): number {
    const read = this.deps.source.reader.drain(this.onRecord, maxRecords);
    if (read > 0) this.counters.records.add(read, this.attributes);
    if (this.outbox.length > 0) this.wakeSender?.();
    return read;
  }

  /** `final`: the last tick, at stop: the kernel's drop counters are read whenever they were last. */
  private tick(final = false): void {
    this.transform.tick?.();
    this.packer.flush();
    const now = performance.now();
    if (final || now - this.kernelDropsReadAt >= KERNEL_DROPS_EVERY_MS) {
      this.kernelDropsReadAt = now;
      for (const [reason, count] of this.deps.source.takeKernelDrops()) this.drop(this.kernelDrops, reason, count);
    }
    for (const [reason, count] of this.transform.takeDrops?.() ?? []) this.drop(this.transformDrops, reason, count);
    if (this.outbox.length > 0) this.wakeSender?.();
  }

  private async sendLoop(): Promise<void> {
    let backoffMs = 100;
    let failingSince: number | undefined;
    // A batch that failed is retried exactly as it was: the idempotent producer re-sends the same messages with the
    // same sequence numbers, so the broker can tell a retry from new data. Messages queued meanwhile wait.
    let batch: OutMessage[] = [];
    // Every event of a batch was noted before the batch was taken from the queue, so a ticket taken then covers them.
    let ticket: number | undefined;
    const { prerequisites } = this.deps;
    while (this.sending) {
      if (batch.length === 0) {
        batch = this.outbox.peek(MESSAGES_PER_SEND, BYTES_PER_SEND);
        ticket = prerequisites?.ticket();
      }
      if (batch.length === 0) {
        await new Promise<void>((resolve) => (this.wakeSender = resolve));
        continue;
      }
      if (prerequisites && ticket !== undefined && !prerequisites.met(ticket)) {
        this.stall(true);
        await prerequisites.whenMet(ticket, this.stopWaiting.signal);
        continue;
      }
      const started = performance.now();
      const result = await this.deps.sink.send(batch);
      const events = batch.reduce((sum, message) => sum + message.events, 0);
      if (result.ok) {
        this.outbox.remove(batch.length);
        this.stall(false);
        this.stats.eventsProduced += events;
        this.stats.messagesProduced += batch.length;
        this.counters.events.add(events, this.attributes);
        this.counters.messages.add(batch.length, this.attributes);
        this.sendSeconds.record((performance.now() - started) / 1000, this.attributes);
        if (failingSince !== undefined) this.deps.logger.info({ outageMs: Date.now() - failingSince }, 'Kafka is reachable again');
        failingSince = undefined;
        backoffMs = 100;
        batch = [];
      } else if (!result.retriable) {
        this.outbox.remove(batch.length);
        this.wakeReader?.();
        this.drop(this.queueDrops, 'kafka_rejected', events);
        this.deps.logger.error({ error: result.error, events }, 'Kafka rejected a batch; its events are dropped');
        batch = [];
      } else {
        this.stall(true);
        if (failingSince === undefined) {
          failingSince = Date.now();
          this.deps.logger.warn({ error: result.error, queued: this.queuedEvents }, 'Kafka unavailable; queueing events (collector.queueEvents bounds it)');
        }
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** The sender can send again (a send completed: room in the queue too) or cannot; either way the reader looks again. */
  private stall(stalled: boolean): void {
    this.senderStalled = stalled;
    this.wakeReader?.();
  }

  private drop(counter: DropCounter, reason: string, count: number): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + count;
    counter.add(reason, count);
  }

  private async shutdown(): Promise<void> {
    this.reading = false;
    this.interruptWait?.();
    this.wakeReader?.();
    await this.readLoopDone;
    // The ring outlives this process: a record read now that does not fit the queue would be dropped, while left in
    // the ring it waits for the next collector. So take only what the queue has room for.
    for (let room = this.options.queueEvents - this.queuedEvents; room > 0; ) {
      const read = this.drainOnce(Math.min(READ_SLICE, room));
      if (read === 0) break;
      room -= read;
    }
    this.tick(true);
    const deadline = Date.now() + (this.options.shutdownTimeoutMs ?? 10_000);
    while (this.outbox.length > 0 && Date.now() < deadline) {
      this.wakeSender?.();
      await sleep(20);
    }
    this.sending = false;
    this.wakeSender?.();
    this.stopWaiting.abort();
    await this.sendLoopDone;
    if (this.outbox.events > 0) {
      this.drop(this.queueDrops, 'shutdown_timeout', this.outbox.events);
      this.outbox.remove(this.outbox.length);
    }
    this.queueDrops.flush();
    this.kernelDrops.flush();
    this.transformDrops.flush();
    await this.deps.sink.shutdown();
  }
}
