/**
 * Cgroup path -> pod uid and container id, on paths as nodes show them (taken from public bug reports and logs of
 * each runtime and driver), and on paths that are no pod's, which must give neither.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCgroupPath } from '../../src/common/cgroup-path.js';

type Parsed = ReturnType<typeof parseCgroupPath>;
const pod = (podUid: string, containerId: string | null = null): Parsed => ({ podUid, containerId });
const NONE: Parsed = { podUid: null, containerId: null };
const CRIO_POD = '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice';

/** Each case: what it shows, and the paths with what they must give. */
const CASES: ReadonlyArray<{ what: string; paths: ReadonlyArray<readonly [path: string, parsed: Parsed]> }> = [
  {
    what: 'containerd, systemd driver: Burstable and BestEffort below their QoS slice, Guaranteed directly below kubepods',
    paths: [
      [
        '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope',
        pod('55c6c714-b240-4dec-9a45-57b61696ab6e', '2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36'),
      ],
      [
        '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice/cri-containerd-7dea796eb5d6826a85978fa316612874aa3d576ac576495bed83d77fbc9dc744.scope',
        pod('2ca4a155-3599-498d-bb9d-4446693fa3ea', '7dea796eb5d6826a85978fa316612874aa3d576ac576495bed83d77fbc9dc744'),
      ],
      [
        'kubepods.slice/kubepods-podadcfbb42_ec24_48ae_a259_f756c8d1f046.slice/cri-containerd-484b78324bb363a0cc93d136431e2005ceac970d035aaeec4ad6bfb6848a7b51.scope',
        pod('adcfbb42-ec24-48ae-a259-f756c8d1f046', '484b78324bb363a0cc93d136431e2005ceac970d035aaeec4ad6bfb6848a7b51'),
      ],
    ],
  },
  {
    what: 'the pod cgroup itself: the pod uid, no container',
    paths: [
      ['/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podbf9d0bcd_6f57_47a6_b0b0_367b782509d7.slice', pod('bf9d0bcd-6f57-47a6-b0b0-367b782509d7')],
      ['/kubepods/besteffort/pod85401dd3-38cd-47b6-a90a-e16c0e1c06e6', pod('85401dd3-38cd-47b6-a90a-e16c0e1c06e6')],
    ],
  },
  {
    what: "a static pod's uid is its 32-hex config hash, kept as it is",
    paths: [
      [
        '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope',
        pod('8daa50c3a64c9ff60bb9eab7b44b56fd', '2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5'),
      ],
    ],
  },
  {
    what: "a kubelet with another cgroup root (kind's kubelet.slice), and a node that is itself a container (minikube)",
    paths: [
      [
        '/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod1e597579_417e_482f_bf65_5fe170c3aebd.slice/cri-containerd-a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e.scope',
        pod('1e597579-417e-482f-bf65-5fe170c3aebd', 'a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e'),
      ],
      [
        '/docker/d6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podae7a96fb_2bdc_46b0_96e2_78e4af94847b.slice/crio-89e8f450417b56acf3089925dfd8f050dd50e950e18cfe83ea923269df601102.scope',
        pod('ae7a96fb-2bdc-46b0-96e2-78e4af94847b', '89e8f450417b56acf3089925dfd8f050dd50e950e18cfe83ea923269df601102'),
      ],
    ],
  },
  {
    what: 'CRI-O: crio-<id>.scope is a container; crio-conmon-<id>.scope (the runtime monitor) is the pod, not a container',
    paths: [
      [
        `${CRIO_POD}/crio-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c.scope`,
        pod('2ca4a155-3599-498d-bb9d-4446693fa3ea', '358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c'),
      ],
      [`${CRIO_POD}/crio-conmon-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c.scope`, pod('2ca4a155-3599-498d-bb9d-4446693fa3ea')],
      ['/kubepods/burstable/pod1ff47ee6-9685-4726-ac6f-0ff070c452d6/crio-conmon-0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0', pod('1ff47ee6-9685-4726-ac6f-0ff070c452d6')],
    ],
  },
  {
    what: 'Docker through cri-dockerd, systemd driver: docker-<id>.scope',
    paths: [
      [
        '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0d33f94b_ab1a_11e6_9e1a_68f7281d8004.slice/docker-0c34bcd7d02f321d0df7aa6ea703285b02abebc9096c5128c14091fc43ea1f3b.scope',
        pod('0d33f94b-ab1a-11e6-9e1a-68f7281d8004', '0c34bcd7d02f321d0df7aa6ea703285b02abebc9096c5128c14091fc43ea1f3b'),
      ],
    ],
  },
  {
    what: 'cgroupfs driver: kubepods/<qos>/pod<uid>/<id> (containerd, Docker), crio-<id> (CRI-O), kubepods/pod<uid>/<id> (Guaranteed)',
    paths: [
      [
        '/kubepods/besteffort/pod85401dd3-38cd-47b6-a90a-e16c0e1c06e6/dbc9f149296cec5d12b78385eb5b2c0cfe20b476f117c15c76d981cff44053c1',
        pod('85401dd3-38cd-47b6-a90a-e16c0e1c06e6', 'dbc9f149296cec5d12b78385eb5b2c0cfe20b476f117c15c76d981cff44053c1'),
      ],
      [
        '/kubepods/burstable/podf09f12af-f459-40aa-a09c-783102e1e92a/crio-0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0',
        pod('f09f12af-f459-40aa-a09c-783102e1e92a', '0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0'),
      ],
      [
        '/kubepods/pod627bc4d7-8c4f-420e-8c4a-ce2477bcdffc/b16518f2aa1b484a2b9a47aff0901792f8c3c7e2b7a48be8b5adcff30e213458',
        pod('627bc4d7-8c4f-420e-8c4a-ce2477bcdffc', 'b16518f2aa1b484a2b9a47aff0901792f8c3c7e2b7a48be8b5adcff30e213458'),
      ],
    ],
  },
  {
    what: "a cgroup below a container's is that container's",
    paths: [
      [
        '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/crio-7bd5db88ae6e5e52e941a2709ed9c18d7572f32db6ea44e8afe783227711151a.scope/container',
        pod('55c6c714-b240-4dec-9a45-57b61696ab6e', '7bd5db88ae6e5e52e941a2709ed9c18d7572f32db6ea44e8afe783227711151a'),
      ],
    ],
  },
  {
    what: 'anything else is no pod: services, sessions, the kubepods and QoS slices, look-alikes, the lab, the root',
    paths: [
      '/system.slice/containerd.service',
      '/system.slice/docker-0c34bcd7d02f321d0df7aa6ea703285b02abebc9096c5128c14091fc43ea1f3b.scope',
      '/user.slice/user-1000.slice/session-3.scope',
      '/kubepods.slice',
      '/kubepods.slice/kubepods-burstable.slice',
      '/kubepods/besteffort',
      // pod<uid> outside kubepods, and a uid that is not one
      '/pod85401dd3-38cd-47b6-a90a-e16c0e1c06e6/dbc9f149296cec5d12b78385eb5b2c0cfe20b476f117c15c76d981cff44053c1',
      '/kubepods/besteffort/podnot-a-uid',
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55c6c714.slice',
      // the pre-1.6 QoS names
      '/BestEffort.slice/BestEffort-pod0d33f94b_ab1a_11e6_9e1a_68f7281d8004.slice/0c34bcd7d02f321d0df7aa6ea703285b02abebc9096c5128c14091fc43ea1f3b',
      '/sidecarless-lab-k3x9/a',
      '/',
      '',
    ].map((path) => [path, NONE] as const),
  },
  {
    what: 'a container-like name that is not 64 hex leaves the container out',
    paths: [['/kubepods.slice/kubepods-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491d.scope', pod('55c6c714-b240-4dec-9a45-57b61696ab6e')]],
  },
];

describe('parseCgroupPath', () => {
  for (const { what, paths } of CASES) {
    it(what, () => {
      for (const [path, parsed] of paths) assert.deepEqual(parseCgroupPath(path), parsed, path);
    });
  }
});
