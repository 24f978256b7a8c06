/**
 * The few API server calls the lab makes, through @kubernetes/client-node, with errors that name the object and
 * carry the server's own message. Typed calls for the lab's own objects; plain JSON calls (post, patch, readJson)
 * for anything else and for callers that need objects exactly as the server sends them (times as text).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  setHeaderOptions,
  type KubernetesObject,
  type V1Pod,
  type V1PodStatus,
} from '@kubernetes/client-node';
import { SidecarlessError } from '../../common/errors.js';

/** What names one object: enough to read or delete it. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace === undefined ? '' : `${ref.namespace}/`}${ref.name}`;
}

function refOf(object: KubernetesObject): ObjectRef {
  return { apiVersion: object.apiVersion ?? '', kind: object.kind ?? '', namespace: object.metadata?.namespace, name: object.metadata?.name ?? '' };
}

function header(ref: ObjectRef): KubernetesObject & { metadata: { name: string } } {
  return { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }) } };
}

/** The `message` of the Status object the server answered with, else the body as it came. */
function statusMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    return body;
  }
}

function serverMessage(error: ApiException<unknown>): string {
  return statusMessage(typeof error.body === 'string' ? error.body : JSON.stringify(error.body));
}

/** The object client, which also tells an object's API path (the kind's resource found by discovery, cached). */
class ObjectClient extends KubernetesObjectApi {
  static make(config: KubeConfig): ObjectClient {
    const client = config.makeApiClient(ObjectClient);
    client.setDefaultNamespace(config);
    return client;
  }

  pathOf(ref: ObjectRef, action: 'create' | 'read'): Promise<string> {
    return this.specUriPath(header(ref), action);
  }
}

export class KubeApi {
  private constructor(
    /** The kubeconfig file the lab records with its objects, so that teardown reaches the same server. */
    readonly kubeconfig: string,
    readonly server: string,
    private readonly config: KubeConfig,
    private readonly objects: ObjectClient,
    private readonly core: CoreV1Api,
    private readonly version: VersionApi,
  ) {}

  static connect(kubeconfig: string): KubeApi {
    const config = new KubeConfig();
    try {
      config.loadFromFile(kubeconfig);
    } catch (error) {
      throw new SidecarlessError(`lab: cannot read the kubeconfig ${kubeconfig}: ${(error as Error).message}`, { context: { component: 'lab' }, cause: error });
    }
    const server = config.getCurrentCluster()?.server ?? '(no current cluster)';
    return new KubeApi(kubeconfig, server, config, ObjectClient.make(config), config.makeApiClient(CoreV1Api), config.makeApiClient(VersionApi));
  }

  /** Resolves when the server answers; otherwise says how to start one. */
  async ready(): Promise<void> {
    try {
      await this.version.getCode();
    } catch (error) {
      throw new SidecarlessError(
        `lab: the Kubernetes API server ${this.server} (kubeconfig ${this.kubeconfig}) does not answer: ${(error as Error).message}; ` +
          'start the local stack (`node bin/sidecarless.js stack up`) or give the kubeconfig of a running one',
        { context: { component: 'lab' }, cause: error },
      );
    }
  }

  private failure(action: string, ref: ObjectRef, error: unknown): SidecarlessError {
    const detail = error instanceof ApiException ? `${serverMessage(error)} (HTTP ${error.code})` : (error as Error).message;
    return new SidecarlessError(`lab: ${action} ${describeRef(ref)} on ${this.server}: ${detail}`, { context: { component: 'lab' }, cause: error });
  }

  async create<T extends KubernetesObject>(object: T): Promise<T> {
    try {
      return await this.objects.create(object);
    } catch (error) {
      throw this.failure('create', refOf(object), error);
    }
  }

  /** An unconditional update: the lab is the only writer of its objects. */
  async replace<T extends KubernetesObject>(object: T): Promise<T> {
    try {
      return await this.objects.replace(object);
    } catch (error) {
      throw this.failure('replace', refOf(object), error);
    }
  }

  async read<T extends KubernetesObject>(ref: ObjectRef): Promise<T> {
    try {
      return (await this.objects.read(header(ref))) as T;
    } catch (error) {
      throw this.failure('read', ref, error);
    }
  }

  /** A merge patch of the status subresource, as the kubelet writes it. */
  async patchPodStatus(namespace: string, name: string, status: V1PodStatus): Promise<V1Pod> {
    try {
      return await this.core.patchNamespacedPodStatus({ namespace, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    } catch (error) {
      throw this.failure('patch the status of', { apiVersion: 'v1', kind: 'Pod', namespace, name }, error);
    }
  }

  /** The collection path an object is created in ('create'), or its own path ('read'). */
  async pathOf(ref: ObjectRef, action: 'create' | 'read'): Promise<string> {
    try {
      return await this.objects.pathOf(ref, action);
    } catch (error) {
      throw this.failure('find the API path of', ref, error);
    }
  }

  /** A POST of `body` to an API path; the answer as plain JSON. */
  async post(path: string, body: unknown): Promise<Record<string, unknown>> {
    return this.json('POST', path, body);
  }

  /** A JSON merge patch of the object, or of its `subresource` (status); the answer as plain JSON. */
  async patch(ref: ObjectRef, patch: unknown, subresource?: 'status'): Promise<Record<string, unknown>> {
    return this.json('PATCH', `${await this.pathOf(ref, 'read')}${subresource === undefined ? '' : `/${subresource}`}`, patch, 'application/merge-patch+json');
  }

  /** The object as the server sends it (plain JSON: times as text, managedFields and annotations included). */
  async readJson(ref: ObjectRef): Promise<Record<string, unknown>> {
    return this.json('GET', await this.pathOf(ref, 'read'));
  }

  /**
   * Removes a namespace that a deletion left Terminating: the namespace controller, which would empty it and then
   * drop its `kubernetes` finalizer, does not run here. The lab deletes the contents itself, then this drops the
   * finalizer (the `finalize` subresource), and the namespace goes. False when it was not there.
   */
  async finalizeNamespace(name: string): Promise<boolean> {
    try {
      const namespace = await this.core.readNamespace({ name });
      await this.core.replaceNamespaceFinalize({ name, body: { ...namespace, spec: { finalizers: [] } } });
      return true;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return false;
      throw this.failure('finalize', { apiVersion: 'v1', kind: 'Namespace', name }, error);
    }
  }

  /**
   * Deletes at once; false when the object was not there. Grace period 0 (a pod bound to a node is otherwise
   * only marked, waiting for a kubelet that does not run) and background propagation (batch/v1 defaults to
   * orphaning, which adds a finalizer only the garbage collector, not running either, would remove).
   */
  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await this.objects.delete(header(ref), undefined, undefined, 0, undefined, 'Background');
      return true;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return false;
      throw this.failure('delete', ref, error);
    }
  }

  /** One request with a JSON body and answer; an answer other than 2xx is an error with the server's message. */
  private async json(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Record<string, unknown>> {
    const url = new URL(this.server + path);
    const options: RequestOptions = { method, headers: { 'content-type': contentType, accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(options);
    const request = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, options, (response) => {
        let received = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (received += chunk));
        response.on('error', reject);
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: received }));
      });
      req.on('error', (error) => reject(new SidecarlessError(`lab: ${method} ${path} on ${this.server}: ${error.message}`, { context: { component: 'lab' }, cause: error })));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    if (status >= 200 && status < 300) return JSON.parse(text) as Record<string, unknown>;
    throw new SidecarlessError(`lab: ${method} ${path} on ${this.server}: ${statusMessage(text)} (HTTP ${status})`, { context: { component: 'lab', statusCode: status } });
  }
}
