/**
 * The local Kubernetes control plane: etcd and a real kube-apiserver, built from Go modules by
 * deploy/local/kube/build.sh (cached outside the work tree) and run as plain processes on loopback. No controller
 * manager, scheduler or kubelet runs: the lab writes what they would (pod status, EndpointSlices).
 *
 * 1. Build or find the binaries (build.sh prints their directory; a cached build answers at once).
 * 2. Credentials and kubeconfig (kube-credentials.ts).
 * 3. etcd, ready when /health answers; then the API server, ready when /readyz answers with the admin token.
 * One stack service for both, because the API server cannot start without its etcd; `down` stops the API server
 * first so that its watches end before their store goes.
 *
 * Flags and why (measured, see PLATFORM.md): `--endpoint-reconciler-type=none` (else a loopback warning every
 * 10 s), `--disable-admission-plugins=ServiceAccount` (no controller creates the `default` account, so pods would
 * be refused), `--shutdown-send-retry-after=true` (else SIGTERM with open watches takes a minute), RBAC with a
 * static admin token in system:masters (so least-privilege accounts can be tried against the same server).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SidecarlessError } from '../../common/errors.js';
import { etcdClientPort, etcdPeerPort, kubeApiServerPort, localEtcdUrl, localHost, localKubeApiServerUrl } from './endpoints.js';
import { adminToken, ensureKubeCredentials, kubeCredentials, kubeHome } from './kube-credentials.js';
import { displayPath, ensurePortsFree, logFile, runningPid, spawnDetached, stopProcess, waitFor } from './processes.js';
import type { ServiceStatus, StackService } from './service.js';

const buildScript = fileURLToPath(new URL('../../../../deploy/local/kube/build.sh', import.meta.url));
const etcdData = join(kubeHome, 'etcd-data');
const readyTimeoutMs = 60_000;
const stopGraceMs = 20_000;

/** The directory holding `etcd` and `kube-apiserver`, building them first when the cache lacks them (minutes). */
export function kubeBinaries(): string {
  try {
    return execFileSync('bash', [buildScript], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch (error) {
    throw new SidecarlessError(`could not build kube-apiserver and etcd with ${displayPath(buildScript)}`, { context: { component: 'kubernetes' }, cause: error });
  }
}

// The data directory is the marker: it names this checkout's stack.
const etcd = { name: 'etcd', marker: etcdData };
const apiServer = { name: 'kube-apiserver', marker: kubeCredentials.tokenFile };

function etcdArgs(): string[] {
  return [
    `--data-dir=${etcdData}`,
    '--name=sidecarless-local',
    `--listen-client-urls=${localEtcdUrl}`,
    `--advertise-client-urls=${localEtcdUrl}`,
    `--listen-peer-urls=http://${localHost}:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://${localHost}:${etcdPeerPort}`,
    `--initial-cluster=sidecarless-local=http://${localHost}:${etcdPeerPort}`,
    '--log-level=warn',
  ];
}

function apiServerArgs(): string[] {
  const c = kubeCredentials;
  return [
    `--etcd-servers=${localEtcdUrl}`,
    `--bind-address=${localHost}`,
    `--advertise-address=${localHost}`,
    `--secure-port=${kubeApiServerPort}`,
    `--tls-cert-file=${c.certFile}`,
    `--tls-private-key-file=${c.keyFile}`,
    `--token-auth-file=${c.tokenFile}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${c.serviceAccountPublicKeyFile}`,
    `--service-account-signing-key-file=${c.serviceAccountPrivateKeyFile}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--endpoint-reconciler-type=none',
    '--disable-admission-plugins=ServiceAccount',
    '--shutdown-send-retry-after=true',
    '--profiling=false',
  ];
}

/** GET on the API server with the admin token; resolves to the HTTP status (0 when unreachable). */
export function apiServerGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      `${localKubeApiServerUrl}${path}`,
      { ca: readFileSync(kubeCredentials.certFile), headers: { authorization: `Bearer ${adminToken()}` }, timeout: 2000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

async function etcdHealthy(): Promise<boolean> {
  try {
    const response = await fetch(`${localEtcdUrl}/health`, { signal: AbortSignal.timeout(2000) });
    return response.ok && (JSON.parse(await response.text()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

async function start(process: { name: string; marker: string }, launch: () => void, ready: () => Promise<boolean>, what: string): Promise<void> {
  if (runningPid(process.name, process.marker) === undefined) launch();
  try {
    await waitFor(
      async () => {
        if (runningPid(process.name, process.marker) === undefined) throw new Error(`the ${process.name} process exited during start-up`);
        return ready();
      },
      { timeoutMs: readyTimeoutMs, what },
    );
  } catch (error) {
    await stopProcess(process.name, process.marker, stopGraceMs);
    throw new SidecarlessError(`${(error as Error).message}; see ${displayPath(logFile(process.name))}`, { context: { component: process.name }, cause: error });
  }
}

export const kubernetesServer: StackService = {
  name: 'kubernetes',

  async up() {
    const etcdRunning = runningPid(etcd.name, etcd.marker) !== undefined;
    const apiRunning = runningPid(apiServer.name, apiServer.marker) !== undefined;
    if (!etcdRunning) await ensurePortsFree(etcd.name, localHost, { SIDECARLESS_STACK_ETCD_PORT: etcdClientPort, SIDECARLESS_STACK_ETCD_PEER_PORT: etcdPeerPort });
    if (!apiRunning) await ensurePortsFree(apiServer.name, localHost, { SIDECARLESS_STACK_KUBE_APISERVER_PORT: kubeApiServerPort });
    const binaries = etcdRunning && apiRunning ? '' : kubeBinaries();
    ensureKubeCredentials();
    mkdirSync(etcdData, { recursive: true, mode: 0o700 });
    await start(
      etcd,
      () => spawnDetached({ ...etcd, command: join(binaries, 'etcd'), args: etcdArgs(), cwd: kubeHome }),
      etcdHealthy,
      `etcd at ${localEtcdUrl} to report health`,
    );
    await start(
      apiServer,
      () => spawnDetached({ ...apiServer, command: join(binaries, 'kube-apiserver'), args: apiServerArgs(), cwd: kubeHome }),
      async () => (await apiServerGet('/readyz')).status === 200,
      `kube-apiserver at ${localKubeApiServerUrl} to answer /readyz`,
    );
  },

  async down() {
    await stopProcess(apiServer.name, apiServer.marker, stopGraceMs);
    await stopProcess(etcd.name, etcd.marker, stopGraceMs);
  },

  async status(): Promise<ServiceStatus> {
    const pid = runningPid(apiServer.name, apiServer.marker);
    const endpoint = `${localKubeApiServerUrl} (kubeconfig ${displayPath(kubeCredentials.kubeconfigFile)})`;
    const running = pid !== undefined && runningPid(etcd.name, etcd.marker) !== undefined;
    return running ? { running, pid, endpoint } : { running: false, endpoint };
  },
};
