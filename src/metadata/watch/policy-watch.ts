/**
 * The API server's NetworkPolicies → the policies topic (policies.v1), so that users keep `kubectl apply` and every
 * enforcer sees the same policies as from `sidecarless policy apply`.
 *
 * 1. Before it starts, the topic is read back (role.ts: `restore`): the latest message of every key, whoever wrote
 *    it. A key whose latest event names this source (kubernetes/<cluster>) is this watch's.
 * 2. An informer on networking.k8s.io/v1 NetworkPolicies (kept alive, relisting on 410: informer.ts; the audit
 *    annotation is the one annotation it keeps). Each added or changed policy is checked by the very rules of
 *    `policy apply` (policyFromObject: strict, every problem named by field). One that passes is published when its
 *    content differs from what the topic holds for its key, so a restart or a relist publishes nothing twice. One
 *    that fails is not published (counted as rejected, logged once per interval with the field and reason): the
 *    topic keeps the policy's last good state, which the enforcers keep enforcing, and the log says so. A deleted
 *    policy gets a tombstone.
 * 3. After the first list, the keys this source published that the API server no longer has get tombstones: they
 *    were deleted while no watch ran. Keys another writer published (the CLI) are never tombstoned for being absent.
 * Messages go out one at a time in order (NetworkPolicies change rarely); a send that fails is retried with a
 * growing back-off until it succeeds or the watch stops, so no change is lost while Kafka is away.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Meter } from '@opentelemetry/api';
import { describeError } from '../../common/errors.js';
import type { KeyedKafkaSink, KeyedMessage } from '../../common/kafka/sink.js';
import type { Logger } from '../../common/logger.js';
import { createDropCounter, type DropCounter } from '../../common/telemetry.js';
import { policyFromObject } from '../../events/networkpolicy/document.js';
import { policyFromEvent, policyToEvent } from '../../events/networkpolicy/event.js';
import { AUDIT_ANNOTATION } from '../../events/networkpolicy/types.js';
import type { PoliciesCodec, PolicyChange, PolicyEvent } from '../../events/policies.js';
import { Informer } from './informer.js';

/** Every NetworkPolicy, all namespaces: what the watch lists and watches (and the metadata role's RBAC grants). */
export const NETWORK_POLICIES_PATH = '/apis/networking.k8s.io/v1/networkpolicies';

const DROP_REMEDIES = {
  rejected:
    'a NetworkPolicy the API server accepted fails sidecarless\'s checks (the log names the field): the enforcers keep its last good state until it is fixed',
  refused_by_kafka:
    'the broker refused a policies message for good (too large for the topic\'s max.message.bytes, the log says): raise it; the policy\'s next change is tried again',
  unsent_at_stop: 'the role stopped while Kafka was unreachable: its changes are published at the next start (it compares the topic with the API server)',
} as const;

export interface PolicyWatchOptions {
  kubeConfig: KubeConfig;
  sink: Pick<KeyedKafkaSink, 'send' | 'shutdown'>;
  codec: PoliciesCodec;
  /** kubernetes/<cluster>: the events' source. */
  source: string;
  meter: Meter;
  logger: Logger;
  /** Informer restart back-off (default 1 s doubling to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

export interface PolicyWatchStats {
  published: number;
  tombstones: number;
  rejected: number;
}

/** The policy's content, as every enforcer reads it: what decides whether a change is news. */
const contentOf = (event: PolicyEvent): string => JSON.stringify(policyFromEvent(event));

export class PolicyWatch {
  /** What the topic holds (or will, once queued messages are sent) per key. */
  private readonly held = new Map<string, PolicyEvent>();
  /** Keys the first list named (from the first list only). */
  private readonly listedKeys = new Set<string>();
  private readonly informer: Informer;
  private readonly rejections: DropCounter;
  private readonly queue: KeyedMessage[] = [];
  private sending: Promise<void> | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  readonly stats: PolicyWatchStats = { published: 0, tombstones: 0, rejected: 0 };

  constructor(private readonly options: PolicyWatchOptions) {
    this.rejections = createDropCounter(options.meter, options.logger, { name: 'metadata.networkpolicies', remedies: DROP_REMEDIES, attributes: { source: options.source } });
    let firstListDone = false;
    this.informer = new Informer({
      name: 'NetworkPolicy',
      path: NETWORK_POLICIES_PATH,
      kubeConfig: options.kubeConfig,
      annotations: [AUDIT_ANNOTATION],
      ...(options.backoff && { backoff: options.backoff }),
      handlers: {
        upsert: (object, fromList) => {
          if (fromList && !firstListDone) this.listedKeys.add(keyOf(object));
          this.upsert(object);
        },
        delete: (object) => this.tombstone(keyOf(object)),
        listed: (relist) => {
          if (relist || firstListDone) return;
          firstListDone = true;
          this.reconcile();
        },
        failed: (error, retryMs) => options.logger.warn({ err: describeError(error), retryMs }, `the NetworkPolicy informer stopped; it starts again in ${retryMs} ms (RBAC: the metadata role needs list and watch on networking.k8s.io networkpolicies)`),
      },
    });
  }

  /** A message read back from the topic before start. */
  restore(change: PolicyChange): void {
    if ('deleted' in change) this.held.delete(change.key);
    else this.held.set(change.key, change.event);
  }

  start(): void {
    this.informer.start();
  }

  /** Listed and watching. */
  ready(): boolean {
    return this.informer.ready;
  }

  health = () => ({ ok: this.informer.ready, detail: `NetworkPolicy informer ${this.informer.state}, ${this.queue.length} messages queued` });

  /** Stops watching; waits up to `timeoutMs` for the queued messages to be sent (what is left is logged); safe to call twice. */
  stop(timeoutMs: number): Promise<void> {
    this.stopping ??= this.stopOnce(timeoutMs);
    return this.stopping;
  }

  private async stopOnce(timeoutMs: number): Promise<void> {
    await this.informer.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.sending ?? Promise.resolve(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    if (this.queue.length > 0) this.rejections.add('unsent_at_stop', this.queue.length);
    this.rejections.flush();
    await this.options.sink.shutdown();
  }

  private upsert(object: KubernetesObject): void {
    let event: PolicyEvent;
    try {
      event = policyToEvent(policyFromObject(object), this.options.source, BigInt(Date.now()) * 1_000_000n, object.metadata?.resourceVersion ?? '');
    } catch (error) {
      this.stats.rejected++;
      this.rejections.add('rejected');
      this.options.logger.warn({ policy: keyOf(object), err: describeError(error) }, `NetworkPolicy ${keyOf(object)} is not published: ${describeError(error)}`);
      return;
    }
    const held = this.held.get(event.policy_key);
    if (held !== undefined && contentOf(held) === contentOf(event)) return;
    this.held.set(event.policy_key, event);
    this.stats.published++;
    this.enqueue({ key: event.policy_key, value: this.options.codec.encode(event), timestampMs: String(Date.now()) });
  }

  private tombstone(key: string): void {
    if (!this.held.delete(key)) return;
    this.stats.tombstones++;
    this.enqueue({ key, value: null, timestampMs: String(Date.now()) });
  }

  /** After the first list: this source's keys the API server no longer has were deleted while no watch ran. */
  private reconcile(): void {
    const gone = [...this.held].filter(([key, event]) => event.source === this.options.source && !this.listedKeys.has(key)).map(([key]) => key);
    for (const key of gone) this.tombstone(key);
    if (gone.length > 0) this.options.logger.info({ tombstones: gone }, `${gone.length} NetworkPolicies published earlier no longer exist: tombstones queued`);
    this.listedKeys.clear();
  }

  private enqueue(message: KeyedMessage): void {
    this.queue.push(message);
    this.sending ??= this.pump().finally(() => (this.sending = undefined));
  }

  /** Sends the queue in order, one message at a time; a failure is retried after a growing pause. */
  private async pump(): Promise<void> {
    let pauseMs = 500;
    while (this.queue.length > 0 && !this.stopped) {
      const result = await this.options.sink.send([this.queue[0]!]);
      if (result.ok) {
        this.queue.shift();
        pauseMs = 500;
        continue;
      }
      if (!result.retriable) {
        // Sending it again cannot help, and it would hold back every later change: dropped, counted, and forgotten
        // as held so that the policy's next change is sent.
        const refused = this.queue.shift()!;
        this.held.delete(refused.key);
        this.rejections.add('refused_by_kafka');
        this.options.logger.error({ policy: refused.key, err: result.error }, `Kafka refused the change of NetworkPolicy ${refused.key} for good`);
        continue;
      }
      this.options.logger.warn({ err: result.error, retryMs: pauseMs }, `a NetworkPolicy change could not be published to Kafka; retrying in ${pauseMs} ms`);
      await new Promise<void>((resolve) => {
        this.wakeRetry = resolve;
        this.retryTimer = setTimeout(resolve, pauseMs);
      });
      pauseMs = Math.min(2 * pauseMs, 30_000);
    }
  }
}

function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;
}
