/**
 * Flows as a record kind of the collector: struct sl_flow_record -> FlowEvent on the flows topic; each final record
 * also ends its connection for the kinds that keep state per connection (context.connectionEnds).
 */
import { decodeFlowRecord, FlowKind } from '../../ebpf/records/flow.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../events/flows.js';
import type { RecordKind } from '../record-kind.js';
import { loadFlowProbe } from './kernel.js';
import { toFlowEvent } from './transform.js';

export const flowsKind: RecordKind<FlowEvent, FlowBatch> = {
  name: 'flows',
  contract: FLOWS,
  load: (config, pins) => loadFlowProbe(config.collector, pins),
  transform: (context, emit) => ({
    record(view, offset, size) {
      const record = decodeFlowRecord(view, offset, size);
      emit(toFlowEvent(record, context));
      if (record.kind === FlowKind.final) context.connectionEnds.ended(record.connId);
    },
  }),
  cgroupId: (event) => event.cgroup_id,
};
