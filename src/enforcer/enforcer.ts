/**
 * One node's enforcer loop: messages of `policies.v1` and `metadata.v1` in, the node's desired state
 * (desired-state.ts) applied to the kernel out, and what cannot be applied to the dead-letter topic.
 *
 *   replay    messages are taken as they come; nothing is applied before both topics are read to the end offsets
 *             of the start (`replayed()`): until then the pinned maps keep enforcing the last state applied, and a
 *             half-read topic must not open what it has not reached yet.
 *   changes   a message that changes the policies, a pod or a namespace (or a scan that finds a container cgroup
 *             appear or go) schedules an apply after `applyDelayMs`; what arrives meanwhile joins it, so a burst costs
 *             one compile and one apply. Applies never overlap: one asked for during another runs after it.
 *   failures  a policy that cannot be applied is left out of the state (desired-state.ts) and dead-lettered once
 *             (per partition and offset, in this process); what cannot be blamed on a policy, and a kernel write
 *             refused, leave the last applied state enforced (PolicyApplier refuses whole), are logged and counted,
 *             and the next change tries again. Letters that Kafka did not take are sent again with the next apply.
 */
import type { Meter } from '@opentelemetry/api';
import { describeError } from '../common/errors.js';
import type { DeadLetter } from '../common/kafka/dead-letter.js';
import type { Logger } from '../common/logger.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { MetadataCodec } from '../events/metadata.js';
import type { PoliciesCodec } from '../events/policies.js';
import type { ApplyResult, NodeMapState } from './apply/applier.js';
import { ClusterViewBuilder } from './cluster-view.js';
import { desiredState, type Capacities, type DesiredState } from './desired-state.js';
import { PolicyLedger } from './policy-ledger.js';
import { letterPlace } from './previous-letters.js';
import type { FollowedMessage } from './topic-follower.js';

export interface EnforcerDeps {
  node: string;
  policiesTopic: string;
  metadataTopic: string;
  policiesCodec: PoliciesCodec;
  metadataCodec: MetadataCodec;
  /** The kernel side: PolicyApplier. */
  applier: { apply(next: NodeMapState): ApplyResult };
  /** Cgroup id → path of every cgroup below the attached roots; throws when the tree cannot be read. */
  scanCgroups(): ReadonlyMap<bigint, string>;
  deadLetters: { send(letters: readonly DeadLetter[]): Promise<void> };
  /** Places (letterPlace) of the policy messages this node's enforcer dead-lettered in earlier runs. */
  letteredBefore?: ReadonlySet<string>;
  capacities: Capacities;
  logger: Logger;
  meter: Meter;
  applyDelayMs: number;
}

export interface EnforcerStats {
  applies: number;
  applyFailures: number;
  deadLetters: number;
  undecodableMetadata: number;
  generation: number | undefined;
  lastApplyMs: number | undefined;
}

/** What governs each loss the enforcer counts (sidecarless.enforcer.input.drops). */
const ENFORCER_DROP_REMEDIES = {
  metadata_undecodable: 'a metadata.v1 message no sidecarless writer made (or of a newer schema): no policy depends on it; upgrade the enforcer if metadata writers are newer',
  dead_letters_unsent: 'the enforcer stopped while Kafka refused its dead letters: the policies stayed left out, but their letters are lost; a restarted enforcer letters those again (it skips only what reached the topic)',
} as const;

export class Enforcer {
  private readonly ledger: PolicyLedger;
  private readonly cluster = new ClusterViewBuilder();
  private state: DesiredState | undefined;
  private cgroupIds = '';
  private replayDone = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly lettered: Set<string>;
  private unsent: DeadLetter[] = [];
  /** Input the enforcer lost, by reason (ENFORCER_DROP_REMEDIES). */
  private readonly drops: DropCounter;
  /** Called once the apply running or scheduled now has ended (however it ended). */
  private afterApply: Array<() => void> = [];
  readonly stats: EnforcerStats = { applies: 0, applyFailures: 0, deadLetters: 0, undecodableMetadata: 0, generation: undefined, lastApplyMs: undefined };

  constructor(private readonly deps: EnforcerDeps) {
    this.ledger = new PolicyLedger(deps.policiesCodec);
    this.lettered = new Set(deps.letteredBefore);
    this.drops = createDropCounter(deps.meter, deps.logger, { name: 'enforcer.input', remedies: ENFORCER_DROP_REMEDIES });
    this.instrument(deps.meter);
  }

  /** The state last applied (undefined before the first apply): what verdicts are named with. */
  get current(): DesiredState | undefined {
    return this.state;
  }

  take(message: FollowedMessage): void {
    if (message.topic === this.deps.policiesTopic) {
      // A bad message changes nothing, but its letter goes out with the next apply.
      this.ledger.take(message);
      this.changed();
      return;
    }
    let change;
    try {
      change = this.deps.metadataCodec.decode(message.key, message.value, message.timestamp);
    } catch (error) {
      // Not a message of any sidecarless writer: no policy depends on it; counted, logged once.
      this.drops.add('metadata_undecodable');
      if (this.stats.undecodableMetadata++ === 0) this.deps.logger.warn({ topic: message.topic, partition: message.partition, offset: message.offset, err: describeError(error) }, 'a metadata message does not decode; ignored');
      return;
    }
    this.cluster.apply(change);
    const kind = 'event' in change ? change.event.kind : undefined;
    if (kind === undefined || kind === 'Pod' || kind === 'Namespace') this.changed();
  }

  /**
   * Both topics were read to their end offsets of the start: the first apply, then one per change. Resolves once
   * the first has ended (not once changes stop coming: on a busy cluster they may never).
   */
  replayed(): Promise<void> {
    this.replayDone = true;
    const ended = new Promise<void>((resolve) => this.afterApply.push(resolve));
    this.schedule(0);
    return ended;
  }

  /** A cgroup walk (periodic, or called for by the tree watch): a container cgroup that appeared or went changes the state. */
  rescan(): void {
    if (!this.replayDone) return;
    const ids = this.scanIds();
    if (ids !== undefined && ids !== this.cgroupIds) this.schedule(this.deps.applyDelayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    // Letters Kafka refused so far get one last try; what is still refused is lost with the process, counted.
    if (this.unsent.length > 0) await this.sendLetters([]);
    if (this.unsent.length > 0) this.drops.add('dead_letters_unsent', this.unsent.splice(0).length);
    this.drops.flush();
  }

  private changed(): void {
    if (this.replayDone) this.schedule(this.deps.applyDelayMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.applyNow().finally(() => {
        this.running = undefined;
        for (const listener of this.afterApply.splice(0)) listener();
        if (this.again) {
          this.again = false;
          this.schedule(this.deps.applyDelayMs);
        }
      });
    }, delayMs);
  }

  private scanIds(): string | undefined {
    try {
      return [...this.deps.scanCgroups().keys()].sort().join(',');
    } catch (error) {
      this.deps.logger.error({ err: describeError(error) }, 'cannot walk the pod cgroups; the state applied last is still enforced');
      return undefined;
    }
  }

  private async applyNow(): Promise<void> {
    const started = performance.now();
    const log = this.deps.logger;
    let desired: DesiredState;
    let cgroups: ReadonlyMap<bigint, string>;
    try {
      cgroups = this.deps.scanCgroups();
      desired = desiredState(this.ledger.policies(), this.cluster.view(), { cgroups, pods: this.cluster.podsOnNode(this.deps.node) }, this.deps.capacities);
    } catch (error) {
      this.stats.applyFailures++;
      log.error({ err: describeError(error) }, 'policy: no state compiled; the state applied last is still enforced');
      await this.sendLetters(this.ledger.takeLetters());
      return;
    }
    await this.sendLetters([...this.ledger.takeLetters(), ...desired.rejected.map(({ policy, reason }) => ({ ...policy.message, reason }))]);
    let result: ApplyResult;
    try {
      result = this.deps.applier.apply(desired.node);
    } catch (error) {
      this.stats.applyFailures++;
      log.error({ err: describeError(error) }, 'policy: state not applied; the state applied last is still enforced');
      return;
    }
    this.state = desired;
    this.cgroupIds = [...cgroups.keys()].sort().join(',');
    this.stats.applies++;
    this.stats.generation = result.generation;
    this.stats.lastApplyMs = performance.now() - started;
    log.info(
      { generation: result.generation, writes: result.writes, ms: Math.round(this.stats.lastApplyMs), policies: desired.applied.length, left_out: desired.rejected.length, cgroups: desired.node.cgroups.size },
      'policy state applied',
    );
  }

  /** Sends each letter once (this run or an earlier one); what Kafka does not take now goes with the next apply. */
  private async sendLetters(letters: DeadLetter[]): Promise<void> {
    const fresh = letters.filter((letter) => !this.lettered.has(letterPlace(letter)));
    const batch = [...this.unsent, ...fresh];
    if (batch.length === 0) return;
    for (const letter of fresh) {
      this.lettered.add(letterPlace(letter));
      this.deps.logger.warn({ key: letter.key?.toString('utf8'), partition: letter.partition, offset: letter.offset, reason: letter.reason }, 'policy left out and dead-lettered');
    }
    try {
      await this.deps.deadLetters.send(batch);
      this.unsent = [];
      this.stats.deadLetters += batch.length;
    } catch (error) {
      this.unsent = batch;
      this.deps.logger.error({ letters: batch.length, err: describeError(error) }, 'dead letters not sent; retried with the next apply');
    }
  }

  private instrument(meter: Meter): void {
    const attributes = { 'k8s.node.name': this.deps.node };
    meter.createObservableGauge('sidecarless.enforcer.generation', { description: 'The policy map generation the kernel reads (0 or 1)' }).addCallback((result) => {
      if (this.stats.generation !== undefined) result.observe(this.stats.generation, attributes);
    });
    meter.createObservableGauge('sidecarless.enforcer.map_entries', { description: 'Entries of the applied state per map (policy: entries before port blocks)', unit: '{entry}' }).addCallback((result) => {
      const node = this.state?.node;
      if (node === undefined) return;
      const sizes = { cgroup_identity: node.cgroups.size, endpoints: node.state.endpoints.size, prefixes: node.state.prefixes.size, isolation: node.state.isolation.size, policy: node.state.policy.size };
      for (const [map, size] of Object.entries(sizes)) result.observe(size, { ...attributes, map });
    });
    meter.createObservableGauge('sidecarless.enforcer.last_apply_duration', { description: 'Compile and apply time of the last state applied', unit: 'ms' }).addCallback((result) => {
      if (this.stats.lastApplyMs !== undefined) result.observe(this.stats.lastApplyMs, attributes);
    });
    meter.createObservableGauge('sidecarless.enforcer.policies_applied', { description: 'Policies in the applied state', unit: '{policy}' }).addCallback((result) => {
      if (this.state !== undefined) result.observe(this.state.applied.length, attributes);
    });
    meter.createObservableCounter('sidecarless.enforcer.dead_letters', { description: 'Policy messages left out and sent to the dead-letter topic', unit: '{message}' }).addCallback((result) => result.observe(this.stats.deadLetters, attributes));
    meter.createObservableCounter('sidecarless.enforcer.apply_failures', { description: 'Applies that left the last state enforced (logged with the reason)', unit: '{apply}' }).addCallback((result) => result.observe(this.stats.applyFailures, attributes));
  }
}
