/**
 * Kubernetes object → MetadataEvent, one pure function per kind, shared by the API server source and the file
 * source so that both publish the same event for the same object. Only the fields of the contract are read
 * (src/events/metadata.ts): never annotations, env, volumes or secrets. Absent optional fields take the API's
 * documented defaults (a Service's type ClusterIP, a port's protocol TCP), so a terse file and the API server's
 * full object give the same event.
 */
import {
  metadataEvent,
  type ContainerPort,
  type Endpoint,
  type MetadataEvent,
  type MetadataKind,
  type OwnerReference,
} from '../../events/metadata.js';
import { Fields } from './fields.js';

/** The kinds that are Kubernetes objects (the topic also carries cgroups and watermarks). */
export type ObjectKind = Exclude<MetadataKind, 'Cgroup' | 'Watermark'>;

export interface Observation {
  /** kubernetes/<cluster> or file/<cluster>. */
  source: string;
  /** When this state was observed, ns since the epoch. */
  observedNs: bigint;
}

/** The parts of an event that depend on the kind; the common ones come from `metadata`. */
type KindPart = Partial<Pick<MetadataEvent, 'pod' | 'service' | 'endpoint_slice' | 'node'>>;

const CONTAINER_ID = /^[a-z0-9-]+:\/\//;

/** spec.containers[].ports (or an EndpointSlice's ports): a missing protocol is TCP, as the API defaults it. */
function ports(items: Fields[], portField: string): ContainerPort[] {
  return items.map((port) => ({ name: port.string('name'), port: port.int(portField, 0), protocol: port.string('protocol', 'TCP') }));
}

const byKind: Record<ObjectKind, (object: Fields) => KindPart> = {
  Namespace: () => ({}),
  ReplicaSet: () => ({}),
  Deployment: () => ({}),
  StatefulSet: () => ({}),
  DaemonSet: () => ({}),
  Job: () => ({}),
  CronJob: () => ({}),

  Node: (object) => ({
    node: {
      addresses: object
        .at('status')
        .items('addresses')
        .filter((address) => ['InternalIP', 'ExternalIP'].includes(address.string('type')))
        .map((address) => address.string('address')),
    },
  }),

  Pod(object) {
    const spec = object.at('spec');
    const status = object.at('status');
    const podIPs = status.items('podIPs').map((entry) => entry.string('ip'));
    // Servers before dual-stack (and terse files) give only status.podIP.
    const singleIP = status.string('podIP');
    return {
      pod: {
        k8s_node_name: spec.string('nodeName'),
        phase: status.string('phase'),
        host_network: spec.boolean('hostNetwork', false),
        ips: podIPs.length > 0 ? podIPs : singleIP === '' ? [] : [singleIP],
        container_ids: status
          .items('containerStatuses')
          .map((container) => container.string('containerID').replace(CONTAINER_ID, ''))
          .filter((id) => id !== ''),
        ports: spec.items('containers').flatMap((container) => ports(container.items('ports'), 'containerPort')),
      },
    };
  },

  Service(object) {
    const spec = object.at('spec');
    const clusterIPs = spec.strings('clusterIPs');
    return {
      service: {
        type: spec.string('type', 'ClusterIP'),
        // "None" is a headless Service: it has no address of its own.
        cluster_ips: (clusterIPs.length > 0 ? clusterIPs : [spec.string('clusterIP')]).filter((ip) => ip !== '' && ip !== 'None'),
        selector: spec.stringMap('selector'),
        ports: spec.items('ports').map((port) => {
          const number = port.int('port', 0);
          return { name: port.string('name'), port: number, protocol: port.string('protocol', 'TCP'), target_port: port.intOrString('targetPort', String(number)) };
        }),
      },
    };
  },

  EndpointSlice(object) {
    const endpoints: Endpoint[] = object.items('endpoints').map((endpoint) => {
      const target = endpoint.at('targetRef');
      return {
        addresses: endpoint.strings('addresses'),
        pod_uid: target.string('kind') === 'Pod' && target.string('uid') !== '' ? target.string('uid') : null,
        // The API: "a nil value should be interpreted as ready".
        ready: endpoint.at('conditions').boolean('ready', true),
      };
    });
    return {
      endpoint_slice: {
        service_name: object.at('metadata').stringMap('labels')['kubernetes.io/service-name'] ?? '',
        address_type: object.string('addressType'),
        endpoints,
        // A port without a number means "all ports" in the API; 0 carries that.
        ports: ports(object.items('ports'), 'port'),
      },
    };
  },
};

/** The controller among the owner references (controller: true), if any: the one that names the workload. */
function controller(metadata: Fields): OwnerReference | null {
  const owner = metadata.items('ownerReferences').find((reference) => reference.boolean('controller', false));
  return owner === undefined ? null : { kind: owner.string('kind'), name: owner.string('name'), uid: owner.string('uid') };
}

/** The object's uid: the event's key. Throws a DecodeError naming metadata.uid when it has none. */
export function objectUid(object: unknown): string {
  return new Fields(object).at('metadata').required('uid');
}

/** The event of one observed state of an object of `kind`. Throws a DecodeError naming the field it cannot read. */
export function translate(kind: ObjectKind, object: unknown, observation: Observation): MetadataEvent {
  const fields = new Fields(object);
  const metadata = fields.at('metadata');
  return metadataEvent({
    object_key: metadata.required('uid'),
    kind,
    source: observation.source,
    change_time_ns: observation.observedNs,
    created_time_ns: metadata.time('creationTimestamp'),
    resource_version: metadata.string('resourceVersion'),
    k8s_namespace_name: metadata.string('namespace'),
    name: metadata.required('name'),
    labels: metadata.stringMap('labels'),
    owner: controller(metadata),
    ...byKind[kind](fields),
  });
}
