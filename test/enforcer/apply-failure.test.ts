/**
 * A state the kernel cannot hold (the policy map full) is not applied, on the real kernel: the apply throws naming
 * the capacities, the active generation keeps the last applied state, the inactive one is put back to it, and the
 * next state that fits applies. And an apply cut off midway (the process killed while it wrote the inactive
 * generation) is repaired by the next open().
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { PolicyApplier, type NodeMapState } from '../../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel } from '../../src/enforcer/apply/kernel.js';
import { policyEntryKey, type PolicyEntry } from '../../src/enforcer/compile/map-state.js';
import { PinDirectory } from '../../src/ebpf/pins.js';

const SUBJECT = (1n << 62n) | 1n;

/** A pod with `count` single-port ingress entries (ports 1000, 1002, ...: one LPM block each). */
function withEntries(count: number): NodeMapState {
  const entries = Array.from({ length: count }, (_, i): PolicyEntry => ({
    subject: SUBJECT,
    direction: 'ingress',
    protocol: 'TCP',
    peer: 0n,
    portFirst: 1000 + 2 * i,
    portLast: 1000 + 2 * i,
    audit: false,
  }));
  return {
    state: {
      endpoints: new Map([['10.0.0.1', SUBJECT]]),
      prefixes: new Map(),
      isolation: new Map([[`${SUBJECT}/ingress`, { subject: SUBJECT, direction: 'ingress', audit: false }]]),
      policy: new Map(entries.map((entry) => [policyEntryKey(entry), entry])),
    },
    cgroups: new Map([[4242n, SUBJECT]]),
  };
}

describe('apply: a state the maps cannot hold', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-apply-failure-${process.pid}-${randomBytes(3).toString('hex')}`);
  // 8 policy entries per generation: 16 in the map, shared by both generations.
  const kernel = PolicyKernel.open(pins, { ...DEFAULT_POLICY_KERNEL_OPTIONS, maxPolicyEntries: 8 });
  after(() => {
    kernel.remove();
    pins.remove();
  });

  it('is refused whole; the last applied state stays enforced and the next one that fits applies', () => {
    const applier = PolicyApplier.open(kernel.maps);
    const small = withEntries(5);
    applier.apply(small);
    const active = kernel.maps.activeGeneration();
    assert.throws(
      () => applier.apply(withEntries(30)),
      (error: Error) => /the new state was not applied, the last applied one is still enforced: .*policy: update: (E2BIG|ENOSPC).*maxPolicyEntries/.test(error.message),
    );
    assert.equal(kernel.maps.activeGeneration(), active, 'the generation was not flipped');
    assert.deepEqual([applier.readBack(0), applier.readBack(1)], [small, small]);
    assert.deepEqual(applier.current, small);
    const other = withEntries(7);
    applier.apply(other);
    assert.deepEqual([applier.readBack(0), applier.readBack(1)], [other, other]);
  });

  it('open() after an apply cut off midway: the active generation is the state, the inactive one is made equal', () => {
    const applied = withEntries(3);
    PolicyApplier.open(kernel.maps).apply(applied);
    const inactive = 1 - kernel.maps.activeGeneration();
    // What a killed apply leaves: part of another state in the inactive generation.
    kernel.maps.cgroupIdentity.update({ cgroupId: 777n, generation: inactive }, SUBJECT);
    kernel.maps.policy.delete({ generation: inactive, direction: 1, protocol: 6, subject: SUBJECT, peer: 0n, port: 1000, bits: 16 });
    kernel.maps.policy.update({ generation: inactive, direction: 1, protocol: 6, subject: SUBJECT, peer: 0n, port: 3000, bits: 16 }, 0);
    const reopened = PolicyApplier.open(kernel.maps);
    assert.deepEqual(reopened.current, applied);
    assert.deepEqual(reopened.readBack(inactive), applied);
  });
});
