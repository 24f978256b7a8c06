/**
 * How connections end, and who owns them, as the kernel side of flows reports it: real connections between two
 * lab pods (a client in a, a server in b, test/flows/fixtures/ends-*.mjs) ending each way TCP allows, and exact
 * counts of final records per side and close reason; the owner (pid, comm) on every record of the server's
 * sockets, which the kernel creates in softirq context, including interim records and connections ended by a reset.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { closeReason } from '../../src/collector/flows/transform.js';
import { createLab, type Lab, type Pod } from '../../src/lab/pods.js';
import { FlowTap, type Side } from '../helpers/flow-tap.js';

const PORTS = { normal: 7401, client_abort: 7402, client_unread: 7403, server_abort: 7404, long: 7405, refused: 7406, timeout: 7407 };
const K = 3;
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/flows/fixtures/${name}`, import.meta.url));

/** Starts a fixture script in a pod; resolves to the process and its stdout lines so far. */
function spawnScript(pod: Pod, script: string, args: string[]): { child: ChildProcess; lines: string[] } {
  const child = pod.spawn(process.execPath, [fixture(script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  return { child, lines };
}

/** Final records of a port by side: close reason -> count. */
function reasons(tap: FlowTap, port: number, side: Side): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const record of tap.of(port, side, 'final')) counts[closeReason(record)] = (counts[closeReason(record)] ?? 0) + 1;
  return counts;
}

let lab: Lab;
let tap: FlowTap;
let server: ChildProcess;
let clientPid: number;

before(async () => {
  lab = createLab({ name: 'flow-ends', pods: ['a', 'b'] });
  const [a, b] = [lab.pod('a'), lab.pod('b')];
  // Interim records every second, so that a 3-second connection has some.
  tap = FlowTap.start([a, b], { activeTimeoutMs: 1_000 });
  // connect_timeout: the server's SYN-ACKs on that port are lost, and the client gives up after one SYN retry.
  b.dropOutgoing({ sport: PORTS.timeout, percent: 100 });
  a.exec('sysctl', ['-qw', 'net.ipv4.tcp_syn_retries=1']);
  const { refused: _, ...listening } = PORTS;
  const started = spawnScript(b, 'ends-server.mjs', [b.ip, JSON.stringify(listening)]);
  server = started.child;
  const ready = new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', () => started.lines.includes('ready') && resolve());
    server.once('exit', (code) => reject(new Error(`ends-server exited with ${code}`)));
  });
  await ready;
  const client = spawnScript(a, 'ends-client.mjs', [b.ip, JSON.stringify(PORTS), String(K)]);
  clientPid = client.child.pid!;
  const [code] = (await once(client.child, 'exit')) as [number];
  assert.equal(code, 0);
  // What the client saw: each outcome as the socket API reports it.
  assert.deepEqual(JSON.parse(client.lines[0]!), {
    normal: Array(K).fill('ok'),
    client_abort: Array(K).fill('ok'),
    client_unread: Array(K).fill('ok'),
    server_abort: Array(K).fill('ECONNRESET'),
    long: Array(K).fill('ok'),
    refused: Array(K).fill('ECONNREFUSED'),
    timeout: ['ETIMEDOUT'],
  });
  // Every connection that was established has two final records, the others one.
  await tap.waitForFinals(PORTS.timeout, 1);
  for (const port of [PORTS.normal, PORTS.client_abort, PORTS.client_unread, PORTS.server_abort, PORTS.long]) await tap.waitForFinals(port, 2 * K);
  await tap.waitForFinals(PORTS.refused, K);
});

after(() => {
  server?.kill();
  tap?.stop();
  lab?.destroy();
});

describe('how connections end', () => {
  it('each way of ending gives its close reason, on each side, exactly once per connection', () => {
    const both = (client: Record<string, number>, server: Record<string, number>) => ({ client, server });
    const observed = Object.fromEntries(Object.entries(PORTS).map(([mode, port]) => [mode, both(reasons(tap, port, 'client'), reasons(tap, port, 'server'))]));
    assert.deepEqual(observed, {
      normal: both({ normal: K }, { normal: K }),
      // close() with SO_LINGER 0 and close() with unread data: the kernel moves the socket to CLOSE, then sends RST.
      client_abort: both({ reset_sent: K }, { reset_received: K }),
      client_unread: both({ reset_sent: K }, { reset_received: K }),
      server_abort: both({ reset_received: K }, { reset_sent: K }),
      long: both({ normal: K }, { normal: K }),
      refused: both({ refused: K }, {}),
      timeout: both({ connect_timeout: 1 }, {}),
    });
    assert.equal(tap.records.filter((record) => !Object.values(PORTS).includes(record.serverPort)).length, 0);
    assert.deepEqual(tap.drops, {});
  });

  it('a connect that timed out counts its SYN retransmits', () => {
    const [record] = tap.of(PORTS.timeout, 'client', 'final');
    assert.ok(record!.synRetransmits >= 1, `syn retransmits ${record!.synRetransmits}`);
    assert.equal(record!.retransmits, record!.synRetransmits);
  });

  it('every record of a server socket names the server process, interim and reset-ended ones included', () => {
    const serverRecords = Object.values(PORTS).flatMap((port) => tap.of(port, 'server'));
    const interim = tap.of(PORTS.long, 'server', 'interim');
    assert.ok(interim.length >= K, `server interim records: ${interim.length}`);
    assert.deepEqual(
      new Set(serverRecords.map((record) => `${record.pid} ${record.comm}`)),
      new Set([`${server.pid} node`]),
    );
    const clientRecords = Object.values(PORTS).flatMap((port) => tap.of(port, 'client'));
    assert.deepEqual(new Set(clientRecords.map((record) => `${record.pid} ${record.comm}`)), new Set([`${clientPid} node`]));
  });
});
