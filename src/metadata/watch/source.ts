/**
 * What the metadata role runs: a source of Kubernetes objects (the API server's informers, or a file) that feeds
 * one MetadataPublisher. Only a source knows whether it observes every change right now, which is what a
 * watermark claims.
 */
import type { HealthCheck } from '../../common/telemetry.js';

export interface MetadataSource {
  /** Begins observing. Rejects on what no retry can fix (a file that cannot be read or parsed at start). */
  start(): Promise<void>;
  /** True while every change is being observed: all kinds listed and watched (or the file read). */
  ready(): boolean;
  /** For /healthz: what does not work now. */
  health: HealthCheck;
  /** Stops observing; nothing is handed to the publisher afterwards. */
  stop(): Promise<void>;
}
