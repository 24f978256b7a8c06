/**
 * The cgroups the index knows, by (node, cgroup id), and the pod each names: the observing side of nearly every
 * join, so its lookup is kept to one Map read and one object.
 *
 * Keys: a node name is numbered once (a hundred-odd names: a small Map that stays in cache) and the id split into
 * its high and low 32 bits, exactly (through a Number below 2^53, through bigint operations above). The three hash
 * to one small integer, the key of a flat Map whose values chain the entries that share it: V8 keeps a small
 * integer key inside the hash table, so a lookup reads no key object, where a bigint key (read to compare) and a
 * second Map per node each cost a cache miss.
 *
 * Answers: each entry keeps the pod state the last join found through it, with the interval over which that answer
 * holds (the cgroup state's interval intersected with the pod state's); a join at a time inside it reads nothing
 * else. A new state or the end of either history changes those intervals, so the index reports every change of a
 * Cgroup or Pod key (changed()) and the entries that relied on that history forget their answer; expire() forgets
 * them all. The answer is found again, from the histories, on the next join.
 */
import { Dependents } from './dependents.js';
import type { CgroupState, History, PodState } from './history.js';
import { keepAnswer, keptAt, type Instant } from './instant.js';

const TWO_TO_32 = 4_294_967_296;
const EXACT = 2 ** 53;

export class CgroupEntry {
  /** The next entry whose key hashes alike. */
  next: CgroupEntry | undefined = undefined;
  /** The pod state the last join found, valid over [keptFrom, keptTo) (seconds first: instant.ts); undefined when none is kept. */
  kept: PodState | undefined = undefined;
  keptFrom = 0n;
  keptFromSeconds = 0;
  keptTo = 0n;
  keptToSeconds = 0;
  /** The pod history the answer came from (its changes make this entry forget). */
  podHistory: History | undefined = undefined;

  constructor(
    readonly node: number,
    readonly high: number,
    readonly low: number,
    public history: History,
  ) {}
}

export class CgroupTable {
  private readonly nodes = new Map<string, number>();
  private readonly entries = new Map<number, CgroupEntry>();
  /** Per history (a cgroup's or a pod's), the entries whose kept answer it bounds. */
  private readonly dependents = new Dependents<CgroupEntry>();
  private count = 0;

  /** The cgroup key's history names (node, id) from now on. */
  set(node: string, id: bigint, history: History): void {
    let number = this.nodes.get(node);
    if (number === undefined) this.nodes.set(node, (number = this.nodes.size));
    const { high, low } = split(id);
    const hash = hashOf(number, high, low);
    const existing = find(this.entries.get(hash), number, high, low);
    if (existing !== undefined) {
      this.forget(existing);
      existing.history = history;
      return;
    }
    const entry = new CgroupEntry(number, high, low, history);
    entry.next = this.entries.get(hash);
    this.entries.set(hash, entry);
    this.count++;
  }

  /** Drops (node, id) if it still names `history`. */
  delete(node: string, id: bigint, history: History): void {
    const number = this.nodes.get(node);
    if (number === undefined) return;
    const { high, low } = split(id);
    const hash = hashOf(number, high, low);
    let previous: CgroupEntry | undefined;
    for (let entry = this.entries.get(hash); entry !== undefined; previous = entry, entry = entry.next) {
      if (entry.node !== number || entry.high !== high || entry.low !== low) continue;
      if (entry.history !== history) return;
      this.forget(entry);
      if (previous !== undefined) previous.next = entry.next;
      else if (entry.next !== undefined) this.entries.set(hash, entry.next);
      else this.entries.delete(hash);
      this.count--;
      return;
    }
  }

  /** A Cgroup or Pod history changed (a new state, or its end): the answers it bounded are found again. */
  changed(history: History): void {
    for (const entry of this.dependents.take(history)) this.forget(entry);
  }

  /** Every kept answer is forgotten (expire() drops states they may rest on). */
  forgetAll(): void {
    for (const head of this.entries.values()) for (let entry: CgroupEntry | undefined = head; entry !== undefined; entry = entry.next) entry.kept = undefined;
    this.dependents.clear();
  }

  /** The pod state the cgroup names at the instant; `podHistory` finds a pod's history by uid. */
  podAt(node: string, id: bigint, at: Instant, podHistory: (uid: string) => History | undefined): PodState | undefined {
    const number = this.nodes.get(node);
    if (number === undefined) return undefined;
    let high: number;
    let low: number;
    const value = Number(id);
    if (value < EXACT && value > -EXACT) {
      high = Math.floor(value / TWO_TO_32);
      low = value | 0;
    } else {
      ({ high, low } = split(id));
    }
    const entry = find(this.entries.get(hashOf(number, high, low)), number, high, low);
    if (entry === undefined) return undefined;
    return keptAt(entry, at) ?? this.resolve(entry, at, podHistory);
  }

  /** Histories and their states, for stats. */
  sizes(): { histories: number; intervals: number } {
    let intervals = 0;
    for (const head of this.entries.values()) for (let entry: CgroupEntry | undefined = head; entry !== undefined; entry = entry.next) intervals += entry.history.states.length;
    return { histories: this.count, intervals };
  }

  /** The answer from the histories, kept in the entry over the interval it holds. */
  private resolve(entry: CgroupEntry, at: Instant, podHistory: (uid: string) => History | undefined): PodState | undefined {
    const cgroup = entry.history.at(at) as CgroupState | undefined;
    if (cgroup === undefined) return undefined;
    let history = cgroup.pod;
    if (history === undefined) {
      const uid = cgroup.event.cgroup!.k8s_pod_uid;
      const found = uid === null ? undefined : podHistory(uid);
      if (found?.kind !== 'Pod') return undefined;
      cgroup.pod = history = found;
    }
    const pod = history.at(at) as PodState | undefined;
    if (pod === undefined) return undefined;
    this.forget(entry);
    keepAnswer(entry, pod, pod.from, pod.to, cgroup.from, cgroup.to);
    entry.podHistory = history;
    this.dependents.add(entry.history, entry);
    this.dependents.add(history, entry);
    return pod;
  }

  private forget(entry: CgroupEntry): void {
    if (entry.kept === undefined) return;
    entry.kept = undefined;
    this.dependents.remove(entry.history, entry);
    if (entry.podHistory !== undefined) this.dependents.remove(entry.podHistory, entry);
    entry.podHistory = undefined;
  }
}

/** An id's high and low 32 bits (the low ones as a signed 32-bit integer), exactly. */
function split(id: bigint): { high: number; low: number } {
  return { high: Number(id >> 32n), low: Number(BigInt.asIntN(32, id)) };
}

function hashOf(node: number, high: number, low: number): number {
  return (low ^ Math.imul(high, 0x9e3779b1) ^ Math.imul(node + 1, 0x85ebca6b)) | 0;
}

function find(head: CgroupEntry | undefined, node: number, high: number, low: number): CgroupEntry | undefined {
  let entry = head;
  while (entry !== undefined && (entry.node !== node || entry.high !== high || entry.low !== low)) entry = entry.next;
  return entry;
}
