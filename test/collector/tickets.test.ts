/** The numbers behind the ordering rule: a wait ends when its number passes, or when it is given up, and then leaves nothing behind. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tickets } from '../../src/collector/identity/tickets.js';

describe('tickets', () => {
  it('a pass ends the waits up to its number, and only those', async () => {
    const tickets = new Tickets();
    const signal = new AbortController().signal;
    const first = tickets.current();
    const second = tickets.next();
    const ended: number[] = [];
    const waits = [first, second].map((ticket) => tickets.whenMet(ticket, signal).then(() => void ended.push(ticket)));
    tickets.pass(first);
    await waits[0];
    assert.deepEqual(ended, [first]);
    assert.equal(tickets.waiting, 1);
    tickets.pass(second);
    await waits[1];
    assert.deepEqual(ended, [first, second]);
    assert.equal(tickets.waiting, 0);
  });

  it('an aborted wait ends at once and is removed; a wait begun after the abort is never added', async () => {
    const tickets = new Tickets();
    const stop = new AbortController();
    const others = new AbortController();
    const given = tickets.whenMet(tickets.current(), stop.signal);
    const kept = tickets.whenMet(tickets.current(), others.signal);
    assert.equal(tickets.waiting, 2);
    stop.abort();
    await given;
    assert.equal(tickets.waiting, 1);
    await tickets.whenMet(tickets.next(), stop.signal);
    assert.equal(tickets.waiting, 1);
    tickets.pass(tickets.current());
    await kept;
    assert.equal(tickets.waiting, 0);
  });
});
