/**
 * Reading a BPF ring buffer from JS.
 *
 * MappedRingReader (the default) maps the ring into the process and walks records in JS:
 *   1. mmap the consumer page read-write and the producer page plus the data area (once) read-only;
 *   2. drain: RingWalker (./ring-walker.ts) hands each record to the handler as (view, offset, size) and stores
 *      consumer_pos;
 *   3. wait: epoll on the map fd in a koffi worker thread; the kernel signals the first record after the reader
 *      caught up (and, if the program asks, a filling ring: bpf/include/common.bpf.h). Edge-triggered: a wait
 *      returns on a new signal, not because records are still unread. Level-triggered, a ring that receives a
 *      record between every drain and the next wait stays readable: measured at 500 connections/s, a reader that
 *      lets records gather then woke ~1,600 times a second. An eventfd in the same epoll set ends a wait in
 *      flight when the reader is detached, so a long idle timeout never holds up a stop.
 * No native call per record, no allocation per record: the handler decodes straight from the shared memory.
 *
 * CallbackRingReader uses libbpf's ring_buffer__consume with a JS callback per record: the fallback, and the
 * baseline bench/ringbuf compares against.
 */
import { KernelError } from '../common/errors.js';
import { kernelError } from './errno.js';
import type { MapAccess } from './map.js';
import { bpf, EVENTFD_ONE, koffi, lastErrno, libcCalls, linux, MAP_FAILED, pointerAddress, ringSampleCallback, type Pointer } from './native.js';
import type { Detachable } from './program.js';
import { fillOf, RingWalker, type RecordHandler } from './ring-walker.js';

export type { RecordHandler };

export interface RingReader extends Detachable {
  readonly kind: 'mapped' | 'callback';
  /** Hands every available record to the handler, at most `maxRecords`; returns how many. */
  drain(handler: RecordHandler, maxRecords?: number): number;
  /** Resolves true when the kernel signals new records (drain to empty first), false on timeout; never rejects after detach. */
  wait(timeoutMs: number): Promise<boolean>;
}

const BPF_MAP_TYPE_RINGBUF = 27;
const { PROT_READ, PROT_WRITE, MAP_SHARED, SC_PAGESIZE, EPOLL_CTL_ADD, EPOLLIN, EPOLLET, EPOLL_CLOEXEC, EFD_CLOEXEC, EFD_NONBLOCK } = linux;
/** epoll_event.data of each fd in a RingEpoll's set. */
const RING_EVENT = 0;
const STOP_EVENT = 1;
const EINTR = 4;

const pageSize = Number(libcCalls.sysconf(SC_PAGESIZE));

/**
 * An epoll set over ring fds, edge-triggered (one event per wake-up of a ring by the kernel, not one for as long as it
 * holds records), and an eventfd whose write ends a wait at once: its own, or one another thread writes (`stopFd`,
 * not closed here).
 */
export class RingEpoll {
  readonly epfd: number;
  readonly stopFd: number;
  /** Filled by epoll_wait; koffi gives `data` as a number (a bigint only above 2^53). */
  readonly events: Array<{ events: number; data: number | bigint }>;
  private readonly ownsStopFd: boolean;

  constructor(ringFds: readonly number[], name: string, stopFd?: number) {
    this.events = [...ringFds, 0].map(() => ({ events: 0, data: 0 }));
    this.ownsStopFd = stopFd === undefined;
    this.epfd = libcCalls.epollCreate(EPOLL_CLOEXEC) as number;
    if (this.epfd < 0) throw kernelError(`${name}: epoll_create1`, lastErrno(), name);
    this.stopFd = stopFd ?? (libcCalls.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number);
    const failed = (what: string) => {
      const errno = lastErrno();
      this.release();
      return kernelError(`${name}: ${what}`, errno, name);
    };
    if (this.stopFd < 0) throw failed('eventfd');
    for (const fd of ringFds) if ((libcCalls.epollCtl(this.epfd, EPOLL_CTL_ADD, fd, { events: EPOLLIN | EPOLLET, data: RING_EVENT }) as number) < 0) throw failed('epoll_ctl');
    if ((libcCalls.epollCtl(this.epfd, EPOLL_CTL_ADD, this.stopFd, { events: EPOLLIN, data: STOP_EVENT }) as number) < 0) throw failed('epoll_ctl');
  }

  /** What the `count` events epoll_wait filled say: the stop fd was written, a ring woke it, or neither (a timeout). */
  outcome(count: number): 'stop' | 'ring' | 'none' {
    const fired = this.events.slice(0, Math.max(count, 0));
    if (fired.some((event) => Number(event.data) === STOP_EVENT)) return 'stop';
    return fired.length > 0 ? 'ring' : 'none';
  }

  /** Blocks this thread up to `timeoutMs` (for a thread of its own: ring-watch-worker.ts); a signal's EINTR is 'none'. */
  waitBlocking(timeoutMs: number): 'stop' | 'ring' | 'none' {
    const count = libcCalls.epollWait(this.epfd, this.events, this.events.length, timeoutMs) as number;
    if (count < 0 && lastErrno() !== EINTR) throw kernelError('epoll_wait', lastErrno());
    return this.outcome(count);
  }

  /** Ends the wait in flight (or the next one) at once. */
  signalStop(): void {
    libcCalls.write(this.stopFd, EVENTFD_ONE, EVENTFD_ONE.length);
  }

  release(): void {
    if (this.ownsStopFd && this.stopFd >= 0) libcCalls.close(this.stopFd);
    libcCalls.close(this.epfd);
  }
}

/** Waits on a ring's fd with epoll without blocking the event loop (the wait runs on a koffi worker thread). */
class RingWaiter {
  private readonly epoll: RingEpoll;
  private pending: Promise<boolean> | undefined;
  private closed = false;

  constructor(mapFd: number, name: string) {
    this.epoll = new RingEpoll([mapFd], name);
  }

  wait(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const { epfd, events } = this.epoll;
    this.pending ??= new Promise<boolean>((resolve) => {
      libcCalls.epollWait.async(epfd, events, events.length, timeoutMs, (error: unknown, count: number) => {
        this.pending = undefined;
        if (this.closed) this.epoll.release();
        resolve(!error && !this.closed && this.epoll.outcome(count) === 'ring');
      });
    });
    return this.pending;
  }

  /** Closes the fds now, or, with a wait in flight, ends it and closes them as it returns (closing under it would be a race). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.pending) this.epoll.release();
    else this.epoll.signalStop();
  }
}

/**
 * What both readers share: the epoll waiter (made on the first wait, so a subclass constructor that fails leaks
 * no fd) and a detach that releases once.
 */
abstract class RingReaderBase {
  protected open = true;
  private waiter: RingWaiter | undefined;

  constructor(
    private readonly fd: number,
    private readonly name: string,
  ) {}

  wait(timeoutMs: number): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    this.waiter ??= new RingWaiter(this.fd, this.name);
    return this.waiter.wait(timeoutMs);
  }

  detach(): void {
    if (!this.open) return;
    this.open = false;
    this.waiter?.close();
    this.release();
  }

  /** Frees the reader's own resources (mappings, libbpf ring); called once. */
  protected abstract release(): void;
}

function ringMap(map: MapAccess): { fd: number; size: number } {
  if (map.type !== BPF_MAP_TYPE_RINGBUF) throw new KernelError(`${map.name}: not a ring buffer map`);
  return { fd: map.fd, size: map.maxEntries };
}

/** A ring map by its fd and data size: what another thread needs to map the ring's positions for itself. */
export interface RingMapRef {
  fd: number;
  size: number;
}

export class MappedRingReader extends RingReaderBase implements RingReader {
  readonly kind = 'mapped';
  readonly ring: RingMapRef;
  private readonly consumerPage: Pointer;
  private readonly producerArea: Pointer;
  private readonly producerAreaLength: number;
  private readonly walker: RingWalker;

  constructor(map: MapAccess) {
    const { fd, size } = ringMap(map);
    super(fd, map.name);
    this.ring = { fd, size };
    this.consumerPage = mapOrThrow(pageSize, PROT_READ | PROT_WRITE, fd, 0, map.name);
    this.producerAreaLength = pageSize + size;
    try {
      this.producerArea = mapOrThrow(this.producerAreaLength, PROT_READ, fd, pageSize, map.name);
    } catch (error) {
      libcCalls.munmap(this.consumerPage, pageSize);
      throw error;
    }
    const producerBuffer = koffi.view(this.producerArea, this.producerAreaLength);
    this.walker = new RingWalker(
      new BigUint64Array(koffi.view(this.consumerPage, pageSize), 0, 1),
      new BigUint64Array(producerBuffer, 0, 1),
      new Uint8Array(producerBuffer, pageSize, size),
      size,
    );
  }

  drain(handler: RecordHandler, maxRecords?: number): number {
    return this.open ? this.walker.drain(handler, maxRecords) : 0;
  }

  /** How much of the ring holds records not read yet, 0..1 (0 once detached). */
  fill(): number {
    return this.open ? this.walker.fill() : 0;
  }

  /** Whether every record written so far was read, one still being written included (it is not read yet). */
  empty(): boolean {
    return !this.open || this.walker.empty();
  }

  protected release(): void {
    libcCalls.munmap(this.producerArea, this.producerAreaLength);
    libcCalls.munmap(this.consumerPage, pageSize);
  }
}

/**
 * A ring's two positions, mapped read-only apart from its reader (by the CPU policy's watcher thread,
 * src/collector/ring-watch-worker.ts): how full the ring is, without reading a record.
 */
export class RingPositions {
  private readonly consumerPage: Pointer;
  private readonly producerPage: Pointer;
  private readonly consumer: BigUint64Array;
  private readonly producer: BigUint64Array;

  constructor(private readonly ring: RingMapRef) {
    const name = `ring fd ${ring.fd}`;
    this.consumerPage = mapOrThrow(pageSize, PROT_READ, ring.fd, 0, name);
    try {
      // The first page of the read-only area: the producer position (the records follow it).
      this.producerPage = mapOrThrow(pageSize, PROT_READ, ring.fd, pageSize, name);
    } catch (error) {
      libcCalls.munmap(this.consumerPage, pageSize);
      throw error;
    }
    this.consumer = new BigUint64Array(koffi.view(this.consumerPage, pageSize), 0, 1);
    this.producer = new BigUint64Array(koffi.view(this.producerPage, pageSize), 0, 1);
  }

  /** How much of the ring holds records not read yet, 0..1 (RingWalker.fill). */
  fill(): number {
    return fillOf(this.producer, this.consumer, this.ring.size);
  }

  release(): void {
    libcCalls.munmap(this.producerPage, pageSize);
    libcCalls.munmap(this.consumerPage, pageSize);
  }
}

export class CallbackRingReader extends RingReaderBase implements RingReader {
  readonly kind = 'callback';
  private readonly ring: Pointer;
  private readonly callback: unknown;
  private handler: RecordHandler | undefined;

  constructor(map: MapAccess) {
    const { fd } = ringMap(map);
    super(fd, map.name);
    this.callback = koffi.register(this, this.onSample, koffi.pointer(ringSampleCallback));
    this.ring = bpf.ringNew(fd, this.callback, null, null);
    if (!this.ring) {
      koffi.unregister(this.callback as never);
      throw kernelError(`${map.name}: ring_buffer__new`, lastErrno(), map.name);
    }
  }

  /** libbpf consumes everything available; `maxRecords` is not enforceable on this path. */
  drain(handler: RecordHandler): number {
    if (!this.open) return 0;
    this.handler = handler;
    const count = bpf.ringConsume(this.ring) as number;
    if (count < 0) throw kernelError('ring_buffer__consume', -count);
    return count;
  }

  protected release(): void {
    bpf.ringFree(this.ring);
    koffi.unregister(this.callback as never);
  }

  private onSample(_context: unknown, data: Pointer, size: number): number {
    this.handler?.(new DataView(koffi.view(data, size)), 0, size);
    return 0;
  }
}

function mapOrThrow(length: number, protection: number, fd: number, offset: number, name: string): Pointer {
  const pointer = libcCalls.mmap(null, length, protection, MAP_SHARED, fd, offset);
  if (!pointer || pointerAddress(pointer) === MAP_FAILED) throw kernelError(`${name}: mmap ring`, lastErrno(), name);
  return pointer;
}

/** Opens a reader over a ring map and ties its lifetime to the owning object (closed before the map's fd). */
export function openRingReader(
  owner: { own(resource: Detachable): void; map(name: string): MapAccess },
  mapName: string,
  kind: 'mapped' | 'callback' = 'mapped',
): RingReader {
  const map = owner.map(mapName);
  const reader = kind === 'mapped' ? new MappedRingReader(map) : new CallbackRingReader(map);
  owner.own(reader);
  return reader;
}
