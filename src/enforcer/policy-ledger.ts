/**
 * The policies an enforcer holds, from the messages of `policies.v1` as they arrive (replay, then live): per key
 * the latest message that is a valid policy, and the messages that are not. Pure.
 *
 * A message is checked as a policy from `sidecarless policy apply` is: it must decode with the catalog, and the
 * policy it holds must pass the same validation as a document (`validatePolicyDocument`: CIDRs, ports, selectors,
 * names), because any client may write to the topic. A message that fails is a dead letter (with the reason) and
 * changes nothing: the key keeps its last valid policy, if any, so a bad write never opens a pod that a policy
 * isolated (a tombstone is the only way to remove a policy). `takeLetters` hands each bad message out once.
 */
import { describeError } from '../common/errors.js';
import type { DeadLetter } from '../common/kafka/dead-letter.js';
import type { PoliciesCodec } from '../events/policies.js';
import { validatePolicyDocument } from '../events/networkpolicy/document.js';
import { policyFromEvent } from '../events/networkpolicy/event.js';
import { policyDocument } from '../events/networkpolicy/render.js';
import type { NetworkPolicy } from '../events/networkpolicy/types.js';

/** One message of the policies topic, with where it was read. */
export interface PolicyMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface LivePolicy {
  policy: NetworkPolicy;
  /** When its writer published it (change_time_ns): the order in which policies that do not all fit are taken. */
  changeTimeNs: bigint;
  message: PolicyMessage;
}

/** A message as a dead letter, with why. */
export const letterOf = (message: PolicyMessage, reason: string): DeadLetter => ({ ...message, reason });

export class PolicyLedger {
  private readonly live = new Map<string, LivePolicy>();
  private readonly letters: DeadLetter[] = [];

  constructor(private readonly codec: PoliciesCodec) {}

  /** Takes one message; returns whether the live policies changed. */
  take(message: PolicyMessage): boolean {
    let change;
    try {
      change = this.codec.decode(message.key, message.value);
    } catch (error) {
      this.letters.push(letterOf(message, `does not decode as a policies.v1 event: ${describeError(error)}`));
      return false;
    }
    if ('deleted' in change) return this.live.delete(change.key);
    let policy: NetworkPolicy;
    try {
      policy = validatePolicyDocument(policyDocument(policyFromEvent(change.event)));
    } catch (error) {
      this.letters.push(letterOf(message, `not a valid NetworkPolicy: ${describeError(error)}`));
      return false;
    }
    this.live.set(change.key, { policy, changeTimeNs: change.event.change_time_ns, message });
    return true;
  }

  policies(): LivePolicy[] {
    return [...this.live.values()];
  }

  /** The messages refused since the last call. */
  takeLetters(): DeadLetter[] {
    return this.letters.splice(0);
  }
}
