/**
 * A lab whose pods are also Kubernetes objects on a real API server (by default the local stack's): namespaces
 * with labels, pods owned by real workload objects (Deployment → ReplicaSet, StatefulSet, DaemonSet, CronJob →
 * Job, Job) or bare, bound to this node, Running at their lab address with the container id of their cgroup, and
 * Services whose EndpointSlices follow the pods (kube/writer.ts).
 *
 * A pod's Pod object is created first, so that its cgroup carries the object's uid
 * (kubepods-<qos>-pod<uid>.slice); then its netns and cgroup are built (pods.ts), then its status is written.
 * Deleting a pod goes the kubelet's way: its processes end and its netns goes, then the object is deleted (grace
 * period 0) and its Services' slices drop it; the next pod gets its address unless asked for another.
 *
 * Opt-in (createLab stays synchronous and needs no API server): creating objects is asynchronous, and a test that
 * does not look at Kubernetes should neither wait for nor depend on an API server. destroy() stays synchronous
 * and removes the objects too (teardown.ts).
 */
import type { V1ContainerPort, V1Namespace, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { loadConfig } from '../common/config.js';
import type { QosClass } from './kubelet-cgroup.js';
import type { Labels } from './kube/manifests.js';
import { KubeWriter, type WorkloadRef } from './kube/writer.js';
import { createLab, type Lab, type Pod } from './pods.js';
import { kubeCredentials } from './stack/kube-credentials.js';

export interface NamespaceSpec {
  /** Used as given; the lab deletes it with its contents (and finalizes it: no namespace controller runs here). */
  name: string;
  labels?: Labels;
}

export interface ClusterPodSpec {
  /** The pod's name in the lab (lab.pod(name), its netns); a bare pod's Kubernetes name too, unless objectName says another. */
  name: string;
  /** A bare pod's Kubernetes name when it differs from its lab name (pods of one name in two namespaces). */
  objectName?: string;
  /** Default 'default'. A namespace of the lab's options is created with the lab; others must exist. */
  namespace?: string;
  /** Absent: a bare pod. A workload's pods share its template: the same labels, ports and qos. */
  workload?: WorkloadRef;
  /** Default: {app: <workload or pod name>}. */
  labels?: Labels;
  ports?: readonly V1ContainerPort[];
  qos?: QosClass;
  /** The pod's address slot (lab.subnet.host(index)); default the lowest free one. */
  index?: number;
}

export interface ClusterServiceSpec {
  name: string;
  namespace?: string;
  selector: Labels;
  ports: readonly V1ServicePort[];
}

export interface ClusterLabOptions {
  name: string;
  subnet?: string;
  /** Default: the local stack's (<stack>/kubernetes/kubeconfig). */
  kubeconfig?: string;
  /** The pods' spec.nodeName; default the collector's node name (node.name: SIDECARLESS_NODE_NAME or the hostname). */
  nodeName?: string;
  namespaces?: readonly NamespaceSpec[];
  services?: readonly ClusterServiceSpec[];
  pods?: readonly ClusterPodSpec[];
}

export class ClusterLab {
  /** Each lab pod's Pod object, latest state, by lab pod name. */
  private readonly objects = new Map<string, V1Pod>();
  /** Names asked for by addPod calls still running. */
  private readonly pending = new Set<string>();

  /** Use createClusterLab. */
  constructor(
    readonly lab: Lab,
    readonly kube: KubeWriter,
  ) {}

  get id(): string {
    return this.lab.id;
  }

  get pods(): readonly Pod[] {
    return this.lab.pods;
  }

  pod(name: string): Pod {
    return this.lab.pod(name);
  }

  /** The pod's Pod object as last written (with its Running status). */
  object(name: string): V1Pod {
    const object = this.objects.get(name);
    if (!object) throw new RangeError(`lab ${this.lab.name} has no pod ${name} in Kubernetes`);
    return object;
  }

  addNamespace(spec: NamespaceSpec): Promise<V1Namespace> {
    return this.kube.createNamespace(spec.name, spec.labels);
  }

  addService(spec: ClusterServiceSpec): Promise<V1Service> {
    return this.kube.createService({ namespace: spec.namespace ?? 'default', name: spec.name, selector: spec.selector, ports: spec.ports });
  }

  /** Creates the Pod object (and its workload's on first use), then the lab pod with its uid, then its status. */
  async addPod(spec: ClusterPodSpec): Promise<Pod> {
    if (this.pending.has(spec.name) || this.lab.pods.some((p) => p.name === spec.name)) throw new RangeError(`lab ${this.lab.name} already has a pod ${spec.name}`);
    this.pending.add(spec.name);
    try {
      const namespace = spec.namespace ?? 'default';
      const created = await this.kube.createPod({
        namespace,
        ...(spec.workload ? { workload: spec.workload } : { name: spec.objectName ?? spec.name }),
        ...(spec.labels ? { labels: spec.labels } : {}),
        ...(spec.ports ? { ports: spec.ports } : {}),
        ...(spec.qos ? { qos: spec.qos } : {}),
      });
      let pod: Pod;
      try {
        pod = this.lab.addPod(spec.name, {
          uid: created.metadata!.uid!,
          qos: spec.qos ?? 'besteffort',
          kubernetes: { namespace, name: created.metadata!.name! },
          ...(spec.index === undefined ? {} : { index: spec.index }),
        });
      } catch (error) {
        await this.kube.deletePod(created);
        throw error;
      }
      // Known before its status is written, so that deletePod finds it should that fail.
      this.objects.set(spec.name, created);
      this.objects.set(spec.name, await this.kube.markRunning(created, pod.ip, pod.containerId));
      return pod;
    } finally {
      this.pending.delete(spec.name);
    }
  }

  /** Ends the pod's processes, removes its netns and cgroups, then deletes its object and updates the slices. */
  async deletePod(name: string): Promise<void> {
    const object = this.object(name);
    this.lab.removePod(name);
    this.objects.delete(name);
    await this.kube.deletePod(object);
  }

  /** Removes the lab's pods, objects and everything else (Lab.destroy). */
  destroy(): void {
    this.lab.destroy();
  }
}

/**
 * Builds the lab, then its namespaces, services and pods (in the order given, so pod i gets index i unless it asks
 * for another); on failure removes what was built before rethrowing.
 */
export async function createClusterLab(options: ClusterLabOptions): Promise<ClusterLab> {
  const lab = createLab({ name: options.name, pods: 0, ...(options.subnet ? { subnet: options.subnet } : {}) });
  try {
    const kube = await KubeWriter.connect({
      labId: lab.id,
      kubeconfig: options.kubeconfig ?? kubeCredentials.kubeconfigFile,
      nodeName: options.nodeName ?? loadConfig({ argv: [] }).node.name,
    });
    const cluster = new ClusterLab(lab, kube);
    await Promise.all((options.namespaces ?? []).map((ns) => cluster.addNamespace(ns)));
    await Promise.all((options.services ?? []).map((svc) => cluster.addService(svc)));
    for (const pod of options.pods ?? []) await cluster.addPod(pod);
    return cluster;
  } catch (error) {
    lab.destroy();
    throw error;
  }
}
