/**
 * The two ends of bench/http-live's traffic, neither of them ours:
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
import { promisify } from 'node:util';
import type { Pod } from '../src/lab/pods.js';
import { acceptsConnections, waitFor } from '../src/lab/stack/processes.js';

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

/** nginx on pod.ip:port until stop(); resolves once it accepts connections. */
export async function startNginx(pod: Pod, port: number): Promise<NginxServer> {
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
    '  access_log off;',
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
  const child: ChildProcess = pod.spawn(endsPriority[0]!, [...endsPriority.slice(1), 'nginx', '-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
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
}

/** One run of the load generator in `pod`: `rate` requests/s (0: as fast as the connections allow) for `seconds`. */
export async function runLoad(pod: Pod, binary: string, options: { target: string; rate: number; seconds: number; connections: number }): Promise<LoadResult> {
  const args = ['-target', options.target, '-rate', String(options.rate), '-duration', `${options.seconds}s`, '-connections', String(options.connections)];
  const child = pod.spawn(endsPriority[0]!, [...endsPriority.slice(1), binary, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let [stdout, stderr] = ['', ''];
  child.stdout!.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`load generator ${args.join(' ')} exited with ${code}: ${stdout.trim()} ${stderr.trim()}`);
  return JSON.parse(stdout) as LoadResult;
}
