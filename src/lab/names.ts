/**
 * Every name a lab creates derives from its id, so that teardown (and destroyAll after a crashed run) finds a
 * lab's leftovers from the names alone, without any state from the process that created them.
 * Interface names are limited to 15 characters (IFNAMSIZ - 1): `sl` + a 5-character id + `-` + role leaves room
 * for pod indexes up to 3 digits ("sl3k9qz-v252").
 */
import { randomInt } from 'node:crypto';

const id = '[0-9a-z]{5}';

export function newLabId(): string {
  return randomInt(36 ** 5).toString(36).padStart(5, '0');
}

export const labNames = {
  bridge: (labId: string) => `sl${labId}-br`,
  /** Host side of a pod's veth pair; the pod side is eth0 inside the pod's netns. */
  hostVeth: (labId: string, podIndex: number) => `sl${labId}-v${podIndex}`,
  netns: (labId: string, pod: string) => `sl${labId}-${pod}`,
  /** Below the cgroup v2 root; the pods' cgroups are below it, named as the kubelet names them (kubelet-cgroup.ts). */
  cgroupDir: (labId: string) => `sidecarless-lab-${labId}`,
  /** nft table names allow no '-'. */
  lossTable: (labId: string, podIndex: number, port: number) => `${labNames.lossTablesOf(labId, podIndex)}${port}`,
  /** What the loss tables of one pod start with. */
  lossTablesOf: (labId: string, podIndex: number) => `sl${labId}_v${podIndex}_`,
};

const patterns = {
  linkOrNetns: new RegExp(`^sl(${id})-`),
  cgroupDir: new RegExp(`^sidecarless-lab-(${id})$`),
  lossTable: new RegExp(`^sl(${id})_`),
};

/** The lab id a name we created carries, or undefined for names that are not ours. */
export function labIdOf(kind: keyof typeof patterns, name: string): string | undefined {
  return patterns[kind].exec(name)?.[1];
}
