/**
 * Which kept answers rest on which history: a cache entry that copied a state's interval registers with the
 * histories that bound it, and forgets its answer when one of them changes (a new state sets the previous state's
 * end). Used by the cgroup table and the address books.
 */
import type { History } from './history.js';

export class Dependents<T> {
  private readonly byHistory = new Map<History, Set<T>>();

  add(history: History, dependent: T): void {
    let set = this.byHistory.get(history);
    if (set === undefined) this.byHistory.set(history, (set = new Set()));
    set.add(dependent);
  }

  remove(history: History, dependent: T): void {
    const set = this.byHistory.get(history);
    if (set === undefined) return;
    set.delete(dependent);
    if (set.size === 0) this.byHistory.delete(history);
  }

  /** The dependents of the history, which it no longer holds (the caller makes them forget). */
  take(history: History): Iterable<T> {
    const set = this.byHistory.get(history);
    if (set === undefined) return [];
    this.byHistory.delete(history);
    return set;
  }

  clear(): void {
    this.byHistory.clear();
  }
}
