/**
 * The Kubernetes kinds the metadata role publishes, with where the API serves each one (the path an informer lists
 * and watches, across all namespaces) and the apiVersion a manifest of it carries. Owners beyond Pods are watched
 * because a workload is named through them (Pod → ReplicaSet → Deployment, Pod → Job → CronJob).
 */
import type { ObjectKind } from './translate.js';

export interface KindApi {
  apiVersion: string;
  /** Every object of the kind, all namespaces. */
  path: string;
}

export const KIND_APIS: Readonly<Record<ObjectKind, KindApi>> = {
  Namespace: { apiVersion: 'v1', path: '/api/v1/namespaces' },
  Node: { apiVersion: 'v1', path: '/api/v1/nodes' },
  Pod: { apiVersion: 'v1', path: '/api/v1/pods' },
  Service: { apiVersion: 'v1', path: '/api/v1/services' },
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  ReplicaSet: { apiVersion: 'apps/v1', path: '/apis/apps/v1/replicasets' },
  Deployment: { apiVersion: 'apps/v1', path: '/apis/apps/v1/deployments' },
  StatefulSet: { apiVersion: 'apps/v1', path: '/apis/apps/v1/statefulsets' },
  DaemonSet: { apiVersion: 'apps/v1', path: '/apis/apps/v1/daemonsets' },
  Job: { apiVersion: 'batch/v1', path: '/apis/batch/v1/jobs' },
  CronJob: { apiVersion: 'batch/v1', path: '/apis/batch/v1/cronjobs' },
};

export const OBJECT_KINDS = Object.keys(KIND_APIS) as ObjectKind[];

export function isObjectKind(kind: string): kind is ObjectKind {
  return Object.hasOwn(KIND_APIS, kind);
}
