/**
 * Why informers stop, told to the operator: one log line per interval for all kinds together, and for refusals
 * that no restart fixes by itself (credentials, RBAC), what to change.
 */
import type { Logger } from '../../common/logger.js';
import type { ObjectKind } from './translate.js';

/** What to do about a refusal that no restart fixes by itself. */
export function remedy(error: unknown, path: string): string {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 401) return '; the credentials of the kubeconfig (metadata.kubeconfig) are not accepted';
  if (status === 403) return `; grant the role's account list and watch on ${path} (RBAC)`;
  return '';
}

/**
 * Informer failures, logged at most once per interval for all kinds together: an API server outage stops every
 * informer at once, and one line naming them says as much as eleven.
 */
export class FailureLog {
  private pending = new Map<ObjectKind, { reason: string; details: Record<string, unknown> }>();
  private restarts = 0;
  private last = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  add(kind: ObjectKind, reason: string, details: Record<string, unknown>): void {
    this.pending.set(kind, { reason, details });
    this.restarts++;
    if (this.timer !== undefined) return;
    // Informers stopped by one cause fail within moments of each other: the line waits 100 ms for them.
    this.timer = setTimeout(() => this.flush(), Math.max(100, this.last + this.intervalMs - Date.now()));
    this.timer.unref();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const kinds = Object.fromEntries([...this.pending].map(([kind, { reason, details }]) => [kind, { reason, ...details }]));
    const reasons = [...new Set([...this.pending.values()].map(({ reason }) => reason))];
    this.logger.warn(
      { informers: kinds, restartsSinceLastLine: this.restarts },
      `informers stopped (${[...this.pending.keys()].join(', ')}): ${reasons[0]}${reasons.length > 1 ? ` (and ${reasons.length - 1} other reasons)` : ''}; each restarts with back-off, resuming from its resourceVersion`,
    );
    this.pending.clear();
    this.restarts = 0;
    this.last = Date.now();
  }
}
