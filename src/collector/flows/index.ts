/**
 * Flows as a record kind of the collector: struct sl_flow_record -> FlowEvent on the flows topic. The record itself
 * is the collector's item: read in place from the ring (FlowRecordView), written as its FlowEvent's Avro into its
 * partition's message (FlowEventWriter), no event object made. Each final record also ends its connection for the
 * kinds that keep state per connection (context.connectionEnds).
 */
import { FlowKind, FlowRecordView } from '../../ebpf/records/flow.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../events/flows.js';
import { writerPacking, type RecordKind } from '../record-kind.js';
import { loadFlowProbe } from './kernel.js';
import { FlowEventWriter } from './transform.js';

export const flowsKind: RecordKind<FlowRecordView, FlowEvent, FlowBatch> = {
  name: 'flows',
  contract: FLOWS,
  load: (config, pins) => loadFlowProbe(config.collector, pins),
  transform: (context, emit) => {
    const record = new FlowRecordView();
    return {
      record(view, offset, size) {
        emit(record.point(view, offset, size));
        if (record.kind === FlowKind.final) context.connectionEnds.ended(BigInt(record.connId));
      },
    };
  },
  packing: (context, registry, partitions) => writerPacking(registry, FLOWS.subject, new FlowEventWriter(context), partitions),
  cgroupId: (record) => record.cgroupId,
};
