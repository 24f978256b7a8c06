/**
 * Kubernetes objects for integration tests against the local API server (the stack's kubeconfig): plain JSON
 * requests (create, merge-patch, status patch, delete), names that cannot collide with other runs, and a cleanup
 * that deletes whatever a test created, in reverse order, whatever failed. No controller manager runs: owner
 * references cascade nothing, EndpointSlices are written by hand, a deleted namespace stays Terminating.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { KIND_APIS } from '../../src/metadata/watch/kinds.js';
import type { ObjectKind } from '../../src/metadata/watch/translate.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { localKubeApiServerUrl } from '../../src/lab/stack/endpoints.js';

/** A DNS-1123 name unique to this run: prefix, time, random. */
export function kubeName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface KubeObject {
  apiVersion: string;
  kind: ObjectKind;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** A created object: the API server's answer, uid included. */
export type Created = KubeObject & { metadata: { uid: string; resourceVersion: string } };

export class KubeApi {
  /** What to delete at cleanup, by path, in creation order. */
  private readonly created: string[] = [];

  constructor(readonly kubeConfig: KubeConfig) {}

  static fromStack(kubeconfigFile = kubeCredentials.kubeconfigFile): KubeApi {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigFile);
    return new KubeApi(kubeConfig);
  }

  async create(object: KubeObject): Promise<Created> {
    const created = (await this.call('POST', collectionPath(object.kind, object.metadata.namespace), object)) as Created;
    this.created.push(objectPath(created));
    return created;
  }

  /** POST of anything else (RBAC, service accounts) to a collection path; `named` objects are deleted at cleanup. */
  async post(collection: string, body: { metadata?: { name?: string } } & Record<string, unknown>, named = true): Promise<Record<string, unknown>> {
    const created = (await this.call('POST', collection, body)) as Record<string, unknown>;
    if (named) this.created.push(`${collection}/${body.metadata!.name!}`);
    return created;
  }

  /** A JSON merge patch of anything at `path`. */
  async patchPath(path: string, patch: unknown): Promise<void> {
    await this.call('PATCH', path, patch, 'application/merge-patch+json');
  }

  /** The object as the API server has it now. */
  async read(object: Pick<KubeObject, 'kind' | 'metadata'>): Promise<Created> {
    return (await this.call('GET', objectPath(object))) as Created;
  }

  /** A JSON merge patch of the object (or of its status subresource). */
  async patch(object: Pick<KubeObject, 'kind' | 'metadata'>, patch: unknown, subresource?: 'status'): Promise<Created> {
    const path = `${objectPath(object)}${subresource ? `/${subresource}` : ''}`;
    return (await this.call('PATCH', path, patch, 'application/merge-patch+json')) as Created;
  }

  /** Deletes at once (grace 0: no kubelet confirms a pod's end). */
  async delete(object: Pick<KubeObject, 'kind' | 'metadata'>): Promise<void> {
    await this.deletePath(objectPath(object));
  }

  /** Deletes every object this helper created that still exists, newest first. */
  async cleanup(): Promise<void> {
    for (const path of this.created.reverse()) {
      await this.deletePath(path).catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
    }
    this.created.length = 0;
  }

  private async deletePath(path: string): Promise<void> {
    await this.call('DELETE', `${path}?gracePeriodSeconds=0`);
  }

  private async call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const server = this.kubeConfig.getCurrentCluster()!.server;
    const options: Parameters<typeof request>[1] = { method, headers: { 'content-type': contentType, accept: 'application/json' } };
    await this.kubeConfig.applyToHTTPSOptions(options);
    return new Promise((resolve, reject) => {
      const req = request(new URL(server + path), options, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          if (response.statusCode !== undefined && response.statusCode < 300) return resolve(JSON.parse(text));
          reject(Object.assign(new Error(`${method} ${path}: ${response.statusCode} ${text.slice(0, 300)}`), { statusCode: response.statusCode }));
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }
}

function collectionPath(kind: ObjectKind, namespace: string | undefined): string {
  const path = KIND_APIS[kind].path;
  if (namespace === undefined) return path;
  const plural = path.lastIndexOf('/');
  return `${path.slice(0, plural)}/namespaces/${namespace}${path.slice(plural)}`;
}

function objectPath(object: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return `${collectionPath(object.kind, object.metadata.namespace)}/${object.metadata.name}`;
}

/** The controller owner reference to an object. */
export function controlledBy(owner: Created): Array<Record<string, unknown>> {
  return [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true }];
}

const template = (labels: Record<string, string>) => ({ metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } });

/** Manifests of the kinds the tests create, valid for the API server, with only what the tests look at. */
export const manifests = {
  namespace: (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
  deployment: (namespace: string, name: string, labels: Record<string, string>): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels },
    spec: { selector: { matchLabels: labels }, template: template(labels) },
  }),
  replicaSet: (namespace: string, name: string, labels: Record<string, string>, owner: Created): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name, namespace, labels, ownerReferences: controlledBy(owner) },
    spec: { selector: { matchLabels: labels }, template: template(labels) },
  }),
  pod: (namespace: string, name: string, labels: Record<string, string>, options: { owner?: Created; nodeName?: string; port?: number } = {}): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, ...(options.owner && { ownerReferences: controlledBy(options.owner) }) },
    spec: {
      ...(options.nodeName && { nodeName: options.nodeName }),
      containers: [{ name: 'app', image: 'registry.invalid/app:1', ports: [{ name: 'http', containerPort: options.port ?? 8080, protocol: 'TCP' }], env: [{ name: 'SECRET', value: 'never-published' }] }],
    },
  }),
  service: (namespace: string, name: string, selector: Record<string, string>, port: number, targetPort: number | string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector, ports: [{ name: 'http', port, protocol: 'TCP', targetPort }] },
  }),
  endpointSlice: (namespace: string, name: string, service: Created, pods: Array<{ pod: Created; ip: string; ready: boolean }>, port: number): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service.metadata.name }, ownerReferences: controlledBy(service) },
    addressType: 'IPv4',
    endpoints: pods.map(({ pod, ip, ready }) => ({ addresses: [ip], conditions: { ready }, targetRef: { kind: 'Pod', name: pod.metadata.name, namespace, uid: pod.metadata.uid } })),
    ports: [{ name: 'http', port, protocol: 'TCP' }],
  }),
  node: (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels } }),
};

/** What the kubelet would write: Running, the pod's IP, one containerd container. */
export function runningStatus(ip: string, containerId: string) {
  return {
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      containerStatuses: [{ name: 'app', containerID: `containerd://${containerId}`, ready: true, restartCount: 0, image: 'registry.invalid/app:1', imageID: '', started: true, state: { running: {} } }],
    },
  };
}

/**
 * The stack's kubeconfig with another bearer token (a service account's) or another server address (a relay's
 * port), in a temporary file; `remove` deletes it.
 */
export function kubeconfigVariant(change: { token?: string; port?: number }): { path: string; remove(): void } {
  let text = readFileSync(kubeCredentials.kubeconfigFile, 'utf8');
  if (change.token !== undefined) text = text.replace(/token: .*/, `token: ${change.token}`);
  if (change.port !== undefined) text = text.replace(`server: ${localKubeApiServerUrl}`, `server: https://127.0.0.1:${change.port}`);
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-kubeconfig-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, text, { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
