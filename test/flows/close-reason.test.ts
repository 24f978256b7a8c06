/**
 * closeReason: the name of each way a connection ends, from the state its socket closed from and the flags the
 * kernel set (test/flows/connection-ends.test.ts produces each of them with real connections; this pins the
 * precedence, and `aborted`, which needs a timeout to produce).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeReason } from '../../src/collector/flows/transform.js';
import { FlowFlag, FlowKind, TcpState } from '../../src/ebpf/records/flow.js';

const final = (lastState: number, flags: number) => closeReason({ kind: FlowKind.final, lastState, flags });
const { established, finSent, finReceived, rstSent, rstReceived, error } = FlowFlag;

describe('closeReason', () => {
  it('names each way a connection ends', () => {
    assert.equal(closeReason({ kind: FlowKind.interim, lastState: TcpState.ESTABLISHED, flags: established }), 'open');
    assert.equal(final(TcpState.SYN_SENT, rstReceived), 'refused');
    assert.equal(final(TcpState.SYN_SENT, error), 'connect_timeout');
    assert.equal(final(TcpState.SYN_SENT, 0), 'connect_timeout');
    assert.equal(final(TcpState.LAST_ACK, established | finSent | finReceived), 'normal');
    assert.equal(final(TcpState.FIN_WAIT2, established | finSent | finReceived), 'normal');
    assert.equal(final(TcpState.ESTABLISHED, established | rstReceived), 'reset_received');
    assert.equal(final(TcpState.CLOSE_WAIT, established | finReceived | rstReceived), 'reset_received');
    assert.equal(final(TcpState.ESTABLISHED, established | rstSent), 'reset_sent');
    assert.equal(final(TcpState.ESTABLISHED, established | error), 'aborted');
    assert.equal(final(TcpState.FIN_WAIT1, established | finSent | error), 'aborted');
  });

  it('a reset received outranks one sent, and a reset sent outranks an error', () => {
    assert.equal(final(TcpState.ESTABLISHED, established | rstSent | rstReceived), 'reset_received');
    // A socket kill (ss -K): the kernel sends its RST, then closes with ECONNABORTED.
    assert.equal(final(TcpState.ESTABLISHED, established | rstSent | error), 'reset_sent');
  });
});
