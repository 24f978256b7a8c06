/**
 * bench/policy-overhead: what bpf/policy.bpf.c adds to connect(), with 0, 100 and 10,000 rules, against no program
 * attached, in the same run.
 *
 *   1. This process moves into a fresh cgroup, to which the enforcer's programs are attached or not (their own
 *      pin directory; removed at the end, and the process moved back).
 *   2. Configurations: `none` (no program attached), `open` (attached, the cgroup is a pod's, no policy selects it:
 *      the subject lookups only), `rules100` and `rules10000` (isolated for egress and ingress, with that many
 *      single-port entries per direction towards 127.0.0.1/32, the port connected to among them: every connect()
 *      is allowed after the endpoint, prefix and policy lookups).
 *   3. Per round, each configuration in turn (so that machine noise hits all alike): UDP connect()s (socket, connect,
 *      close: the connect4 program alone) and TCP connections over loopback (socket, connect, accept, close with a
 *      reset: connect4 for the client, the ingress program for the SYN at the listener), timed in one blocking loop
 *      through libc, without Node's event loop in between.
 *   4. One JSON line: µs per UDP connect() and per TCP connection, TCP connections/s, each configuration's
 *      overhead over `none`, and the programs' own run time per UDP connect() and per TCP connection (the kernel's
 *      run-time statistics, on for the run: a difference of wall times of a few hundred ns is within the noise of
 *      a 4-15 µs call, the programs' run time is not).
 */
import { Cgroup, cgroupOfProcess } from '../src/ebpf/cgroup.js';
import { PinDirectory } from '../src/ebpf/pins.js';
import { enableRunTimeStats, programStatsOfPins } from '../src/ebpf/stats.js';
import { socketCalls, libcCalls } from '../src/ebpf/native.js';
import { PolicyApplier, type NodeMapState } from '../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel } from '../src/enforcer/apply/kernel.js';
import { isolationKey, policyEntryKey, type IsolationEntry, type PolicyEntry } from '../src/enforcer/compile/map-state.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const UDP_CONNECTS = 50_000;
const TCP_CONNECTIONS = 5_000;
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_LINGER = 13;
const SUBJECT = (1n << 62n) | 0x5eedn;
const LOOPBACK_PREFIX = (2n << 62n) | 0x100bn;

function sockaddr(port: number): Buffer {
  const address = Buffer.alloc(16);
  address.writeUInt16LE(AF_INET, 0);
  address.writeUInt16BE(port, 2);
  Buffer.from([127, 0, 0, 1]).copy(address, 4);
  return address;
}

function check(rc: number, what: string): number {
  if (rc < 0) throw new Error(`policy-overhead: ${what} failed`);
  return rc;
}

/** A listening TCP socket on 127.0.0.1 and its port. */
function listener(): { fd: number; port: number } {
  const fd = check(socketCalls.socket(AF_INET, SOCK_STREAM, 0) as number, 'socket');
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  socketCalls.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
  check(socketCalls.bind(fd, sockaddr(0), 16) as number, 'bind');
  check(socketCalls.listen(fd, 128) as number, 'listen');
  const bound = Buffer.alloc(16);
  check(socketCalls.getsockname(fd, bound, [16]) as number, 'getsockname');
  return { fd, port: bound.readUInt16BE(2) };
}

function timeUdpConnects(target: Buffer): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < UDP_CONNECTS; i++) {
    const fd = check(socketCalls.socket(AF_INET, SOCK_DGRAM, 0) as number, 'socket');
    check(socketCalls.connect(fd, target, 16) as number, 'UDP connect');
    libcCalls.close(fd);
  }
  return Number(process.hrtime.bigint() - start) / 1e3 / UDP_CONNECTS;
}

function timeTcpConnections(server: { fd: number }, target: Buffer): number {
  const linger = Buffer.alloc(8); // {l_onoff 1, l_linger 0}: close() resets, so no TIME_WAIT piles up
  linger.writeInt32LE(1, 0);
  const start = process.hrtime.bigint();
  for (let i = 0; i < TCP_CONNECTIONS; i++) {
    const fd = check(socketCalls.socket(AF_INET, SOCK_STREAM, 0) as number, 'socket');
    socketCalls.setsockopt(fd, SOL_SOCKET, SO_LINGER, linger, 8);
    check(socketCalls.connect(fd, target, 16) as number, 'TCP connect');
    const accepted = check(socketCalls.accept(server.fd, null, null) as number, 'accept');
    libcCalls.close(fd);
    libcCalls.close(accepted);
  }
  return Number(process.hrtime.bigint() - start) / 1e3 / TCP_CONNECTIONS;
}

/** The bench cgroup as a pod with `rules` single-port entries per direction to and from 127.0.0.1/32. */
function nodeState(cgroupId: bigint, rules: number | undefined, port: number, udpPort: number): NodeMapState {
  const isolation = new Map<string, IsolationEntry>();
  const policy = new Map<string, PolicyEntry>();
  if (rules !== undefined) {
    const ports = [port, udpPort, ...Array.from({ length: rules - 2 }, (_, i) => 20_001 + 2 * i)];
    for (const direction of ['egress', 'ingress'] as const) {
      isolation.set(isolationKey(SUBJECT, direction), { subject: SUBJECT, direction, audit: false });
      for (const [i, p] of ports.entries()) {
        const entry: PolicyEntry = { subject: SUBJECT, direction, protocol: i === 1 ? 'UDP' : 'TCP', peer: LOOPBACK_PREFIX, portFirst: p, portLast: p, audit: false };
        policy.set(policyEntryKey(entry), entry);
      }
    }
  }
  return {
    state: { endpoints: new Map(), prefixes: new Map(rules === undefined ? [] : [['127.0.0.1/32', LOOPBACK_PREFIX]]), isolation, policy },
    cgroups: new Map([[cgroupId, SUBJECT]]),
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const home = cgroupOfProcess();
  const cgroup = Cgroup.create(`sidecarless-bench-policy-${process.pid}`);
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-bench-policy-${process.pid}`);
  const kernel = PolicyKernel.open(pins, DEFAULT_POLICY_KERNEL_OPTIONS);
  // In the cgroup before the listener exists: a socket belongs to the cgroup it was created in.
  cgroup.addProcess(process.pid);
  const server = listener();
  const udpPort = 9; // the discard port: a UDP connect() sends nothing, so nothing need listen
  const [tcpTarget, udpTarget] = [sockaddr(server.port), sockaddr(udpPort)];
  const configurations: Array<{ name: string; rules: number | undefined; attached: boolean }> = [
    { name: 'none', rules: undefined, attached: false },
    { name: 'open', rules: undefined, attached: true },
    { name: 'rules100', rules: 100, attached: true },
    { name: 'rules10000', rules: 10_000, attached: true },
  ];
  const totals = new Map(configurations.map(({ name }) => [name, { udpUs: 0, tcpUs: 0, udpProgramNs: 0, tcpProgramNs: 0 }]));
  const stats = enableRunTimeStats();
  const programNs = () => [...programStatsOfPins(pins.path).values()].reduce((sum, program) => sum + Number(program.runTimeNs), 0);
  try {
    const applier = PolicyApplier.open(kernel.maps);
    // The programs judge this process: isolated with no rule for the port, connect() is refused.
    kernel.attach([cgroup.path]);
    applier.apply(nodeState(cgroup.id, 2, 1, 1));
    const refused = socketCalls.socket(AF_INET, SOCK_STREAM, 0) as number;
    const rc = socketCalls.connect(refused, tcpTarget, 16) as number;
    libcCalls.close(refused);
    if (rc === 0) throw new Error('policy-overhead: the policy programs do not judge this process (connect() passed a denying state)');
    applier.apply(nodeState(cgroup.id, undefined, server.port, udpPort));
    // Warm-up: page faults, JIT of the loops, the kernel's socket caches.
    timeUdpConnects(udpTarget);
    timeTcpConnections(server, tcpTarget);
    for (let round = 0; round < ROUNDS; round++) {
      for (const configuration of configurations) {
        kernel.attach(configuration.attached ? [cgroup.path] : []);
        applier.apply(nodeState(cgroup.id, configuration.rules, server.port, udpPort));
        const total = totals.get(configuration.name)!;
        let ran = programNs();
        total.udpUs += timeUdpConnects(udpTarget) / ROUNDS;
        total.udpProgramNs += (programNs() - ran) / UDP_CONNECTS / ROUNDS;
        ran = programNs();
        total.tcpUs += timeTcpConnections(server, tcpTarget) / ROUNDS;
        total.tcpProgramNs += (programNs() - ran) / TCP_CONNECTIONS / ROUNDS;
      }
    }
  } finally {
    stats.release();
    home.addProcess(process.pid);
    libcCalls.close(server.fd);
    kernel.remove();
    pins.remove();
    cgroup.remove();
  }
  const none = totals.get('none')!;
  const round2 = (value: number) => Math.round(value * 100) / 100;
  return {
    bench: 'policy-overhead',
    rounds: ROUNDS,
    udpConnectUs: Object.fromEntries([...totals].map(([name, t]) => [name, round2(t.udpUs)])),
    tcpConnectionUs: Object.fromEntries([...totals].map(([name, t]) => [name, round2(t.tcpUs)])),
    tcpConnectionsPerS: Object.fromEntries([...totals].map(([name, t]) => [name, Math.round(1e6 / t.tcpUs)])),
    programNsPerUdpConnect: Object.fromEntries([...totals].map(([name, t]) => [name, Math.round(t.udpProgramNs)])),
    programNsPerTcpConnection: Object.fromEntries([...totals].map(([name, t]) => [name, Math.round(t.tcpProgramNs)])),
    overheadUs: Object.fromEntries(
      [...totals].filter(([name]) => name !== 'none').map(([name, t]) => [name, { udpConnect: round2(t.udpUs - none.udpUs), tcpConnection: round2(t.tcpUs - none.tcpUs) }]),
    ),
  };
}
