/**
 * bench/overhead's proxy modes, built from what this machine has. No Envoy build can be had here, so HAProxy
 * (Debian's, 2.6) stands in for it: a userspace L7 proxy doing what a mesh proxy does on every request, HTTP
 * parsing, routing, an access log line, statistics.
 *
 *   - sidecar (startSidecar): a second container in each pod (Pod.addContainer: its own cgroup, so its CPU is its
 *     own) running HAProxy in the pod's netns, as a mesh's sidecar.
 *   - node proxy (startNodeProxy): one HAProxy for the node, in a cgroup of its own below the lab's, with its
 *     listeners and its upstream sockets opened in each pod's netns (HAProxy's `namespace`): the in-pod
 *     redirection of an ambient mesh, whose one proxy per node (ztunnel, here with the waypoint's L7 work done in
 *     the same process) serves every pod. A request between two pods passes it twice, as it passes two sidecars.
 *
 * Either way, per pod: Istio's two listeners, 15001 (outbound: the app's connections leaving the pod) and 15006
 * (inbound: connections arriving at the pod), each forwarding to the connection's original destination
 * (SO_ORIGINAL_DST, what `server 0.0.0.0:0` means to HAProxy), in HTTP mode with keep-alive on both sides, an
 * access log line per request (`option httplog`, to a file), Prometheus statistics on 127.0.0.1:15020 (in the
 * first pod for the node proxy). The proxy runs as uid and gid 1337 (Istio's proxy ids; the node proxy as gid 1337
 * only) with two threads (Istio's default proxy concurrency). The pod's traffic is redirected to it with nftables
 * NAT in the pod's netns, the rules istio-init writes with iptables: inbound TCP (prerouting) to 15006 except the
 * statistics port; outbound TCP (output) to 15001 except the proxy's own (uid or gid 1337) and what goes to
 * 127.0.0.1.
 *
 * A request of the client thus goes load generator → client's outbound listener → server's inbound listener →
 * nginx, and its answer back the same way.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup } from '../src/ebpf/cgroup.js';
import { spawnInCgroup } from '../src/lab/cgroup-spawn.js';
import { labNames } from '../src/lab/names.js';
import type { Pod } from '../src/lab/pods.js';
import { waitFor } from '../src/lab/stack/processes.js';
import { endsPriority } from './http-live-traffic.js';

export const PROXY_UID = 1337;
const OUTBOUND_PORT = 15001;
const INBOUND_PORT = 15006;
const STATS_PORT = 15020;
const TABLE = 'sidecarless_mesh';

export interface MeshProxy {
  readonly cgroup: Cgroup;
  /** Access log lines per listener (`outbound_<pod>`, `inbound_<pod>`): one per request it proxied. */
  accessLogLines(): Record<string, number>;
  /** Requests per listener, from the proxy's own statistics. */
  requests(): Record<string, number>;
  /** Log lines the proxy could not write (its statistics' haproxy_process_dropped_logs_total). */
  droppedLogs(): number;
  /** Removes the redirect, then stops the proxy. Safe to call twice. */
  stop(): Promise<void>;
}

/** The configuration for `pods`; `inNetns`: the proxy runs outside them and opens its sockets in their netns. */
function config(pods: readonly Pod[], inNetns: boolean): string {
  const namespace = (pod: Pod) => (inNetns ? ` namespace ${pod.netns}` : '');
  const perPod = pods.flatMap((pod) => [
    `frontend outbound_${pod.name}`,
    `  bind :${OUTBOUND_PORT}${namespace(pod)}`,
    `  default_backend original_destination_${pod.name}`,
    `frontend inbound_${pod.name}`,
    `  bind :${INBOUND_PORT}${namespace(pod)}`,
    `  default_backend original_destination_${pod.name}`,
    `backend original_destination_${pod.name}`,
    `  server original 0.0.0.0:0${namespace(pod)}`,
  ]);
  return [
    'global',
    // A proxy outside the pods stays uid 0: it enters a pod's netns (setns) for every upstream connection, which
    // needs CAP_SYS_ADMIN. Its gid, which istio-init's rules exclude as well, keeps its own traffic unredirected.
    ...(inNetns ? [] : [`  uid ${PROXY_UID}`]),
    `  gid ${PROXY_UID}`,
    '  nbthread 2',
    '  maxconn 4096',
    '  log stdout format raw local0',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
    ...perPod,
    'frontend stats',
    `  bind 127.0.0.1:${STATS_PORT}${namespace(pods[0]!)}`,
    '  option dontlog-normal',
    '  http-request use-service prometheus-exporter',
    '',
  ].join('\n');
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
    meta skgid ${PROXY_UID} return
    ip daddr 127.0.0.1 return
    meta l4proto tcp redirect to :${OUTBOUND_PORT}
  }
}
`;

/** Listener name → lines: httplog's third field is the frontend. */
function linesByListener(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const listener = line.split(' ')[2];
    if (listener) counts[listener] = (counts[listener] ?? 0) + 1;
  }
  return counts;
}

/**
 * HAProxy serving `pods`, started by `spawn` (with its stdout to the access log), the pods' traffic redirected to
 * it once its statistics answer in `pods[0]`.
 */
async function startHaproxy(pods: readonly Pod[], inNetns: boolean, cgroup: Cgroup, spawn: (args: string[], stdio: StdioOptions) => ChildProcess, release: () => void): Promise<MeshProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-proxy-'));
  const [configFile, accessLog] = [join(dir, 'haproxy.cfg'), join(dir, 'access.log')];
  writeFileSync(configFile, config(pods, inNetns));
  const log = openSync(accessLog, 'a');
  let stderr = '';
  // -db: in the foreground, one process. At the priority of the traffic's two ends: the proxy is on the request path.
  const child = spawn([...endsPriority, 'haproxy', '-db', '-f', configFile], ['ignore', log, 'pipe']);
  closeSync(log);
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const statistics = () => pods[0]!.exec('curl', ['-sf', `http://127.0.0.1:${STATS_PORT}/metrics`], { timeoutMs: 5_000 });
  const redirected: Pod[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // A pod already removed (the lab's signal handler runs first) took its rules with its netns.
    for (const pod of redirected) if (existsSync(`/run/netns/${pod.netns}`)) pod.exec('nft', ['delete', 'table', 'ip', TABLE]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    release();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy for ${pods.map((pod) => pod.name).join(', ')} exited with ${child.exitCode}: ${stderr.trim()}`);
        try {
          return statistics().includes('haproxy_process_');
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `haproxy for ${pods.map((pod) => pod.name).join(', ')}` },
    );
    // The server's pod first when it is last: a redirect takes effect at once, and the client's must find the server's.
    for (const pod of [...pods].reverse()) {
      pod.exec('nft', ['-f', '-'], { input: redirect });
      redirected.push(pod);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    cgroup,
    accessLogLines: () => linesByListener(accessLog),
    requests() {
      const text = statistics();
      return Object.fromEntries(
        pods.flatMap((pod) => [`outbound_${pod.name}`, `inbound_${pod.name}`]).map((listener) => {
          const total = new RegExp(`^haproxy_frontend_http_requests_total\\{proxy="${listener}"\\} (\\d+)$`, 'm').exec(text)?.[1];
          return [listener, Number(total ?? NaN)];
        }),
      );
    },
    droppedLogs: () => Number(/^haproxy_process_dropped_logs_total (\d+)$/m.exec(statistics())?.[1] ?? NaN),
    stop,
  };
}

/** HAProxy in a new container of `pod`, and the pod's traffic redirected to it; resolves once it proxies. */
export function startSidecar(pod: Pod): Promise<MeshProxy> {
  const container = pod.addContainer();
  return startHaproxy([pod], false, container, (args, stdio) => pod.spawn(args[0]!, args.slice(1), { stdio, container }), () => undefined);
}

/**
 * One HAProxy for every pod of `pods` (of one lab), in the lab's cgroup like a node agent's pod (the lab's
 * teardown kills it too), and their traffic redirected to it.
 */
export function startNodeProxy(pods: readonly Pod[]): Promise<MeshProxy> {
  const cgroup = Cgroup.create(join(labNames.cgroupDir(pods[0]!.lab.id), 'node-proxy'));
  return startHaproxy(pods, true, cgroup, (args, stdio) => spawnInCgroup(cgroup, args[0]!, args.slice(1), { stdio }), () => cgroup.remove());
}
