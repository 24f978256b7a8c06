/**
 * Kubernetes objects for integration tests against the local API server (the stack's kubeconfig), through the
 * lab's KubeApi (src/lab/kube/api.ts) and, where the shapes are the ones the tests need, the lab's manifests
 * (src/lab/kube/manifests.ts): what a test creates is remembered and deleted by cleanup(), newest first, whatever
 * failed. Objects come back as the API server sends them (plain JSON). No controller manager runs: owner
 * references cascade nothing, EndpointSlices are written by hand, a deleted namespace stays Terminating.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1Deployment, V1Service } from '@kubernetes/client-node';
import { KubeApi, type ObjectRef } from '../../src/lab/kube/api.js';
import * as lab from '../../src/lab/kube/manifests.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { localKubeApiServerUrl } from '../../src/lab/stack/endpoints.js';

/** A DNS-1123 name unique to this run: prefix, time, random. */
export function kubeName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** What names an object: its apiVersion, kind, namespace and name. */
export interface KubeRef {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
}

/** An object as the API server returned it, uid included. */
export type Created = KubernetesObject & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string; creationTimestamp: string; labels?: Record<string, string> };
  [field: string]: unknown;
};

const refOf = (object: KubeRef): ObjectRef => ({
  apiVersion: object.apiVersion ?? 'v1',
  kind: object.kind ?? '',
  ...(object.metadata?.namespace === undefined ? {} : { namespace: object.metadata.namespace }),
  name: object.metadata?.name ?? '',
});

/** The lab's API client plus what a test created, for cleanup. */
export class KubeObjects {
  /** What to delete at cleanup, in creation order. */
  private readonly created: ObjectRef[] = [];

  constructor(readonly api: KubeApi) {}

  static fromStack(kubeconfigFile = kubeCredentials.kubeconfigFile): KubeObjects {
    return new KubeObjects(KubeApi.connect(kubeconfigFile));
  }

  async create(object: KubernetesObject): Promise<Created> {
    const created = (await this.api.post(await this.api.pathOf(refOf(object), 'create'), object)) as Created;
    this.created.push(refOf(created));
    return created;
  }

  /** POST of anything else (RBAC, service accounts) to a collection path; `named` objects are deleted at cleanup. */
  async post(collection: string, body: KubeRef & Record<string, unknown>, named = true): Promise<Record<string, unknown>> {
    const created = await this.api.post(collection, body);
    if (named) this.created.push(refOf({ ...body, metadata: (created as KubeRef).metadata }));
    return created;
  }

  /** The object as the API server has it now. */
  async read(object: KubeRef): Promise<Created> {
    return (await this.api.readJson(refOf(object))) as Created;
  }

  /** A JSON merge patch of the object (or of its status subresource). */
  async patch(object: KubeRef, patch: unknown, subresource?: 'status'): Promise<Created> {
    return (await this.api.patch(refOf(object), patch, subresource)) as Created;
  }

  /** Deletes at once (grace 0: no kubelet confirms a pod's end). */
  async delete(object: KubeRef): Promise<void> {
    await this.api.delete(refOf(object));
  }

  /** Deletes every object this helper created that still exists, newest first; every failure is reported together. */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (let i = this.created.length - 1; i >= 0; i--) {
      // The lab's delete answers false for an object that is already gone.
      await this.api.delete(this.created[i]!).catch((error: unknown) => errors.push(error));
    }
    this.created.length = 0;
    if (errors.length > 0) throw new AggregateError(errors, `cleanup: ${errors.length} object(s) not deleted`);
  }
}

const template = (labels: Record<string, string>, port?: number) =>
  lab.podTemplate({ labels, ports: port === undefined ? [] : [{ name: 'http', containerPort: port, protocol: 'TCP' }], qos: 'besteffort' });

/** Manifests of the kinds the tests create: the lab's, but for the pod (a secret in its env) and the node (the lab makes none). */
export const manifests = {
  namespace: (name: string, labels: Record<string, string> = {}) => lab.namespaceObject(name, labels),
  deployment: (namespace: string, name: string, labels: Record<string, string>) => lab.deployment(namespace, name, template(labels)),
  /** The ReplicaSet the Deployment controller would make (named `<deployment>-<pod-template-hash>`). */
  replicaSet: (owner: Created) => lab.replicaSet(owner as unknown as V1Deployment),
  pod: (namespace: string, name: string, labels: Record<string, string>, options: { owner?: Created; nodeName?: string; port?: number } = {}) => {
    const podTemplate = template(labels, options.port ?? 8080);
    // What the contract must never publish: an environment variable.
    podTemplate.spec!.containers[0]!.env = [{ name: 'SECRET', value: 'never-published' }];
    const pod = lab.pod({ namespace, name, template: podTemplate, nodeName: options.nodeName ?? '', ...(options.owner && { owner: options.owner }) });
    // Not scheduled: no node.
    if (options.nodeName === undefined) delete pod.spec!.nodeName;
    return pod;
  },
  service: (namespace: string, name: string, selector: Record<string, string>, port: number, targetPort: number | string) =>
    lab.service({ namespace, name, selector, ports: [{ name: 'http', port, targetPort }] }),
  endpointSlice: (name: string, service: Created, pods: Array<{ pod: Created; ip: string; ready: boolean }>, port: number) =>
    lab.endpointSlice(service as unknown as V1Service, name, {
      ports: [{ name: 'http', port, protocol: 'TCP' }],
      endpoints: pods.map(({ pod, ip, ready }) => ({
        addresses: [ip],
        conditions: { ready },
        targetRef: { kind: 'Pod', name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid },
      })),
    }),
  node: (name: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels } }),
};

/** What the kubelet would write (the lab's status): Running, the pod's IP, one containerd container. */
export function runningStatus(ip: string, containerId: string) {
  return { status: lab.runningStatus(ip, containerId, new Date()) };
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
