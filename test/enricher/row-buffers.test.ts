/**
 * Rows reuse the buffers of released rows (row-binary.ts SpareBuffers): the bytes are exactly those of rows written
 * into a fresh buffer, nothing of the previous rows shows through, and a spare is only taken when it fits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFlowRows, FLOWS_TABLE, toFlowRow, type FlowRow } from '../../src/enricher/flow-row.js';
import type { RowBinaryRows } from '../../src/enricher/row-binary.js';
import type { FlowEvent } from '../../src/events/flows.js';
import { unnamed } from '../../src/metadata/index/identity.js';
import { flowEvent } from '../helpers/flows.js';
import { podIdentity } from '../helpers/metadata.js';

const MIB = 1 << 20;

/** Rows of connections `from` .. `from + count - 1`, both ends named (the server end's labels too). */
function flowRows(from: number, count: number): FlowRow[] {
  const server = { ...podIdentity('shop', 'payments', 'payments'), labels: { app: 'payments' } };
  return Array.from({ length: count }, (_, i) =>
    toFlowRow(flowEvent(from + i), { client: podIdentity('shop', `checkout-${i % 3}`), server }, { topic: 'flows', partition: 0, offset: String(from + i) }),
  );
}

function written(capacity: number, rows: readonly FlowRow[]): RowBinaryRows<FlowEvent> {
  const batch = FLOWS_TABLE.rows(capacity);
  for (const { event, identities, position } of rows) batch.add(event, identities, position);
  return batch;
}

describe('rows and their spare buffers', () => {
  it('writes the next rows into a released buffer, with exactly the bytes of rows written afresh', () => {
    const first = written(MIB, flowRows(0, 200));
    const memory = first.bytes().buffer;
    first.release();
    assert.equal(first.length, 0);
    assert.equal(first.bytes().length, 0);

    // Fewer, shorter rows than before: any byte left from the first rows would show past their end.
    const rows = flowRows(1000, 50).map((row) => ({ ...row, identities: { client: unnamed('miss', 'external'), server: row.identities.server } }));
    const second = written(MIB, rows);
    assert.equal(second.bytes().buffer, memory, 'the released buffer is reused');
    assert.equal(second.length, 50);
    assert.deepEqual(second.bytes(), encodeFlowRows(rows));
  });

  it('leaves a spare to rows that need at least a quarter of it, and keeps the three released last', () => {
    const big = written(4 * MIB, flowRows(0, 10));
    const bigMemory = big.bytes().buffer;
    big.release();
    const small = written(MIB - 1, flowRows(0, 10)); // needs under a quarter of the spare
    assert.notEqual(small.bytes().buffer, bigMemory);
    const fitting = written(MIB, flowRows(0, 10));
    assert.equal(fitting.bytes().buffer, bigMemory);

    const released = [written(MIB, flowRows(0, 1)), written(MIB, flowRows(0, 1)), written(MIB, flowRows(0, 1)), written(MIB, flowRows(0, 1))];
    const memories = released.map((rows) => rows.bytes().buffer);
    for (const rows of released) rows.release();
    // The oldest was let go: the next four rows get the three others back, then a fresh buffer.
    const next = [0, 1, 2, 3].map(() => written(MIB, flowRows(0, 1)).bytes().buffer);
    assert.deepEqual(new Set(next.slice(0, 3)), new Set(memories.slice(1)));
    assert.ok(!memories.includes(next[3]!));
  });
});
