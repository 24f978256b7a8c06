/**
 * What one source has published under each key, as a digest of the state without its resource version and change
 * time: the memory behind "never publish the same state twice". A relist, a restart or an update that touches
 * only fields outside the contract (annotations, a Node's heartbeat) yields the same digest and is not published.
 *
 * At start it is filled from the topic itself (the latest message of every key, read back): those entries are
 * unconfirmed until the source observes the object again. Whatever is still unconfirmed when the source has listed
 * a kind was deleted while no publisher ran: it gets a tombstone.
 */
import { createHash } from 'node:crypto';
import type { MetadataChange, MetadataCodec, MetadataEvent, MetadataKind } from '../../events/metadata.js';

interface Entry {
  digest: string;
  kind: MetadataKind;
  /** The object's name key (kind/namespace/name), to notice a name that now belongs to another uid. */
  name: string;
  /** Observed by this run (not only read back from the topic). */
  confirmed: boolean;
  /** The latest change time at which the object was seen to exist (observed, or read back). */
  aliveNs: bigint;
}

export type Digest = (event: MetadataEvent) => string;

/** sha256 of the event's Avro encoding with resource_version and change_time_ns left out. */
export function stateDigest(codec: MetadataCodec): Digest {
  return (event) => createHash('sha256').update(codec.encode({ ...event, resource_version: '', change_time_ns: 0n })).digest('base64');
}

const nameKey = (event: MetadataEvent): string => `${event.kind}/${event.k8s_namespace_name}/${event.name}`;

export class PublishedState {
  private readonly entries = new Map<string, Entry>();
  /** name key → the uid last published under that name. */
  private readonly uids = new Map<string, string>();

  constructor(
    readonly source: string,
    private readonly digest: Digest,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The latest message of a key as read back from the topic. Only this source's objects count: a tombstone or
   * another source's value under the key means this source has nothing published there.
   */
  restore(change: MetadataChange): void {
    this.forget(change.key);
    if (!('event' in change) || change.event.source !== this.source || change.event.kind === 'Watermark') return;
    this.record(change.event, false);
  }

  /**
   * Whether `event` changes what its key shows (then it is recorded as published). Also returns the uid that
   * held the same name before, when another object now has it: that one is gone (a watch that missed its
   * deletion, during an outage, sees only the new object under the name).
   */
  accept(event: MetadataEvent): { publish: boolean; replaced?: string } {
    const previous = this.uids.get(nameKey(event));
    const replaced = previous !== undefined && previous !== event.object_key && this.entries.has(previous) ? previous : undefined;
    const entry = this.entries.get(event.object_key);
    const digest = this.digest(event);
    if (entry !== undefined && entry.digest === digest) {
      entry.confirmed = true;
      if (event.change_time_ns > entry.aliveNs) entry.aliveNs = event.change_time_ns;
      return { publish: false, ...(replaced && { replaced }) };
    }
    this.record(event, true, digest);
    return { publish: true, ...(replaced && { replaced }) };
  }

  /** Whether the key shows a state that a tombstone must end (it is then forgotten). */
  remove(key: string): boolean {
    return this.forget(key);
  }

  /** The latest time the key's object was seen to exist (its last state's change time, or a later equal one). */
  aliveNs(key: string): bigint | undefined {
    return this.entries.get(key)?.aliveNs;
  }

  /** Keys of `kind` read back from the topic and not observed by this run. */
  unconfirmed(kind: MetadataKind): string[] {
    return [...this.entries].filter(([, entry]) => entry.kind === kind && !entry.confirmed).map(([key]) => key);
  }

  private record(event: MetadataEvent, confirmed: boolean, digest = this.digest(event)): void {
    const name = nameKey(event);
    // A file may rename an object under its uid: its old name is free again.
    const old = this.entries.get(event.object_key);
    if (old !== undefined && old.name !== name && this.uids.get(old.name) === event.object_key) this.uids.delete(old.name);
    this.entries.set(event.object_key, { digest, kind: event.kind, name, confirmed, aliveNs: event.change_time_ns });
    this.uids.set(name, event.object_key);
  }

  private forget(key: string): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.entries.delete(key);
    if (this.uids.get(entry.name) === key) this.uids.delete(entry.name);
    return true;
  }
}
