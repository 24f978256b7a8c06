/**
 * Attaching a loaded program to its hook. Every attachment is registered with the owning object, so closing the
 * object detaches everything; `detach()` on the returned handle does it earlier. Both are safe to repeat.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KernelError } from '../common/errors.js';
import { kernelError } from './errno.js';
import { bpf, lastErrno, PROG_INFO, tcHook, tcOpts, koffi, uprobeOpts, type Pointer } from './native.js';

export interface Detachable {
  detach(): void;
}

export interface UprobeTarget {
  /** Executable or shared library holding the function. */
  binaryPath: string;
  functionName: string;
  /** Only this process; default all processes. */
  pid?: number;
  retprobe?: boolean;
}

export interface TcTarget {
  /** Interface name (as in `ip link`) or index. */
  interface: string | number;
  direction: 'ingress' | 'egress';
  priority?: number;
}

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

/**
 * A libbpf bpf_link; destroying it detaches the program, unless it was pinned: then destroying it only closes this
 * process's fds, and the program stays attached until the pin is removed (verified for tracepoint links on 6.18,
 * whose libbpf detach also disables the perf event: BPF programs on a tracepoint run regardless).
 */
export class Link implements Detachable {
  constructor(
    private handle: Pointer | null,
    private readonly owner: Set<Detachable>,
  ) {
    owner.add(this);
  }

  /** Pins the link at `pinPath` (bpffs): it then outlives this handle and this process. */
  pin(pinPath: string): void {
    if (this.handle === null) throw new KernelError(`pin ${pinPath}: the link is already detached`);
    const rc = bpf.linkPin(this.handle, pinPath) as number;
    if (rc < 0) throw kernelError(`pin link at ${pinPath}`, -rc);
  }

  detach(): void {
    if (this.handle === null) return;
    const handle = this.handle;
    this.handle = null;
    this.owner.delete(this);
    const rc = bpf.linkDestroy(handle) as number;
    if (rc < 0) throw kernelError('detach link', -rc);
  }
}

/** A tc filter on a clsact hook; detaching also removes the clsact qdisc if this attachment created it. */
class TcAttachment implements Detachable {
  private attached = true;

  constructor(
    private readonly hook: Record<string, number>,
    private readonly opts: Record<string, number>,
    private readonly createdHook: boolean,
    private readonly owner: Set<Detachable>,
  ) {
    owner.add(this);
  }

  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.owner.delete(this);
    const filter = { sz: koffi.sizeof(tcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle: this.opts.handle, priority: this.opts.priority };
    const rc = bpf.tcDetach(this.hook, filter) as number;
    // ENOENT: the interface (a veth of a deleted netns) is already gone, and the filter with it.
    if (rc < 0 && -rc !== koffi.os.errno.ENOENT && -rc !== koffi.os.errno.ENODEV) throw kernelError('tc detach', -rc);
    if (this.createdHook) {
      const both = { ...this.hook, attach_point: BPF_TC_INGRESS | BPF_TC_EGRESS };
      const destroyRc = bpf.tcHookDestroy(both) as number;
      if (destroyRc < 0 && -destroyRc !== koffi.os.errno.ENOENT && -destroyRc !== koffi.os.errno.ENODEV && -destroyRc !== koffi.os.errno.EINVAL) {
        throw kernelError('tc hook destroy', -destroyRc);
      }
    }
  }
}

/** recursion_misses of the program behind `fd` (struct bpf_prog_info; see BpfProgram.recursionMisses). */
export function recursionMissesOf(fd: number, name: string): bigint {
  const info = Buffer.alloc(PROG_INFO.size);
  const rc = bpf.progGetInfoByFd(fd, info, [info.length]) as number;
  if (rc < 0) throw kernelError(`${name}: program info`, -rc, name);
  return info.readBigUInt64LE(PROG_INFO.recursionMissesOffset);
}

export class BpfProgram {
  constructor(
    private readonly handle: Pointer,
    readonly name: string,
    private readonly attachments: Set<Detachable>,
  ) {}

  get fd(): number {
    return bpf.programFd(this.handle) as number;
  }

  /**
   * How many times the kernel skipped this program because it fired while a tracing program (itself, for raw
   * tracepoints; any, for classic tracepoints) was running on that CPU. Always 0 for cgroup programs.
   */
  recursionMisses(): bigint {
    return recursionMissesOf(this.fd, this.name);
  }

  /** Pins the program itself at `pinPath` (bpffs), so that another process can read its info. */
  pin(pinPath: string): void {
    fs.mkdirSync(path.dirname(pinPath), { recursive: true });
    const rc = bpf.objPin(this.fd, pinPath) as number;
    if (rc < 0) throw kernelError(`pin program ${this.name} at ${pinPath}`, -rc, this.name);
  }

  attachTracepoint(category: string, event: string): Link {
    return this.link(bpf.attachTracepoint(this.handle, category, event), `tracepoint ${category}/${event}`);
  }

  attachRawTracepoint(event: string): Link {
    return this.link(bpf.attachRawTracepoint(this.handle, event), `raw tracepoint ${event}`);
  }

  attachUprobe(target: UprobeTarget): Link {
    const opts = {
      sz: koffi.sizeof(uprobeOpts),
      ref_ctr_offset: 0,
      bpf_cookie: 0n,
      retprobe: target.retprobe ?? false,
      func_name: target.functionName,
    };
    const link = bpf.attachUprobe(this.handle, target.pid ?? -1, target.binaryPath, 0, opts);
    return this.link(link, `uprobe ${target.binaryPath}:${target.functionName}`);
  }

  /** Attaches to a cgroup v2 directory; the program applies to every process in it and below. */
  attachCgroup(cgroupPath: string): Link {
    const fd = fs.openSync(cgroupPath, 'r');
    try {
      return this.link(bpf.attachCgroup(this.handle, fd), `cgroup ${cgroupPath}`);
    } finally {
      fs.closeSync(fd); // the link holds its own reference to the cgroup
    }
  }

  /** Attaches as a direct-action tc filter on a clsact hook, creating the clsact qdisc when missing. */
  attachTc(target: TcTarget): Detachable {
    const ifindex = typeof target.interface === 'number' ? target.interface : interfaceIndex(target.interface);
    const hook = { sz: koffi.sizeof(tcHook), ifindex, attach_point: target.direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, parent: 0 };
    const createRc = bpf.tcHookCreate(hook) as number;
    if (createRc < 0 && -createRc !== koffi.os.errno.EEXIST) throw kernelError(`${this.name}: create clsact on ${target.interface}`, -createRc, this.name);
    const opts = { sz: koffi.sizeof(tcOpts), prog_fd: this.fd, flags: 0, prog_id: 0, handle: 0, priority: target.priority ?? 0 };
    const rc = bpf.tcAttach(hook, opts) as number;
    if (rc < 0) throw kernelError(`${this.name}: tc attach on ${target.interface} ${target.direction}`, -rc, this.name);
    return new TcAttachment(hook, opts, createRc === 0, this.attachments);
  }

  private link(handle: Pointer, what: string): Link {
    if (!handle) throw kernelError(`${this.name}: attach ${what}`, lastErrno(), this.name);
    return new Link(handle, this.attachments);
  }
}

function interfaceIndex(name: string): number {
  try {
    return Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  } catch {
    throw new KernelError(`no network interface named ${name}`, { context: { component: 'tc' } });
  }
}
