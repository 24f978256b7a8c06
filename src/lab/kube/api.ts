/**
 * The few API server calls the lab makes, through @kubernetes/client-node, with errors that name the object and
 * carry the server's own message.
 */
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
function serverMessage(error: ApiException<unknown>): string {
  const body = typeof error.body === 'string' ? error.body : JSON.stringify(error.body);
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    return body;
  }
}

export class KubeApi {
  private constructor(
    /** The kubeconfig file the lab records with its objects, so that teardown reaches the same server. */
    readonly kubeconfig: string,
    readonly server: string,
    private readonly objects: KubernetesObjectApi,
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
    return new KubeApi(kubeconfig, server, KubernetesObjectApi.makeApiClient(config), config.makeApiClient(CoreV1Api), config.makeApiClient(VersionApi));
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
}
