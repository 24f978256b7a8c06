/**
 * The hooks the lab's IPv4 pods do not reach, on the real kernel over loopback: connect6 (IPv6, and an IPv6 socket
 * connecting to a v4-mapped address, judged as the IPv4 address it is), sendmsg6 of an unconnected UDP socket and
 * the answer it gets back while its pod is isolated for ingress (a reply), and IPv6 ingress. The subject is a
 * process in a fresh cgroup (test/enforcer/agents/hook-agent.ts), made a pod of the compiled cluster; the policy
 * allows only ipBlocks ::1/128 and 127.0.0.1/32 on chosen ports.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { PolicyApplier } from '../../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel } from '../../src/enforcer/apply/kernel.js';
import { compilePolicies, type CompiledPolicies } from '../../src/enforcer/compile/compile.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { Cgroup } from '../../src/ebpf/cgroup.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { PolicyDirection } from '../../src/ebpf/records/policy-keys.js';
import { decodeVerdictRecord, PolicyHook, Verdict, type VerdictRecord } from '../../src/ebpf/records/verdict.js';
import { openRingReader } from '../../src/ebpf/ringbuf.js';

const id = randomBytes(3).toString('hex');
const VIEW = {
  namespaces: new Map([['hooks', {}]]),
  pods: [{ namespace: 'hooks', name: 'agent', labels: { app: 'agent' }, namedPorts: [], ips: ['192.0.2.10'] }],
};

function policy(ports: { tcp6: number; udp6: number; tcp4: number; inbound: number | undefined }): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: loopback-only, namespace: hooks}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  egress:
  - to: [{ipBlock: {cidr: "::1/128"}}]
    ports: [{port: ${ports.tcp6}}, {protocol: UDP, port: ${ports.udp6}}]
  - to: [{ipBlock: {cidr: 127.0.0.1/32}}]
    ports: [{port: ${ports.tcp4}}]
  ingress:${ports.inbound === undefined ? ' []' : `\n  - from: [{ipBlock: {cidr: "::1/128"}}]\n    ports: [{port: ${ports.inbound}}]`}
`;
}

describe('policy hooks: IPv6, v4-mapped, unconnected UDP and its replies, IPv6 ingress', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-hooks-${process.pid}-${id}`);
  const cgroup = Cgroup.create(`sidecarless-test-hooks-${process.pid}-${id}`);
  const servers: Array<net.Server | dgram.Socket> = [];
  let kernel: PolicyKernel;
  let applier: PolicyApplier;
  let agent: ChildProcess | undefined;
  const ports = { tcp6: 0, udp6: 0, tcp4: 0, inbound: undefined as number | undefined };

  before(async () => {
    kernel = PolicyKernel.open(pins, DEFAULT_POLICY_KERNEL_OPTIONS);
    applier = PolicyApplier.open(kernel.maps);
    kernel.attach([cgroup.path]);
    const tcpServer = async (host: string) => {
      // The agent closes each connection as soon as it is made: a reset may meet the answer.
      const server = net.createServer((socket) => socket.on('error', () => {}).end('ok\n'));
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      return (server.address() as net.AddressInfo).port;
    };
    ports.tcp6 = await tcpServer('::1');
    ports.tcp4 = await tcpServer('127.0.0.1');
    const echo = dgram.createSocket('udp6');
    servers.push(echo);
    echo.on('message', (message, from) => echo.send(message, from.port, from.address));
    await new Promise<void>((resolve) => echo.bind(0, '::1', resolve));
    ports.udp6 = echo.address().port;
  });

  after(() => {
    agent?.kill('SIGKILL');
    for (const server of servers) server.close();
    kernel?.remove();
    pins.remove();
    cgroup.remove();
  });

  function enforce(): CompiledPolicies {
    const compiled = compilePolicies(parsePolicies(policy(ports)), VIEW);
    applier.apply({ state: compiled.state, cgroups: new Map([[cgroup.id, compiled.identities.ofPod.get('hooks/agent')!]]) });
    return compiled;
  }

  it('judges IPv6, v4-mapped and IPv4 connect()s, unconnected UDP sends, and lets the UDP answer in', async () => {
    enforce();
    const denied = ports.tcp6 + 1 === ports.udp6 ? ports.tcp6 + 2 : ports.tcp6 + 1; // allowed nowhere
    const params = {
      tcp: [
        { host: '::1', port: ports.tcp6 },
        { host: '::1', port: denied },
        { host: '::ffff:127.0.0.1', port: ports.tcp4 },
        { host: '::ffff:127.0.0.1', port: denied },
        { host: '127.0.0.1', port: ports.tcp4 },
        { host: '127.0.0.1', port: denied },
      ],
      udp: [
        { host: '::1', port: ports.udp6 },
        { host: '::1', port: denied },
      ],
      listeners: 2,
    };
    const file = fileURLToPath(new URL('./agents/hook-agent.js', import.meta.url));
    agent = spawn('sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', `${cgroup.path}/cgroup.procs`, process.execPath, file, JSON.stringify(params)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the hook agent printed nothing within 20 s')), 20_000);
      createInterface({ input: agent!.stdout! }).once('line', (text) => (clearTimeout(timer), resolve(text)));
    });
    const report = JSON.parse(line) as { outcomes: { tcp: string[]; udp: string[] }; listening: number[] };
    assert.deepEqual(report.outcomes, {
      tcp: ['connected', 'EPERM', 'connected', 'EPERM', 'connected', 'EPERM'],
      udp: ['answered', 'EPERM'],
    });

    // Inbound over IPv6: the first listener is allowed from ::1, the second is not (its SYNs are dropped).
    const [allowedPort, droppedPort] = report.listening as [number, number];
    ports.inbound = allowedPort;
    const compiled = enforce();
    const ring = openRingReader(kernel.installation, 'verdict_ring');
    ring.drain(() => {});
    const connect = (port: number) =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: '::1', port });
        const timer = setTimeout(() => (socket.destroy(), resolve('timeout')), 1_500);
        let received = '';
        socket.on('data', (chunk) => (received += chunk.toString()));
        socket.on('end', () => (clearTimeout(timer), resolve(received)));
        socket.on('error', (error: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(error.code ?? error.message)));
      });
    assert.deepEqual([await connect(allowedPort), await connect(droppedPort)], ['ok\n', 'timeout']);
    const records: VerdictRecord[] = [];
    ring.drain((data, offset, size) => records.push(decodeVerdictRecord(data, offset, size)));
    const loopback6 = [...compiled.identities.cidrs.values()].find((cidr) => cidr.text === '::1/128')!.id;
    assert.ok(records.length >= 1, 'the dropped SYN was reported');
    for (const record of records) {
      assert.deepEqual(
        { ...record, monotonicNs: 0n, srcPort: 0, generation: 0 },
        {
          monotonicNs: 0n,
          cgroupId: cgroup.id,
          subject: compiled.identities.ofPod.get('hooks/agent')!,
          peer: 0n,
          peerPrefix: loopback6,
          srcAddress: '::1',
          dstAddress: '::1',
          srcPort: 0,
          dstPort: droppedPort,
          protocol: 6,
          verdict: Verdict.deny,
          direction: PolicyDirection.ingress,
          hook: PolicyHook.ingress,
          generation: 0,
        },
      );
    }
    agent.stdin!.end();
  });
});
