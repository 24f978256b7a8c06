/**
 * Policies given as a user gives them, and connections whose verdict a test checks: `sidecarless policy apply -f`
 * as a child process, and one TCP connect() from inside a lab pod from a source port the test chooses (so that a
 * verdict's 5-tuple is known exactly).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Pod } from '../../src/lab/pods.js';

const BIN = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

/** `sidecarless policy apply -f` of `yaml`, with `env` (the Kafka settings: brokers, topic prefix, partitions) over this process's. */
export async function policyApply(yaml: string, env: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'policy-apply-'));
  try {
    const file = join(dir, 'policies.yaml');
    writeFileSync(file, yaml);
    await promisify(execFile)(process.execPath, [BIN, 'policy', 'apply', '-f', file], { env: { ...process.env, ...env }, timeout: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One TCP connect() from inside `pod` to `to`:`port`, from `sourcePort` on its own address (0: the kernel picks),
 * given up after 500 ms (before the first SYN retransmission, at 1 s, so a dropped SYN is decided once):
 * 'connected', 'timeout' or 'error <errno>' (1, EPERM: denied at connect; 111, ECONNREFUSED: nothing listens).
 */
export function connectFrom(pod: Pod, to: Pod, port: number, sourcePort: number): string {
  const script = `import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
try:
    s.connect((sys.argv[3], int(sys.argv[4])))
    print('connected')
except socket.timeout:
    print('timeout')
except OSError as e:
    print('error', e.errno)
`;
  return pod.exec('python3', ['-c', script, pod.ip, String(sourcePort), to.ip, String(port)]).trim();
}
