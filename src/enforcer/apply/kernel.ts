/**
 * The kernel side of the enforcer: bpf/policy.bpf.c installed in the node's pin directory (or adopted, as the last
 * enforcer left it: its programs keep enforcing the last applied state while no enforcer runs), attached to the
 * cgroups holding the node's pods, and its maps opened typed (PolicyMaps).
 *
 *   <pins>/policy/<layout>/programs/policy_{connect4,connect6,sendmsg4,sendmsg6,ingress}
 *   <pins>/policy/<layout>/links/<program>@<cgroup id>
 *   <pins>/policy/<layout>/maps/{cgroup_identity,endpoints,prefixes,isolation,policy,active_generation,
 *                                generation_0,generation_1,udp_flows,verdict_ring,drops,drops_reported,retired}
 *   <pins>/maps/verdict_reporter   which layout reports verdicts (shared by every layout)
 *
 * <layout> is a digest of the object and its options (src/ebpf/installation.ts): a layout change of any map is a new
 * object, hence new maps beside the old ones, never an old map read with a new meaning. A new layout starts with
 * empty maps; the caller applies the whole state to it before attaching it (attach, which also makes it the one
 * that reports verdicts), reads the old ones' rings to their end (takeOverVerdicts), then retires them
 * (retireOtherLayouts).
 *
 * Capabilities: CAP_BPF (maps, BTF, the ring) and CAP_NET_ADMIN (cgroup_skb and cgroup sock_addr programs are
 * network-admin program types: loading and attaching them needs it). Not CAP_PERFMON: the programs read no kernel
 * memory (no probe_read, no pointers leaked), which is what it would allow. Pinning needs write access to bpffs.
 */
import { KernelError } from '../../common/errors.js';
import { u32Codec, u64Codec } from '../../ebpf/codecs.js';
import { Cgroup, outermost } from '../../ebpf/cgroup.js';
import { waitForProgramRuns } from '../../ebpf/grace-period.js';
import { CgroupAttachType, Installation } from '../../ebpf/installation.js';
import type { BpfMap } from '../../ebpf/map.js';
import { objectPath } from '../../ebpf/object.js';
import type { PinDirectory } from '../../ebpf/pins.js';
import { checkKernel } from '../../ebpf/preflight.js';
import {
  cgroupIdentityKeyCodec,
  endpointKeyCodec,
  isolationKeyCodec,
  policyKeyCodec,
  prefixKeyCodec,
  type CgroupIdentityKey,
  type EndpointKey,
  type IsolationKey,
  type PolicyKey,
  type PrefixKey,
} from '../../ebpf/records/policy-keys.js';

export interface PolicyKernelOptions {
  /** Report one allow in this many (0: none); denials and audit would-be denials are always reported. */
  allowSampleEvery: number;
  /** How long the answers of an unconnected UDP socket's exchange pass as replies. */
  udpReplyWindowMs: number;
  ringBytes: number;
  /** Capacities per generation (each map holds two). */
  maxPods: number;
  maxEndpoints: number;
  maxPrefixes: number;
  maxPolicyEntries: number;
}

export const DEFAULT_POLICY_KERNEL_OPTIONS: PolicyKernelOptions = {
  allowSampleEvery: 0,
  udpReplyWindowMs: 120_000,
  ringBytes: 1 << 20,
  maxPods: 16_384,
  maxEndpoints: 65_536,
  maxPrefixes: 16_384,
  maxPolicyEntries: 262_144,
};

/** Program name → its cgroup attach type. */
const PROGRAMS = {
  policy_connect4: CgroupAttachType.inet4Connect,
  policy_connect6: CgroupAttachType.inet6Connect,
  policy_sendmsg4: CgroupAttachType.udp4Sendmsg,
  policy_sendmsg6: CgroupAttachType.udp6Sendmsg,
  policy_ingress: CgroupAttachType.inetIngress,
} as const;

const MAPS = ['cgroup_identity', 'endpoints', 'prefixes', 'isolation', 'policy', 'active_generation', 'generation_0', 'generation_1', 'udp_flows', 'verdict_ring', 'drops', 'retired'];

/** The enforcer's maps, typed. Values: identities (u64) and enum sl_policy_flag bits (u32). */
export interface PolicyMaps {
  cgroupIdentity: BpfMap<CgroupIdentityKey, bigint>;
  endpoints: BpfMap<EndpointKey, bigint>;
  prefixes: BpfMap<PrefixKey, bigint>;
  isolation: BpfMap<IsolationKey, number>;
  policy: BpfMap<PolicyKey, number>;
  /** The generation the programs read now (0 or 1). */
  activeGeneration(): number;
  /**
   * Points the programs at `generation`. Returns once no program runs with the other one any more: the kernel
   * waits for an RCU grace period after an update of a map-in-map (bpf/policy.bpf.c says why that matters).
   */
  activate(generation: number): void;
}

export class PolicyKernel {
  private constructor(
    readonly installation: Installation,
    readonly maps: PolicyMaps,
  ) {}

  /** Installs bpf/policy.bpf.c in `pins`, or adopts the installation of the same layout with its maps' contents. */
  static open(pins: PinDirectory, options: PolicyKernelOptions = DEFAULT_POLICY_KERNEL_OPTIONS): PolicyKernel {
    checkKernel(['btf', 'bpf', 'net_admin', 'cgroup2', 'bpffs']);
    const installation = Installation.open(pins, {
      kind: 'policy',
      objectFile: objectPath('policy'),
      load: {
        rodata: { allow_sample_every: options.allowSampleEvery, udp_reply_window_ns: BigInt(options.udpReplyWindowMs) * 1_000_000n },
        maxEntries: {
          verdict_ring: options.ringBytes,
          cgroup_identity: 2 * options.maxPods,
          endpoints: 2 * options.maxEndpoints,
          prefixes: 2 * options.maxPrefixes,
          isolation: 2 * 2 * options.maxPods,
          policy: 2 * options.maxPolicyEntries,
        },
      },
      maps: MAPS,
      links: {},
      programs: Object.keys(PROGRAMS),
    });
    try {
      const kernel = new PolicyKernel(installation, openMaps(installation));
      kernel.ownWord.update(0, kernel.id << 1n);
      return kernel;
    } catch (error) {
      installation.close();
      throw error;
    }
  }

  /**
   * Makes the programs' cgroup links match `cgroups` (the directories holding the node's pods; a program runs for
   * the cgroups below its own): attached where they are not, detached from cgroups no longer listed.
   */
  attach(cgroupPaths: readonly string[]): void {
    const targets = outermost(cgroupPaths.map((cgroupPath) => Cgroup.at(cgroupPath)));
    for (const [program, attachType] of Object.entries(PROGRAMS)) this.installation.attachToCgroups(program, attachType, targets);
    // Attached, it reports what it decides; an installation of another layout attached beside it stops reporting.
    this.installation.map('verdict_reporter').typed(u32Codec, u64Codec).update(0, this.id);
  }

  /** This installation's id: the kernel's id of its `retired` map (bpf/include/retire.h), unique on the node. */
  get id(): bigint {
    return BigInt(this.installation.map('retired').id);
  }

  private get ownWord(): BpfMap<number, bigint> {
    return this.installation.map('retired').typed(u32Codec, u64Codec);
  }

  /**
   * The installations of other layouts, once their rings hold all they ever will: attach made this one the one that
   * reports verdicts (`verdict_reporter`, bpf/policy.bpf.c), and this waits until no program run that read the
   * word before is still going. Their rings are to be read to their end before retireOtherLayouts removes them.
   */
  takeOverVerdicts(): Installation[] {
    const others = this.installation.others();
    if (others.length > 0) waitForProgramRuns();
    return others;
  }

  /**
   * Removes the installations of other layouts (an earlier version, another setting): their programs stop, their
   * maps go. Call it once this installation's maps hold the whole state, it is attached and reports verdicts, and
   * the others' rings were read: until then the old one keeps enforcing, and while both are attached a connection
   * passes only if both let it (the kernel runs every program of a cgroup hook), which with equal states is the same
   * verdict. Returns how many were removed.
   */
  retireOtherLayouts(): number {
    const others = this.installation.others();
    for (const other of others) other.remove();
    return others.length;
  }

  /** Releases this process's fds; the pins keep enforcing. Safe twice. */
  close(): void {
    this.installation.close();
  }

  /** Removes every pin: the programs stop and the maps go. */
  remove(): void {
    this.installation.remove();
  }
}

function openMaps(installation: Installation): PolicyMaps {
  const generationMaps = [installation.map('generation_0'), installation.map('generation_1')];
  // Each generation map holds its own number, which the programs read through active_generation.
  generationMaps.forEach((map, generation) => map.typed(u32Codec, u32Codec).update(0, generation));
  // Written with an inner map's fd; read back as that map's id.
  const active = installation.map('active_generation').typed(u32Codec, u32Codec);
  return {
    cgroupIdentity: installation.map('cgroup_identity').typed(cgroupIdentityKeyCodec, u64Codec),
    endpoints: installation.map('endpoints').typed(endpointKeyCodec, u64Codec),
    prefixes: installation.map('prefixes').typed(prefixKeyCodec, u64Codec),
    isolation: installation.map('isolation').typed(isolationKeyCodec, u32Codec),
    policy: installation.map('policy').typed(policyKeyCodec, u32Codec),
    activeGeneration() {
      const id = active.lookup(0);
      const generation = generationMaps.findIndex((map) => map.id === id);
      if (generation < 0) throw new KernelError(`policy: active_generation points at map ${id}, neither generation_0 nor generation_1`, { context: { component: 'enforcer.apply' } });
      return generation;
    },
    activate(generation) {
      active.update(0, generationMaps[generation]!.fd);
    },
  };
}
