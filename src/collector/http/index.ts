/**
 * HTTP as a record kind of the collector: struct sl_http_chunk_record -> HttpCapture (per-connection parsers) ->
 * CapturedExchange -> the http contract's event. The contract and the exchange -> event transform come in (the
 * contract lives in src/events/, which this folder does not define): `httpKind(contract, toEvent, cgroupId)` is the
 * line for src/collector/kinds.ts, after flows (whose kernel side it shares, and whose final records end its
 * connections). Runs only with http.enabled.
 */
import type { PackedTopicContract } from '../../events/contract.js';
import { eventPacking, type CollectorContext, type RecordKind } from '../record-kind.js';
import { HTTP_CAPTURE_REMEDIES, HttpCapture, type CapturedExchange } from './capture.js';
import { loadHttpCapture } from './kernel.js';

export function httpKind<Event, Value>(
  contract: PackedTopicContract<Event, Value>,
  toEvent: (exchange: CapturedExchange, context: CollectorContext) => Event,
  cgroupId: (event: Event) => bigint,
): RecordKind<Event, Event, Value> {
  return {
    name: 'http',
    contract,
    enabled: (config) => config.http.enabled,
    load: (config, pins) =>
      loadHttpCapture(
        {
          ringBytes: config.collector.ringBytes,
          maxConnections: config.collector.maxConnections,
          captureBytes: config.http.captureBytes,
        },
        pins,
      ),
    transform(context, emit, { collector, http }) {
      const capture = new HttpCapture(
        {
          maxConnections: collector.maxConnections,
          idleNs: BigInt(http.idleTimeoutMs) * 1_000_000n,
          maxPathBytes: http.maxPathBytes,
          routeRules: http.routeRules,
          maxRoutesPerService: http.maxRoutesPerService,
          maxRouteServices: http.maxRouteServices,
        },
        (exchange) => emit(toEvent(exchange, context)),
      );
      context.connectionEnds.listen((connId) => capture.connectionClosed(connId));
      return {
        record: (view, offset, size) => capture.record(view, offset, size),
        // CLOCK_MONOTONIC, as the kernel's bpf_ktime_get_ns that times the records.
        tick: () => capture.tick(process.hrtime.bigint()),
        takeDrops: () => capture.takeDrops(),
        dropRemedies: HTTP_CAPTURE_REMEDIES,
      };
    },
    packing: (_context, registry, partitions) => eventPacking(contract, registry, partitions),
    cgroupId,
  };
}
