/**
 * The only module that declares native functions: libbpf (system libbpf.so.1) and the few libc calls the
 * ring-buffer reader needs (mmap, epoll), and flock for the pin directory. Everything above it works with JS types and KernelError.
 *
 * Conventions of libbpf 1.x that callers rely on: int-returning calls give a negative errno on failure;
 * pointer-returning calls give NULL and set errno (read with koffi.errno() right after the call).
 */
import koffi from 'koffi';

const libbpf = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

/** Opaque handles; koffi keeps them as external pointers. */
export type Pointer = unknown;

export const printCallback = koffi.proto('int libbpf_print_fn(int level, const char *format, void *args)');

export const uprobeOpts = koffi.struct('bpf_uprobe_opts', {
  sz: 'size_t',
  ref_ctr_offset: 'size_t',
  bpf_cookie: 'uint64_t',
  retprobe: 'bool',
  func_name: 'const char *',
});

export const tcHook = koffi.struct('bpf_tc_hook', {
  sz: 'size_t',
  ifindex: 'int',
  attach_point: 'int',
  parent: 'uint32_t',
});

export const tcOpts = koffi.struct('bpf_tc_opts', {
  sz: 'size_t',
  prog_fd: 'int',
  flags: 'uint32_t',
  prog_id: 'uint32_t',
  handle: 'uint32_t',
  priority: 'uint32_t',
});

export const batchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

/** The head of struct bpf_map_info (linux/bpf.h): the kernel fills as many bytes as the length passed says. */
export const mapInfo = koffi.struct('bpf_map_info_head', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
});

/**
 * Where struct bpf_prog_info (linux/bpf.h, UAPI: offsets never move) keeps what we read; the kernel fills as many
 * bytes as the length passed says.
 */
export const PROG_INFO = { recursionMissesOffset: 208, size: 216 } as const;

export const ringSampleCallback = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export const epollEvent = koffi.pack('epoll_event', { events: 'uint32_t', data: 'uint64_t' });

export const bpf = {
  setPrint: libbpf.func('void *libbpf_set_print(libbpf_print_fn *fn)'),

  objectOpenFile: libbpf.func('void *bpf_object__open_file(const char *path, void *opts)'),
  objectLoad: libbpf.func('int bpf_object__load(void *obj)'),
  objectClose: libbpf.func('void bpf_object__close(void *obj)'),
  objectFindProgram: libbpf.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
  objectFindMap: libbpf.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
  objectBtf: libbpf.func('void *bpf_object__btf(void *obj)'),
  objectNextMap: libbpf.func('void *bpf_object__next_map(void *obj, void *map)'),

  mapFd: libbpf.func('int bpf_map__fd(void *map)'),
  mapInitialValue: libbpf.func('void *bpf_map__initial_value(void *map, _Out_ size_t *size)'),
  mapSetMaxEntries: libbpf.func('int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
  mapMaxEntries: libbpf.func('uint32_t bpf_map__max_entries(void *map)'),
  mapKeySize: libbpf.func('uint32_t bpf_map__key_size(void *map)'),
  mapValueSize: libbpf.func('uint32_t bpf_map__value_size(void *map)'),
  mapType: libbpf.func('int bpf_map__type(void *map)'),
  mapFlags: libbpf.func('uint32_t bpf_map__map_flags(void *map)'),
  mapName: libbpf.func('const char *bpf_map__name(void *map)'),
  mapPinPath: libbpf.func('const char *bpf_map__pin_path(void *map)'),
  mapSetPinPath: libbpf.func('int bpf_map__set_pin_path(void *map, const char *path)'),

  programFd: libbpf.func('int bpf_program__fd(void *prog)'),
  attachTracepoint: libbpf.func('void *bpf_program__attach_tracepoint(void *prog, const char *category, const char *name)'),
  attachRawTracepoint: libbpf.func('void *bpf_program__attach_raw_tracepoint(void *prog, const char *name)'),
  attachUprobe: libbpf.func('void *bpf_program__attach_uprobe_opts(void *prog, int pid, const char *path, size_t offset, bpf_uprobe_opts *opts)'),
  attachCgroup: libbpf.func('void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)'),
  linkDestroy: libbpf.func('int bpf_link__destroy(void *link)'),
  linkPin: libbpf.func('int bpf_link__pin(void *link, const char *path)'),

  tcHookCreate: libbpf.func('int bpf_tc_hook_create(bpf_tc_hook *hook)'),
  tcHookDestroy: libbpf.func('int bpf_tc_hook_destroy(bpf_tc_hook *hook)'),
  tcAttach: libbpf.func('int bpf_tc_attach(bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
  tcDetach: libbpf.func('int bpf_tc_detach(bpf_tc_hook *hook, bpf_tc_opts *opts)'),

  mapUpdate: libbpf.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  mapLookup: libbpf.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  mapDelete: libbpf.func('int bpf_map_delete_elem(int fd, const void *key)'),
  mapNextKey: libbpf.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  mapLookupBatch: libbpf.func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, bpf_map_batch_opts *opts)'),

  objGet: libbpf.func('int bpf_obj_get(const char *pathname)'),
  objPin: libbpf.func('int bpf_obj_pin(int fd, const char *pathname)'),
  /** A link of a program (fd) to a target (a cgroup fd, ...) by attach type (enum bpf_attach_type); opts may be null. */
  linkCreate: libbpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
  mapCreate: libbpf.func('int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)'),
  objGetInfoByFd: libbpf.func('int bpf_obj_get_info_by_fd(int fd, _Out_ bpf_map_info_head *info, _Inout_ uint32_t *info_len)'),
  /** The same call for a program: struct bpf_prog_info is read from the bytes of a Buffer (see PROG_INFO). */
  progGetInfoByFd: libbpf.func('bpf_obj_get_info_by_fd', 'int', ['int', 'void *', '_Inout_ uint32_t *']),

  ringNew: libbpf.func('void *ring_buffer__new(int map_fd, ring_buffer_sample_fn *cb, void *ctx, void *opts)'),
  ringConsume: libbpf.func('int ring_buffer__consume(void *rb)'),
  ringFree: libbpf.func('void ring_buffer__free(void *rb)'),

  /** BPF_ENABLE_STATS: run_time_ns/run_cnt are kept while the returned fd is open (reference-counted). */
  enableStats: libbpf.func('int bpf_enable_stats(int type)'),

  btfParse: libbpf.func('void *btf__parse(const char *path, void *btf_ext)'),
  btfFree: libbpf.func('void btf__free(void *btf)'),
  btfFindByNameKind: libbpf.func('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
  btfTypeCount: libbpf.func('uint32_t btf__type_cnt(void *btf)'),
  btfTypeById: libbpf.func('void *btf__type_by_id(void *btf, uint32_t id)'),
  btfNameByOffset: libbpf.func('const char *btf__name_by_offset(void *btf, uint32_t offset)'),
  btfResolveSize: libbpf.func('int64_t btf__resolve_size(void *btf, uint32_t id)'),
};

export const libcCalls = {
  vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *format, void *args)'),
  mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(void *addr, size_t length)'),
  sysconf: libc.func('long sysconf(int name)'),
  epollCreate: libc.func('int epoll_create1(int flags)'),
  epollCtl: libc.func('int epoll_ctl(int epfd, int op, int fd, epoll_event *event)'),
  epollWait: libc.func('int epoll_wait(int epfd, _Out_ epoll_event *events, int maxevents, int timeout)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  write: libc.func('intptr_t write(int fd, const uint8_t *buf, size_t count)'),
  close: libc.func('int close(int fd)'),
  flock: libc.func('int flock(int fd, int operation)'),
  mallopt: libc.func('int mallopt(int param, int value)'),
  mallocTrim: libc.func('int malloc_trim(size_t pad)'),
  schedSetScheduler: libc.func('int sched_setscheduler(int pid, int policy, const int32_t *param)'),
  gettid: libc.func('int gettid(void)'),
  /** Variadic: each argument after the number is passed as a type name, then its value ('int', 1). */
  syscall: libc.func('long syscall(long number, ...)'),
};

/** Blocking socket calls, for timing connect() itself without an event loop in between (bench/policy-overhead). */
export const socketCalls = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  connect: libc.func('int connect(int fd, const uint8_t *addr, uint32_t addrlen)'),
  bind: libc.func('int bind(int fd, const uint8_t *addr, uint32_t addrlen)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept: libc.func('int accept(int fd, void *addr, void *addrlen)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const uint8_t *value, uint32_t length)'),
  getsockname: libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *addrlen)'),
};

/** Linux constants of the calls above (the same on x86-64 and arm64). */
export const linux = {
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  SC_PAGESIZE: 30,
  EPOLL_CTL_ADD: 1,
  EPOLLIN: 1,
  EPOLLET: 0x80000000,
  EPOLL_CLOEXEC: 0o2000000,
  EFD_CLOEXEC: 0o2000000,
  EFD_NONBLOCK: 0o4000,
  SCHED_OTHER: 0,
  SCHED_IDLE: 5,
  EPERM: 1,
} as const;

/** What a write to an eventfd adds to it: a native-endian 64-bit 1. */
export const EVENTFD_ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** mmap's MAP_FAILED, (void *)-1, as koffi reports the address. */
export const MAP_FAILED = 0xffffffffffffffffn;

export function pointerAddress(pointer: Pointer): bigint {
  return koffi.address(pointer);
}

export function lastErrno(): number {
  return koffi.errno();
}

export { koffi };
