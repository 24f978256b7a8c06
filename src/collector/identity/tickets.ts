/**
 * The numbers behind the ordering rule (./cgroup-identities.ts): a send takes the current number and waits until
 * it has passed. Whatever must reach Kafka before later sends (a note of an unknown id, a scan round) takes a new
 * number, so a send taken after it waits for it; a round passes every number up to the one it took when Kafka
 * acknowledged what it produced.
 */
export class Tickets {
  /** Number 1 is the first round: nothing passes before it. */
  private issued = 1;
  private passed = 0;
  private waiters: Array<{ ticket: number; resolve: () => void }> = [];

  /** Sends waiting for their number to pass. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Covers everything so far. */
  current(): number {
    return this.issued;
  }

  /** A new number: sends from now on wait for it too. */
  next(): number {
    return ++this.issued;
  }

  /** Everything up to `ticket` is acknowledged. */
  pass(ticket: number): void {
    this.passed = Math.max(this.passed, ticket);
    const ready = this.waiters.filter((waiter) => waiter.ticket <= this.passed);
    this.waiters = this.waiters.filter((waiter) => waiter.ticket > this.passed);
    for (const waiter of ready) waiter.resolve();
  }

  met(ticket: number): boolean {
    return ticket <= this.passed;
  }

  /** Resolves once `ticket` has passed, or once `signal` aborts: the waiter is then removed, not left for a pass. */
  whenMet(ticket: number, signal: AbortSignal): Promise<void> {
    if (this.met(ticket) || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const abandon = () => {
        this.waiters = this.waiters.filter((other) => other !== waiter);
        resolve();
      };
      const waiter = {
        ticket,
        resolve: () => {
          signal.removeEventListener('abort', abandon);
          resolve();
        },
      };
      signal.addEventListener('abort', abandon, { once: true });
      this.waiters.push(waiter);
    });
  }
}
