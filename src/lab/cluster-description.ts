/**
 * A cluster for policy scenarios, described as the Kubernetes manifests one would write for it: Namespaces (with
 * labels) and Pods (with labels and the container ports they serve, named ones included), `---`-separated. The lab
 * brings it up (reachability.ts: startDescribedCluster) as real API objects and network-namespace pods whose
 * servers answer on exactly those ports, so that any NetworkPolicy scenario can be run by hand and in tests.
 *
 * Only what a scenario needs is read; anything else in a manifest is ignored, as the lab runs no containers.
 * A description that cannot be used is refused whole with a DecodeError naming the document and the field.
 */
import { DecodeError } from '../common/errors.js';
import { Fields } from '../metadata/watch/fields.js';
import { parseManifests } from '../metadata/watch/file-source.js';
import type { LabProtocol } from './agents/protocol.js';
import type { Labels } from './kube/manifests.js';

export interface DescribedPort {
  port: number;
  protocol: LabProtocol;
  /** The container port's name, which a policy may name instead of the number. */
  name?: string;
}

export interface DescribedPod {
  namespace: string;
  name: string;
  labels: Labels;
  ports: DescribedPort[];
}

export interface ClusterDescription {
  namespaces: Array<{ name: string; labels: Labels }>;
  pods: DescribedPod[];
}

const fail = (field: string, message: string): never => {
  throw new DecodeError(`${field}: ${message}`, { field });
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The namespaces and pods of a multi-document YAML text; `file` names it in errors. */
export function parseClusterDescription(text: string, file: string): ClusterDescription {
  const description: ClusterDescription = { namespaces: [], pods: [] };
  for (const manifest of parseManifests(text, file)) {
    try {
      const fields = new Fields(manifest.object);
      const metadata = fields.at('metadata');
      const name = metadata.required('name');
      if (!DNS_LABEL.test(name)) fail('metadata.name', `${JSON.stringify(name)} is not a DNS label (a-z, 0-9, '-', at most 63)`);
      const labels = metadata.stringMap('labels');
      if (manifest.kind === 'Namespace') description.namespaces.push({ name, labels });
      else if (manifest.kind === 'Pod') description.pods.push({ namespace: metadata.string('namespace', 'default'), name, labels, ports: podPorts(fields) });
      else fail('kind', `a cluster description holds Namespaces and Pods, not a ${manifest.kind}`);
    } catch (error) {
      // Field errors name the path within the manifest; the message says which file and document as well.
      if (error instanceof DecodeError) throw new DecodeError(`${file}: ${manifest.where}: ${error.message}`, error.context);
      throw error;
    }
  }
  checkReferences(description, file);
  return description;
}

function podPorts(pod: Fields): DescribedPort[] {
  const ports: DescribedPort[] = [];
  pod.at('spec').items('containers').forEach((container) => {
    for (const entry of container.items('ports')) {
      const port = entry.int('containerPort', 0);
      if (port < 1 || port > 65535) fail(`${entry.path}.containerPort`, `${port} is not a port (1-65535)`);
      const protocol = entry.string('protocol', 'TCP');
      if (protocol !== 'TCP' && protocol !== 'UDP') fail(`${entry.path}.protocol`, `the lab serves TCP and UDP, not ${JSON.stringify(protocol)}`);
      const name = entry.string('name');
      if (ports.some((p) => p.port === port && p.protocol === protocol)) fail(`${entry.path}.containerPort`, `${protocol}/${port} is declared twice in this pod`);
      if (name !== '' && ports.some((p) => p.name === name)) fail(`${entry.path}.name`, `${JSON.stringify(name)} names two ports of this pod`);
      ports.push({ port, protocol: protocol as LabProtocol, ...(name === '' ? {} : { name }) });
    }
  });
  return ports;
}

/** A pod of describeCluster: labels default to {pod: <name>}; a port given as a number is TCP and unnamed. */
export interface PodSketch {
  namespace: string;
  name: string;
  labels?: Labels;
  ports?: ReadonlyArray<DescribedPort | number>;
}

/**
 * A description written in code (tests, benchmarks) instead of YAML: namespaces by name with their labels, and pods;
 * checked like a parsed one (every pod's namespace described, no name twice).
 */
export function describeCluster(namespaces: Readonly<Record<string, Labels>>, pods: readonly PodSketch[]): ClusterDescription {
  const description: ClusterDescription = {
    namespaces: Object.entries(namespaces).map(([name, labels]) => ({ name, labels: { ...labels } })),
    pods: pods.map(({ namespace, name, labels, ports = [] }) => ({
      namespace,
      name,
      labels: { ...(labels ?? { pod: name }) },
      ports: ports.map((port) => (typeof port === 'number' ? { port, protocol: 'TCP' as const } : { ...port })),
    })),
  };
  checkReferences(description, 'describeCluster');
  return description;
}

/** Every pod's namespace is described, and no name repeats. */
function checkReferences(description: ClusterDescription, file: string): void {
  const namespaces = new Set<string>();
  for (const { name } of description.namespaces) {
    if (namespaces.has(name)) throw new DecodeError(`${file}: Namespace ${name} is described twice`, { field: 'metadata.name' });
    namespaces.add(name);
  }
  const pods = new Set<string>();
  for (const pod of description.pods) {
    const key = `${pod.namespace}/${pod.name}`;
    if (!namespaces.has(pod.namespace)) throw new DecodeError(`${file}: Pod ${key}: metadata.namespace ${pod.namespace} is not a Namespace of the description`, { field: 'metadata.namespace' });
    if (pods.has(key)) throw new DecodeError(`${file}: Pod ${key} is described twice`, { field: 'metadata.name' });
    pods.add(key);
  }
}
