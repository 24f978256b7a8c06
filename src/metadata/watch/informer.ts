/**
 * One kind's informer, kept alive. @kubernetes/client-node 1.4.0's ListWatch (what makeInformer builds) lists,
 * then watches from the list's resourceVersion, keeps a cache keyed by namespace/name, and relists by itself when
 * the API server answers 410 (the resourceVersion is no longer served). On any other error (the API server
 * restarted, a connection refused or cut) it emits `error` and stops for good. This class:
 *
 * 1. builds the ListWatch with our list (api-list.ts: paged, plain JSON, abortable) and a Watch that asks for
 *    bookmarks (they keep the resourceVersion fresh, so a reconnect after a quiet hour resumes instead of
 *    relisting), a server-side timeout (5-10 min, as client-go's reflector asks: connections are renewed), that
 *    is replaced when it hears nothing, not even a bookmark, for three minutes (a connection lost without a
 *    word), and that closes for good on stop (ListWatch.stop() alone leaves a watch whose request was still
 *    connecting);
 * 2. restarts it after `error` with a growing back-off (1 s doubling to 30 s; back to 1 s once it has stayed up
 *    for 30 s), counting each restart and telling the owner why; start() resumes from the last resourceVersion,
 *    so a short outage costs no relist when the API server still serves it;
 * 3. tells the owner when a list has been applied (the initial sync, and each relist after a 410, counted), and
 *    whether the informer is watching now: a source may claim a watermark only while all of its informers are;
 *    and since when it has been watching after a list or a failure (`returnedAtMs`; a renewed watch of a healthy
 *    informer does not count): a watch that resumed after a failure delivers what changed meanwhile first
 *    (`resumedAfterFailure`), so its first events are not news of the moment they arrive.
 *
 * Every list after the first one is a relist: ListWatch lists again only when the resourceVersion was reset,
 * which it does only on a 410 (a restart after an error resumes from the resourceVersion it had).
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { listAll } from './api-list.js';

export type InformerState = 'starting' | 'listing' | 'connecting' | 'watching' | 'down' | 'stopped';

export interface InformerHandlers {
  /** An object added or changed; `fromList`: delivered by a list rather than by the watch. */
  upsert(object: KubernetesObject, fromList: boolean): void;
  /**
   * An object deleted: the last state the informer had of it. `fromList`: no longer listed by a relist, so deleted
   * at some time the informer did not see.
   */
  delete(object: KubernetesObject, fromList: boolean): void;
  /** A list has been applied: `relist` false for the first one. */
  listed(relist: boolean): void;
  /** The informer stopped on an error and starts again after `retryMs`, from `resourceVersion` ('': it lists). */
  failed(error: unknown, retryMs: number, resourceVersion: string): void;
}

export interface InformerOptions {
  name: string;
  path: string;
  kubeConfig: KubeConfig;
  handlers: InformerHandlers;
  /** Back-off after a failure. Default 1 s doubling to 30 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** The annotations the contract reads (a NetworkPolicy's audit mode); the cache keeps no other. */
  annotations?: readonly string[];
}

/**
 * What the informer's cache keeps of an object, which is all the objects for as long as they exist: the contract
 * reads no annotation but those named in `keep` (the rest is often the largest part: last-applied-configuration), and of managedFields only the
 * newest time is used (the watch lag).
 */
function slim(object: KubernetesObject, keep: readonly string[]): KubernetesObject {
  const metadata = object?.metadata;
  if (metadata === undefined) return object;
  // Most kinds keep none: one delete, no allocation, for every object of every list and watch.
  const kept = keep.length === 0 ? [] : Object.entries(metadata.annotations ?? {}).filter(([name]) => keep.includes(name));
  if (kept.length === 0) delete metadata.annotations;
  else metadata.annotations = Object.fromEntries(kept);
  let newest: { time: Date } | undefined;
  for (const { time } of metadata.managedFields ?? []) {
    if (time !== undefined && (newest === undefined || Date.parse(String(time)) > Date.parse(String(newest.time)))) newest = { time };
  }
  if (newest === undefined) delete metadata.managedFields;
  else metadata.managedFields = [newest];
  return object;
}

/** What InformerWatch tells its informer about each watch request. */
interface WatchEvents {
  /** A watch request is about to be made (right after a list was applied, or to resume). */
  attempt(): void;
  /** The API server accepted it (200): changes flow from now on. */
  connected(): void;
  /** A line arrived on the watch: an event or a bookmark. */
  heard(): void;
}

/**
 * A client-node Watch with bookmarks and a server-side timeout, which tells when a watch is actually accepted (not
 * just attempted) and refuses to watch once closed.
 */
class InformerWatch extends Watch {
  private closed = false;
  /** The request of the current watch. */
  private current: AbortController | undefined;

  constructor(
    kubeConfig: KubeConfig,
    private readonly events: WatchEvents,
    private readonly keepAnnotations: readonly string[],
  ) {
    super(kubeConfig);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.closed) {
      done(new Error('the informer was stopped'));
      return new AbortController();
    }
    this.events.attempt();
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    // Until super.watch returns, `done` is called only when the request failed (refused, not 200).
    let failed = false;
    const heard = (phase: string, object: unknown, line?: unknown) => {
      this.events.heard();
      callback(phase, slim(object as KubernetesObject, this.keepAnnotations), line);
    };
    const controller = await super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, heard, (error) => {
      failed = true;
      done(error);
    });
    this.current = controller;
    // Stopped while connecting: ListWatch had no request to abort yet.
    if (this.closed) controller.abort();
    else if (!failed) this.events.connected();
    return controller;
  }

  /** Ends the current watch as failed (ListWatch then reports an error, and the informer restarts). */
  abort(): void {
    this.current?.abort();
  }

  close(): void {
    this.closed = true;
  }
}

/** Bookmarks come about every 60 s on a quiet watch (measured on kube-apiserver 1.35): three missed ones end it. */
const SILENCE_LIMIT_MS = 180_000;

export class Informer {
  private informer: ListWatch<KubernetesObject>;
  private readonly watch: InformerWatch;
  private stateNow: InformerState = 'starting';
  private lists = 0;
  /** Objects delivered now come from a list being applied, not from the watch. */
  private applyingList = false;
  private listAbort = new AbortController();
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Since the last watch attempt or failure: a failure after a long enough calm starts the back-off over. */
  private upSince = 0;
  /** When the current watch was accepted or last delivered a line. */
  private lastHeard = 0;
  /** A list or a failure came after the last watch accepted: the next accepted watch is a return. */
  private returning = true;
  private failedSinceList = false;
  private returnedAt = 0;
  private resumed = false;
  /** The current watch was ended for its silence: the error it ends with says only "aborted". */
  private silenced = false;
  private readonly silenceCheck: NodeJS.Timeout;
  restarts = 0;
  relists = 0;

  constructor(private readonly options: InformerOptions) {
    const { kubeConfig, path, handlers } = options;
    this.retryMs = this.backoff.initialMs;
    this.watch = new InformerWatch(kubeConfig, {
      attempt: () => {
        const listed = this.applyingList;
        this.applyingList = false;
        this.stateNow = 'connecting';
        this.upSince = Date.now();
        if (listed) handlers.listed(this.lists > 1);
      },
      connected: () => {
        if (this.stateNow !== 'connecting') return;
        this.stateNow = 'watching';
        this.lastHeard = Date.now();
        if (!this.returning) return;
        this.returning = false;
        this.returnedAt = this.lastHeard;
        this.resumed = this.failedSinceList;
        this.failedSinceList = false;
      },
      heard: () => (this.lastHeard = Date.now()),
    }, options.annotations ?? []);
    this.silenceCheck = setInterval(() => {
      // A watch that hears nothing, not even the bookmark the API server sends about every minute, has lost its
      // connection without being told (a half-open TCP connection): it is replaced, resuming from its version.
      if (this.stateNow !== 'watching' || Date.now() - this.lastHeard <= SILENCE_LIMIT_MS) return;
      this.silenced = true;
      this.watch.abort();
    }, SILENCE_LIMIT_MS / 4);
    this.silenceCheck.unref();
    this.informer = new ListWatch(path, this.watch, () => this.list(), false);
    this.informer.on('add', (object) => this.running() && handlers.upsert(object, this.applyingList));
    this.informer.on('update', (object) => this.running() && handlers.upsert(object, this.applyingList));
    this.informer.on('delete', (object) => this.running() && handlers.delete(object, this.applyingList));
    this.informer.on('error', (error) => this.failed(error));
  }

  get state(): InformerState {
    return this.stateNow;
  }

  /** Listed at least once and watching now. */
  get ready(): boolean {
    return this.stateNow === 'watching' && this.lists > 0;
  }

  /** When (ms since the epoch) the informer last began watching after a list or a failure; 0 before. */
  get returnedAtMs(): number {
    return this.returnedAt;
  }

  /** The current watch resumed from a resourceVersion after a failure: it delivers what changed meanwhile first. */
  get resumedAfterFailure(): boolean {
    return this.resumed;
  }

  start(): void {
    this.launch();
  }

  async stop(): Promise<void> {
    this.stateNow = 'stopped';
    clearTimeout(this.retryTimer);
    clearInterval(this.silenceCheck);
    this.watch.close();
    this.listAbort.abort();
    // Emits an `error` (the aborted request), ignored once stopped.
    await this.informer.stop();
  }

  private get backoff(): { initialMs: number; maxMs: number } {
    return this.options.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  }

  private running(): boolean {
    return this.stateNow !== 'stopped';
  }

  private launch(): void {
    if (!this.running()) return;
    this.stateNow = 'starting';
    // start() rejects only when no watch could even be attempted (no cluster in the kubeconfig).
    this.informer.start().catch((error: unknown) => this.failed(error));
  }

  private async list() {
    this.stateNow = 'listing';
    this.listAbort = new AbortController();
    const list = await listAll(this.options.kubeConfig, this.options.path, this.listAbort.signal);
    for (const item of list.items) slim(item, this.options.annotations ?? []);
    this.lists++;
    if (this.lists > 1) this.relists++;
    this.returning = true;
    this.failedSinceList = false;
    // ListWatch applies the items right after this resolves, then starts the watch (WatchEvents.attempt).
    this.applyingList = true;
    return list;
  }

  private failed(error: unknown): void {
    if (!this.running()) return;
    if (this.silenced) {
      this.silenced = false;
      error = new Error(`the watch heard nothing, not even a bookmark, for ${SILENCE_LIMIT_MS / 1000} s: its connection is taken as lost`);
    }
    this.applyingList = false;
    this.stateNow = 'down';
    this.restarts++;
    this.returning = true;
    this.failedSinceList = true;
    const { initialMs, maxMs } = this.backoff;
    if (Date.now() - this.upSince >= maxMs) this.retryMs = initialMs;
    this.upSince = Date.now();
    const retryMs = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, maxMs);
    this.options.handlers.failed(error, retryMs, this.informer.latestResourceVersion());
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.launch(), retryMs);
  }
}
