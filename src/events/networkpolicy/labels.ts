/**
 * Label syntax (what the API server accepts: k8s.io/apimachinery validation) and label selector matching
 * (metav1.LabelSelector semantics). Pure.
 */
import type { LabelSelector, LabelSelectorRequirement } from './types.js';

const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why `key` is not a label key (`[prefix/]name`: prefix a DNS subdomain ≤ 253, name ≤ 63), or null. */
export function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? null : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== null && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `${JSON.stringify(key)} is not a label key: its prefix must be a lower-case DNS subdomain of at most 253 characters`;
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `${JSON.stringify(key)} is not a label key: its name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending with a letter or digit`;
  }
  return null;
}

/** Why `value` is not a label value (empty, or ≤ 63 characters like a key's name), or null. */
export function labelValueProblem(value: string): string | null {
  if (value === '' || (value.length <= 63 && NAME.test(value))) return null;
  return `${JSON.stringify(value)} is not a label value: at most 63 characters of [A-Za-z0-9-_.], starting and ending with a letter or digit`;
}

/** Why `name` is not an object name of `kind` ('subdomain': ≤ 253, 'label': ≤ 63, RFC 1123), or null. */
export function objectNameProblem(name: string, kind: 'subdomain' | 'label'): string | null {
  const [limit, pattern] = kind === 'subdomain' ? [253, DNS_SUBDOMAIN] : [63, DNS_LABEL];
  if (name.length > 0 && name.length <= limit && pattern.test(name)) return null;
  return `${JSON.stringify(name)} is not a valid name: lower-case letters, digits and '-'${kind === 'subdomain' ? " and '.'" : ''}, at most ${limit} characters, starting and ending with a letter or digit`;
}

function requirementHolds(requirement: LabelSelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  const value = Object.hasOwn(labels, requirement.key) ? labels[requirement.key] : undefined;
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && requirement.values.includes(value);
    case 'NotIn':
      return value === undefined || !requirement.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
  }
}

/** Whether `selector` selects an object with `labels`; an empty selector selects everything. */
export function selects(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels)) if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  return selector.matchExpressions.every((requirement) => requirementHolds(requirement, labels));
}
