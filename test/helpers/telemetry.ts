/** Reading a role's metrics in tests: a free port for /metrics, and an in-memory reader of its meters. */
import { createServer } from 'node:net';
import { MetricReader, type HistogramMetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';

/** A free port on loopback, found by letting the kernel pick one (metricsPort 0 means "disabled"). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Reads the meters on demand, the in-memory reader the telemetry module accepts. */
export class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}

  /** Data points of one sum metric (counter, up-down counter), as attribute value → value; {} before the first. */
  async sum(name: string, attribute: string): Promise<Record<string, number>> {
    const metric = (await this.metric(name)) as SumMetricData | undefined;
    return Object.fromEntries((metric?.dataPoints ?? []).map((p) => [String(p.attributes[attribute]), p.value]));
  }

  /** One sum metric over all its data points; undefined before the first. */
  async total(name: string): Promise<number | undefined> {
    const metric = (await this.metric(name)) as SumMetricData | undefined;
    return metric?.dataPoints.reduce((sum, p) => sum + p.value, 0);
  }

  /** How many values one histogram recorded, over all its data points. */
  async count(name: string): Promise<number> {
    const metric = (await this.metric(name)) as HistogramMetricData | undefined;
    return (metric?.dataPoints ?? []).reduce((sum, p) => sum + p.value.count, 0);
  }

  /** One histogram's number of values and largest value, as attribute value → both. */
  async histogram(name: string, attribute: string): Promise<Record<string, { count: number; max: number }>> {
    const metric = (await this.metric(name)) as HistogramMetricData | undefined;
    return Object.fromEntries((metric?.dataPoints ?? []).map((p) => [String(p.attributes[attribute]), { count: p.value.count, max: p.value.max ?? NaN }]));
  }

  private async metric(name: string) {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  }
}
