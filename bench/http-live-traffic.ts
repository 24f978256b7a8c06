/**
 * The two ends of the traffic of bench/http-live and bench/overhead, neither of them ours, and the search for the
 * highest rate a setup sustains:
 *   - the server: nginx (Debian's nginx-light), one process (no master, one worker: its cost stays on one core of
 *     this small machine), `sendfile off`, answering every GET with a fixed 3-byte body from memory, keep-alive
 *     without a request limit (nginx's default closes a connection after 1,000 requests);
 *   - the load generator: bench/http-load/main.go, built here with Go on first use and cached by the source's
 *     digest (standard library only: nothing is downloaded).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Cgroup } from '../src/ebpf/cgroup.js';
import { lostDuring } from '../src/lab/kernel-losses.js';
import type { Pod } from '../src/lab/pods.js';
import { acceptsConnections, waitFor } from '../src/lab/stack/processes.js';
import { round } from '../src/lab/usage.js';

/**
 * Both ends run at a raised priority in both modes: this small machine is shared (other builds and tests run
 * beside a bench), and at the default priority their bursts, not the request path, make the tails.
 * BENCH_ENDS_PRIORITY:
 *   nice (default)  nice -20: the collector's threads compete with the ends for the CPU as in a cluster, and
 *                   collector.cpuPolicy (idle by default) decides whether its drain bursts delay their wake-ups.
 *   fifo            SCHED_FIFO 50: the ends preempt every other process, so other sessions' work leaves the tails
 *                   alone (measured beside other sessions' builds at 1,000 requests/s: baseline p99 1.2-2.8 ms at
 *                   nice -20, 0.30-0.41 ms under FIFO). What tracing adds inside the request's own syscalls and
 *                   softirqs stays in the figure, but the collector gets only what the ends leave: from 5,000/s
 *                   on, its rings overflowed, so use it at low paced rates only, to tell the request path's cost
 *                   from scheduling.
 */
const ENDS_PRIORITY = process.env.BENCH_ENDS_PRIORITY ?? 'nice';
if (ENDS_PRIORITY !== 'fifo' && ENDS_PRIORITY !== 'nice') throw new Error(`BENCH_ENDS_PRIORITY: fifo or nice, not ${ENDS_PRIORITY}`);
/** The command prefix that runs a process of the request path at the ends' priority. */
export const endsPriority: readonly string[] = ENDS_PRIORITY === 'fifo' ? ['chrt', '--fifo', '50'] : ['nice', '-n', '-20'];
const source = fileURLToPath(new URL('../../bench/http-load/main.go', import.meta.url));
const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';

/** The load generator's executable, built when its source changed. */
export async function buildLoadGenerator(): Promise<string> {
  const digest = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sidecarless', `http-load-${digest}`);
  const binary = join(dir, 'http-load');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  try {
    await promisify(execFile)(go, ['build', '-trimpath', '-o', `${binary}.partial`, source], { cwd: dir, timeout: 5 * 60_000 });
  } catch (error) {
    throw new Error(`building the load generator (${go} build ${source}) failed: ${String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim()}`, {
      cause: error,
    });
  }
  renameSync(`${binary}.partial`, binary);
  return binary;
}

export interface NginxServer {
  stop(): Promise<void>;
}

export const RESPONSE_BODY = 'ok\n';

export interface NginxOptions {
  /** A file that gets one line per request answered (default: no access log). */
  accessLog?: string;
  /** The pod's container to run in (Pod.addContainer), default the pod's own. */
  container?: Cgroup;
}

/** nginx on pod.ip:port until stop(); resolves once it accepts connections. */
export async function startNginx(pod: Pod, port: number, options: NginxOptions = {}): Promise<NginxServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-nginx-'));
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${name}_temp_path ${dir};`);
  const config = [
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    // Unbuffered: a line is written as its request ends, so that a count read after the load is the whole count.
    `  access_log ${options.accessLog ?? 'off'};`,
    '  sendfile off;',
    '  keepalive_requests 1000000000;',
    '  keepalive_timeout 3600s;',
    ...temp,
    `  server { listen ${pod.ip}:${port}; default_type text/plain; location / { return 200 "${RESPONSE_BODY.replace('\n', '\\n')}"; } }`,
    '}',
  ];
  writeFileSync(join(dir, 'nginx.conf'), `${config.join('\n')}\n`);
  let stderr = '';
  // -e: the error log before the configuration is read, which would otherwise be /var/log/nginx's.
  const child: ChildProcess = pod.spawn(endsPriority[0]!, [...endsPriority.slice(1), 'nginx', '-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'], container: options.container });
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.trim()}`);
      return acceptsConnections(pod.ip, port);
    }, { timeoutMs: 10_000, what: `nginx on ${pod.ip}:${port}` });
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

/** Percentiles in µs, as the load generator prints them. */
export type Percentiles = Record<'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;

export interface LoadResult {
  requests: number;
  answered: number;
  errors: number;
  first_error?: string;
  seconds: number;
  achieved_per_s: number;
  connections: number;
  /** From each request's due time to its response's last byte (open-loop; closed-loop: from its write). */
  latency_us: Percentiles;
  /** From each request's write to its response's last byte. */
  service_us: Percentiles;
  /** The load generator's own peak resident memory. */
  max_rss_kb: number;
}

/** One run of the load generator in `pod`: `rate` requests/s (0: as fast as the connections allow) for `seconds`. */
export async function runLoad(pod: Pod, binary: string, options: { target: string; rate: number; seconds: number; connections: number; container?: Cgroup }): Promise<LoadResult> {
  const args = ['-target', options.target, '-rate', String(options.rate), '-duration', `${options.seconds}s`, '-connections', String(options.connections)];
  const child = pod.spawn(endsPriority[0]!, [...endsPriority.slice(1), binary, ...args], { stdio: ['ignore', 'pipe', 'pipe'], container: options.container });
  let [stdout, stderr] = ['', ''];
  child.stdout!.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`load generator ${args.join(' ')} exited with ${code}: ${stdout.trim()} ${stderr.trim()}`);
  return JSON.parse(stdout) as LoadResult;
}

/** The highest sustainable rate's search: fractions of the closed-loop capacity, each tried for SEARCH_SECONDS. */
const SEARCH_FRACTIONS = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2];
const SEARCH_SECONDS = 5;
/**
 * A pause for the mode to drain a backlog (a full ring) before the next step: after the closed-loop probe, which
 * runs at full capacity, where the ring overflows first, and after a step that lost records. A full 8 MB http ring
 * holds ~28,000 records of a 3-byte answer's exchange, ~0.1 s of bench http-live's collector at its ~3.3 µs of
 * process time per record at 20,500 requests/s (0.267 cores for 4 records per request); 3 s because a collector
 * under SCHED_IDLE gets the CPU only as the ends leave it.
 */
const RECOVERY_MS = 3_000;
/**
 * Sustained: nine requests in ten wait for nothing, and the mode loses nothing of what it must record. A p50 rule
 * let through 16,000/s here, whose 10-s windows then had a p90 of 2.4 ms traced and an overflowing ring; the p90
 * rule alone let through 20,500/s, whose traced windows lost 0.9-53 % of their http events to a full ring (the
 * collector starved by the ends' priority): its cost per request was then that of the events it kept.
 */
export const SUSTAINED_P90_US = 1_000;

export interface SustainableSearch {
  /** The last rate tried: the first that sustained, or the lowest fraction's when none did (`sustained` false). */
  highest: number;
  sustained: boolean;
  /** `lost`: what the mode lost during the step, when the search was given a way to count it. */
  tried: Array<{ rate: number; p90_us: number; achieved_per_s: number; lost?: number }>;
}

/** How a search counts what a mode fails to record. */
export interface LossWatch {
  /** A running total (kernel drops, skipped runs): a step during which it moves is not sustained. */
  soFar(): bigint;
  /** Waits for the mode to drain its backlog; RECOVERY_MS by default. */
  recover?(): Promise<void>;
}

/**
 * The highest open-loop rate that `load` sustains, from SEARCH_FRACTIONS of the closed-loop `capacityPerS` down
 * (in steps of 500/s): the first whose requests do not queue (p90 from the due time ≤ SUSTAINED_P90_US) and,
 * when `losses` is given, during which the mode lost nothing. An open-loop rate at full capacity only measures its
 * queue.
 */
export async function searchSustainable(
  capacityPerS: number,
  load: (rate: number, seconds: number) => Promise<LoadResult>,
  losses?: LossWatch,
): Promise<SustainableSearch> {
  const recover = () => (losses?.recover ? losses.recover() : sleep(RECOVERY_MS));
  const tried: SustainableSearch['tried'] = [];
  // The closed-loop probe just ran: its backlog is not the first step's.
  let backlog = losses !== undefined;
  for (const fraction of SEARCH_FRACTIONS) {
    const rate = Math.max(500, Math.floor((capacityPerS * fraction) / 500) * 500);
    if (backlog) await recover();
    const { result: step, lost } = await lostDuring(losses && (() => losses.soFar()), () => load(rate, SEARCH_SECONDS));
    tried.push({ rate, p90_us: round(step.latency_us.p90, 1), achieved_per_s: round(step.achieved_per_s, 0), ...(lost === undefined ? {} : { lost }) });
    if (step.latency_us.p90 <= SUSTAINED_P90_US && !lost) return { highest: rate, sustained: true, tried };
    backlog = Boolean(lost);
  }
  return { highest: tried.at(-1)!.rate, sustained: false, tried };
}
