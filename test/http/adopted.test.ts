/**
 * Keep-alive connections open before tracing began (a client's connection pool when the collector first starts):
 * Python's http.client makes 10 requests, tracing starts, and it makes 20 more on the same connection, once to
 * Python's http.server (a thread per connection) and once to Node's server (an event loop). The HTTP programs adopt
 * each socket at its first call after that (bpf/include/conn.h), so those requests are captured under the conn ids
 * of the connection's flow records, and flows ends the connections. A third connection is in the middle of a POST's
 * body when tracing starts: both sides' parsers skip the rest of that message (joined midway) and pair every
 * exchange after it.
 *
 * The call a thread was already blocked in when the programs attached is captured too: Python's server thread waits
 * for request 11 in recvfrom() when tracing starts, and the programs see that receive where it returns (they need
 * nothing from the call's entry: bpf/http.bpf.c).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FlowFlag, FlowKind } from '../../src/ebpf/records/flow.js';
import { createLab, type Lab, type Pod } from '../../src/lab/pods.js';
import { HttpTap } from '../helpers/http-tap.js';
import { lineFrom, python } from '../helpers/processes.js';

const PORTS = { python: 7511, node: 7512 };
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/http/fixtures/${name}`, import.meta.url));

/** A held client (client.py `held` or `held_body`): it starts, then waits; `go` lets it finish and gives its result. */
interface HeldClient {
  localPort: number;
  go(): Promise<{ statuses: number[]; post?: number }>;
}

async function startHeldClient(pod: Pod, server: Pod, port: number, mode: 'held' | 'held_body'): Promise<HeldClient> {
  const child = pod.spawn(python, [fixture('client.py'), mode, server.ip, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  assert.ok(!first.done, 'the held client printed its local port');
  return {
    localPort: (JSON.parse(first.value) as { local_port: number }).local_port,
    async go() {
      const exited = once(child, 'exit');
      child.stdin!.end('go\n');
      const result = await lines.next();
      assert.deepEqual(await exited, [0, null]);
      return JSON.parse(result.value as string) as { statuses: number[]; post?: number };
    },
  };
}

let lab: Lab;
let tap: HttpTap | undefined;
const children: ChildProcess[] = [];
type Held = 'python' | 'node' | 'node_mid_body';
const SERVER_OF: Record<Held, keyof typeof PORTS> = { python: 'python', node: 'node', node_mid_body: 'node' };
const held = {} as Record<Held, { localPort: number; statuses: number[]; post?: number }>;

before(async () => {
  lab = createLab({ name: 'http-adopt', pods: ['client', 'server'] });
  const [clientPod, serverPod] = [lab.pod('client'), lab.pod('server')];
  for (const [name, command, script] of [['python', python, 'status-server.py'], ['node', process.execPath, 'node-server.mjs']] as const) {
    const server = serverPod.spawn(command, [fixture(script), serverPod.ip, String(PORTS[name])], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    await lineFrom(server, script);
  }
  const clients: Record<Held, HeldClient> = {
    python: await startHeldClient(clientPod, serverPod, PORTS.python, 'held'),
    node: await startHeldClient(clientPod, serverPod, PORTS.node, 'held'),
    node_mid_body: await startHeldClient(clientPod, serverPod, PORTS.node, 'held_body'),
  };
  tap = HttpTap.start([clientPod, serverPod]);
  for (const [name, client] of Object.entries(clients) as Array<[Held, HeldClient]>) held[name] = { localPort: client.localPort, ...(await client.go()) };
});

after(() => {
  for (const child of children) child.kill();
  tap?.stop();
  lab?.destroy();
});

describe('http on connections open before tracing began', () => {
  it('every request after tracing began is one exchange with its status, on both sides, the one a blocked thread was reading included', async () => {
    for (const name of ['python', 'node'] as const) {
      const { localPort, statuses } = held[name];
      assert.equal(statuses.length, 20);
      const { client, server } = await tap!.connection(PORTS[name], localPort);
      assert.deepEqual(tap!.exchangesOf(client).map((exchange) => exchange.status), statuses, `${name}: client side`);
      assert.deepEqual(tap!.exchangesOf(server).map((exchange) => exchange.status), statuses, `${name}: server side`);
      for (const [connId, observer] of [[client, 'client'], [server, 'server']] as const) {
        assert.deepEqual(new Set(tap!.exchangesOf(connId).map((exchange) => `${exchange.observer} ${exchange.method} ${exchange.route}`)), new Set([`${observer} GET /status/{id}`]));
      }
    }
  });

  it('a connection in the middle of a body: both sides skip the rest of that message and pair every exchange after it', async () => {
    const { localPort, statuses, post } = held.node_mid_body;
    assert.deepEqual([post, statuses], [201, [200, 201, 204, 301, 404]]);
    const { client, server } = await tap!.connection(PORTS.node, localPort);
    for (const [connId, observer] of [[client, 'client'], [server, 'server']] as const) {
      assert.deepEqual(tap!.exchangesOf(connId).map((exchange) => `${exchange.observer} ${exchange.method} ${exchange.status}`), statuses.map((status) => `${observer} GET ${status}`));
    }
  });

  it('what could not be paired is counted: the skipped body on each side, the responses without their requests', () => {
    // Skipped: the client's write and the server's read of the POST's last 5000 bytes. Unpaired: the POST's response
    // on both sides.
    assert.equal(tap!.drops.joined_mid_message, 2);
    assert.equal(tap!.drops.unpaired_response, 2);
    assert.equal(tap!.drops.not_http, undefined);
  });

  it("each connection's flow records say it was adopted, and the kernel dropped nothing", () => {
    for (const name of Object.keys(held) as Held[]) {
      const port = PORTS[SERVER_OF[name]];
      const finals = tap!.flows.filter((flow) => flow.serverPort === port && flow.clientPort === held[name].localPort && flow.kind === FlowKind.final);
      assert.deepEqual(finals.map((flow) => (flow.flags & FlowFlag.adopted) !== 0), [true, true], name);
    }
    const kernelReasons = ['ringbuf_full', 'call_table_full', 'copy_failed', 'program_skipped', 'conn_table_full', 'tracking_failed'];
    assert.deepEqual(Object.fromEntries(Object.entries(tap!.drops).filter(([reason]) => kernelReasons.includes(reason))), {});
  });
});
