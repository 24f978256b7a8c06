/**
 * deploy/k8s: each overlay builds with kustomize; what it builds is what docs/ARCHITECTURE.md ("Deploying to a
 * cluster") says (no privileged container, each role's capabilities exactly, probes on the port its configuration
 * serves, requests and limits, the host mounts, RBAC granting list and watch of exactly what the metadata role reads,
 * configuration the roles accept); and the real API server of the local stack accepts every object with strict field
 * validation (server-side dry run), refuses an unknown field, and, applied for real, grants the service accounts
 * what the RBAC objects say and nothing more.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { COLLECTOR_NODE_FLAGS } from '../../src/collector/node-flags.js';
import { loadConfig } from '../../src/common/config.js';
import { KIND_APIS } from '../../src/metadata/watch/kinds.js';
import { NETWORK_POLICIES_PATH } from '../../src/metadata/watch/policy-watch.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { kubeconfigVariant, kubeName, KubeObjects } from '../helpers/kube.js';
import { deleteMetadataTopic, metadataConfig, startRole, synced, type StartedRole } from '../helpers/metadata-role.js';
import { containersOf, deployDir, kubectl, kustomize, OVERLAYS, parseManifests, roleConfiguration, workloads, type Manifest, type Overlay } from './kubectl.js';

/** Each workload's capabilities (added; every container drops ALL), as the deployment section documents them. */
const CAPABILITIES: Readonly<Record<string, readonly string[]>> = {
  'sidecarless-collector': ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_NICE'],
  'sidecarless-enforcer': ['BPF', 'NET_ADMIN'],
  'sidecarless-metadata': [],
  'sidecarless-enricher': [],
  'sidecarless-init': [],
};

/** The host directories each workload mounts (at the same path: the code uses the kernel's usual paths). */
const HOST_PATHS: Readonly<Record<string, readonly string[]>> = {
  'sidecarless-collector': ['/sys/fs/bpf', '/sys/kernel/btf', '/sys/fs/cgroup'],
  'sidecarless-enforcer': ['/sys/fs/bpf', '/sys/kernel/btf', '/sys/fs/cgroup'],
  'sidecarless-metadata': [],
  'sidecarless-enricher': [],
  'sidecarless-init': [],
};

/** The roles that write ClickHouse (the enricher stores rows, init migrates). */
const WRITES_CLICKHOUSE = ['sidecarless-enricher', 'sidecarless-init'];

/** The long-running roles: probes, a metrics port. The init Job runs once and exits. */
const LONG_RUNNING = ['sidecarless-collector', 'sidecarless-enforcer', 'sidecarless-metadata', 'sidecarless-enricher'];

/** `group/resource` of an API path the metadata role lists and watches: /api/v1/pods → pods, /apis/apps/v1/x → apps/x. */
function groupResource(path: string): string {
  const core = /^\/api\/v1\/([a-z]+)$/.exec(path);
  if (core) return core[1]!;
  const named = /^\/apis\/([a-z0-9.]+)\/[a-z0-9]+\/([a-z]+)$/.exec(path);
  if (!named) throw new Error(`unexpected API path ${path}`);
  return `${named[1]}/${named[2]}`;
}

/** Everything sidecarless metadata reads from the API server (kinds.ts and the NetworkPolicy watch). */
const READ_BY_METADATA = [...Object.values(KIND_APIS).map((api) => groupResource(api.path)), groupResource(NETWORK_POLICIES_PATH)].sort();

const builds = new Map<Overlay, Manifest[]>();

before(async () => {
  for (const overlay of OVERLAYS) builds.set(overlay, parseManifests(await kustomize(join(deployDir, 'overlays', overlay))));
});

for (const overlay of OVERLAYS) {
  describe(`deploy/k8s/overlays/${overlay}, as built`, () => {
    const built = () => builds.get(overlay)!;

    it('has the five workloads of the deployment section, in the sidecarless namespace', () => {
      const names = workloads(built()).map((w) => `${w.kind}/${w.name}`).sort();
      assert.deepEqual(names, [
        'DaemonSet/sidecarless-collector',
        'DaemonSet/sidecarless-enforcer',
        'Deployment/sidecarless-enricher',
        'Deployment/sidecarless-metadata',
        'Job/sidecarless-init',
      ]);
      const namespaced = built().filter((m) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PriorityClass'].includes(m.kind));
      assert.deepEqual([...new Set(namespaced.map((m) => m.metadata.namespace))], ['sidecarless']);
    });

    it('runs no container privileged, and each with exactly its documented capabilities', () => {
      for (const { name, pod } of workloads(built())) {
        assert.equal(pod.hostPID ?? false, false, `${name}: hostPID`);
        for (const container of containersOf(pod)) {
          const security = container.securityContext ?? {};
          assert.notEqual(security.privileged, true, `${name}/${container.name} is privileged`);
          assert.equal(security.allowPrivilegeEscalation, false, `${name}/${container.name}: allowPrivilegeEscalation`);
          assert.deepEqual(security.capabilities?.drop, ['ALL'], `${name}/${container.name}: drops every capability first`);
          assert.deepEqual(security.capabilities?.add ?? [], CAPABILITIES[name], `${name}/${container.name}: added capabilities`);
          const nonRoot = CAPABILITIES[name]!.length === 0;
          assert.equal(security.runAsUser ?? pod.securityContext?.runAsUser, nonRoot ? 65532 : 0, `${name}: user`);
          assert.equal(security.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, nonRoot, `${name}: runAsNonRoot`);
        }
      }
    });

    it('mounts the host directories each role needs and no others', () => {
      for (const { name, pod } of workloads(built())) {
        const hostPaths = (pod.volumes ?? []).filter((v) => v.hostPath).map((v) => v.hostPath!.path);
        assert.deepEqual(hostPaths, HOST_PATHS[name], `${name}: hostPath volumes`);
        const mounts = pod.containers[0]!.volumeMounts ?? [];
        for (const volume of (pod.volumes ?? []).filter((v) => v.hostPath)) {
          assert.equal(mounts.find((m) => m.name === volume.name)?.mountPath, volume.hostPath!.path, `${name}: ${volume.name} mounted where the code looks`);
        }
      }
    });

    it('gives every container requests and limits of CPU and memory, and every long-running role probes on its metrics port', () => {
      for (const { name, pod } of workloads(built())) {
        for (const container of containersOf(pod)) {
          for (const bound of ['requests', 'limits'] as const) {
            assert.deepEqual(Object.keys(container.resources?.[bound] ?? {}).sort(), ['cpu', 'memory'], `${name}/${container.name}: ${bound}`);
          }
        }
        const container = pod.containers[0]!;
        if (!LONG_RUNNING.includes(name)) {
          assert.equal(container.livenessProbe, undefined, `${name} runs once: no probe`);
          continue;
        }
        assert.deepEqual(container.livenessProbe?.httpGet, { path: '/metrics', port: 'metrics' }, `${name}: liveness`);
        assert.deepEqual(container.readinessProbe?.httpGet, { path: '/healthz', port: 'metrics' }, `${name}: readiness`);
      }
    });

    it('configures every role with settings it accepts, serving /healthz on the probed port of every address', () => {
      const elsewhere = (source: 'field' | 'secret', key: string) => (source === 'field' ? { 'spec.nodeName': 'node-1' }[key] : `${key.toLowerCase()}-value`);
      const scratch = mkdtempSync(join(tmpdir(), 'sidecarless-deploy-config-'));
      try {
        for (const workload of workloads(built())) {
          const { file, env } = roleConfiguration(built(), workload, elsewhere);
          const path = join(scratch, `${workload.name}.json`);
          writeFileSync(path, file);
          const config = loadConfig({ file: path, env, argv: [] });
          const port = workload.pod.containers[0]!.ports?.find((p) => p.name === 'metrics')?.containerPort;
          if (LONG_RUNNING.includes(workload.name)) {
            assert.equal(config.telemetry.metricsPort, port, `${workload.name}: the probed port is the one it serves`);
            assert.equal(config.telemetry.host, '0.0.0.0', `${workload.name}: reachable by the kubelet`);
          }
          if (workload.kind === 'DaemonSet') assert.equal(config.node.name, 'node-1', `${workload.name}: node name from the downward API`);
          const writesClickHouse = WRITES_CLICKHOUSE.includes(workload.name);
          const clickhouseVariables = Object.keys(env).filter((name) => name.startsWith('SIDECARLESS_CLICKHOUSE_'));
          assert.equal(clickhouseVariables.length > 0, writesClickHouse, `${workload.name}: ClickHouse settings and credentials only where ClickHouse is written`);
          if (writesClickHouse) {
            const mounts = workload.pod.containers[0]!.volumeMounts ?? [];
            const under = (path: string | undefined) => mounts.find((m) => path !== undefined && path.startsWith(`${m.mountPath}/`));
            if (overlay === 'local') {
              const data = under(config.clickhouse.embeddedPath);
              assert.ok(data && workload.pod.volumes?.find((v) => v.name === data.name)?.emptyDir && !data.readOnly, `${workload.name}: embedded engine on a writable volume`);
            } else {
              assert.match(config.clickhouse.url ?? '', /^https:\/\//, `${workload.name}: ClickHouse over TLS`);
              assert.equal(config.clickhouse.password, 'sidecarless_clickhouse_password-value', `${workload.name}: ClickHouse password from the Secret`);
              assert.equal(under(config.clickhouse.tls.caPath)?.mountPath, '/etc/sidecarless-tls/clickhouse', `${workload.name}: ClickHouse CA where its Secret is mounted`);
            }
          }
          if (overlay === 'production') {
            assert.equal(config.kafka.tls.enabled, true, `${workload.name}: Kafka over TLS`);
            assert.equal(config.kafka.sasl.password, 'sidecarless_kafka_sasl_password-value', `${workload.name}: Kafka password from the Secret`);
            const mounted = (config.kafka.tls.caPath ?? '').startsWith('/etc/sidecarless-tls/kafka/');
            assert.ok(mounted && workload.pod.containers[0]!.volumeMounts?.some((m) => m.mountPath === '/etc/sidecarless-tls/kafka'), `${workload.name}: Kafka CA where its Secret is mounted`);
          }
        }
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    });

    it('starts the collector with its Node flags, gives both DaemonSets the node agents\' priority, and rolls them one pod at a time, old before new', () => {
      const collector = workloads(built()).find((w) => w.name === 'sidecarless-collector')!;
      assert.deepEqual(collector.pod.containers[0]!.command, ['node', ...COLLECTOR_NODE_FLAGS, '/app/bin/sidecarless.js', 'collector']);
      for (const daemonSet of built().filter((m) => m.kind === 'DaemonSet')) {
        const strategy = (daemonSet as unknown as { spec: { updateStrategy: unknown } }).spec.updateStrategy;
        assert.deepEqual(strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }, daemonSet.metadata.name);
      }
      const priorityClasses = built().filter((m) => m.kind === 'PriorityClass').map((m) => m.metadata.name);
      assert.deepEqual(priorityClasses, ['sidecarless-node-agent']);
      for (const { kind, name, pod } of workloads(built())) {
        assert.equal(pod.priorityClassName, kind === 'DaemonSet' ? priorityClasses[0] : undefined, `${name}: priority class`);
      }
    });

    it('grants list and watch of exactly what the metadata role reads, to the metadata role only', () => {
      const roles = built().filter((m) => m.kind === 'ClusterRole' || m.kind === 'Role');
      assert.deepEqual(roles.map((r) => r.metadata.name), ['sidecarless-metadata']);
      const rules = (roles[0] as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }).rules;
      const granted = rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.map((resource) => (group === '' ? resource : `${group}/${resource}`))));
      assert.deepEqual(granted.sort(), READ_BY_METADATA);
      for (const rule of rules) assert.deepEqual(rule.verbs, ['list', 'watch']);
      const bindings = built().filter((m) => m.kind === 'ClusterRoleBinding' || m.kind === 'RoleBinding');
      assert.deepEqual(
        bindings.map((b) => (b as unknown as { subjects: unknown }).subjects),
        [[{ kind: 'ServiceAccount', name: 'sidecarless-metadata', namespace: 'sidecarless' }]],
      );
      for (const { name, pod } of workloads(built())) {
        assert.equal(pod.serviceAccountName, name, `${name}: its own service account`);
        assert.equal(pod.automountServiceAccountToken ?? true, name === 'sidecarless-metadata', `${name}: API token mounted only where the API is used`);
      }
    });
  });
}

describe('deploy/k8s on the local stack\'s API server', () => {
  const kube = KubeObjects.fromStack();
  const scratch = mkdtempSync(join(tmpdir(), 'sidecarless-deploy-'));
  const namespaces: string[] = [];
  /** What was applied for real (its ClusterRole and ClusterRoleBinding outlive its namespace). */
  const applied: string[] = [];
  after(() =>
    cleanUpAll([
      // Background: a Job is otherwise orphaning, a finalizer only the garbage collector (not running) removes.
      ['applied objects', () => Promise.all(applied.map((text) => kubectl(['delete', '--ignore-not-found', '--cascade=background', '--wait=false', '-f', '-'], text)))],
      ['namespaces', () => kube.cleanup()],
      // No namespace controller runs: emptied, they would stay Terminating.
      ['namespace finalizers', () => Promise.all(namespaces.map((name) => kube.api.finalizeNamespace(name)))],
      ['scratch kustomizations', () => rmSync(scratch, { recursive: true, force: true })],
    ]),
  );

  /**
   * The overlay under a fresh namespace and name prefix (the stack is shared), built; the namespace is created for
   * real (admission refuses objects in a namespace that does not exist, even in a dry run).
   */
  async function isolated(overlay: Overlay): Promise<{ namespace: string; prefix: string; text: string }> {
    const namespace = kubeName('sl-deploy');
    const prefix = `${namespace}-`;
    const dir = mkdtempSync(join(scratch, `${overlay}-`));
    // The ClusterRoleBinding's subject keeps the namespace it names (kustomize changes only subjects in "default").
    const subject = [{ op: 'replace', path: '/subjects/0/namespace', value: namespace }];
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      stringify({
        resources: [relative(dir, join(deployDir, 'overlays', overlay))],
        namespace,
        namePrefix: prefix,
        patches: [{ target: { kind: 'ClusterRoleBinding' }, patch: JSON.stringify(subject) }],
      }),
    );
    const text = await kustomize(dir);
    const created = parseManifests(text).find((m) => m.kind === 'Namespace')!.metadata.name;
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: created } });
    namespaces.push(created);
    return { namespace: created, prefix, text };
  }

  const apply = (text: string, ...flags: string[]) =>
    kubectl(['apply', '--server-side', '--validate=strict', '--field-manager=sidecarless-test', ...flags, '-f', '-'], text);

  for (const overlay of OVERLAYS) {
    it(`accepts every object of ${overlay} with strict field validation (server-side dry run)`, async () => {
      const { text } = await isolated(overlay);
      const run = await apply(text, '--dry-run=server');
      assert.equal(run.status, 0, run.stderr);
      const objects = parseManifests(text).length;
      const accepted = run.stdout.split('\n').filter((line) => / serverside-applied \(server dry run\)$/.test(line));
      assert.equal(accepted.length, objects, run.stdout);
    });
  }

  it('refuses a manifest with an unknown field, naming it', async () => {
    const { text } = await isolated('local');
    const manifests = parseManifests(text);
    const collector = manifests.find((m) => m.kind === 'DaemonSet' && m.metadata.name.endsWith('sidecarless-collector'))!;
    (collector as unknown as { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } }).spec.template.spec.containers[0]!.privilegedMode = true;
    const run = await apply(manifests.map((m) => stringify(m)).join('---\n'), '--dry-run=server');
    assert.notEqual(run.status, 0, run.stdout);
    assert.match(run.stderr, /\.spec\.template\.spec\.containers\[name="sidecarless"\]\.privilegedMode: field not declared in schema/);
  });

  /** The local overlay applied for real, once for the tests that need its service accounts and RBAC. */
  let appliedOnce: Promise<{ namespace: string; prefix: string }> | undefined;
  const appliedForReal = () =>
    (appliedOnce ??= (async () => {
      const { namespace, prefix, text } = await isolated('local');
      applied.push(text);
      const run = await apply(text);
      assert.equal(run.status, 0, run.stderr);
      return { namespace, prefix };
    })());

  it('applied for real, lets the metadata role list and watch what it reads and nothing else, and the other roles nothing', async () => {
    const { namespace, prefix } = await appliedForReal();
    const can = async (account: string, verb: string, resource: string) => {
      const answer = await kubectl(['auth', 'can-i', verb, resource, '--all-namespaces', `--as=system:serviceaccount:${namespace}:${prefix}${account}`]);
      assert.ok(answer.status === 0 || answer.stdout.trim() === 'no', `can-i ${verb} ${resource} as ${account}: ${answer.stderr}`);
      return answer.stdout.trim() === 'yes';
    };
    // kubectl's resource.group form: pods, endpointslices.discovery.k8s.io
    const asKubectl = (groupResourceName: string) => groupResourceName.split('/').reverse().join('.');
    for (const resource of READ_BY_METADATA) {
      for (const verb of ['list', 'watch']) assert.equal(await can('sidecarless-metadata', verb, asKubectl(resource)), true, `metadata may ${verb} ${resource}`);
      for (const verb of ['get', 'create', 'update', 'delete']) assert.equal(await can('sidecarless-metadata', verb, asKubectl(resource)), false, `metadata may not ${verb} ${resource}`);
    }
    for (const resource of ['secrets', 'configmaps', 'serviceaccounts']) assert.equal(await can('sidecarless-metadata', 'list', resource), false, `metadata may not list ${resource}`);
    for (const account of ['sidecarless-collector', 'sidecarless-enforcer', 'sidecarless-enricher', 'sidecarless-init']) {
      assert.equal(await can(account, 'list', 'pods'), false, `${account} may not list pods`);
    }
  });

  it('applied for real, is enough for the metadata role: with its service account\'s token every informer and the NetworkPolicy watch run', async () => {
    const { namespace, prefix } = await appliedForReal();
    const token = await kube.post(
      `/api/v1/namespaces/${namespace}/serviceaccounts/${prefix}sidecarless-metadata/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
      false,
    );
    const kubeconfig = kubeconfigVariant({ token: (token.status as { token: string }).token });
    const config = metadataConfig({ SIDECARLESS_METADATA_KUBECONFIG: kubeconfig.path });
    let started: StartedRole | undefined;
    try {
      started = await startRole(config);
      await synced(started);
      const checks = Object.entries(started.telemetry.health().checks).map(([name, check]) => [name, check.ok]);
      assert.deepEqual(Object.fromEntries(checks), { network_policies: true, source: true, kafka_queue: true });
    } finally {
      await cleanUpAll([
        ['metadata role', () => started?.stop()],
        ['topics', () => deleteMetadataTopic(config)],
        ['kubeconfig', () => kubeconfig.remove()],
      ]);
    }
  });
});
