/**
 * The seams every role is built from (DESIGN rule 5): a sink takes a batch and answers with a SinkResult instead of
 * throwing (rule 7), so the caller decides between retrying the same batch and counting it as dropped. Sources are
 * specific to what they read (a ring, a Kafka partition, a watch) and live with it.
 */

/** What a sink answers for one batch. `retriable`: the same batch may succeed later (an outage, a timeout). */
export type SinkResult = { ok: true } | { ok: false; error: string; retriable: boolean };

export const SINK_OK: SinkResult = Object.freeze({ ok: true });

export interface Sink<Batch> {
  send(batch: Batch): Promise<SinkResult>;
  /** Releases connections; called once, after the last send. */
  shutdown(): Promise<void>;
}

/**
 * An in-memory sink for tests: keeps what it accepted, and answers each send with the next scripted result, or ok
 * when the script is empty.
 */
export class MemorySink<Batch> implements Sink<Batch> {
  readonly accepted: Batch[] = [];
  readonly script: SinkResult[] = [];
  shutdowns = 0;

  async send(batch: Batch): Promise<SinkResult> {
    const result = this.script.shift() ?? SINK_OK;
    if (result.ok) this.accepted.push(batch);
    return result;
  }

  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
}
