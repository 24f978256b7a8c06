/**
 * Final flow records, told to the kinds that keep state per connection (HTTP's parsers), as the flows kind reads
 * them: the flows ring is where a connection's end is known. Synchronous, in reading order; one per collector run.
 */
export class ConnectionEnds {
  private readonly listeners: Array<(connId: bigint) => void> = [];

  listen(listener: (connId: bigint) => void): void {
    this.listeners.push(listener);
  }

  ended(connId: bigint): void {
    for (const listener of this.listeners) listener(connId);
  }
}
