/**
 * The policies topic as its writers and readers use it: publish validated policies (one message each, keyed
 * `namespace/name`), tombstone one, and read the live policies (the topic from its beginning to the end offsets of
 * the moment the read began; the latest message per key wins, a tombstone removes). One producer serves every
 * publish and delete until shutdown(), so a long-lived writer pays the connection once, not per change.
 */
import type { Kafka } from 'kafkajs';
import type { Registry } from '../common/avro.js';
import { SidecarlessError } from '../common/errors.js';
import { KeyedKafkaSink } from '../common/kafka/sink.js';
import { readToEnd } from '../common/kafka/read-to-end.js';
import type { Logger } from '../common/logger.js';
import { bindPoliciesCodec, type PolicyEvent } from '../events/policies.js';
import { policyToEvent } from '../events/networkpolicy/event.js';
import type { NetworkPolicy } from '../events/networkpolicy/types.js';

export class PolicyTopic {
  private readonly codec;
  private sink: KeyedKafkaSink | undefined;

  constructor(
    private readonly kafka: Kafka,
    readonly topic: string,
    registry: Registry,
    private readonly logger: Logger,
  ) {
    this.codec = bindPoliciesCodec(registry);
  }

  /** Publishes the policies in one produce request; resolves once Kafka acknowledged all of them. */
  async publish(policies: readonly NetworkPolicy[], source: string, nowMs = Date.now()): Promise<void> {
    const timeNs = BigInt(nowMs) * 1_000_000n;
    await this.send(
      policies.map((policy) => {
        const event = policyToEvent(policy, source, timeNs);
        return { key: event.policy_key, value: this.codec.encode(event), timestampMs: String(nowMs) };
      }),
    );
  }

  /** Publishes the tombstone of `namespace/name`. */
  async delete(key: string, nowMs = Date.now()): Promise<void> {
    await this.send([{ key, value: null, timestampMs: String(nowMs) }]);
  }

  /** The live policies by key, as of the topic's end offsets when the read began. */
  async live(): Promise<Map<string, PolicyEvent>> {
    const live = new Map<string, PolicyEvent>();
    await readToEnd(
      this.kafka,
      this.topic,
      (message) => {
        const change = this.codec.decode(message.key, message.value);
        if ('deleted' in change) live.delete(change.key);
        else live.set(change.key, change.event);
      },
      { groupPrefix: 'sidecarless-policy-read', logger: this.logger },
    );
    return live;
  }

  /** Disconnects the producer, if a publish or delete connected it. Safe twice. */
  async shutdown(): Promise<void> {
    await this.sink?.shutdown();
    this.sink = undefined;
  }

  private async send(messages: Array<{ key: string; value: Buffer | null; timestampMs: string }>): Promise<void> {
    this.sink ??= new KeyedKafkaSink(this.kafka, this.topic);
    const result = await this.sink.send(messages);
    if (!result.ok) throw new SidecarlessError(`could not publish to ${this.topic}: ${result.error}`, { retriable: result.retriable, context: { topic: this.topic } });
  }
}
