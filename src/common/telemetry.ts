/**
 * Metrics and health of a long-running role: an OpenTelemetry MeterProvider whose Prometheus exporter is served,
 * together with /healthz, by one small HTTP server on telemetry.host:telemetry.metricsPort. The exporter's own
 * server could not serve /healthz, so it is never started; our server calls its request handler for /metrics.
 * Port 0 disables the endpoint; meters still work and feed any extra readers (tests pass an in-memory one).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Attributes, Counter, Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { ConfigError, describeError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Reports whether one part of the role works (Kafka connected, ring buffer attached). Synchronous on purpose: it
 * reads state the component keeps, so a probe never waits on I/O and a slow dependency cannot hang /healthz.
 */
export type HealthCheck = () => { ok: boolean; detail?: string };

export interface HealthReport {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface TelemetryOptions {
  /** config.telemetry: where /metrics and /healthz are served; metricsPort 0 serves nothing. */
  host: string;
  metricsPort: number;
  /** More readers of the same meters, e.g. an in-memory one in tests. */
  readers?: IMetricReader[];
}

export interface Telemetry {
  readonly meterProvider: MeterProvider;
  meter(name: string): Meter;
  /** Adds a check to /healthz; a check that throws counts as failing, with the error as detail. */
  addHealthCheck(name: string, check: HealthCheck): void;
  health(): HealthReport;
  /** The port actually bound, or undefined when the endpoint is disabled. */
  readonly port: number | undefined;
  /** Stops serving, then shuts the meter provider down; later calls return the first call's promise. */
  shutdown(): Promise<void>;
}

export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const serve = options.metricsPort !== 0;
  // Scope labels would repeat what the `sidecarless.<role>.` metric names already say.
  const exporter = serve ? new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true }) : undefined;
  const meterProvider = new MeterProvider({ readers: [...(exporter ? [exporter] : []), ...(options.readers ?? [])] });
  const checks = new Map<string, HealthCheck>();

  function health(): HealthReport {
    const report: HealthReport = { ok: true, checks: {} };
    for (const [name, check] of checks) {
      let result: { ok: boolean; detail?: string };
      try {
        result = check();
      } catch (error) {
        result = { ok: false, detail: describeError(error) };
      }
      report.checks[name] = result;
      report.ok &&= result.ok;
    }
    return report;
  }

  function handle(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') return exporter!.getMetricsRequestHandler(request, response);
    if (path === '/healthz') {
      const report = health();
      response.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' });
      return void response.end(JSON.stringify(report));
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  }

  const server = serve ? await listen(createServer(handle), options.host, options.metricsPort) : undefined;
  let stopped: Promise<void> | undefined;

  return {
    meterProvider,
    meter: (name) => meterProvider.getMeter(name),
    addHealthCheck: (name, check) => void checks.set(name, check),
    health,
    port: server ? (server.address() as AddressInfo).port : undefined,
    shutdown() {
      stopped ??= (async () => {
        if (server) {
          // close() alone would wait for a scraper's keep-alive connection to end.
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
        }
        await meterProvider.shutdown();
      })();
      return stopped;
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new ConfigError(
          'telemetry.metricsPort',
          `cannot serve metrics on ${host}:${port}: ${error.code ?? describeError(error)}; change telemetry.metricsPort or telemetry.host (0 disables)`,
        ),
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}

export interface DropCounterOptions {
  /** Component, as in metric names: "collector.queue" counts into sidecarless.collector.queue.drops. */
  name: string;
  /**
   * Per reason, what governs it: the configuration key an operator changes to drop less, or the cause to fix.
   * Logged with every report; a reason missing here is a bug and is logged as such.
   */
  remedies: Readonly<Record<string, string>>;
  /** Attributes every count carries besides `reason` (e.g. which record kind). */
  attributes?: Attributes;
  /** At most one log line per interval. Default 10 s. */
  intervalMs?: number;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

export interface DropCounter {
  /** Counts `count` drops (default 1) for `reason`. */
  add(reason: string, count?: number): void;
  /** Logs drops not yet reported; call at shutdown so the last ones are not left out of the logs. */
  flush(): void;
}

const UNKNOWN_REMEDY = 'no remedy is known for this reason: report it as a bug';

/**
 * Nothing is dropped silently (DESIGN rule 4): every drop is counted by reason in an OTel counter, exactly, and a
 * summary naming the reasons and what governs each is logged at most once per interval, so a flood of drops
 * costs a counter increment each, not a log line each. The summary is written by the first drop after the
 * interval has passed (no timer to stop), or by flush().
 */
export function createDropCounter(meter: Meter, logger: Logger, options: DropCounterOptions): DropCounter {
  const { name, remedies, attributes: common = {}, intervalMs = 10_000, now = Date.now } = options;
  const counter: Counter = meter.createCounter(`sidecarless.${name}.drops`, {
    description: `Items dropped by ${name}, by reason; the log names what governs each reason`,
    unit: '{drop}',
  });
  const attributes = new Map<string, Attributes>();
  const pending = new Map<string, number>();
  let lastReport = -Infinity;

  function report(at: number): void {
    const drops = Object.fromEntries(pending);
    const total = [...pending.values()].reduce((sum, n) => sum + n, 0);
    const reasons = [...pending].map(([reason, n]) => `${reason}=${n}`).join(', ');
    const advice = Object.fromEntries([...pending.keys()].map((reason) => [reason, remedies[reason] ?? UNKNOWN_REMEDY]));
    const text = Object.entries(advice)
      .map(([reason, remedy]) => `${reason}: ${remedy}`)
      .join('; ');
    logger.warn({ component: name, ...common, drops, remedies: advice }, `${name} dropped ${total} (${reasons}) since the last report; ${text}`);
    pending.clear();
    lastReport = at;
  }

  return {
    add(reason, count = 1) {
      let attrs = attributes.get(reason);
      if (attrs === undefined) attributes.set(reason, (attrs = { ...common, reason }));
      counter.add(count, attrs);
      pending.set(reason, (pending.get(reason) ?? 0) + count);
      const at = now();
      if (at - lastReport >= intervalMs) report(at);
    },
    flush() {
      if (pending.size > 0) report(now());
    },
  };
}
