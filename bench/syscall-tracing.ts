/**
 * bench/syscall-tracing: what HTTP capture's programs (bpf/http.bpf.c) cost a process that is NOT traced, which is
 * every other process of the node. They run on sockets' sends and receives (raw tracepoints sock_send_length,
 * sock_recv_length and tcp_sendmsg_locked): an untraced process's TCP call pays a `conns` lookup and the socket's
 * remembered cgroup answer; its calls on files, pipes and other syscalls should pay nothing (before 2026-12-03 the
 * programs were syscall tracepoints: every read and write paid them, every syscall the kernel's tracing path).
 *
 *   1. A lab with two pods: `traced` (its cgroup is what flows and http trace) and `quiet` (untraced, below the same
 *      lab cgroup as a real pod's sibling, so its cgroup check walks as many ancestors as a pod's would).
 *   2. Rounds alternate without and with the http programs attached (installed, then detached and removed), so
 *      machine noise hits both alike. Each round times the CPU (user + system) of three workloads in the quiet pod:
 *      TCP ping-pong over loopback (one byte each way, four socket calls a round trip: what the programs run on),
 *      `dd bs=1` from /dev/zero to /dev/null (one read() and one write() per byte: file calls), and a Python loop of
 *      getppid() (any other syscall). The flows programs are attached throughout: they are not what is measured.
 *   3. One more ping-pong run with the programs attached and the kernel's run-time statistics on (they cost a clock
 *      read per run, so they stay off in the timed rounds): the programs' own ns per run.
 *   4. Prints one JSON line: CPU seconds per run each way, the ratio, the added ns per syscall, the programs' ns.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadFlowProbe } from '../src/collector/flows/kernel.js';
import { loadHttpCapture } from '../src/collector/http/kernel.js';
import { PinDirectory } from '../src/ebpf/pins.js';
import { enableRunTimeStats, programStatsOfPins } from '../src/ebpf/stats.js';
import { createLab, type Pod } from '../src/lab/pods.js';

const BYTES = Number(process.env.BENCH_BYTES ?? 2_000_000); // two syscalls per byte
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RING_BYTES = 1 << 20;
const MAX_CONNECTIONS = 65536;
/** The interpreter itself, not a shim script that would add its own start-up to every run. */
const PYTHON = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

/** Round trips of the TCP ping-pong: four socket calls each. */
const ROUND_TRIPS = BYTES / 8;
const PING_PONG = [
  'import socket',
  "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()",
  'c = socket.create_connection(s.getsockname()); a, _ = s.accept()',
  `for _ in range(${ROUND_TRIPS}): c.send(b'x'); a.recv(1); a.send(b'y'); c.recv(1)`,
].join('\n');

/** The workloads, each a command and the syscalls it makes. */
const WORKLOADS = {
  socket_calls: { command: `${PYTHON} -c "${PING_PONG}"`, syscalls: 4 * ROUND_TRIPS },
  file_calls: { command: `dd if=/dev/zero of=/dev/null bs=1 count=${BYTES} 2>/dev/null`, syscalls: 2 * BYTES },
  other_calls: { command: `${PYTHON} -c 'import os; any(os.getppid() < 0 for _ in range(${BYTES}))'`, syscalls: BYTES },
} as const;
type Workload = keyof typeof WORKLOADS;

/** CPU seconds (user + system) of one run of a workload in the pod, as bash's `time` reports them. */
function cpuSeconds(pod: Pod, workload: Workload): number {
  const script = `TIMEFORMAT='%3U %3S'; { time ${WORKLOADS[workload].command}; } 2>&1`;
  const [user, system] = pod.exec('bash', ['-c', script], { timeoutMs: 120_000 }).trim().split(' ').map(Number);
  return user! + system!;
}

/** ns per run of the programs, over one ping-pong run with statistics on. */
function programCost(pins: PinDirectory, pod: Pod): Record<string, number> {
  const http = loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes: 256, headBytes: 8192 }, pins);
  const stats = enableRunTimeStats();
  try {
    cpuSeconds(pod, 'socket_calls');
    const directory = http.installation.directory.path;
    const programs = [...programStatsOfPins(directory).values()].filter((program) => program.runCount > 1000n);
    const runs = programs.reduce((sum, program) => sum + program.runCount, 0n);
    const time = programs.reduce((sum, program) => sum + program.runTimeNs, 0n);
    return { programs: programs.length, runs: Number(runs), mean: runs > 0n ? Number(time / runs) : 0 };
  } finally {
    stats.release();
    http.installation.remove();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const lab = createLab({ name: 'syscall-bench', pods: ['traced', 'quiet'] });
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-bench-syscalls-${process.pid}-${randomBytes(3).toString('hex')}`);
  pins.prepare();
  try {
    const flows = loadFlowProbe({ cgroups: [lab.pod('traced').cgroup.path], ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, activeTimeoutMs: 10_000 }, pins);
    const quiet = lab.pod('quiet');
    const seconds = Object.fromEntries(Object.keys(WORKLOADS).map((workload) => [workload, { off: [] as number[], on: [] as number[] }])) as Record<Workload, { off: number[]; on: number[] }>;
    const workloads = Object.keys(WORKLOADS) as Workload[];
    let programNs: Record<string, number> = {};
    try {
      for (const workload of workloads) cpuSeconds(quiet, workload); // warm-up: page cache, CPU frequency
      for (let round = 0; round < ROUNDS; round++) {
        for (const workload of workloads) seconds[workload].off.push(cpuSeconds(quiet, workload));
        const http = loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes: 256, headBytes: 8192 }, pins);
        try {
          for (const workload of workloads) seconds[workload].on.push(cpuSeconds(quiet, workload));
        } finally {
          http.installation.remove(); // unpins the links: the programs stop
        }
      }
      programNs = programCost(pins, quiet);
    } finally {
      flows.close();
    }
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const results = Object.fromEntries(
      workloads.map((workload) => {
        const [off, on] = [sum(seconds[workload].off), sum(seconds[workload].on)];
        return [
          workload,
          {
            command: WORKLOADS[workload].command,
            cpu_seconds_per_run: { without: Number((off / ROUNDS).toFixed(3)), with: Number((on / ROUNDS).toFixed(3)) },
            ratio: Number((on / off).toFixed(3)),
            added_ns_per_syscall: Math.round(((on - off) / (WORKLOADS[workload].syscalls * ROUNDS)) * 1e9),
            rounds: seconds[workload],
          },
        ];
      }),
    );
    return {
      bench: 'syscall-tracing',
      setup: `untraced pod, ${ROUNDS} rounds each way, alternating`,
      ...results,
      program_ns_per_run: programNs,
      kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
    };
  } finally {
    pins.remove();
    lab.destroy();
  }
}
