/**
 * The list half of an informer: every object of a kind, in pages of `pageSize` (what client-go's reflector does,
 * so a large cluster is not one huge response), as the API server's own JSON. The generated clients of
 * @kubernetes/client-node would turn times into Date objects while the watch half hands over plain JSON; one shape
 * for both (and for a file's documents) keeps the translation one function per kind.
 *
 * All pages come from one snapshot (the API server guarantees it for continue tokens), at the resourceVersion the
 * list returns; the watch resumes from there. A continue token that expired answers 410: the list fails and the
 * informer lists again from the start.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { SidecarlessError } from '../../common/errors.js';

/** An API answer other than 200; `statusCode` as the informer expects it (410: expired). */
export class ApiStatusError extends SidecarlessError {
  constructor(
    readonly statusCode: number,
    message: string,
    path: string,
  ) {
    super(message, { retriable: statusCode !== 401 && statusCode !== 403, context: { component: 'kubernetes', path, statusCode } });
  }
}

const PAGE_TIMEOUT_MS = 60_000;

async function getJson(kubeConfig: KubeConfig, path: string, signal: AbortSignal): Promise<unknown> {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new SidecarlessError('the kubeconfig has no current cluster', { context: { component: 'kubernetes' } });
  const url = new URL(cluster.server + path);
  const options: RequestOptions = { method: 'GET', headers: { accept: 'application/json' }, signal, timeout: PAGE_TIMEOUT_MS };
  await kubeConfig.applyToHTTPSOptions(options);
  const request = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) {
          const status = response.statusCode ?? 0;
          // The API server explains itself in a Status object's message.
          const reason = (() => {
            try {
              return (JSON.parse(body) as { message?: string }).message ?? body.slice(0, 200);
            } catch {
              return body.slice(0, 200);
            }
          })();
          reject(new ApiStatusError(status, `GET ${path}: ${status} ${reason}`, path));
          return;
        }
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(new SidecarlessError(`GET ${path}: the answer is not JSON`, { retriable: true, cause: error, context: { component: 'kubernetes', path } }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new SidecarlessError(`GET ${path}: no answer within ${PAGE_TIMEOUT_MS} ms`, { retriable: true })));
    req.on('error', reject);
    req.end();
  });
}

/** Every object under `path` (all namespaces), page by page; rejects when `signal` aborts. */
export async function listAll(kubeConfig: KubeConfig, path: string, signal: AbortSignal, pageSize = 500): Promise<KubernetesListObject<KubernetesObject>> {
  const items: KubernetesObject[] = [];
  let continueToken = '';
  for (;;) {
    const query = new URLSearchParams({ limit: String(pageSize) });
    if (continueToken !== '') query.set('continue', continueToken);
    // Plain JSON: `continue` as the API names it (the generated V1ListMeta calls it _continue).
    const page = (await getJson(kubeConfig, `${path}?${query}`, signal)) as { items?: KubernetesObject[]; metadata?: { resourceVersion?: string; continue?: string } };
    items.push(...(page.items ?? []));
    continueToken = page.metadata?.continue ?? '';
    if (continueToken === '') return { metadata: { resourceVersion: page.metadata?.resourceVersion ?? '' }, items };
  }
}
