/**
 * bench/overhead's sidecar mode: a mesh's sidecar in each pod, built from what this machine has. No Envoy build
 * can be had here, so HAProxy (Debian's, 2.6) stands in for it: a userspace L7 proxy doing what a sidecar does on
 * every request, HTTP parsing, routing, an access log line, statistics.
 *
 *   - Each pod gets a second container (Pod.addContainer: its own cgroup, so its CPU is its own) running HAProxy as
 *     uid 1337 (Istio's proxy uid) with Istio's two listeners: 15001 (outbound: the app's connections leaving the
 *     pod) and 15006 (inbound: connections arriving at the pod), each forwarding to the connection's original
 *     destination (SO_ORIGINAL_DST, what `server 0.0.0.0:0` means to HAProxy), in HTTP mode with keep-alive
 *     on both sides, an access log line per request (`option httplog`, to a file) and Prometheus statistics on
 *     127.0.0.1:15020. Two threads: Istio's default proxy concurrency.
 *   - The pod's traffic is redirected to it with nftables NAT in the pod's netns, the rules istio-init writes
 *     with iptables: inbound TCP (prerouting) to 15006 except the statistics port; outbound TCP (output) to 15001
 *     except the proxy's own (uid 1337) and what goes to 127.0.0.1.
 *
 * A request of the client thus goes load generator → client proxy (15001) → server proxy (15006) → nginx, and its
 * answer back the same way: two proxies per request, as between two pods of a mesh.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cgroup } from '../src/ebpf/cgroup.js';
import type { Pod } from '../src/lab/pods.js';
import { waitFor } from '../src/lab/stack/processes.js';
import { PROCESS_NICE } from './http-live-traffic.js';

export const PROXY_UID = 1337;
const OUTBOUND_PORT = 15001;
const INBOUND_PORT = 15006;
const STATS_PORT = 15020;
const TABLE = 'sidecarless_mesh';

export interface Sidecar {
  readonly container: Cgroup;
  /** Lines in its access log: one per request it proxied. */
  accessLogLines(): number;
  /** Requests its outbound and inbound listeners took, from its own statistics. */
  requests(): { outbound: number; inbound: number };
  /** Removes the redirect, then stops the proxy. Safe to call twice. */
  stop(): Promise<void>;
}

function config(): string {
  return `global
  uid ${PROXY_UID}
  gid ${PROXY_UID}
  nbthread 2
  maxconn 4096
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend outbound
  bind :${OUTBOUND_PORT}
  default_backend original_destination
frontend inbound
  bind :${INBOUND_PORT}
  default_backend original_destination
backend original_destination
  server original 0.0.0.0:0
frontend stats
  bind 127.0.0.1:${STATS_PORT}
  option dontlog-normal
  http-request use-service prometheus-exporter
`;
}

/** istio-init's NAT rules, in nftables. */
const redirect = `table ip ${TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport ${STATS_PORT} return
    meta l4proto tcp redirect to :${INBOUND_PORT}
  }
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid ${PROXY_UID} return
    ip daddr 127.0.0.1 return
    meta l4proto tcp redirect to :${OUTBOUND_PORT}
  }
}
`;

const countLines = (file: string) => readFileSync(file, 'utf8').split('\n').length - 1;

/** HAProxy in a new container of `pod`, and the pod's traffic redirected to it; resolves once it proxies. */
export async function startSidecar(pod: Pod): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-sidecar-'));
  const [configFile, accessLog] = [join(dir, 'haproxy.cfg'), join(dir, 'access.log')];
  writeFileSync(configFile, config());
  const log = openSync(accessLog, 'a');
  const container = pod.addContainer();
  let stderr = '';
  // -db: in the foreground, one process. Nice as the two ends of the traffic: the proxy is on the request path.
  const child = pod.spawn('nice', ['-n', String(PROCESS_NICE), 'haproxy', '-db', '-f', configFile], { stdio: ['ignore', log, 'pipe'], container });
  closeSync(log);
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const statistics = () => pod.exec('curl', ['-sf', `http://127.0.0.1:${STATS_PORT}/metrics`], { timeoutMs: 5_000 });
  let redirected = false;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // A pod already removed (the lab's signal handler runs first) took its rules with its netns.
    if (redirected && existsSync(`/run/netns/${pod.netns}`)) pod.exec('nft', ['delete', 'table', 'ip', TABLE]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy in ${pod.name} exited with ${child.exitCode}: ${stderr.trim()}`);
        try {
          return statistics().includes('haproxy_process_');
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `haproxy in ${pod.name}` },
    );
    pod.exec('nft', ['-f', '-'], { input: redirect });
    redirected = true;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    container,
    accessLogLines: () => countLines(accessLog),
    requests() {
      const text = statistics();
      const total = (proxy: string) => Number(new RegExp(`^haproxy_frontend_http_requests_total\\{proxy="${proxy}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
      return { outbound: total('outbound'), inbound: total('inbound') };
    },
    stop,
  };
}
