/**
 * `node delete-recorded-child.js <lab id>`: deletes every object the lab recorded, dependents before what they
 * depend on (pods before their slices, services and owners), namespaces last: no namespace controller runs to
 * delete a namespace's contents, so the lab deletes them itself (the namespace then stays Terminating). Objects
 * already gone are fine. Exits 1 with the failures on stderr.
 */
import { KubeApi } from './api.js';
import { recordedObjects, type RecordedObject } from './ledger.js';

const order = ['Pod', 'EndpointSlice', 'Service', 'Job', 'CronJob', 'ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet'];

/** Deletion step of an object: its kind's place in order, other kinds after those, namespaces last. */
function rank(object: RecordedObject): number {
  if (object.kind === 'Namespace') return order.length + 1;
  const place = order.indexOf(object.kind);
  return place === -1 ? order.length : place;
}

async function deleteAll(objects: readonly RecordedObject[]): Promise<string[]> {
  const failures: string[] = [];
  for (const kubeconfig of new Set(objects.map((o) => o.kubeconfig))) {
    const api = KubeApi.connect(kubeconfig);
    const ofServer = objects.filter((o) => o.kubeconfig === kubeconfig);
    for (const step of [...new Set(ofServer.map(rank))].sort((a, b) => a - b)) {
      const deletions = ofServer.filter((o) => rank(o) === step).map((o) => api.delete(o).catch((error: Error) => failures.push(error.message)));
      await Promise.all(deletions);
    }
  }
  return failures;
}

const labId = process.argv[2] ?? '';
const failures = await deleteAll(recordedObjects(labId)).catch((error: Error) => [error.message]);
if (failures.length > 0) {
  process.stderr.write(failures.join('; '));
  process.exitCode = 1;
}
