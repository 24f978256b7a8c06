/**
 * The objects the lab writes, shaped the way Kubernetes' own controllers and the kubelet shape them, since none of
 * those runs beside the local API server: ReplicaSets named `<deployment>-<pod-template-hash>`, pods named
 * `<controller>-<5 chars>` (`<statefulset>-<ordinal>`), Jobs of a CronJob named `<cronjob>-<scheduled minute>`,
 * controller owner references with the owner's uid, a Running status with the container id, EndpointSlices with
 * one endpoint per ready pod behind a Service. Pure: the writer (writer.ts) sends them.
 */
import { randomInt } from 'node:crypto';
import type {
  DiscoveryV1EndpointPort,
  KubernetesObject,
  V1ContainerPort,
  V1CronJob,
  V1DaemonSet,
  V1Deployment,
  V1Endpoint,
  V1EndpointSlice,
  V1Job,
  V1Namespace,
  V1OwnerReference,
  V1Pod,
  V1PodStatus,
  V1PodTemplateSpec,
  V1ReplicaSet,
  V1ResourceRequirements,
  V1Service,
  V1ServicePort,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { QosClass } from '../kubelet-cgroup.js';

export type Labels = Record<string, string>;

/** Never pulled: no kubelet runs. */
const labImage = 'sidecarless-lab';
const containerName = 'main';
/** The EndpointSlice controller marks its slices `endpointslice-controller.k8s.io`; the lab's are its own. */
const sliceManager = 'sidecarless-lab';

// The alphabet of Kubernetes' generated names (k8s.io/apimachinery/pkg/util/rand): no vowels, no 0/1/3.
const alphanums = 'bcdfghjklmnpqrstvwxz2456789';

/** The random suffix of a generated name (`<controller>-xxxxx`). */
export function randomSuffix(): string {
  return Array.from({ length: 5 }, () => alphanums[randomInt(alphanums.length)]).join('');
}

function fnv32a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/**
 * The Deployment controller's label value for a template: FNV-32a of the template (the controller hashes its Go
 * structure, the lab hashes JSON, so values differ from a real cluster's), its decimal digits encoded in the
 * alphabet above.
 */
export function podTemplateHash(template: V1PodTemplateSpec): string {
  return [...String(fnv32a(JSON.stringify(template)))].map((digit) => alphanums[digit.charCodeAt(0) % alphanums.length]).join('');
}

/** Requests and limits that make the API server assign the pod this QoS class (status.qosClass). */
function resources(qos: QosClass): V1ResourceRequirements | undefined {
  const small = { cpu: '10m', memory: '16Mi' };
  if (qos === 'burstable') return { requests: small };
  if (qos === 'guaranteed') return { requests: small, limits: small };
  return undefined;
}

export interface TemplateOptions {
  labels: Labels;
  ports: readonly V1ContainerPort[];
  qos: QosClass;
  /** Job pods must not restart ('Never'); others default to 'Always'. */
  restartPolicy?: 'Never';
}

export function podTemplate(options: TemplateOptions): V1PodTemplateSpec {
  const container = { name: containerName, image: labImage, ports: [...options.ports], resources: resources(options.qos) };
  return {
    metadata: { labels: { ...options.labels } },
    spec: { containers: [container], ...(options.restartPolicy ? { restartPolicy: options.restartPolicy } : {}) },
  };
}

/** Points at the object as its controller, as Kubernetes' controllers do. */
function controllerReference(owner: KubernetesObject): V1OwnerReference {
  return { apiVersion: owner.apiVersion!, kind: owner.kind!, name: owner.metadata!.name!, uid: owner.metadata!.uid!, controller: true, blockOwnerDeletion: true };
}

function meta(namespace: string, name: string, labels: Labels, owner?: KubernetesObject) {
  return { namespace, name, labels: { ...labels }, ...(owner ? { ownerReferences: [controllerReference(owner)] } : {}) };
}

const labelsOf = (template: V1PodTemplateSpec): Labels => ({ ...template.metadata?.labels });

export function namespaceObject(name: string, labels: Labels): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels } } };
}

export function deployment(namespace: string, name: string, template: V1PodTemplateSpec): V1Deployment {
  const labels = labelsOf(template);
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(namespace, name, labels), spec: { selector: { matchLabels: labels }, template } };
}

/** The ReplicaSet the Deployment controller would make for the deployment's template. */
export function replicaSet(owner: V1Deployment): V1ReplicaSet {
  const template = owner.spec!.template;
  const hash = podTemplateHash(template);
  const labels = { ...labelsOf(template), 'pod-template-hash': hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: meta(owner.metadata!.namespace!, `${owner.metadata!.name}-${hash}`, labels, owner),
    spec: { selector: { matchLabels: labels }, template: { ...template, metadata: { labels } } },
  };
}

export function statefulSet(namespace: string, name: string, template: V1PodTemplateSpec): V1StatefulSet {
  const labels = labelsOf(template);
  return { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta(namespace, name, labels), spec: { serviceName: name, selector: { matchLabels: labels }, template } };
}

/** What the StatefulSet controller adds to the labels of its pod with this ordinal. */
export function statefulSetPodLabels(podName: string, ordinal: number): Labels {
  return { 'statefulset.kubernetes.io/pod-name': podName, 'apps.kubernetes.io/pod-index': String(ordinal) };
}

export function daemonSet(namespace: string, name: string, template: V1PodTemplateSpec): V1DaemonSet {
  const labels = labelsOf(template);
  return { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: meta(namespace, name, labels), spec: { selector: { matchLabels: labels }, template } };
}

/** The API server adds the selector and the job-name/controller-uid labels to the template. */
export function job(namespace: string, name: string, template: V1PodTemplateSpec, owner?: V1CronJob): V1Job {
  return { apiVersion: 'batch/v1', kind: 'Job', metadata: meta(namespace, name, labelsOf(template), owner), spec: { template } };
}

export function cronJob(namespace: string, name: string, template: V1PodTemplateSpec): V1CronJob {
  const labels = labelsOf(template);
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: meta(namespace, name, labels),
    // Every minute, so that a run at any minute is one the schedule asked for.
    spec: { schedule: '* * * * *', jobTemplate: { metadata: { labels }, spec: { template } } },
  };
}

/** The Job the CronJob controller would start for the run scheduled at that time. */
export function cronJobRun(owner: V1CronJob, scheduledAt: Date): V1Job {
  const minute = Math.floor(scheduledAt.getTime() / 60_000);
  const run = job(owner.metadata!.namespace!, `${owner.metadata!.name}-${minute}`, owner.spec!.jobTemplate.spec!.template, owner);
  // RFC 3339 in whole seconds, as the controller writes it.
  run.metadata!.annotations = { 'batch.kubernetes.io/cronjob-scheduled-timestamp': new Date(minute * 60_000).toISOString().replace('.000Z', 'Z') };
  return run;
}

export interface PodOptions {
  namespace: string;
  name: string;
  template: V1PodTemplateSpec;
  /** What the controller adds to the template's labels (StatefulSet ordinals). */
  labels?: Labels;
  owner?: KubernetesObject;
  nodeName: string;
}

export function pod(options: PodOptions): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta(options.namespace, options.name, { ...labelsOf(options.template), ...options.labels }, options.owner),
    spec: { ...options.template.spec!, nodeName: options.nodeName },
  };
}

/** The status the kubelet reports for a pod whose one container runs and is ready. */
export function runningStatus(ip: string, containerId: string, startedAt: Date): V1PodStatus {
  const conditions = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: startedAt }));
  return {
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    startTime: startedAt,
    conditions,
    containerStatuses: [
      {
        name: containerName,
        image: labImage,
        imageID: '',
        containerID: `containerd://${containerId}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt } },
      },
    ],
  };
}

export interface ServiceOptions {
  namespace: string;
  name: string;
  selector: Labels;
  /** targetPort: a number, a container port's name, or absent for the same number as port. */
  ports: readonly V1ServicePort[];
}

/** A ClusterIP Service; the API server allocates its address. */
export function service(options: ServiceOptions): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: options.namespace, name: options.name },
    spec: { selector: { ...options.selector }, ports: options.ports.map((port) => ({ protocol: 'TCP', ...port })) },
  };
}

/** One slice's worth of endpoints: pods whose ports resolve the same way. */
export interface SliceContent {
  ports: DiscoveryV1EndpointPort[];
  endpoints: V1Endpoint[];
}

function selects(selector: Labels, pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** A Service port's target in this pod: a number, or a named container port; undefined when the pod lacks it. */
function resolvePort(port: V1ServicePort, pod: V1Pod): DiscoveryV1EndpointPort | undefined {
  const target = port.targetPort ?? port.port;
  const number = typeof target === 'number' ? target : pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === target)?.containerPort;
  return number === undefined ? undefined : { name: port.name ?? '', port: number, protocol: port.protocol ?? 'TCP' };
}

/**
 * What the EndpointSlice controller would publish for the service: each selected pod with an address, grouped by
 * how the service's ports resolve in it (one slice per group, as named target ports may differ between pods), in
 * name order. No pods: one empty slice, as the controller keeps one.
 */
export function sliceContents(svc: V1Service, pods: readonly V1Pod[]): SliceContent[] {
  const selector = svc.spec?.selector ?? {};
  const groups = new Map<string, SliceContent>();
  const selected = pods
    .filter((p) => p.metadata?.namespace === svc.metadata?.namespace && p.status?.podIP && Object.keys(selector).length > 0 && selects(selector, p))
    .sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
  for (const p of selected) {
    const ports = (svc.spec?.ports ?? []).flatMap((port) => resolvePort(port, p) ?? []);
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    groups.set(key, group);
    const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    group.endpoints.push({
      addresses: [p.status!.podIP!],
      conditions: { ready, serving: ready, terminating: false },
      nodeName: p.spec?.nodeName,
      targetRef: { kind: 'Pod', namespace: p.metadata!.namespace, name: p.metadata!.name, uid: p.metadata!.uid },
    });
  }
  return groups.size > 0 ? [...groups.values()] : [{ ports: [], endpoints: [] }];
}

export function endpointSlice(svc: V1Service, name: string, content: SliceContent): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: svc.metadata!.namespace,
      name,
      labels: { 'kubernetes.io/service-name': svc.metadata!.name!, 'endpointslice.kubernetes.io/managed-by': sliceManager },
      ownerReferences: [controllerReference(svc)],
    },
    addressType: 'IPv4',
    endpoints: content.endpoints,
    ports: content.ports,
  };
}
