/**
 * bench/syscall-tracing: what HTTP capture's syscall tracepoints (bpf/http.bpf.c) cost a process that is NOT traced,
 * which is every other process of the node: each of its reads and writes runs the entry program up to its cgroup
 * check, its return program up to one map lookup, and every syscall takes the kernel's syscall-tracing path.
 *
 *   1. A lab with two pods: `traced` (its cgroup is what flows and http trace) and `quiet` (untraced, below the same
 *      lab cgroup as a real pod's sibling, so its check walks as many ancestors as a pod's would).
 *   2. Rounds alternate without and with the http programs attached (installed, then detached and removed), so
 *      machine noise hits both alike. Each round times the CPU (user + system) of two workloads in the quiet pod:
 *      `dd bs=1` from /dev/zero to /dev/null (one read() and one write() per byte, calls the programs trace), and a
 *      Python loop of getppid() (a call they do not trace, which pays the kernel's syscall-tracing path only).
 *   3. One more run with the programs attached and the kernel's run-time statistics on (they cost a clock read per
 *      run, so they stay off in the timed rounds): the programs' own ns per run, entry and return, which tells the
 *      programs' share of the added cost from the syscall-tracing path's.
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

/**
 * The workloads, each a command and the syscalls it makes: dd makes the calls the programs trace (read and write);
 * the Python loop makes one the programs do not trace (getppid), which still takes the syscall-tracing path.
 */
const WORKLOADS = {
  traced_calls: { command: `dd if=/dev/zero of=/dev/null bs=1 count=${BYTES} 2>/dev/null`, syscalls: 2 * BYTES },
  other_calls: { command: `${PYTHON} -c 'import os; any(os.getppid() < 0 for _ in range(${BYTES}))'`, syscalls: BYTES },
} as const;
type Workload = keyof typeof WORKLOADS;

/** CPU seconds (user + system) of one run of a workload in the pod, as bash's `time` reports them. */
function cpuSeconds(pod: Pod, workload: Workload): number {
  const script = `TIMEFORMAT='%3U %3S'; { time ${WORKLOADS[workload].command}; } 2>&1`;
  const [user, system] = pod.exec('bash', ['-c', script], { timeoutMs: 120_000 }).trim().split(' ').map(Number);
  return user! + system!;
}

/** ns per run of the entry and return programs of read and write, over one dd run with statistics on. */
function programCost(pins: PinDirectory, pod: Pod): Record<string, number> {
  const http = loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes: 256 }, pins);
  const stats = enableRunTimeStats();
  try {
    cpuSeconds(pod, 'traced_calls');
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
        const http = loadHttpCapture({ ringBytes: RING_BYTES, maxConnections: MAX_CONNECTIONS, captureBytes: 256 }, pins);
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
