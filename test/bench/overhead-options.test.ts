/** `bench overhead`'s flags: defaults, values, and a usage error naming the flag for each wrong one. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseOptions } from '../../bench/overhead.js';
import { UsageError } from '../../bench/usage-error.js';

describe('bench overhead: flags', () => {
  it('default to the full size, every mode, 16 connections', () => {
    assert.deepEqual(parseOptions([]), {
      rates: [1000, 5000, 10000, 'max'],
      seconds: 10,
      warmSeconds: 2,
      settleSeconds: 20,
      modes: ['baseline', 'ebpf', 'sidecar', 'node-proxy'],
      connections: 16,
      json: resolve('bench-overhead.json'),
    });
  });

  it('take rates, seconds, warm-up, modes (run baseline first), connections and the JSON path', () => {
    const options = parseOptions(['--rates', '300,max', '--seconds', '2.5', '--warm', '0', '--settle', '3', '--modes', 'sidecar,baseline', '--connections', '4', '--json', '/tmp/x.json']);
    assert.deepEqual(options, { rates: [300, 'max'], seconds: 2.5, warmSeconds: 0, settleSeconds: 3, modes: ['baseline', 'sidecar'], connections: 4, json: '/tmp/x.json' });
    assert.equal(parseOptions(['--settle', '0']).settleSeconds, 0);
  });

  it('refuse a wrong one, naming it', () => {
    const refused = (args: string[], message: string) => assert.throws(() => parseOptions(args), (error: unknown) => error instanceof UsageError && error.message === message);
    refused(['--rates', '1000,fast'], 'bench overhead: --rates fast: expected a positive integer');
    refused(['--rates', '0'], 'bench overhead: --rates 0: expected a positive integer');
    refused(['--seconds', '0'], 'bench overhead: --seconds 0: expected a positive number');
    refused(['--settle', 'long'], 'bench overhead: --settle long: expected a positive number');
    refused(['--connections', '1.5'], 'bench overhead: --connections 1.5: expected a positive integer');
    refused(['--modes', 'ebpf,envoy'], 'bench overhead: --modes ebpf,envoy: expected some of baseline, ebpf, sidecar, node-proxy');
    refused(['--rate', '5'], "bench overhead: Unknown option '--rate'");
  });
});
