/**
 * grafana/kustomization.yaml: the Grafana provisioning files and dashboards of grafana/ as ConfigMaps, every file
 * byte for byte (a file the kustomization does not list fails, named), accepted by the stack's API server with strict
 * field validation (server-side dry run; a ConfigMap over the API's 1 MiB would be refused there).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { cleanUpAll } from '../helpers/cleanup.js';
import { kubeName, KubeObjects } from '../helpers/kube.js';
import { kubectl, kustomize, parseManifests, type Manifest } from './kubectl.js';

const grafanaDir = fileURLToPath(new URL('../../../grafana/', import.meta.url));

/** Which ConfigMap carries the files of which directory of grafana/. */
const CONFIG_MAPS = {
  'sidecarless-grafana-datasources': { dir: 'provisioning/datasources', extension: '.yaml' },
  'sidecarless-grafana-dashboard-providers': { dir: 'provisioning/dashboards', extension: '.yaml' },
  'sidecarless-grafana-dashboards': { dir: 'dashboards', extension: '.json' },
} as const;

describe('grafana/ as ConfigMaps', () => {
  let built: Manifest[] = [];
  const kube = KubeObjects.fromStack();
  let namespace: string | undefined;
  // No namespace controller runs: emptied, the namespace would stay Terminating.
  after(() => cleanUpAll([['namespace', () => kube.cleanup()], ['namespace finalizer', () => namespace !== undefined && kube.api.finalizeNamespace(namespace)]]));
  before(async () => {
    built = parseManifests(await kustomize(grafanaDir));
  });

  it('carries every provisioning file and dashboard of grafana/, unchanged', () => {
    assert.deepEqual(built.map((m) => `${m.kind}/${m.metadata.name}`).sort(), Object.keys(CONFIG_MAPS).map((name) => `ConfigMap/${name}`).sort());
    for (const [name, { dir, extension }] of Object.entries(CONFIG_MAPS)) {
      const files = readdirSync(join(grafanaDir, dir)).filter((file) => file.endsWith(extension)).sort();
      assert.ok(files.length > 0, `grafana/${dir} has files`);
      const data = (built.find((m) => m.metadata.name === name) as V1ConfigMap).data ?? {};
      assert.deepEqual(Object.keys(data).sort(), files, `${name}: grafana/${dir}/*${extension} (list a new file in grafana/kustomization.yaml)`);
      for (const file of files) assert.equal(data[file], readFileSync(join(grafanaDir, dir, file), 'utf8'), `${name}: ${file} byte for byte`);
    }
  });

  it('is accepted by the API server with strict field validation', async () => {
    namespace = kubeName('sl-grafana');
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    const text = built.map((m) => stringify({ ...m, metadata: { ...m.metadata, namespace: namespace! } })).join('---\n');
    const run = await kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=sidecarless-test', '-f', '-'], text);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.split('\n').filter((line) => / serverside-applied \(server dry run\)$/.test(line)).length, built.length, run.stdout);
  });
});
