/**
 * Connections open before tracing began (the collector's first start on a node with connection pools): the kernel
 * side of flows adopts each at its first segment after tracing began, reads its side from the socket, and ends it
 * through the inet_sock_set_state tracepoint, with the kernel's counters since the connection began. Real
 * connections between two lab pods (test/flows/fixtures/held-connections.mjs): K opened and used before the programs
 * load, used again and closed after; one more opened after, which is tracked from its start as before.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { closeReason } from '../../src/collector/flows/transform.js';
import { FlowFlag, FlowSide, type FlowRecord } from '../../src/ebpf/records/flow.js';
import { createLab, type Lab, type Pod } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { FlowTap } from '../helpers/flow-tap.js';
import { lineFrom } from '../helpers/processes.js';

const PORT = 7411;
const K = 3;
const BEFORE = 1_000; // bytes each way on each held connection before tracing began
const AFTER = 2_345; // and after
const fixture = fileURLToPath(new URL('../../../test/flows/fixtures/held-connections.mjs', import.meta.url));

/** A held-connections client: its stdout lines so far, and a way to give it a command and await its answer. */
interface Client {
  child: ChildProcess;
  lines: string[];
  command(line: string, answer: string): Promise<void>;
}

function startClient(pod: Pod, server: Pod, count: number): Client {
  const child = pod.spawn(process.execPath, [fixture, 'client', server.ip, String(PORT), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  return {
    child,
    lines,
    async command(line, answer) {
      const seen = lines.length;
      child.stdin!.write(`${line}\n`);
      await waitFor(async () => lines.slice(seen).includes(answer), { timeoutMs: 20_000, what: `"${answer}" after "${line}"` });
    },
  };
}

const portsOf = async (client: Client): Promise<number[]> => {
  await waitFor(async () => client.lines.length > 0, { timeoutMs: 20_000, what: 'the client connected' });
  return JSON.parse(client.lines[0]!) as number[];
};

let lab: Lab;
let tap: FlowTap | undefined;
let server: ChildProcess;
const clients: Client[] = [];
let heldPorts: number[];
let newPorts: number[];
let tracingBeganNs: bigint;

before(async () => {
  lab = createLab({ name: 'flow-adopt', pods: ['a', 'b'] });
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  server = b.spawn(process.execPath, [fixture, 'server', b.ip, String(PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await lineFrom(server, 'held-connections server');
  const held = startClient(a, b, K);
  clients.push(held);
  heldPorts = await portsOf(held);
  await held.command(`send ${BEFORE}`, 'sent');

  tracingBeganNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock of the records' times
  tap = FlowTap.start([a, b]);
  await held.command(`send ${AFTER}`, 'sent');
  const fresh = startClient(a, b, 1);
  clients.push(fresh);
  newPorts = await portsOf(fresh);
  await fresh.command(`send ${AFTER}`, 'sent');
  await held.command('close', 'closed');
  await fresh.command('close', 'closed');
  await tap.waitForFinals(PORT, 2 * (K + 1));
});

after(() => {
  for (const client of clients) client.child.kill();
  server?.kill();
  tap?.stop();
  lab?.destroy();
});

const finals = (ports: number[], side: 'client' | 'server'): FlowRecord[] =>
  tap!.of(PORT, side, 'final').filter((record) => ports.includes(record.clientPort)).sort((x, y) => x.clientPort - y.clientPort);

/** What the test checks of a final record: the side it names, its counters, how it ended, its flags. */
const summary = (record: FlowRecord) => ({
  side: record.side,
  clientPort: record.clientPort,
  bytesSent: record.bytesSent,
  bytesReceived: record.bytesReceived,
  closeReason: closeReason(record),
  adopted: (record.flags & FlowFlag.adopted) !== 0,
  established: (record.flags & FlowFlag.established) !== 0,
});

describe('connections open before tracing began', () => {
  it('each held connection has one final record per side, adopted, with its side and its bytes since it began', () => {
    const total = BigInt(BEFORE + AFTER);
    const expected = (side: number) =>
      heldPorts.map((clientPort) => ({ side, clientPort, bytesSent: total, bytesReceived: total, closeReason: 'normal', adopted: true, established: true }));
    assert.deepEqual(finals(heldPorts, 'client').map(summary), expected(FlowSide.client));
    assert.deepEqual(finals(heldPorts, 'server').map(summary), expected(FlowSide.server));
    assert.deepEqual(tap!.drops, {});
  });

  it('an adopted connection starts when tracing first saw it, has no connect time, and names its owners', () => {
    const adopted = [...finals(heldPorts, 'client'), ...finals(heldPorts, 'server')];
    for (const record of adopted) {
      assert.ok(record.startMonotonicNs >= tracingBeganNs, `start ${record.startMonotonicNs} before tracing began (${tracingBeganNs})`);
      assert.equal(record.connectUs, 0);
    }
    assert.deepEqual(new Set(finals(heldPorts, 'client').map((record) => `${record.pid} ${record.comm}`)), new Set([`${clients[0]!.child.pid} node`]));
    assert.deepEqual(new Set(finals(heldPorts, 'server').map((record) => `${record.pid} ${record.comm}`)), new Set([`${server.pid} node`]));
  });

  it('a connection opened after tracing began is tracked from its start, not adopted', () => {
    const total = BigInt(AFTER);
    const [client, serverSide] = [finals(newPorts, 'client'), finals(newPorts, 'server')];
    const expected = (side: number) => [{ side, clientPort: newPorts[0]!, bytesSent: total, bytesReceived: total, closeReason: 'normal', adopted: false, established: true }];
    assert.deepEqual(client.map(summary), expected(FlowSide.client));
    assert.deepEqual(serverSide.map(summary), expected(FlowSide.server));
    assert.ok(client[0]!.connectUs > 0, `connect time ${client[0]!.connectUs} µs`);
    // Every final record of the port is one of the K + 1 connections', once per side.
    assert.equal(tap!.of(PORT, undefined, 'final').length, 2 * (K + 1));
  });
});
