/**
 * Which API server to watch, with which credentials: metadata.kubeconfig, else the files in KUBECONFIG, else
 * ~/.kube/config, else the pod's service account. Unlike client-node's loadFromDefault, nothing found is an error
 * that says what to set, not a silent http://localhost:8080.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, describeError } from '../../common/errors.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): { kubeConfig: KubeConfig; from: string } {
  const kubeConfig = new KubeConfig();
  const load = (key: string, from: string, action: () => void) => {
    try {
      action();
    } catch (error) {
      throw new ConfigError(key, `cannot load the kubeconfig ${from}: ${describeError(error)}`);
    }
    if (kubeConfig.getCurrentCluster() === null) throw new ConfigError(key, `the kubeconfig ${from} has no current context with a cluster`);
    return { kubeConfig, from };
  };
  if (path !== undefined) return load('metadata.kubeconfig', path, () => kubeConfig.loadFromFile(path));
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter((file) => file !== '');
  if (listed.length > 0) {
    // kubectl's rule: the files merged, the first one's current context wins.
    return load('KUBECONFIG', `from KUBECONFIG (${listed.join(delimiter)})`, () => {
      kubeConfig.loadFromFile(listed[0]!);
      for (const file of listed.slice(1)) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kubeConfig.mergeConfig(more, true);
      }
    });
  }
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return load('metadata.kubeconfig', home, () => kubeConfig.loadFromFile(home));
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    return load('metadata.kubeconfig', 'of the pod\'s service account', () => kubeConfig.loadFromCluster());
  }
  throw new ConfigError('metadata.kubeconfig', 'no API server to watch: set metadata.kubeconfig or KUBECONFIG, create ~/.kube/config, run in a pod with a service account, or publish a file instead (metadata.file, --file)');
}
