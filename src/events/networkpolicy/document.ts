/**
 * YAML documents → validated NetworkPolicies (networking.k8s.io/v1), with the API server's defaults applied.
 * Validation is complete and strict: every problem of every document is collected with the document's index and
 * name, the field's path (`spec.ingress[0].from[1].ipBlock.cidr`) and the reason, and a file with any problem
 * yields no policy at all, so that nothing of it is published. Unknown fields are problems (a misspelt `podSelecter`
 * would otherwise widen a policy silently). Pure.
 */
import { parseAllDocuments } from 'yaml';
import { DecodeError } from '../../common/errors.js';
import { parseCidr, prefixContains, type Prefix } from './cidr.js';
import { labelKeyProblem, labelValueProblem, objectNameProblem } from './labels.js';
import {
  AUDIT_ANNOTATION,
  type IpBlock,
  type LabelSelector,
  type LabelSelectorRequirement,
  type NetworkPolicy,
  type PolicyPeer,
  type PolicyPort,
  type PolicyRule,
  type PolicyType,
  type Protocol,
  type SelectorOperator,
} from './types.js';

export interface DocumentProblem {
  /** 0-based index of the document in its file. */
  document: number;
  /** `namespace/name` when the document names itself, else ''. */
  policy: string;
  /** Path of the field from the document's root; '' for the document as a whole. */
  field: string;
  reason: string;
}

/** A file that cannot be published: every problem found, each naming its document and field. */
export class PolicyDocumentError extends DecodeError {
  constructor(readonly problems: readonly DocumentProblem[]) {
    super(problems.map(describeProblem).join('\n'), { field: problems[0]?.field ?? '' });
  }
}

export function describeProblem(problem: DocumentProblem): string {
  const policy = problem.policy === '' ? '' : ` (${problem.policy})`;
  const field = problem.field === '' ? '' : `${problem.field}: `;
  // Counted from 1 in messages, as an editor counts them (and as the metadata file source names documents).
  return `document ${problem.document + 1}${policy}: ${field}${problem.reason}`;
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
/** ObjectMeta fields an exported or API-served object may carry; only name, namespace and annotations are used. */
const METADATA_FIELDS = ['name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'finalizers', 'ownerReferences', 'generateName', 'deletionTimestamp', 'deletionGracePeriodSeconds'];
/** IANA_SVC_NAME: what a named port may be (1-15 lower-case letters, digits and '-', a letter, no '--'). */
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** One document's reads: each names its path and records a problem instead of throwing, so all are found. */
class Reader {
  constructor(
    private readonly problems: string[][],
    readonly value: unknown,
    readonly path: string,
  ) {}

  problem(reason: string, path = this.path): undefined {
    this.problems.push([path, reason]);
    return undefined;
  }

  child(key: string | number): Reader {
    const path = typeof key === 'number' ? `${this.path}[${key}]` : this.path === '' ? key : `${this.path}.${key}`;
    const container = typeof this.value === 'object' && this.value !== null ? (this.value as Record<string | number, unknown>) : {};
    const value = container[key];
    return new Reader(this.problems, value, path);
  }

  /** The fields of an object (null/absent: none), refusing any not in `known`. */
  object(known: readonly string[]): Map<string, Reader> | undefined {
    const fields = new Map<string, Reader>();
    if (this.value === undefined || this.value === null) return fields;
    if (typeof this.value !== 'object' || Array.isArray(this.value)) return this.problem(`expected an object, got ${shown(this.value)}`);
    for (const key of Object.keys(this.value)) {
      if (known.includes(key)) fields.set(key, this.child(key));
      else this.child(key).problem(`unknown field (known here: ${known.join(', ')})`);
    }
    return fields;
  }

  /** The items of a list; null/absent reads as none. */
  list(): Reader[] | undefined {
    if (this.value === undefined || this.value === null) return [];
    if (!Array.isArray(this.value)) return this.problem(`expected a list, got ${shown(this.value)}`);
    return this.value.map((_, i) => this.child(i));
  }

  /** A string; absent is a problem ('is required'). */
  string(): string | undefined {
    if (typeof this.value === 'string') return this.value;
    return this.problem(this.value === undefined ? 'is required' : `expected a string, got ${shown(this.value)}`);
  }

  stringMap(): Map<string, Reader> | undefined {
    if (this.value === undefined || this.value === null) return new Map();
    if (typeof this.value !== 'object' || Array.isArray(this.value)) return this.problem(`expected a map of strings, got ${shown(this.value)}`);
    return new Map(Object.keys(this.value).map((key) => [key, this.child(key)]));
  }
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

const sortedKeys = <T>(entries: Array<[string, T]>): Array<[string, T]> => entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function readSelector(reader: Reader): LabelSelector | undefined {
  const fields = reader.object(['matchLabels', 'matchExpressions']);
  if (fields === undefined) return undefined;
  const labels = (fields.get('matchLabels') ?? reader.child('matchLabels')).stringMap();
  const expressions = (fields.get('matchExpressions') ?? reader.child('matchExpressions')).list();
  let ok = labels !== undefined && expressions !== undefined;
  const matchLabels: Array<[string, string]> = [];
  for (const [key, value] of labels ?? []) {
    const text = value.string();
    const problem = labelKeyProblem(key) ?? (text === undefined ? null : labelValueProblem(text));
    if (problem !== null) value.problem(problem);
    if (text === undefined || problem !== null) ok = false;
    else matchLabels.push([key, text]);
  }
  const matchExpressions: LabelSelectorRequirement[] = [];
  for (const item of expressions ?? []) {
    const requirement = readRequirement(item);
    if (requirement === undefined) ok = false;
    else matchExpressions.push(requirement);
  }
  return ok ? { matchLabels: Object.fromEntries(sortedKeys(matchLabels)), matchExpressions } : undefined;
}

function readRequirement(reader: Reader): LabelSelectorRequirement | undefined {
  const fields = reader.object(['key', 'operator', 'values']);
  if (fields === undefined) return undefined;
  const keyReader = fields.get('key') ?? reader.child('key');
  const key = keyReader.string();
  const keyProblem = key === undefined ? null : labelKeyProblem(key);
  if (key !== undefined && keyProblem !== null) keyReader.problem(keyProblem);
  const operatorReader = fields.get('operator') ?? reader.child('operator');
  const operator = operatorReader.string() as SelectorOperator | undefined;
  if (operator !== undefined && !OPERATORS.includes(operator)) operatorReader.problem(`${JSON.stringify(operator)} is not an operator (In, NotIn, Exists, DoesNotExist)`);
  const valuesReader = fields.get('values') ?? reader.child('values');
  const items = valuesReader.list();
  const values: string[] = [];
  let valuesOk = items !== undefined;
  for (const item of items ?? []) {
    const text = item.string();
    const problem = text === undefined ? null : labelValueProblem(text);
    if (problem !== null) item.problem(problem);
    if (text === undefined || problem !== null) valuesOk = false;
    else values.push(text);
  }
  if (operator === 'In' || operator === 'NotIn') {
    if (valuesOk && values.length === 0) valuesReader.problem(`must not be empty when the operator is ${operator}`);
  } else if (operator === 'Exists' || operator === 'DoesNotExist') {
    if (values.length > 0) valuesReader.problem(`must be empty when the operator is ${operator}`);
  }
  if (key === undefined || keyProblem !== null || operator === undefined || !OPERATORS.includes(operator) || !valuesOk) return undefined;
  if ((operator === 'In' || operator === 'NotIn') && values.length === 0) return undefined;
  if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) return undefined;
  return { key, operator, values: [...new Set(values)].sort() };
}

function readCidr(reader: Reader): Prefix | undefined {
  const text = reader.string();
  if (text === undefined) return undefined;
  return parseCidr(text) ?? reader.problem(`${JSON.stringify(text)} is not a CIDR (a.b.c.d/n with n ≤ 32, or an IPv6 address/n with n ≤ 128)`);
}

function readIpBlock(reader: Reader): IpBlock | undefined {
  const fields = reader.object(['cidr', 'except']);
  if (fields === undefined) return undefined;
  const cidrReader = fields.get('cidr');
  if (cidrReader === undefined) return reader.problem('is required', `${reader.path}.cidr`);
  const cidr = readCidr(cidrReader);
  const except: string[] = [];
  let ok = cidr !== undefined;
  const exceptReader = fields.get('except') ?? reader.child('except');
  const items = exceptReader.list();
  if (items === undefined) ok = false;
  for (const item of items ?? []) {
    const inner = readCidr(item);
    if (inner === undefined) ok = false;
    else if (cidr !== undefined && (inner.family !== cidr.family || !prefixContains(cidr, inner) || inner.length === cidr.length)) {
      item.problem(`${JSON.stringify(item.value)} is not strictly inside cidr ${JSON.stringify(cidrReader.value)}`);
      ok = false;
    } else except.push(item.value as string);
  }
  return ok ? { cidr: cidrReader.value as string, except } : undefined;
}

function readPeer(reader: Reader): PolicyPeer | undefined {
  const fields = reader.object(['podSelector', 'namespaceSelector', 'ipBlock']);
  if (fields === undefined) return undefined;
  if (fields.size === 0) return reader.problem('a peer needs podSelector, namespaceSelector or ipBlock');
  const ipBlockReader = fields.get('ipBlock');
  if (ipBlockReader !== undefined && fields.size > 1) return reader.problem('ipBlock cannot be combined with podSelector or namespaceSelector');
  const optional = (key: string): LabelSelector | null | undefined => {
    const field = fields.get(key);
    return field === undefined ? null : readSelector(field);
  };
  const podSelector = optional('podSelector');
  const namespaceSelector = optional('namespaceSelector');
  const ipBlock = ipBlockReader === undefined ? null : readIpBlock(ipBlockReader);
  if (podSelector === undefined || namespaceSelector === undefined || ipBlock === undefined) return undefined;
  return { podSelector, namespaceSelector, ipBlock };
}

function readPort(reader: Reader): PolicyPort | undefined {
  const fields = reader.object(['protocol', 'port', 'endPort']);
  if (fields === undefined) return undefined;
  let ok = true;
  let protocol: Protocol = 'TCP';
  const protocolReader = fields.get('protocol');
  if (protocolReader !== undefined) {
    const text = protocolReader.string();
    if (text !== undefined && PROTOCOLS.includes(text as Protocol)) protocol = text as Protocol;
    else {
      if (text !== undefined) protocolReader.problem(`${JSON.stringify(text)} is not a protocol (TCP, UDP, SCTP)`);
      ok = false;
    }
  }
  let port: number | string | null = null;
  const portReader = fields.get('port');
  if (portReader !== undefined && portReader.value !== null) {
    const value = portReader.value;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535) port = value;
    else if (typeof value === 'string' && value.length <= 15 && SERVICE_NAME.test(value) && /[a-z]/.test(value) && !value.includes('--')) port = value;
    else {
      portReader.problem(`${shown(value)} is not a port: a number 1-65535 or a port name (1-15 lower-case letters, digits and '-', with a letter)`);
      ok = false;
    }
  }
  let endPort: number | null = null;
  const endPortReader = fields.get('endPort');
  if (endPortReader !== undefined && endPortReader.value !== null) {
    const value = endPortReader.value;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) endPortReader.problem(`${shown(value)} is not a port number 1-65535`);
    else if (typeof port !== 'number') endPortReader.problem('needs a numeric port');
    else if (value < port) endPortReader.problem(`${value} is below port ${port}`);
    else endPort = value;
    ok &&= endPort !== null;
  }
  return ok ? { protocol, port, endPort } : undefined;
}

function readRule(reader: Reader, peersKey: 'from' | 'to'): PolicyRule | undefined {
  const fields = reader.object(['ports', peersKey]);
  if (fields === undefined) return undefined;
  const peers = (fields.get(peersKey) ?? reader.child(peersKey)).list()?.map(readPeer);
  const ports = (fields.get('ports') ?? reader.child('ports')).list()?.map(readPort);
  if (ports === undefined || peers === undefined || ports.includes(undefined) || peers.includes(undefined)) return undefined;
  return { ports: ports as PolicyPort[], peers: peers as PolicyPeer[] };
}

function readRules(reader: Reader | undefined, peersKey: 'from' | 'to'): PolicyRule[] | undefined {
  if (reader === undefined) return [];
  const rules = reader.list()?.map((rule) => readRule(rule, peersKey));
  return rules === undefined || rules.includes(undefined) ? undefined : (rules as PolicyRule[]);
}

function readPolicyTypes(reader: Reader | undefined, hasEgressRules: boolean): PolicyType[] | undefined {
  if (reader === undefined || reader.value === null) return hasEgressRules ? ['Ingress', 'Egress'] : ['Ingress'];
  const items = reader.list();
  if (items === undefined) return undefined;
  const types: PolicyType[] = [];
  let ok = true;
  for (const item of items) {
    const text = item.string();
    if (text !== 'Ingress' && text !== 'Egress') {
      if (text !== undefined) item.problem(`${JSON.stringify(text)} is not a policy type (Ingress, Egress)`);
      ok = false;
    } else if (types.includes(text)) {
      item.problem(`${text} is listed twice`);
      ok = false;
    } else types.push(text);
  }
  // An explicitly empty list is defaulted like an absent one (the API server's defaulting).
  if (ok && types.length === 0) return hasEgressRules ? ['Ingress', 'Egress'] : ['Ingress'];
  return ok ? types.sort((a, b) => (a === b ? 0 : a === 'Ingress' ? -1 : 1)) : undefined;
}

function readAudit(metadata: Map<string, Reader>): boolean | undefined {
  const annotations = metadata.get('annotations')?.stringMap();
  const value = annotations?.get(AUDIT_ANNOTATION);
  if (value === undefined) return false;
  const text = value.string();
  if (text === 'true' || text === 'false') return text === 'true';
  if (text !== undefined) value.problem(`${JSON.stringify(text)} is not "true" or "false"`);
  return undefined;
}

/** One parsed YAML document → a policy, or its problems as [field, reason] pairs. */
function readPolicy(document: unknown, problems: string[][]): NetworkPolicy | undefined {
  const root = new Reader(problems, document, '');
  const fields = root.object(['apiVersion', 'kind', 'metadata', 'spec']);
  if (fields === undefined) return undefined;
  const apiVersion = fields.get('apiVersion')?.value;
  if (apiVersion !== 'networking.k8s.io/v1') root.problem(`${shown(apiVersion)} is not networking.k8s.io/v1`, 'apiVersion');
  const kind = fields.get('kind')?.value;
  if (kind !== 'NetworkPolicy') root.problem(`${shown(kind)} is not NetworkPolicy`, 'kind');
  const metadataReader = fields.get('metadata') ?? root.child('metadata');
  const metadata = metadataReader.object(METADATA_FIELDS) ?? new Map<string, Reader>();
  const name = metadata.get('name')?.string();
  if (name === undefined) metadataReader.problem('is required', 'metadata.name');
  const nameProblem = name === undefined ? null : objectNameProblem(name, 'subdomain');
  if (nameProblem !== null) metadata.get('name')!.problem(nameProblem);
  const namespaceReader = metadata.get('namespace');
  const namespace = namespaceReader === undefined ? 'default' : namespaceReader.string();
  const namespaceProblem = namespace === undefined ? null : objectNameProblem(namespace, 'label');
  if (namespaceProblem !== null) namespaceReader!.problem(namespaceProblem);
  const audit = readAudit(metadata);

  const specReader = fields.get('spec');
  if (specReader === undefined) return root.problem('is required', 'spec');
  const spec = specReader.object(['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (spec === undefined) return undefined;
  const podSelector = readSelector(spec.get('podSelector') ?? specReader.child('podSelector'));
  const ingress = readRules(spec.get('ingress'), 'from');
  const egress = readRules(spec.get('egress'), 'to');
  const policyTypes = readPolicyTypes(spec.get('policyTypes'), (egress?.length ?? 0) > 0);
  if (name === undefined || nameProblem !== null || namespace === undefined || namespaceProblem !== null || audit === undefined) return undefined;
  if (podSelector === undefined || ingress === undefined || egress === undefined || policyTypes === undefined) return undefined;
  return { namespace, name, audit, spec: { podSelector, policyTypes, ingress, egress } };
}

/** Names a document for its problems, from whatever of its metadata reads. */
function documentName(document: unknown): string {
  const metadata = (document as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  if (typeof metadata?.name !== 'string') return '';
  return `${typeof metadata.namespace === 'string' ? metadata.namespace : 'default'}/${metadata.name}`;
}

/** The policy of document `index`, or undefined with its problems added to `problems`. */
function checkDocument(document: unknown, index: number, problems: DocumentProblem[]): NetworkPolicy | undefined {
  const found: string[][] = [];
  const policy = readPolicy(document, found);
  const name = documentName(document);
  for (const [field, reason] of found) problems.push({ document: index, policy: name, field: field!, reason: reason! });
  return policy === undefined || found.length > 0 ? undefined : policy;
}

/**
 * Every NetworkPolicy of a YAML text (one or more documents; empty documents are skipped). Throws a
 * PolicyDocumentError with all problems if any document has one; also if two documents name the same policy.
 */
export function parsePolicies(text: string): NetworkPolicy[] {
  const problems: DocumentProblem[] = [];
  const policies: NetworkPolicy[] = [];
  const seen = new Map<string, number>();
  parseAllDocuments(text).forEach((parsed, index) => {
    if (parsed.errors.length > 0) {
      for (const error of parsed.errors) problems.push({ document: index, policy: '', field: '', reason: `invalid YAML: ${error.message.split('\n')[0]}` });
      return;
    }
    const document: unknown = parsed.toJS();
    if (document === null || document === undefined) return;
    const policy = checkDocument(document, index, problems);
    if (policy === undefined) return;
    const key = `${policy.namespace}/${policy.name}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) problems.push({ document: index, policy: key, field: 'metadata.name', reason: `document ${earlier + 1} already defines ${key}` });
    seen.set(key, index);
    policies.push(policy);
  });
  if (problems.length > 0) throw new PolicyDocumentError(problems);
  return policies;
}

/**
 * One document already parsed (an object, as policyDocument renders a policy) → the policy, with the same checks as
 * parsePolicies; throws a PolicyDocumentError naming every problem's field. How the enforcer checks a policy it
 * read from the topic, whose writer may not have been `sidecarless policy apply`.
 */
export function validatePolicyDocument(document: unknown): NetworkPolicy {
  const problems: DocumentProblem[] = [];
  const policy = checkDocument(document, 0, problems);
  if (policy === undefined) throw new PolicyDocumentError(problems);
  return policy;
}

/**
 * One NetworkPolicy object as the API server serves it (a list's items carry no apiVersion and kind; `status`, which
 * older servers still serve, is the server's), checked as validatePolicyDocument checks it. Throws a
 * PolicyDocumentError naming the field of every problem.
 */
export function policyFromObject(object: unknown): NetworkPolicy {
  const { status: _status, ...served } = (object ?? {}) as Record<string, unknown>;
  return validatePolicyDocument({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', ...served });
}
