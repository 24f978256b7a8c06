/**
 * The API server as a metadata source: one Informer per kind (kinds.ts), every add, update and delete translated
 * (translate.ts) and handed to the publisher at its observation time. After a kind's first list the publisher
 * tombstones what it had published of that kind and no longer exists (deleted while no publisher ran).
 *
 * Watch lag (`sidecarless.metadata.watch_lag`): for a change the watch delivered, the observation time minus the
 * newest managedFields time of the object, i.e. the time of the write as the API server recorded it. The API server
 * stamps whole seconds (truncated), so each value is the true delay plus up to one second; changes whose
 * managedFields time did not advance (a write that changed no owned field value) and changes delivered by a list
 * are not measured. `publish_latency` (publisher.ts) measures the rest of the way to Kafka exactly.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Meter } from '@opentelemetry/api';
import { describeError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { createDropCounter, type DropCounter } from '../../common/telemetry.js';
import type { Clock } from './clock.js';
import { Informer } from './informer.js';
import { FailureLog, remedy } from './informer-failures.js';
import { KIND_APIS, OBJECT_KINDS } from './kinds.js';
import type { MetadataPublisher } from './publisher.js';
import type { MetadataSource } from './source.js';
import { objectUid, translate, type ObjectKind } from './translate.js';

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  publisher: MetadataPublisher;
  clock: Clock;
  meter: Meter;
  logger: Logger;
  /** Default: every kind of kinds.ts. */
  kinds?: readonly ObjectKind[];
  /** Informer restart back-off (default 1 s doubling to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /**
   * metadata.watermarkLagMs (default 0): for this long after an informer returns to watching (after a list or a
   * failure) the source is not ready for a watermark, since a resumed watch delivers older changes first; deletions
   * a watch delivers that soon after resuming from a failure are taken as not seen live.
   */
  watermarkLagMs?: number;
}

export interface KubeSourceStats {
  restarts: Partial<Record<ObjectKind, number>>;
  relists: Partial<Record<ObjectKind, number>>;
  /** When (ms since the epoch) each informer last began watching after a list or a failure. */
  watchingSince: Partial<Record<ObjectKind, number>>;
}

const DROP_REMEDIES = {
  untranslatable: 'the API server sent an object that does not have the shape of its kind; report it as a bug with the field the log names',
};

/** The newest managedFields time of an object, ms since the epoch; undefined without one. */
function lastWriteMs(object: KubernetesObject): number | undefined {
  let newest: number | undefined;
  for (const entry of object.metadata?.managedFields ?? []) {
    const time = Date.parse(String(entry.time ?? ''));
    if (!Number.isNaN(time) && (newest === undefined || time > newest)) newest = time;
  }
  return newest;
}

export class KubeSource implements MetadataSource {
  private readonly informers = new Map<ObjectKind, Informer>();
  private readonly drops: DropCounter;
  /** Per uid, the newest managedFields time already measured. */
  private readonly lastWrite = new Map<string, number>();
  /** Kinds whose first list has been applied. */
  private readonly listed = new Set<ObjectKind>();
  private lastTranslateLog = -Infinity;
  private readonly failures: FailureLog;

  constructor(private readonly options: KubeSourceOptions) {
    const { meter, logger, publisher } = options;
    const source = publisher.source;
    this.failures = new FailureLog(logger);
    this.drops = createDropCounter(meter, logger, { name: 'metadata.kubernetes', remedies: DROP_REMEDIES, attributes: { source } });
    const restarts = meter.createCounter('sidecarless.metadata.informer_restarts', { description: 'Informers restarted after they stopped on an error, by kind', unit: '{restart}' });
    const relists = meter.createCounter('sidecarless.metadata.relists', {
      description: 'Lists after the first, by kind: the API server no longer served the resourceVersion (410) and the informer resynced',
      unit: '{list}',
    });
    const watchLag = meter.createHistogram('sidecarless.metadata.watch_lag', {
      description: 'Observation time minus the newest managedFields time of the changed object (whole seconds as the API server records them: up to 1 s above the true delay)',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300] },
    });
    meter
      .createObservableGauge('sidecarless.metadata.informer_up', { description: 'Whether the kind\'s informer has listed and is watching (1) or not (0)' })
      .addCallback((result) => {
        for (const [kind, informer] of this.informers) result.observe(informer.ready ? 1 : 0, { source, kind });
      });

    for (const kind of options.kinds ?? OBJECT_KINDS) {
      const attributes = { source, kind };
      const informer = new Informer({
        name: kind,
        path: KIND_APIS[kind].path,
        kubeConfig: options.kubeConfig,
        ...(options.backoff && { backoff: options.backoff }),
        handlers: {
          upsert: (object, fromList) => {
            const observedNs = options.clock();
            this.measureLag(object, fromList, observedNs, (seconds) => watchLag.record(seconds, attributes));
            this.observe(kind, () => publisher.publish(translate(kind, object, { source, observedNs })));
          },
          delete: (object, fromList) => {
            this.observe(kind, () => {
              const uid = objectUid(object);
              this.lastWrite.delete(uid);
              if (fromList || this.catchingUp(kind)) publisher.deleteUnseen(uid, kind);
              else publisher.delete(uid, kind);
            });
          },
          listed: (relist) => {
            if (relist) {
              relists.add(1, attributes);
              logger.info({ kind }, `the ${kind} informer listed again (its resourceVersion had expired); only differences are published`);
              return;
            }
            const gone = publisher.reconcile(kind);
            if (gone > 0) logger.info({ kind, tombstones: gone }, `${gone} ${kind} object(s) published earlier no longer exist: tombstones queued`);
            this.listed.add(kind);
            if (this.listed.size === this.informers.size) logger.info({ kinds: this.listed.size }, 'every kind has been listed: watermarks follow while every watch runs');
          },
          failed: (error, retryMs, resourceVersion) => {
            restarts.add(1, attributes);
            this.failures.add(kind, `${describeError(error)}${remedy(error, KIND_APIS[kind].path)}`, { retryMs, resumesFrom: resourceVersion || 'none: it lists' });
          },
        },
      });
      this.informers.set(kind, informer);
    }
  }

  get stats(): KubeSourceStats {
    const stats: KubeSourceStats = { restarts: {}, relists: {}, watchingSince: {} };
    for (const [kind, informer] of this.informers) {
      stats.restarts[kind] = informer.restarts;
      stats.relists[kind] = informer.relists;
      stats.watchingSince[kind] = informer.returnedAtMs;
    }
    return stats;
  }

  async start(): Promise<void> {
    for (const informer of this.informers.values()) informer.start();
  }

  /** Every informer listed and watching, each for at least the watermark lag since it returned to watching. */
  ready(): boolean {
    const settled = Date.now() - this.lagMs;
    return [...this.informers.values()].every((informer) => informer.ready && informer.returnedAtMs <= settled);
  }

  health = () => {
    const notReady = [...this.informers].filter(([, informer]) => !informer.ready).map(([kind, informer]) => `${kind}: ${informer.state}`);
    return { ok: notReady.length === 0, detail: notReady.length === 0 ? `${this.informers.size} informers watching` : notReady.join(', ') };
  };

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((informer) => informer.stop()));
    this.failures.flush();
    this.drops.flush();
  }

  private get lagMs(): number {
    return this.options.watermarkLagMs ?? 0;
  }

  /** The kind's watch resumed after a failure within the lag: what it delivers may have happened during the gap. */
  private catchingUp(kind: ObjectKind): boolean {
    const informer = this.informers.get(kind)!;
    return informer.resumedAfterFailure && Date.now() - informer.returnedAtMs < this.lagMs;
  }

  /** Runs one translation and hand-over; an object that does not translate is counted and logged, not fatal. */
  private observe(kind: ObjectKind, handOver: () => void): void {
    try {
      handOver();
    } catch (error) {
      this.drops.add('untranslatable');
      // The drop counter summarizes; one example per interval names the field.
      if (Date.now() - this.lastTranslateLog < 10_000) return;
      this.lastTranslateLog = Date.now();
      this.options.logger.error({ kind, err: error }, `a ${kind} from the API server could not be translated: ${describeError(error)}`);
    }
  }

  private measureLag(object: KubernetesObject, fromList: boolean, observedNs: bigint, record: (seconds: number) => void): void {
    const uid = object.metadata?.uid;
    const written = lastWriteMs(object);
    if (uid === undefined || written === undefined) return;
    const measured = this.lastWrite.get(uid);
    this.lastWrite.set(uid, Math.max(written, measured ?? written));
    if (fromList || (measured !== undefined && written <= measured)) return;
    record(Math.max(0, Number(observedNs / 1_000_000n) - written) / 1000);
  }
}
