/** Flows as a record kind of the collector: struct sl_flow_record -> FlowEvent on the flows topic. */
import { decodeFlowRecord } from '../../ebpf/records/flow.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../events/flows.js';
import type { RecordKind } from '../record-kind.js';
import { loadFlowProbe } from './kernel.js';
import { toFlowEvent } from './transform.js';

export const flowsKind: RecordKind<FlowEvent, FlowBatch> = {
  name: 'flows',
  contract: FLOWS,
  load: (config, pins) => loadFlowProbe(config, pins),
  toEvent: (view, offset, size, context) => toFlowEvent(decodeFlowRecord(view, offset, size), context),
  cgroupId: (event) => event.cgroup_id,
};
