/**
 * The Kubernetes objects a lab wrote, one JSON line each, appended before the object is created (names are chosen
 * here, never by the API server's generateName), so that teardown after a crash finds every object the lab may
 * have created. Names are per API server: each line names the kubeconfig it was written through.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { objectsFile } from '../registry.js';

export interface RecordedObject {
  kubeconfig: string;
  apiVersion: string;
  kind: string;
  /** Absent for cluster-scoped objects (Namespace). */
  namespace?: string;
  name: string;
}

export function recordObject(labId: string, object: RecordedObject): void {
  appendFileSync(objectsFile(labId), `${JSON.stringify(object)}\n`);
}

/** Each object once (a name can be recorded again, e.g. a StatefulSet pod recreated); [] when the lab wrote none. */
export function recordedObjects(labId: string): RecordedObject[] {
  let text: string;
  try {
    text = readFileSync(objectsFile(labId), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const byLine = new Map<string, RecordedObject>();
  const lines = text.split('\n').filter(Boolean);
  lines.forEach((line, i) => {
    try {
      byLine.set(line, JSON.parse(line) as RecordedObject);
    } catch (err) {
      // Only the last line can be torn (the process died while appending it); its object was not created yet.
      if (i < lines.length - 1) throw err;
    }
  });
  return [...byLine.values()];
}
