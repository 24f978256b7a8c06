/**
 * Configuration of every role: embedded defaults, overridden by an optional JSON file (`--config <path>` or
 * SIDECARLESS_CONFIG), overridden by environment variables SIDECARLESS_<SECTION>_<KEY> (camelCase keys become
 * SNAKE_CASE: kafka.tls.caPath ← SIDECARLESS_KAFKA_TLS_CA_PATH). The demo runs with neither file nor variables.
 *
 * Each setting is described once, as a `Field`: its `Kind` (expected type and check) and its default. A file
 * value is validated by the kind's `parse`; an environment string is first turned into the value a file would hold
 * (`fromEnv`: "9464" → 9464, "a:1,b:2" → ["a:1", "b:2"]) and then validated by the same `parse`, so both sources
 * share one code path.
 * Errors are ConfigErrors naming the full key and where the value came from; secret values never appear in them.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from './errors.js';
import { checkRouteRules, MAX_ROUTE_RULES, type RouteRule } from './route-rules.js';

/** How one kind of value is read: `parse` validates a JSON value or throws a ConfigError naming `key` and `source`. */
interface Kind<T> {
  parse(value: unknown, key: string, source: string): T;
  /** The environment string as the value a file would hold ("9464" → 9464), left for `parse` to judge. */
  fromEnv(text: string): unknown;
  /** Secret values are never shown in errors and are replaced by redactConfig. */
  secret: boolean;
}

/** A setting: its kind and its default. */
class Field<T> {
  constructor(
    readonly kind: Kind<T>,
    readonly defaultValue: T,
  ) {}
}

/** Defaults are frozen so that configs sharing one (a list) cannot change it for the others. */
const setting = <T>(kind: Kind<T>, defaultValue: T): Field<T> => new Field(kind, Object.freeze(defaultValue) as T);

type Check<T> = (value: T) => string | undefined;

function fail(key: string, message: string, source: string): never {
  throw new ConfigError(key, `${message} (${source})`);
}

/** Shows a rejected value, except a secret's: its type is enough to fix the mistake. */
function shown(value: unknown, secret: boolean): string {
  if (secret) return `a ${value === null ? 'null' : typeof value} (value hidden)`;
  return JSON.stringify(value) ?? String(value);
}

function text(check?: Check<string>, secret = false): Kind<string> {
  return {
    secret,
    fromEnv: (raw) => raw,
    parse(value, key, source) {
      if (typeof value !== 'string') fail(key, `expected a string, got ${shown(value, secret)}`, source);
      const problem = check?.(value);
      if (problem !== undefined) fail(key, `${problem}, got ${shown(value, secret)}`, source);
      return value;
    },
  };
}

function int(min: number, max: number, check?: Check<number>): Kind<number> {
  return {
    secret: false,
    fromEnv: (raw) => (/^-?\d+$/.test(raw.trim()) ? Number(raw) : raw),
    parse(value, key, source) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
        fail(key, `expected an integer in ${min}..${max}, got ${shown(value, false)}`, source);
      }
      const problem = check?.(value);
      if (problem !== undefined) fail(key, `${problem}, got ${value}`, source);
      return value;
    },
  };
}

const bool: Kind<boolean> = {
  secret: false,
  fromEnv: (raw) => ({ true: true, false: false })[raw.trim().toLowerCase()] ?? raw,
  parse(value, key, source) {
    if (typeof value !== 'boolean') fail(key, `expected true or false, got ${shown(value, false)}`, source);
    return value;
  },
};

function oneOf<const V extends string>(values: readonly V[]): Kind<V> {
  return {
    secret: false,
    fromEnv: (raw) => raw,
    parse(value, key, source) {
      if (!values.includes(value as V)) fail(key, `expected one of ${values.join('|')}, got ${shown(value, false)}`, source);
      return value as V;
    },
  };
}

/** A comma-separated list in the environment, an array in the file; each item is checked as `key[index]`. */
function list<T>(item: Kind<T>, minItems: number): Kind<readonly T[]> {
  return {
    secret: item.secret,
    fromEnv: (raw) => (raw.trim() === '' ? [] : raw.split(',').map((part) => item.fromEnv(part.trim()))),
    parse(value, key, source) {
      if (!Array.isArray(value)) fail(key, `expected an array, got ${shown(value, item.secret)}`, source);
      if (value.length < minItems) fail(key, `expected at least ${minItems} item(s), got ${value.length}`, source);
      return Object.freeze(value.map((v, i) => item.parse(v, `${key}[${i}]`, source)));
    },
  };
}

/** Unset by default; null or "" in the file and an empty variable also mean unset. */
function optional<T>(kind: Kind<T>): Field<T | undefined> {
  return setting<T | undefined>(
    {
      secret: kind.secret,
      fromEnv: (raw) => (raw === '' ? '' : kind.fromEnv(raw)),
      parse: (value, key, source) => (value === null || value === '' ? undefined : kind.parse(value, key, source)),
    },
    undefined,
  );
}

/** http.routeRules: a JSON array in the file, the same JSON as the variable's text; errors name the rule's index. */
const routeRules: Kind<readonly RouteRule[]> = {
  secret: false,
  fromEnv(raw) {
    // Text that is not JSON is left as is, for parse to reject with the variable's name.
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  },
  parse(value, key, source) {
    if (!Array.isArray(value)) fail(key, `expected a JSON array of { "pattern": ..., "route": ... }, got ${shown(value, false)}`, source);
    if (value.length > MAX_ROUTE_RULES) fail(key, `expected at most ${MAX_ROUTE_RULES} rules, got ${value.length}`, source);
    const checked = checkRouteRules(value);
    if (checked.ok) return checked.rules;
    const { index, field, problem } = checked;
    const item = value[index] as Record<string, unknown>;
    return fail(`${key}[${index}]${field === '' ? '' : `.${field}`}`, `${problem}, got ${shown(field === '' ? item : item[field], false)}`, source);
  },
};

const hostPort: Check<string> = (value) => {
  const match = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$/.exec(value);
  return match && Number(match[1]) >= 1 && Number(match[1]) <= 65535 ? undefined : 'expected host:port';
};
const powerOfTwo: Check<number> = (value) => ((value & (value - 1)) === 0 ? undefined : 'expected a power of two');
const nonEmpty: Check<string> = (value) => (value === '' ? 'expected a non-empty string' : undefined);
const topicChars: Check<string> = (value) =>
  /^[A-Za-z0-9._-]*$/.test(value) ? undefined : 'expected only letters, digits, ".", "_" and "-" (Kafka topic characters)';
/** A source is named <type>/<cluster>: the cluster name cannot hold the separator. */
const sourceName: Check<string> = (value) =>
  /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value) ? undefined : 'expected letters, digits, ".", "_" and "-" (it names the source kubernetes/<cluster>)';
const identifier: Check<string> = (value) =>
  /^[A-Za-z_][A-Za-z0-9_]*$/.test(value) ? undefined : 'expected a ClickHouse identifier ([A-Za-z_][A-Za-z0-9_]*)';
/** Credentials in the URL would escape redaction: they belong in clickhouse.username/password. */
const httpUrl: Check<string> = (value) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'expected an http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'expected an http(s) URL';
  if (url.username !== '' || url.password !== '') return 'expected no credentials in the URL (use clickhouse.username/password)';
  return undefined;
};

/** A Kubernetes label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
const labelKey: Check<string> = (value) => {
  const slash = value.lastIndexOf('/');
  const prefix = slash < 0 ? '' : value.slice(0, slash);
  const labelName = value.slice(slash + 1);
  const prefixOk = slash < 0 || (prefix.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(prefix));
  const nameOk = labelName.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(labelName);
  return prefixOk && nameOk ? undefined : 'expected a Kubernetes label key ([prefix/]name, e.g. app.kubernetes.io/name)';
};
const DAY_MS = 24 * 60 * 60 * 1000;

const name = text(nonEmpty);
const secret = text(undefined, true);

const schema = {
  kafka: {
    brokers: setting(list(text(hostPort), 1), ['127.0.0.1:19092']),
    clientId: setting(name, 'sidecarless'),
    topicPrefix: setting(text(topicChars), 'sidecarless.'),
    /** Partitions of the time-retained topics when sidecarless creates them. */
    partitions: setting(int(1, 10_000), 6),
    tls: {
      /** TLS without a caPath trusts the system CAs, so it needs its own switch. */
      enabled: setting(bool, false),
      caPath: optional(name),
      certPath: optional(name),
      keyPath: optional(name),
      rejectUnauthorized: setting(bool, true),
    },
    sasl: {
      /** Unset: no SASL. */
      mechanism: optional(oneOf(['plain', 'scram-sha-256', 'scram-sha-512'])),
      username: optional(name),
      password: optional(secret),
    },
  },
  clickhouse: {
    /** Unset: the embedded engine (chdb) at embeddedPath. */
    url: optional(text(httpUrl)),
    username: setting(name, 'default'),
    password: setting(secret, ''),
    database: setting(text(identifier), 'sidecarless'),
    tls: { caPath: optional(name), certPath: optional(name), keyPath: optional(name) },
    embeddedPath: setting(name, '.stack/chdb'),
    ttlDays: setting(int(1, 3650), 7),
    /**
     * A cluster of the servers' remote_servers: the schema is created ON CLUSTER as replicated tables with
     * Distributed tables over them (src/common/clickhouse/cluster-ddl.ts). Unset: one server.
     */
    cluster: optional(text(identifier)),
  },
  node: {
    /** In Kubernetes, set SIDECARLESS_NODE_NAME from the downward API (spec.nodeName). */
    name: setting(name, hostname()),
  },
  log: {
    level: setting(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
  },
  collector: {
    /** cgroup v2 directories whose sockets are traced (with their descendants), absolute or below the cgroup2 root. */
    cgroups: setting(list(name, 0), []),
    /** Bytes of the kernel ring buffer: a power of two, a multiple of the page size. */
    ringBytes: setting(int(4096, 1 << 30, powerOfTwo), 8 << 20),
    /** Open traced connections the kernel tracks at once (each side counts); beyond it new ones are counted, not tracked. */
    maxConnections: setting(int(1024, 4_194_304), 65_536),
    /** An open connection gets an interim event when its last one is older than this (and it carries traffic). */
    activeTimeoutMs: setting(int(100, 3_600_000), 10_000),
    /** Events held in memory while Kafka is slow or down; beyond it new events are dropped (and counted). */
    queueEvents: setting(int(1000, 10_000_000), 500_000),
    /**
     * Events packed into one Kafka message, at most 2000; a message is sealed sooner once its events take 128 KB
     * (src/collector/collector.ts MESSAGE_BYTES), well under the broker's 1 MiB message limit. Each message costs
     * the producer's send path (kafkajs, the buffer it is sealed in) whatever it holds: 1,000 rather than 64
     * measured with the collector at 1,000 HTTP requests/s (bench http-live's pods, runs alternated), where a send
     * then carries one message per partition instead of three: process cores 0.0156-0.0163 -> 0.0125-0.0128.
     */
    eventsPerMessage: setting(int(1, 2_000), 1000),
    /**
     * A record waits at most about this long before its event is sent: the collector drains, seals and sends once
     * per flushMs while records arrive. Each send costs ~1 ms of CPU whatever it carries (kafkajs, and the broker's
     * loopback round trip), so 500 rather than 200: measured at 500 connections/s 0.012-0.019 -> 0.008-0.012 cores,
     * at 2,000/s 0.021-0.024 -> 0.015-0.017, still sub-second.
     */
    flushMs: setting(int(1, 60_000), 500),
    /**
     * How often the cgroups below collector.cgroups are walked for new and removed ones, whose identity (pod uid,
     * container id) is published to the metadata topic, when nothing else calls for a walk. A cgroup created or
     * removed calls for one at once (an inotify watch on each traced cgroup), and so does a flow from a cgroup not
     * known yet; this walk is the safety net behind them (a watch the inotify limit refused, events the kernel
     * could not queue). A walk costs about 12 µs per cgroup (measured: 403 cgroups, 4.8 ms): every 2 s, as before
     * the watch, 100 pods of 3 containers cost ~0.0024 cores, most of what an idle collector may cost.
     */
    cgroupScanMs: setting(int(100, 3_600_000), 30_000),
    /** On stop, queued events may take this long to reach Kafka; what is still queued then is counted as dropped. */
    shutdownTimeoutMs: setting(int(0, 600_000), 10_000),
    /**
     * idle: the collector's threads run under SCHED_IDLE, so they never delay a workload's wake-up (at the normal
     * policy a drain burst held the CPU for the rest of its slice: the tail a traced request gained), and return
     * to the normal policy while a ring is more than half full (that takes CAP_SYS_NICE), seen by a watcher thread
     * the kernel wakes as a ring fills (about 10 MB of memory); normal: never yield (src/collector/cpu-policy.ts).
     */
    cpuPolicy: setting(oneOf(['idle', 'normal']), 'idle'),
    /**
     * Where the kernel programs, their links and maps are pinned (bpffs), so that they outlive the collector and the
     * next one adopts them; unset: /sys/fs/bpf/sidecarless/<node.name, dots as underscores: bpffs refuses dots>.
     * `collector --uninstall` removes it.
     */
    pinDirectory: optional(name),
  },
  enricher: {
    groupId: setting(text(topicChars), 'sidecarless-enricher'),
    /**
     * Bytes of Kafka messages the broker gathers per partition before a batch is handed over (one insert each). At
     * most 64 MiB: its rows (about 3.5× the Avro bytes with names and labels) then stay below ClickHouse's 256 MiB
     * insert block, so a replayed insert, whose labels may differ from a cut first attempt's, is cut into blocks at
     * the same rows (by count), and its deduplication token matches block by block.
     */
    batchBytes: setting(int(1024, 64 << 20), 32 << 20),
    /** A smaller batch is handed over after at most this long. */
    flushMs: setting(int(1, 600_000), 1000),
    /**
     * How long a batch of events (flows, HTTP exchanges, verdicts) may wait for the Kubernetes metadata of its time
     * (src/enricher/metadata-gate.ts), counted from its arrival: until the enricher has read the metadata topic to its
     * end and every metadata source's confirmed watermark has passed the batch's events. Then the batch is joined with what is known, and an end
     * that no metadata names is written as 'late' (counted by reason). Also how long a source may publish no
     * watermark before it is no longer waited for. At most a minute: a held batch delays the consumer group's
     * rebalances. 0: never wait (every unnamed end is 'late').
     */
    metadataHoldMs: setting(int(0, 60_000), 5000),
    /** Pod labels copied onto each end of a flow, HTTP exchange or verdict (the rest are not stored): Kubernetes label keys. */
    labels: setting(list(text(labelKey), 0), ['app', 'app.kubernetes.io/name', 'version']),
    /**
     * How far back the enricher keeps the history of which pod held an address or cgroup: as long as flows can be
     * replayed (the flows topic's retention, 7 days by default). Older history is dropped (counted).
     */
    metadataHistoryMs: setting(int(60_000, 3650 * DAY_MS), 7 * DAY_MS),
    /**
     * Store the verdicts topic (the enforcers' policy decisions) in the `verdicts` table and its per-minute rollup.
     * Every member of one consumer group must agree: the group's assignment hands each member partitions of every
     * topic any member reads.
     */
    verdicts: setting(bool, true),
  },
  enforcer: {
    /**
     * cgroup v2 directories holding the node's pods (absolute or below the cgroup2 root): the policy programs are
     * attached there and run for every cgroup below; the pods' container cgroups are found below them. With the
     * kubelet's systemd driver `kubepods.slice`, with cgroupfs `kubepods`. Required.
     */
    cgroups: setting(list(name, 0), []),
    /**
     * Where the policy programs and maps are pinned (bpffs), so that they keep enforcing while no enforcer runs;
     * unset: /sys/fs/bpf/sidecarless-enforcer/<node.name, dots as underscores>. Not below the collector's: its
     * `--uninstall` removes its whole directory, which must not lift enforcement.
     */
    pinDirectory: optional(name),
    /**
     * A change waits this long for more before the state is compiled and applied: a burst (a rollout, a file of
     * policies) costs one compile and one apply. Also the least time between two applies.
     */
    applyDelayMs: setting(int(0, 60_000), 20),
    /**
     * How often the cgroups below enforcer.cgroups are walked for new containers when nothing else calls for a walk:
     * a cgroup made or removed does at once (an inotify watch), and so does their pods' metadata; this walk is the
     * safety net behind them (src/ebpf/cgroup-watch.ts).
     */
    cgroupScanMs: setting(int(100, 3_600_000), 30_000),
    /** Allows reported as verdicts: one in this many (0: none). Denials and audit would-be denials are all reported. */
    allowSampleEvery: setting(int(0, 1_000_000), 0),
    /** How often the kernel's verdict ring is read and its decisions sent to the verdicts topic. */
    verdictIntervalMs: setting(int(10, 60_000), 200),
    /** Verdict events held while Kafka is slow or down; beyond it the newest are dropped (counted, queue_full). */
    verdictQueueEvents: setting(int(1000, 10_000_000), 100_000),
  },
  metadata: {
    /**
     * The kubeconfig of the API server to watch. Unset: the files in KUBECONFIG, else ~/.kube/config, else the
     * pod's service account (in a cluster).
     */
    kubeconfig: optional(name),
    /** Names the cluster in every event's source: kubernetes/<cluster> (or file/<cluster>). */
    cluster: setting(text(sourceName), 'default'),
    /** A YAML file of manifests to publish instead of watching an API server (hosts without Kubernetes). */
    file: optional(name),
    /**
     * Also watch the API server's NetworkPolicies and publish them to the policies topic (as `sidecarless policy
     * apply` does), so that `kubectl apply` reaches the enforcers. Needs list and watch on networking.k8s.io
     * networkpolicies. Not with metadata.file.
     */
    networkPolicies: setting(bool, true),
    /** While every informer is synced, a watermark at least this often (what the enricher waits for). */
    watermarkMs: setting(int(100, 60_000), 1000),
    /**
     * How far behind now a watermark claims (and how long after an informer returns to watching none is claimed).
     * The index backfills a pod's IP to its creation (the kubelet assigns it before the API server shows it), so a
     * status that reaches the source later than a watermark passed its flows would label them on replay but not
     * live. Larger: statuses arriving later still label flows identically live and on replay; smaller: joined rows
     * are written sooner. Below 1000 the API server's whole-second creation times may let a deletion not seen live
     * end after the creation of the pod that took over its IP.
     */
    watermarkLagMs: setting(int(0, 300_000), 2000),
    /** Messages waiting for Kafka before superseded states of an object are skipped (its latest still goes out). */
    queueMessages: setting(int(1000, 10_000_000), 100_000),
  },
  http: {
    /**
     * Capture HTTP/1.x exchanges from the kernel (bpf/http.bpf.c: raw tracepoints on sockets' sends and receives)
     * onto the http topic. Off by default: once on, every TCP send and receive of the node runs its programs up to a
     * lookup (bench syscall-tracing measures that for an untraced process; file and other calls pay nothing).
     */
    enabled: setting(bool, false),
    /**
     * Bytes copied of each read and write of a traced connection (at most 16384, the kernel's buffer): enough for
     * the framing a body call carries (chunk sizes, the start of a next message); calls that begin a message get
     * http.headBytes.
     */
    captureBytes: setting(int(0, 16384), 256),
    /**
     * Bytes copied of a call whose first http.captureBytes (at least 8 tell it) begin with a request or status line
     * and that is longer, or that goes on with a head the previous call began (8192 by default, nginx's default
     * limit of a header line; at most 16384, the parser's largest head): a head longer than this in one call is
     * lost (counted, truncated_headers). Browsers' requests with cookies and nginx's head for a large file pass 256
     * bytes; single sign-on cookies can pass 8192. Each such call's record takes up to this much of the HTTP ring.
     */
    headBytes: setting(int(0, 16384), 8192),
    /** A connection without a call for this long has its parser state dropped (a later call starts it anew). */
    idleTimeoutMs: setting(int(1000, 86_400_000), 300_000),
    /**
     * Longest request path kept, in bytes (the query string is never kept): a longer one is cut to this length,
     * ending in "{truncated}". Also bounds a route.
     */
    maxPathBytes: setting(int(64, 65_536), 2048),
    /**
     * User route rules, tried in order before the built-in templating: [{ "pattern": "/api/v1/orders/*",
     * "route": "/api/v1/orders/{id}" }]; "*" is one segment, "**" any number (src/common/route-rules.ts).
     */
    routeRules: setting(routeRules, []),
    /** Distinct routes kept per service; later new ones are reported as "{other}" (counted, reason route_cap). */
    maxRoutesPerService: setting(int(1, 100_000), 200),
    /** Services whose routes are kept; the routes of services beyond it are all "{other}" (counted, reason service_cap). */
    maxRouteServices: setting(int(1, 1_000_000), 1000),
  },
  telemetry: {
    /** Port of /metrics and /healthz; 0 disables the endpoint (meters still work). */
    metricsPort: setting(int(0, 65535), 9464),
    host: setting(name, '127.0.0.1'),
  },
};

interface Section {
  readonly [key: string]: Field<unknown> | Section;
}

type Infer<S> = S extends Field<infer T> ? T : { readonly [K in keyof S]: Infer<S[K]> };

/** The whole configuration, deeply readonly (and frozen at run time). */
export type Config = Infer<typeof schema>;

export interface LoadOptions {
  /** Command-line arguments, searched for `--config <path>` / `--config=<path>`. Default: process.argv. */
  argv?: readonly string[];
  /** Environment. Default: process.env. */
  env?: Environment;
  /** Path of the JSON file; takes precedence over --config and SIDECARLESS_CONFIG. */
  file?: string;
}

type Environment = Readonly<Record<string, string | undefined>>;

const ENV_PREFIX = 'SIDECARLESS_';

function envName(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase();
}

/** Every setting's key, walked once: env names are derived from keys, never parsed back into keys. */
function fieldKeys(section: Section, prefix = ''): string[] {
  return Object.entries(section).flatMap(([name, node]) =>
    node instanceof Field ? [prefix + name] : fieldKeys(node, `${prefix}${name}.`),
  );
}
const KNOWN_ENV = new Set(fieldKeys(schema).map(envName));
const SECTION_ENV_PREFIXES = Object.keys(schema).map((section) => `${envName(section)}_`);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Values for one section: environment over file over default. */
function build(section: Section, file: unknown, prefix: string, env: Environment, fileSource: string): unknown {
  const where = prefix === '' ? '(top level)' : prefix.slice(0, -1);
  if (file !== undefined && !isObject(file)) fail(where, `expected an object, got ${shown(file, false)}`, fileSource);
  const fileValues = file ?? {};
  for (const name of Object.keys(fileValues)) {
    if (!Object.hasOwn(section, name)) {
      fail(prefix + name, `unknown key; known keys here: ${Object.keys(section).join(', ')}`, fileSource);
    }
  }
  const values: Record<string, unknown> = {};
  for (const [name, node] of Object.entries(section)) {
    const key = prefix + name;
    if (!(node instanceof Field)) {
      values[name] = build(node, fileValues[name], `${key}.`, env, fileSource);
      continue;
    }
    const variable = envName(key);
    const text = env[variable];
    if (text !== undefined) values[name] = node.kind.parse(node.kind.fromEnv(text), key, `from ${variable}`);
    else if (fileValues[name] !== undefined) values[name] = node.kind.parse(fileValues[name], key, fileSource);
    else values[name] = node.defaultValue;
  }
  return Object.freeze(values);
}

/** A variable under a section's prefix that names no setting is a typo that would otherwise be ignored. */
function rejectUnknownEnv(env: Environment): void {
  for (const variable of Object.keys(env)) {
    const prefix = SECTION_ENV_PREFIXES.find((p) => variable.startsWith(p));
    if (prefix !== undefined && !KNOWN_ENV.has(variable)) {
      const known = [...KNOWN_ENV].filter((v) => v.startsWith(prefix));
      throw new ConfigError(variable, `unknown setting; known in this section: ${known.join(', ')}`);
    }
  }
}

function configPath(argv: readonly string[], env: Environment): { path: string; key: string } | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--config=')) return { path: arg.slice('--config='.length), key: '--config' };
    if (arg === '--config') {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError('--config', 'expected a file path after --config');
      return { path: next, key: '--config' };
    }
  }
  const fromEnv = env[`${ENV_PREFIX}CONFIG`];
  return fromEnv ? { path: fromEnv, key: `${ENV_PREFIX}CONFIG` } : undefined;
}

/**
 * Reads the JSON file. A JSON.parse message can quote the text around the error (a password, say), so only the
 * position is reported.
 */
function readConfigFile(path: string, key: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(key, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const at = position === undefined ? '' : ` at line ${text.slice(0, Number(position)).split('\n').length}`;
    throw new ConfigError(key, `${path} is not valid JSON${at}`);
  }
}

/** Loads, validates and freezes the configuration; throws a ConfigError on the first bad value. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const located = options.file === undefined ? configPath(options.argv ?? process.argv.slice(2), env) : { path: options.file, key: 'file' };
  const file = located === undefined ? undefined : readConfigFile(located.path, located.key);
  rejectUnknownEnv(env);
  const config = build(schema, file, '', env, located === undefined ? 'default' : `in ${located.path}`) as Config;
  checkCombinations(config);
  return config;
}

/** Rules that span settings; each names the setting to add. */
function checkCombinations(config: Config): void {
  const { sasl } = config.kafka;
  if (sasl.mechanism !== undefined) {
    if (sasl.username === undefined) throw new ConfigError('kafka.sasl.username', `required when kafka.sasl.mechanism is ${sasl.mechanism}`);
    if (sasl.password === undefined) throw new ConfigError('kafka.sasl.password', `required when kafka.sasl.mechanism is ${sasl.mechanism}`);
  }
  for (const [section, tls] of [['kafka', config.kafka.tls], ['clickhouse', config.clickhouse.tls]] as const) {
    if ((tls.certPath === undefined) !== (tls.keyPath === undefined)) {
      throw new ConfigError(`${section}.tls.${tls.certPath === undefined ? 'certPath' : 'keyPath'}`, 'certPath and keyPath go together (client certificate)');
    }
  }
}

export const REDACTED = '[redacted]';

/** A copy safe to log: every secret that is set becomes "[redacted]". */
export function redactConfig(config: Config): Config {
  const redact = (section: Section, values: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(section).map(([name, node]) => {
        const value = values[name];
        if (!(node instanceof Field)) return [name, redact(node, value as Record<string, unknown>)];
        return [name, node.kind.secret && value !== undefined && value !== '' ? REDACTED : value];
      }),
    );
  return redact(schema, config as unknown as Record<string, unknown>) as unknown as Config;
}
