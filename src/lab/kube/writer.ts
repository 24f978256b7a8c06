/**
 * Writes a lab's Kubernetes objects through a real API server, doing what the controllers and the kubelet would
 * (none of them runs beside the local API server): a pod's workload objects, its Running status, the
 * EndpointSlices of Services as their pods come and go. Every object is recorded under the lab's id (ledger.ts)
 * before it is created, so that the lab's teardown deletes it even after a crash.
 *
 * Usable without network namespaces too (benchmarks with thousands of pods): a pod is created, then marked
 * running with any address.
 */
import type { KubernetesObject, V1ContainerPort, V1EndpointSlice, V1Namespace, V1Pod, V1PodTemplateSpec, V1Service } from '@kubernetes/client-node';
import type { QosClass } from '../kubelet-cgroup.js';
import { KubeApi } from './api.js';
import { recordObject } from './ledger.js';
import * as manifests from './manifests.js';
import type { Labels, ServiceOptions, SliceContent } from './manifests.js';

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Job' | 'CronJob';

export interface WorkloadRef {
  kind: WorkloadKind;
  name: string;
}

export interface PodObjectSpec {
  namespace: string;
  /** Required for a bare pod; a workload's pods are named by its controller's rule. */
  name?: string;
  /** Absent: a bare pod. Created with the first pod that names it; later pods must ask for the same template. */
  workload?: WorkloadRef;
  /** Default: {app: <workload or pod name>}. */
  labels?: Labels;
  ports?: readonly V1ContainerPort[];
  qos?: QosClass;
}

/** A created controller of pods: what its pods are made from and how they are named. */
interface Controller {
  owner: KubernetesObject;
  template: V1PodTemplateSpec;
  /** The template as asked for (before the API server added labels), to compare later requests with. */
  requested: string;
  /** The next pod's name and what the controller adds to its labels. */
  nextPod(): { name: string; labels: Labels };
}

interface WrittenSlice {
  object: V1EndpointSlice;
  /** The content written (contentKey), which the server's answer need not reproduce byte for byte. */
  content: string;
}

interface ServiceState {
  object: V1Service;
  slices: WrittenSlice[];
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class KubeWriter {
  /** Every pod written and not deleted, by namespace/name: its latest state (with an address once running). */
  private readonly pods = new Map<string, V1Pod>();
  private readonly controllers = new Map<string, Promise<Controller>>();
  private readonly services = new Map<string, ServiceState>();
  /** Slice updates run one at a time: each reads the pods and slices the previous one left. */
  private slicesSynced: Promise<void> = Promise.resolve();

  private constructor(
    readonly api: KubeApi,
    private readonly labId: string,
    readonly nodeName: string,
  ) {}

  /** A writer for the lab's objects on the API server of the kubeconfig; rejects when that server does not answer. */
  static async connect(options: { labId: string; kubeconfig: string; nodeName: string }): Promise<KubeWriter> {
    const api = KubeApi.connect(options.kubeconfig);
    await api.ready();
    return new KubeWriter(api, options.labId, options.nodeName);
  }

  private async create<T extends KubernetesObject>(object: T): Promise<T> {
    const metadata = object.metadata!;
    recordObject(this.labId, { kubeconfig: this.api.kubeconfig, apiVersion: object.apiVersion!, kind: object.kind!, namespace: metadata.namespace, name: metadata.name! });
    return this.api.create(object);
  }

  createNamespace(name: string, labels: Labels = {}): Promise<V1Namespace> {
    return this.create(manifests.namespaceObject(name, labels));
  }

  /** Creates the pod (phase Pending, no address yet), and its workload's objects when it is the first pod of it. */
  async createPod(spec: PodObjectSpec): Promise<V1Pod> {
    const defaultName = spec.workload?.name ?? spec.name;
    if (defaultName === undefined) throw new RangeError(`lab: a pod in ${spec.namespace} needs a name or a workload`);
    const template = manifests.podTemplate({
      labels: spec.labels ?? { app: defaultName },
      ports: spec.ports ?? [],
      qos: spec.qos ?? 'besteffort',
      ...(spec.workload?.kind === 'Job' || spec.workload?.kind === 'CronJob' ? { restartPolicy: 'Never' as const } : {}),
    });
    const controller = spec.workload ? await this.controller(spec.namespace, spec.workload, template) : undefined;
    const { name, labels } = controller?.nextPod() ?? { name: spec.name!, labels: {} };
    const object = manifests.pod({ namespace: spec.namespace, name, template: controller?.template ?? template, labels, owner: controller?.owner, nodeName: this.nodeName });
    // Claimed before the request, so that a concurrent pod of the same StatefulSet takes the next ordinal.
    this.pods.set(key(spec.namespace, name), object);
    try {
      const created = await this.create(object);
      this.pods.set(key(spec.namespace, name), created);
      return created;
    } catch (error) {
      this.pods.delete(key(spec.namespace, name));
      throw error;
    }
  }

  /** Reports the pod running and ready at the address with the container id, then updates its Services' slices. */
  async markRunning(pod: V1Pod, ip: string, containerId: string): Promise<V1Pod> {
    const { namespace, name } = pod.metadata as { namespace: string; name: string };
    const running = await this.api.patchPodStatus(namespace, name, manifests.runningStatus(ip, containerId, new Date()));
    this.pods.set(key(namespace, name), running);
    await this.syncSlices(namespace);
    return running;
  }

  /** Deletes the pod at once and takes it out of its Services' slices; its address is free for another pod. */
  async deletePod(pod: V1Pod): Promise<void> {
    const { namespace, name } = pod.metadata as { namespace: string; name: string };
    await this.api.delete({ apiVersion: 'v1', kind: 'Pod', namespace, name });
    this.pods.delete(key(namespace, name));
    await this.syncSlices(namespace);
  }

  /** Creates a ClusterIP Service and its EndpointSlice(s) for the running pods it selects. */
  async createService(options: ServiceOptions): Promise<V1Service> {
    if (Object.keys(options.selector).length === 0) throw new RangeError(`lab: Service ${options.namespace}/${options.name} needs a selector`);
    const object = await this.create(manifests.service(options));
    this.services.set(key(options.namespace, options.name), { object, slices: [] });
    await this.syncSlices(options.namespace);
    return object;
  }

  /** The slices the writer keeps for the Service, as last written. */
  slicesOf(namespace: string, name: string): readonly V1EndpointSlice[] {
    return this.services.get(key(namespace, name))?.slices.map((slice) => slice.object) ?? [];
  }

  private controller(namespace: string, workload: WorkloadRef, template: V1PodTemplateSpec): Promise<Controller> {
    const id = `${namespace}/${workload.kind}/${workload.name}`;
    const requested = JSON.stringify(template);
    let controller = this.controllers.get(id);
    if (!controller) {
      controller = this.createController(namespace, workload, template, requested);
      this.controllers.set(id, controller);
      // A failed creation is not cached: the next pod tries again.
      controller.catch(() => this.controllers.delete(id));
    }
    return controller.then((found) => {
      if (found.requested !== requested) {
        throw new RangeError(`lab: ${workload.kind} ${namespace}/${workload.name} has pods with another template (labels, ports, qos): ${found.requested}; asked for ${requested}`);
      }
      return found;
    });
  }

  private async createController(namespace: string, workload: WorkloadRef, template: V1PodTemplateSpec, requested: string): Promise<Controller> {
    const { kind, name } = workload;
    const suffixed = (owner: KubernetesObject, podTemplate: V1PodTemplateSpec): Controller => ({
      owner,
      template: podTemplate,
      requested,
      nextPod: () => ({ name: `${owner.metadata!.name}-${manifests.randomSuffix()}`, labels: {} }),
    });
    switch (kind) {
      case 'Deployment': {
        const deployment = await this.create(manifests.deployment(namespace, name, template));
        const replicaSet = await this.create(manifests.replicaSet(deployment));
        return suffixed(replicaSet, replicaSet.spec!.template!);
      }
      case 'DaemonSet':
        return suffixed(await this.create(manifests.daemonSet(namespace, name, template)), template);
      case 'Job': {
        const job = await this.create(manifests.job(namespace, name, template));
        return suffixed(job, job.spec!.template);
      }
      case 'CronJob': {
        const cronJob = await this.create(manifests.cronJob(namespace, name, template));
        const job = await this.create(manifests.cronJobRun(cronJob, new Date()));
        return suffixed(job, job.spec!.template);
      }
      case 'StatefulSet': {
        const statefulSet = await this.create(manifests.statefulSet(namespace, name, template));
        return {
          owner: statefulSet,
          template,
          requested,
          nextPod: () => {
            // The lowest ordinal no pod holds, as the StatefulSet controller replaces a missing pod.
            let ordinal = 0;
            while (this.pods.has(key(namespace, `${name}-${ordinal}`))) ordinal++;
            return { name: `${name}-${ordinal}`, labels: manifests.statefulSetPodLabels(`${name}-${ordinal}`, ordinal) };
          },
        };
      }
    }
  }

  private syncSlices(namespace: string): Promise<void> {
    const sync = this.slicesSynced.then(() => this.writeSlices(namespace));
    this.slicesSynced = sync.catch(() => undefined);
    return sync;
  }

  /**
   * Brings each Service's slices in the namespace to what sliceContents says: an existing slice is rewritten
   * (kept by name where it can be, as the controller does), one is added for each further group, and slices no
   * group needs are deleted.
   */
  private async writeSlices(namespace: string): Promise<void> {
    const pods = [...this.pods.values()];
    for (const state of this.services.values()) {
      if (state.object.metadata!.namespace !== namespace) continue;
      const contents = manifests.sliceContents(state.object, pods).map((content) => ({ content, key: contentKey(content) }));
      const kept = state.slices.filter((slice) => contents.some((c) => c.key === slice.content));
      const reusable = state.slices.filter((slice) => !kept.includes(slice));
      const next = [...kept];
      for (const { content, key: written } of contents.filter((c) => !kept.some((slice) => slice.content === c.key))) {
        const previous = reusable.shift();
        const name = previous?.object.metadata?.name ?? `${state.object.metadata!.name}-${manifests.randomSuffix()}`;
        const slice = manifests.endpointSlice(state.object, name, content);
        next.push({ object: previous ? await this.api.replace(slice) : await this.create(slice), content: written });
      }
      for (const stale of reusable) {
        await this.api.delete({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', namespace, name: stale.object.metadata!.name! });
      }
      state.slices = next;
    }
  }
}

function contentKey(content: SliceContent): string {
  return JSON.stringify(content);
}
