/**
 * Verdicts from the kernel to `verdicts.v1`: every intervalMs the ring is drained (at most maxQueued records at a
 * time), each decision named with the state the enforcer applied (verdict-naming.ts), and the events sent in
 * messages of at most EVENTS_PER_MESSAGE, keyed by the node. Sends wait for Kafka: while it is down the events
 * wait in a bounded queue, and what does not fit is dropped and counted (`queue_full`), as are records that do not
 * decode (`undecodable`). The kernel counts records it could not put in a full ring (the policy object's `drops`);
 * each round adds what it counted since to the same counter (`ringbuf_full`), also what it counted while no enforcer
 * ran. A loop that never throws; stop() drains and sends once more, then disconnects.
 */
import type { Meter } from '@opentelemetry/api';
import type { Logger } from '../common/logger.js';
import type { Sink } from '../common/pipeline.js';
import type { KeyedMessage } from '../common/kafka/sink.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { VerdictEvent, VerdictsCodec } from '../events/verdicts.js';
import type { DesiredState } from './desired-state.js';
import { VerdictNamer, type Decision } from './verdict-naming.js';

export const VERDICT_DROP_REMEDIES = {
  queue_full: 'Kafka did not take verdicts for a while and enforcer.verdictQueueEvents were waiting: the newest are dropped; check Kafka, or raise enforcer.verdictQueueEvents',
  kafka_rejected: 'the broker refused a verdicts message for good (its error is logged: a bug, or the topic\'s max.message.bytes)',
  undecodable: 'a verdict ring record is not a verdict record of this version (a bug: the kernel object and this build differ); report it',
  shutdown: 'the enforcer stopped while Kafka had not taken the queued verdicts (it was unreachable): check Kafka before restarting',
  ringbuf_full:
    "the kernel's verdict ring (1 MiB, about 10,000 verdicts) filled before the enforcer read it (a burst of denials, or no enforcer ran for a while): lower enforcer.verdictIntervalMs, or sample fewer allows (enforcer.allowSampleEvery)",
} as const;

/** About 200 bytes each: 1,000 stay well under the broker's 1 MiB message limit. */
const EVENTS_PER_MESSAGE = 1000;

/** A verdict ring, read as decisions (apply/verdict-reader.ts). */
export interface VerdictSource {
  drain(max: number, undecodable: () => void): Decision[];
  /** Verdicts the kernel could not put in the full ring since the last call. */
  takeRingFull(): number;
  resync(): void;
}

export interface VerdictPublisherDeps {
  node: string;
  source: VerdictSource;
  state: () => DesiredState | undefined;
  codec: VerdictsCodec;
  sink: Sink<KeyedMessage[]>;
  logger: Logger;
  meter: Meter;
  intervalMs: number;
  maxQueued: number;
}

export class VerdictPublisher {
  private readonly namer: VerdictNamer;
  private readonly drops: DropCounter;
  private queue: VerdictEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rounds = 0;
  readonly stats = { published: 0 };

  constructor(private readonly deps: VerdictPublisherDeps) {
    this.namer = new VerdictNamer(deps.node);
    this.drops = createDropCounter(deps.meter, deps.logger, { name: 'enforcer.verdicts', remedies: VERDICT_DROP_REMEDIES });
    deps.meter.createObservableCounter('sidecarless.enforcer.verdicts', { description: 'Verdict events Kafka acknowledged', unit: '{event}' }).addCallback((result) => result.observe(this.stats.published));
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Every record in the ring of a layout being retired (PolicyKernel.takeOverVerdicts), read to its end while that
   * installation is still pinned: queued ahead of the next round's, named, like every record, with the state applied
   * when they are read. What the queue cannot take is counted (queue_full).
   */
  adoptRing(source: VerdictSource): number {
    const decisions = source.drain(Number.MAX_SAFE_INTEGER, () => this.drops.add('undecodable'));
    this.countRingFull(source);
    const room = Math.max(this.deps.maxQueued - this.queue.length, 0);
    const state = this.deps.state();
    for (const decision of decisions.slice(0, room)) this.queue.push(this.namer.name(decision, state));
    if (decisions.length > room) this.drops.add('queue_full', decisions.length - room);
    return decisions.length;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.round().finally(() => (this.running = undefined));
    }, this.deps.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.round();
    // What Kafka did not take by now is lost with the process: counted, not silent.
    if (this.queue.length > 0) this.drops.add('shutdown', this.queue.splice(0).length);
    await this.deps.sink.shutdown();
    this.drops.flush();
  }

  private countRingFull(source: VerdictSource): void {
    const lost = source.takeRingFull();
    if (lost > 0) this.drops.add('ringbuf_full', lost);
  }

  private async round(): Promise<void> {
    if (++this.rounds % 600 === 0) this.deps.source.resync();
    this.countRingFull(this.deps.source);
    const room = this.deps.maxQueued - this.queue.length;
    const decisions = this.deps.source.drain(Math.max(room, 0), () => this.drops.add('undecodable'));
    if (room <= 0) {
      // The ring keeps what was not read; once it is full too, the kernel counts what it cannot write.
      this.drops.add('queue_full', this.deps.source.drain(this.deps.maxQueued, () => this.drops.add('undecodable')).length);
    }
    const state = this.deps.state();
    for (const decision of decisions) this.queue.push(this.namer.name(decision, state));
    while (this.queue.length > 0) {
      const events = this.queue.slice(0, EVENTS_PER_MESSAGE);
      const result = await this.deps.sink.send([{ key: this.deps.node, value: this.deps.codec.encode(events), timestampMs: String(Date.now()) }]);
      if (!result.ok) {
        this.deps.logger.warn({ err: result.error, queued: this.queue.length }, 'verdicts not taken by Kafka; kept and sent again');
        if (!result.retriable) {
          this.drops.add('kafka_rejected', events.length);
          this.queue = this.queue.slice(events.length);
        }
        return;
      }
      this.queue = this.queue.slice(events.length);
      this.stats.published += events.length;
    }
  }
}
