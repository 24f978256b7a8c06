import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createLab, destroyAll, type Lab } from '../../src/lab/pods.js';
import { holdConnection, runHttpLoad, runTcpClient, startHttpServer, startTcpServer } from '../../src/lab/traffic.js';
import { cgroup2Root } from '../../src/ebpf/preflight.js';
import { uniqueName } from '../helpers/stack.js';

/** What the host still has of a lab, listed with the system tools rather than the lab's own discovery code. */
function leftovers(id: string): string[] {
  const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
  const found = [
    ...sh('ip', 'netns', 'list').split('\n').filter((line) => line.startsWith(`sl${id}-`)).map((line) => `netns ${line}`),
    ...sh('ip', '-o', 'link').split('\n').filter((line) => line.includes(` sl${id}-`)).map((line) => `link ${line.split(':')[1]}`),
    ...sh('nft', 'list', 'tables').split('\n').filter((line) => line.includes(` sl${id}_`)).map((line) => `nft ${line}`),
  ];
  if (existsSync(join(cgroup2Root(), `sidecarless-lab-${id}`))) found.push(`cgroup sidecarless-lab-${id}`);
  const records = existsSync('/run/sidecarless-lab') ? readdirSync('/run/sidecarless-lab') : [];
  for (const file of records) if (readFileSync(join('/run/sidecarless-lab', file), 'utf8').includes(`"${id}"`)) found.push(`record ${file}`);
  return found;
}

/** Exists and is not a zombie (the reaper of orphans here may be slow). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(10);
  assert.ok(check(), what);
}

before(() => {
  // Leftovers of crashed runs would hold subnets and names; labs of concurrent live runs are left alone.
  destroyAll();
});

describe('a lab of three pods', () => {
  let lab: Lab;

  before(() => {
    lab = createLab({ name: uniqueName('pods-'), pods: ['a', 'b', 'c'] });
  });
  after(() => lab.destroy());

  it('gives each pod its own address in the lab subnet and a default route via the bridge', () => {
    assert.equal(new Set(lab.pods.map((pod) => pod.ip)).size, 3);
    for (const pod of lab.pods) {
      assert.ok(lab.subnet.contains(pod.ip), `${pod.ip} in ${lab.subnet.cidr}`);
      assert.match(pod.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']), new RegExp(`inet ${pod.ip.replaceAll('.', '\\.')}/24 `));
      assert.equal(pod.exec('ip', ['route', 'show', 'default']).trim(), `default via ${lab.subnet.gateway} dev eth0`);
      assert.match(pod.exec('ip', ['-o', 'link', 'show', 'lo']), /[<,]UP[,>]/);
    }
  });

  it('runs a spawned process inside the pod netns and listed in the pod cgroup', async () => {
    const pod = lab.pod('c');
    const child = pod.spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid!;
    await eventually(() => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep', 'sleep started');
    assert.ok(readFileSync(join(pod.cgroup.path, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)));
    assert.equal(statSync(`/proc/${pid}/ns/net`).ino, statSync(`/run/netns/${pod.netns}`).ino);
    assert.match(pod.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(pod.containerId, /^[0-9a-f]{64}$/);
    const podSlice = `kubepods-besteffort-pod${pod.uid.replaceAll('-', '_')}.slice`;
    assert.equal(
      readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((line) => line.startsWith('0::')),
      `0::/sidecarless-lab-${lab.id}/kubepods.slice/kubepods-besteffort.slice/${podSlice}/cri-containerd-${pod.containerId}.scope`,
    );
    assert.equal(statSync(pod.cgroup.path, { bigint: true }).ino, pod.cgroup.id);
    child.kill();
  });

  it('moves exactly x bytes from a client in pod a and y bytes back from a server in pod b', async () => {
    const [a, b] = [lab.pod('a'), lab.pod('b')];
    const server = await startTcpServer(b, { port: 7001, expectBytes: 3_000, replyBytes: 70_000 });
    const client = await runTcpClient(a, { host: b.ip, port: 7001, connections: 5, sendBytes: 3_000, expectBytes: 70_000 });
    const stats = await server.stop();
    assert.deepEqual({ ...client, durationMs: 0 }, { connections: 5, completed: 5, bytesSent: 15_000, bytesReceived: 350_000, localPorts: 5, errors: [], durationMs: 0, timedOut: false });
    assert.deepEqual(stats, { connections: 5, completed: 5, bytesReceived: 15_000, bytesSent: 350_000, peers: [a.ip] });
  });

  it('serves HTTP with exact response sizes under a load loop', async () => {
    const [a, c] = [lab.pod('a'), lab.pod('c')];
    const server = await startHttpServer(c, { port: 8080, responseBytes: 1_234 });
    const load = await runHttpLoad(a, `${server.url}/items`, { requests: 50, concurrency: 4 });
    const stats = await server.stop();
    assert.deepEqual(
      { requests: load.requests, responses: load.responses, statuses: load.statuses, body: load.bodyBytesReceived, connections: load.connections, errors: load.errors },
      { requests: 50, responses: 50, statuses: { 200: 50 }, body: 50 * 1_234, connections: 4, errors: [] },
    );
    assert.deepEqual(stats, { connections: 4, requests: 50, bodyBytesSent: 50 * 1_234, peers: [a.ip] });
  });

  it('keeps a connection open for the given seconds with a known byte total', async () => {
    const [a, c] = [lab.pod('a'), lab.pod('c')];
    const server = await startTcpServer(c, { port: 7003, expectBytes: 2_000, replyBytes: 10 });
    const held = await holdConnection(a, { host: c.ip, port: 7003, seconds: 2, chunkBytes: 1_000, expectBytes: 10 });
    const stats = await server.stop();
    assert.equal(held.completed, 1);
    assert.equal(held.bytesSent, 2_000);
    assert.equal(held.bytesReceived, 10);
    assert.ok(held.durationMs >= 2_000, `open for ${held.durationMs} ms`);
    assert.deepEqual(stats, { connections: 1, completed: 1, bytesReceived: 2_000, bytesSent: 10, peers: [a.ip] });
  });

  it('drops packets from one server port so a 2 MB transfer retransmits, and still delivers every byte', async () => {
    const [a, b] = [lab.pod('a'), lab.pod('b')];
    const server = await startTcpServer(b, { port: 7002, expectBytes: 1, replyBytes: 2_000_000 });
    const loss = b.dropOutgoing({ sport: 7002, percent: 20 });
    const before = b.netStats().TcpRetransSegs!;
    const client = await runTcpClient(a, { host: b.ip, port: 7002, sendBytes: 1, expectBytes: 2_000_000 });
    const retransmitted = b.netStats().TcpRetransSegs! - before;
    await server.stop();
    loss.remove();
    assert.equal(client.completed, 1);
    assert.equal(client.bytesReceived, 2_000_000);
    assert.ok(retransmitted > 0, `TcpRetransSegs grew by ${retransmitted}`);
    assert.ok(!execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(loss.table), 'loss table removed');
  });

  it('refuses traffic to addresses outside the lab', () => {
    assert.throws(() => runTcpClient(lab.pod('a'), { host: '192.0.2.1', port: 80, sendBytes: 1, expectBytes: 0 }), RangeError);
  });
});

describe('adding and removing pods', () => {
  it('removes one pod with its processes, cgroups, loss table, veth and netns, and gives its address to the next pod', async () => {
    const lab = createLab({ name: uniqueName('churn-'), pods: ['a', 'b'] });
    try {
      const [a, b] = [lab.pod('a'), lab.pod('b')];
      const sleeper = b.spawn('sleep', ['30'], { stdio: 'ignore' });
      const exited = new Promise((resolve) => sleeper.on('exit', (_, signal) => resolve(signal)));
      const loss = b.dropOutgoing({ sport: 9000, percent: 50 });
      lab.removePod('b');
      assert.equal(await exited, 'SIGKILL');
      assert.deepEqual(lab.pods.map((pod) => pod.name), ['a']);
      assert.deepEqual(
        [existsSync(b.podCgroupPath), existsSync(`/run/netns/${b.netns}`), existsSync(`/sys/class/net/${b.hostVeth}`), execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(loss.table)],
        [false, false, false, false],
      );
      assert.equal(leftovers(lab.id).length, 5, leftovers(lab.id).join('\n'));

      const c = lab.addPod('c', { qos: 'guaranteed' });
      assert.deepEqual([c.index, c.ip, c.hostVeth], [b.index, b.ip, b.hostVeth]);
      assert.equal(
        c.cgroup.path,
        join(cgroup2Root(), `sidecarless-lab-${lab.id}/kubepods.slice/kubepods-pod${c.uid.replaceAll('-', '_')}.slice/cri-containerd-${c.containerId}.scope`),
      );
      const server = await startTcpServer(c, { port: 7005, expectBytes: 100, replyBytes: 200 });
      const client = await runTcpClient(a, { host: c.ip, port: 7005, sendBytes: 100, expectBytes: 200 });
      assert.deepEqual([client.completed, client.bytesReceived], [1, 200]);
      assert.deepEqual(await server.stop(), { connections: 1, completed: 1, bytesReceived: 100, bytesSent: 200, peers: [a.ip] });

      assert.equal(lab.addPod('d', { index: 7 }).ip, lab.subnet.host(7));
      assert.throws(() => lab.addPod('e', { index: 7 }), /pod d holds index 7/);
      assert.throws(() => lab.addPod('a'), /already has a pod a/);
      assert.deepEqual(lab.pods.map((pod) => pod.name), ['a', 'c', 'd']);
    } finally {
      lab.destroy();
    }
    assert.deepEqual(leftovers(lab.id), []);
  });
});

describe('destroying a lab', () => {
  it('removes namespaces, links, cgroups, loss tables and processes, and is safe to call twice', async () => {
    const lab = createLab({ name: uniqueName('destroy-'), pods: 2 });
    const sleeper = lab.pods[0]!.spawn('sleep', ['30'], { stdio: 'ignore' });
    lab.pods[1]!.dropOutgoing({ sport: 9000, percent: 50 });
    const exited = new Promise((resolve) => sleeper.on('exit', (_, signal) => resolve(signal)));
    assert.equal(leftovers(lab.id).length, 8, leftovers(lab.id).join('\n'));
    lab.destroy();
    assert.deepEqual(leftovers(lab.id), []);
    assert.equal(await exited, 'SIGKILL');
    lab.destroy();
  });

  it('cleans up after a test that failed halfway, with some parts already gone', async () => {
    const lab = createLab({ name: uniqueName('failed-'), pods: 3 });
    const [a, b, c] = [lab.pods[0]!, lab.pods[1]!, lab.pods[2]!];
    const server = await startTcpServer(b, { port: 7004, expectBytes: 10, replyBytes: 10 });
    b.dropOutgoing({ sport: 7004, percent: 10 });
    try {
      execFileSync('ip', ['link', 'del', a.hostVeth]);
      // Its veth pair goes away asynchronously, maybe while destroy() runs.
      execFileSync('ip', ['netns', 'del', c.netns]);
      throw new Error('the test fails here');
    } catch {
      lab.destroy();
    }
    assert.deepEqual(leftovers(lab.id), []);
    await assert.rejects(server.stop(), /killed by SIGKILL/);
    lab.destroy();
  });
});

describe('labs whose owner process ends', () => {
  const ownerScript = fileURLToPath(new URL('./fixtures/lab-owner.js', import.meta.url));

  interface Owner {
    child: ChildProcess;
    id: string;
    sleeper: number;
    ended: Promise<[number | null, NodeJS.Signals | null]>;
  }

  async function startOwner(mode: 'hold' | 'throw'): Promise<Owner> {
    const child = spawn(process.execPath, [ownerScript, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    const line = await Promise.race([
      new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve)),
      ended.then(() => Promise.reject(new Error(`lab owner ended before its lab was up: ${stderr}`))),
    ]);
    const { id, sleeper } = JSON.parse(line) as { id: string; sleeper: number };
    return { child, id, sleeper, ended };
  }

  after(() => {
    // Labs of owners a failed assertion left running or killed.
    destroyAll();
  });

  it('SIGTERM: the owner removes its lab and still ends by the signal; destroyAll leaves a live owner alone', async () => {
    const owner = await startOwner('hold');
    try {
      assert.equal(leftovers(owner.id).length, 8, leftovers(owner.id).join('\n'));
      assert.ok(!destroyAll().includes(owner.id));
      assert.equal(leftovers(owner.id).length, 8, 'the lab of a live owner is kept');
      owner.child.kill('SIGTERM');
      assert.deepEqual(await owner.ended, [null, 'SIGTERM']);
      assert.deepEqual(leftovers(owner.id), []);
      await eventually(() => !running(owner.sleeper), 'the pod process was killed');
    } finally {
      owner.child.kill('SIGKILL');
    }
  });

  it('uncaught exception: the exit handler removes the lab', async () => {
    const owner = await startOwner('throw');
    assert.deepEqual(await owner.ended, [1, null]);
    assert.deepEqual(leftovers(owner.id), []);
    await eventually(() => !running(owner.sleeper), 'the pod process was killed');
  });

  it('SIGKILL: everything stays until destroyAll removes it', async () => {
    const owner = await startOwner('hold');
    owner.child.kill('SIGKILL');
    await owner.ended;
    assert.equal(leftovers(owner.id).length, 8);
    assert.ok(running(owner.sleeper), 'the pod process outlives its owner');
    assert.ok(destroyAll().includes(owner.id));
    assert.deepEqual(leftovers(owner.id), []);
    await eventually(() => !running(owner.sleeper), 'the pod process was killed');
  });
});
