/**
 * HTTP as a record kind of the collector: struct sl_http_chunk_record -> HttpCapture (per-connection parsers) ->
 * CapturedExchange, the collector's item, written as its http.v1 event's Avro into its partition's message
 * (HttpEventWriter, ./exchange-event.ts): no event object made. Listed in src/collector/kinds.ts after flows (whose
 * kernel side it shares, and whose final records end its connections). Runs only with http.enabled.
 */
import { HTTP, type HttpBatch, type HttpEvent } from '../../events/http.js';
import { writerPacking, type RecordKind } from '../record-kind.js';
import { HTTP_CAPTURE_REMEDIES, HttpCapture, type CapturedExchange } from './capture.js';
import { HttpEventWriter } from './exchange-event.js';
import { loadHttpCapture } from './kernel.js';

export const httpKind: RecordKind<CapturedExchange, HttpEvent, HttpBatch> = {
  name: 'http',
  contract: HTTP,
  enabled: (config) => config.http.enabled,
  load: (config, pins) =>
    loadHttpCapture(
      {
        ringBytes: config.collector.ringBytes,
        maxConnections: config.collector.maxConnections,
        captureBytes: config.http.captureBytes,
        headBytes: config.http.headBytes,
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
        firstConnId: context.firstConnId,
      },
      emit,
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
  packing: (context, registry, partitions) => writerPacking(registry, HTTP.subject, new HttpEventWriter(context), partitions),
  cgroupId: (exchange) => exchange.cgroupId,
};
