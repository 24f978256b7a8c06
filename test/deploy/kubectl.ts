/**
 * deploy/k8s as the tests see it: kubectl (built by deploy/local/kube/build.sh with the API server, so a fresh
 * machine has it and its kustomize), the overlays built into objects, and the workloads' pod specs and
 * configuration.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject, V1ConfigMap, V1Container, V1PodSpec } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { kubeBinaries } from '../../src/lab/stack/kubernetes.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';

export const deployDir = fileURLToPath(new URL('../../../deploy/k8s/', import.meta.url));
export const OVERLAYS = ['local', 'production'] as const;
export type Overlay = (typeof OVERLAYS)[number];

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the cached kubectl against the stack's API server; never throws on a non-zero exit. */
export async function kubectl(args: readonly string[], input?: string): Promise<Run> {
  const binary = join(await kubeBinaries(), 'kubectl');
  const result = spawnSync(binary, ['--kubeconfig', kubeCredentials.kubeconfigFile, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `kubectl kustomize DIR` as text; throws with kustomize's message when it does not build. */
export async function kustomize(dir: string): Promise<string> {
  const run = await kubectl(['kustomize', dir]);
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (${run.status}): ${run.stderr}`);
  return run.stdout;
}

export type Manifest = KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [field: string]: unknown };

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw document.errors[0];
    return document.toJS() as Manifest;
  });
}

/** A DaemonSet, Deployment or Job: its name, kind and pod spec. */
export interface Workload {
  kind: string;
  name: string;
  pod: V1PodSpec;
}

const WORKLOAD_KINDS = new Set(['DaemonSet', 'Deployment', 'Job']);

export function workloads(manifests: readonly Manifest[]): Workload[] {
  return manifests
    .filter((m) => WORKLOAD_KINDS.has(m.kind))
    .map((m) => ({ kind: m.kind, name: m.metadata.name, pod: (m as unknown as { spec: { template: { spec: V1PodSpec } } }).spec.template.spec }));
}

export function containersOf(pod: V1PodSpec): V1Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

export function configMap(manifests: readonly Manifest[], name: string): V1ConfigMap {
  const found = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === name);
  if (found === undefined) throw new Error(`no ConfigMap ${name} in the build`);
  return found as V1ConfigMap;
}

/**
 * What a role's container is configured with, as src/common/config.ts reads it: the JSON file SIDECARLESS_CONFIG
 * names (from the ConfigMap mounted there) and the environment (literal values, ConfigMaps' data; a field reference
 * and a Secret's key get `fromElsewhere`'s value).
 */
export function roleConfiguration(
  manifests: readonly Manifest[],
  workload: Workload,
  fromElsewhere: (source: 'field' | 'secret', key: string) => string | undefined,
): { file: string; env: Record<string, string> } {
  const container = workload.pod.containers[0]!;
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, configMap(manifests, source.configMapRef.name!).data);
    if (source.secretRef) {
      for (const key of SECRET_KEYS[source.secretRef.name!] ?? []) {
        const value = fromElsewhere('secret', key);
        if (value !== undefined) env[key] = value;
      }
    }
  }
  for (const variable of container.env ?? []) {
    const value = variable.value ?? fromElsewhere('field', variable.valueFrom?.fieldRef?.fieldPath ?? variable.name);
    if (value !== undefined) env[variable.name] = value;
  }
  const path = env.SIDECARLESS_CONFIG;
  if (path === undefined) throw new Error(`${workload.name}: no SIDECARLESS_CONFIG`);
  const mount = container.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  const volume = workload.pod.volumes?.find((v) => v.name === mount?.name);
  const key = path.slice(mount!.mountPath.length + 1);
  const file = volume?.configMap ? configMap(manifests, volume.configMap.name!).data?.[key] : undefined;
  if (file === undefined) throw new Error(`${workload.name}: SIDECARLESS_CONFIG ${path} is not a key of a mounted ConfigMap`);
  return { file, env };
}

/** The keys of the Secrets the operator creates (README, "Deploy to a cluster"), as environment variables. */
export const SECRET_KEYS: Readonly<Record<string, readonly string[]>> = {
  'sidecarless-kafka-credentials': ['SIDECARLESS_KAFKA_SASL_USERNAME', 'SIDECARLESS_KAFKA_SASL_PASSWORD'],
  'sidecarless-clickhouse-credentials': ['SIDECARLESS_CLICKHOUSE_USERNAME', 'SIDECARLESS_CLICKHOUSE_PASSWORD'],
};
