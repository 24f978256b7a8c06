import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, redactConfig, REDACTED } from '../../src/common/config.js';
import { ConfigError } from '../../src/common/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'sidecarless-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** Runs loadConfig and returns the ConfigError it throws. */
function rejection(options: Parameters<typeof loadConfig>[0]): ConfigError {
  try {
    loadConfig(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('loadConfig accepted the configuration');
}

describe('loadConfig', () => {
  it('gives the embedded defaults with no file and no variables', () => {
    const config = loadConfig({ argv: [], env: {} });
    assert.deepEqual(config, {
      kafka: {
        brokers: ['127.0.0.1:19092'],
        clientId: 'sidecarless',
        topicPrefix: 'sidecarless.',
        partitions: 6,
        tls: { enabled: false, caPath: undefined, certPath: undefined, keyPath: undefined, rejectUnauthorized: true },
        sasl: { mechanism: undefined, username: undefined, password: undefined },
      },
      clickhouse: {
        url: undefined,
        username: 'default',
        password: '',
        database: 'sidecarless',
        tls: { caPath: undefined, certPath: undefined, keyPath: undefined },
        embeddedPath: '.stack/chdb',
        ttlDays: 7,
        cluster: undefined,
      },
      node: { name: hostname() },
      collector: { cgroups: [], ringBytes: 8 << 20, maxConnections: 65_536, activeTimeoutMs: 10_000, queueEvents: 500_000, eventsPerMessage: 1000, flushMs: 500, cgroupScanMs: 30_000, shutdownTimeoutMs: 10_000, cpuPolicy: 'idle', pinDirectory: undefined },
      enricher: {
        groupId: 'sidecarless-enricher',
        batchBytes: 32 << 20,
        flushMs: 1000,
        metadataHoldMs: 5000,
        labels: ['app', 'app.kubernetes.io/name', 'version'],
        metadataHistoryMs: 7 * 24 * 3600 * 1000,
        verdicts: true,
      },
      enforcer: { cgroups: [], pinDirectory: undefined, applyDelayMs: 20, cgroupScanMs: 30_000, allowSampleEvery: 0, verdictIntervalMs: 200, verdictQueueEvents: 100_000 },
      metadata: { kubeconfig: undefined, cluster: 'default', file: undefined, networkPolicies: true, watermarkMs: 1000, watermarkLagMs: 2000, queueMessages: 100_000 },
      log: { level: 'info' },
      http: { enabled: false, captureBytes: 256, headBytes: 8192, idleTimeoutMs: 300_000, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 200, maxRouteServices: 1000 },
      telemetry: { metricsPort: 9464, host: '127.0.0.1' },
    });
  });

  it('takes http route rules as JSON from the file or a variable, and bounds the route settings, naming the key', () => {
    const rules = [
      { pattern: '/api/v1/orders/*/items', route: '/api/v1/orders/{id}/items' },
      { pattern: '/static/**', route: '/static/{file}' },
    ];
    assert.deepEqual(loadConfig({ argv: [], env: {}, file: configFile({ http: { routeRules: rules } }) }).http.routeRules, rules);
    const fromEnv = loadConfig({ argv: [], env: { SIDECARLESS_HTTP_ROUTE_RULES: JSON.stringify(rules), SIDECARLESS_HTTP_MAX_ROUTES_PER_SERVICE: '50' } });
    assert.deepEqual(fromEnv.http.routeRules, rules);
    assert.equal(fromEnv.http.maxRoutesPerService, 50);
    assert.equal(loadConfig({ argv: [], env: { SIDECARLESS_HTTP_MAX_PATH_BYTES: '64' } }).http.maxPathBytes, 64);

    assert.match(rejection({ argv: [], env: { SIDECARLESS_HTTP_MAX_PATH_BYTES: '63' } }).message, /^config http\.maxPathBytes: expected an integer in 64\.\.65536, got 63/);
    assert.match(rejection({ argv: [], env: { SIDECARLESS_HTTP_MAX_ROUTES_PER_SERVICE: '0' } }).message, /^config http\.maxRoutesPerService: expected an integer in 1\.\.100000, got 0/);
    assert.match(rejection({ argv: [], env: { SIDECARLESS_HTTP_MAX_ROUTE_SERVICES: '0' } }).message, /^config http\.maxRouteServices: expected an integer in 1\.\.1000000, got 0/);
    assert.equal(
      rejection({ argv: [], env: { SIDECARLESS_HTTP_ROUTE_RULES: '[{"pattern": "/a"' } }).message,
      'config http.routeRules: expected a JSON array of { "pattern": ..., "route": ... }, got "[{\\"pattern\\": \\"/a\\"" (from SIDECARLESS_HTTP_ROUTE_RULES)',
    );
  });

  it('rejects a bad route rule naming its index, its field and what is wrong', () => {
    const good = { pattern: '/a/*', route: '/a/{id}' };
    const cases: Array<[unknown, string]> = [
      [{ pattern: 'a/*', route: '/a' }, 'http.routeRules[1].pattern: expected a path starting with "/", got "a/*"'],
      [{ pattern: '/a/**/b/**', route: '/a' }, 'http.routeRules[1].pattern: expected at most one "**", got "/a/**/b/**"'],
      [{ pattern: '/a/b*', route: '/a' }, 'http.routeRules[1].pattern: expected "*" and "**" only as whole segments (not in "b*"), got "/a/b*"'],
      [{ pattern: '/a?x=1', route: '/a' }, 'http.routeRules[1].pattern: expected no "?", "#" or white space (patterns match the path, which has no query), got "/a?x=1"'],
      [{ pattern: '/a', route: 'a' }, 'http.routeRules[1].route: expected a path starting with "/", got "a"'],
      [{ pattern: '/a', route: '/a/*' }, 'http.routeRules[1].route: expected no "?", "#", "*" or white space, got "/a/*"'],
      [{ pattern: '/a', route: `/${'r'.repeat(512)}` }, `http.routeRules[1].route: expected at most 512 characters, got "/${'r'.repeat(512)}"`],
      [{ pattern: 7, route: '/a' }, 'http.routeRules[1].pattern: expected a string, got 7'],
      [{ pattern: '/a' }, 'http.routeRules[1].route: expected a string, got undefined'],
      [{ pattern: '/a', route: '/a', name: 'x' }, 'http.routeRules[1]: unknown key(s) name; expected only "pattern" and "route", got {"pattern":"/a","route":"/a","name":"x"}'],
      ['/a', 'http.routeRules[1]: expected an object { "pattern": ..., "route": ... }, got "/a"'],
    ];
    for (const [bad, message] of cases) {
      const path = configFile({ http: { routeRules: [good, bad] } });
      assert.equal(rejection({ argv: [], env: {}, file: path }).message, `config ${message} (in ${path})`);
    }
    const tooMany = Array.from({ length: 1001 }, () => good);
    assert.match(rejection({ argv: [], env: {}, file: configFile({ http: { routeRules: tooMany } }) }).message, /^config http\.routeRules: expected at most 1000 rules, got 1001 /);
  });

  it('rejects a ring size that is not a power of two, naming the key', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_COLLECTOR_RING_BYTES: '5000' } });
    assert.match(error.message, /^config collector\.ringBytes: expected a power of two, got 5000/);
  });

  it('takes Kubernetes label keys for enricher.labels and rejects others, naming the item', () => {
    const config = loadConfig({ argv: [], env: { SIDECARLESS_ENRICHER_LABELS: 'team, example.com/tier,app.kubernetes.io/part-of' } });
    assert.deepEqual(config.enricher.labels, ['team', 'example.com/tier', 'app.kubernetes.io/part-of']);
    assert.deepEqual(loadConfig({ argv: [], env: { SIDECARLESS_ENRICHER_LABELS: '' } }).enricher.labels, []);
    for (const [bad, index] of [['team,-app', 1], ['Example.com/tier', 0], [`a${'b'.repeat(63)}`, 0], ['x/', 0]] as const) {
      const error = rejection({ argv: [], env: { SIDECARLESS_ENRICHER_LABELS: bad } });
      assert.match(error.message, new RegExp(`^config enricher\\.labels\\[${index}\\]: expected a Kubernetes label key`), bad);
    }
  });

  it('bounds enricher.batchBytes to 64 MiB, so that an insert is one ClickHouse block whatever its labels', () => {
    assert.equal(loadConfig({ argv: [], env: { SIDECARLESS_ENRICHER_BATCH_BYTES: String(64 << 20) } }).enricher.batchBytes, 64 << 20);
    const error = rejection({ argv: [], env: { SIDECARLESS_ENRICHER_BATCH_BYTES: String((64 << 20) + 1) } });
    assert.match(error.message, /^config enricher\.batchBytes: expected an integer in 1024\.\.67108864, got 67108865/);
  });

  it('bounds the metadata hold to a minute, naming the key', () => {
    assert.equal(loadConfig({ argv: [], env: { SIDECARLESS_ENRICHER_METADATA_HOLD_MS: '0' } }).enricher.metadataHoldMs, 0);
    const error = rejection({ argv: [], env: { SIDECARLESS_ENRICHER_METADATA_HOLD_MS: '60001' } });
    assert.match(error.message, /^config enricher\.metadataHoldMs: expected an integer in 0\.\.60000, got 60001/);
  });

  it('rejects a cluster name that cannot name a source, and a watermark interval or lag out of range, naming the key', () => {
    assert.match(rejection({ argv: [], env: { SIDECARLESS_METADATA_CLUSTER: 'prod/eu' } }).message, /^config metadata\.cluster: expected letters, digits, .*got "prod\/eu"/);
    assert.match(rejection({ argv: [], env: { SIDECARLESS_METADATA_WATERMARK_MS: '10' } }).message, /^config metadata\.watermarkMs: expected an integer in 100\.\.60000, got 10/);
    assert.match(rejection({ argv: [], env: { SIDECARLESS_METADATA_WATERMARK_LAG_MS: '-1' } }).message, /^config metadata\.watermarkLagMs: expected an integer in 0\.\.300000, got -1/);
  });

  it('rejects a cgroup scan interval below 100 ms, naming the key', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_COLLECTOR_CGROUP_SCAN_MS: '50' } });
    assert.match(error.message, /^config collector\.cgroupScanMs: expected an integer in 100\.\.3600000, got 50/);
  });

  it('is frozen all the way down', () => {
    const config = loadConfig({ argv: [], env: {} });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.kafka.tls) && Object.isFrozen(config.kafka.brokers));
  });

  it('takes the file over defaults and the environment over the file', () => {
    const path = configFile({
      kafka: { brokers: ['k1:9092', 'k2:9092'], clientId: 'from-file' },
      telemetry: { metricsPort: 9000 },
    });
    const env = {
      SIDECARLESS_CONFIG: path,
      SIDECARLESS_KAFKA_BROKERS: 'a:1, b:2',
      SIDECARLESS_CLICKHOUSE_URL: 'https://ch.example:8443',
      SIDECARLESS_KAFKA_TLS_ENABLED: 'true',
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    };
    const config = loadConfig({ argv: [], env });
    assert.deepEqual(config.kafka.brokers, ['a:1', 'b:2']);
    assert.equal(config.kafka.clientId, 'from-file');
    assert.equal(config.kafka.tls.enabled, true);
    assert.equal(config.clickhouse.url, 'https://ch.example:8443');
    assert.equal(config.telemetry.metricsPort, 0);
    assert.equal(config.telemetry.host, '127.0.0.1');
  });

  it('finds the file through --config, which wins over SIDECARLESS_CONFIG', () => {
    const fromArg = configFile({ node: { name: 'from-arg' } });
    const fromEnv = configFile({ node: { name: 'from-env' } });
    const env = { SIDECARLESS_CONFIG: fromEnv };
    assert.equal(loadConfig({ argv: ['collector', '--config', fromArg], env }).node.name, 'from-arg');
    assert.equal(loadConfig({ argv: [`--config=${fromArg}`], env }).node.name, 'from-arg');
    assert.equal(loadConfig({ argv: [], env }).node.name, 'from-env');
  });

  it('rejects a bad list item with its full key and the variable it came from', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_KAFKA_BROKERS: 'a:1,x' } });
    assert.equal(error.message, 'config kafka.brokers[1]: expected host:port, got "x" (from SIDECARLESS_KAFKA_BROKERS)');
    assert.equal(error.context.configKey, 'kafka.brokers[1]');
  });

  it('rejects a bad file value with its key and the file', () => {
    const path = configFile({ telemetry: { metricsPort: 70000 } });
    const error = rejection({ file: path, env: {} });
    assert.equal(error.message, `config telemetry.metricsPort: expected an integer in 0..65535, got 70000 (in ${path})`);
  });

  it('judges an environment string by the same rule as a file value', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_TELEMETRY_METRICS_PORT: 'nine' } });
    assert.equal(error.message, 'config telemetry.metricsPort: expected an integer in 0..65535, got "nine" (from SIDECARLESS_TELEMETRY_METRICS_PORT)');
  });

  it('rejects an unknown key in the file', () => {
    const path = configFile({ kafka: { brokerz: ['a:1'] } });
    const error = rejection({ file: path, env: {} });
    assert.equal(error.context.configKey, 'kafka.brokerz');
    assert.match(error.message, /^config kafka\.brokerz: unknown key; known keys here: brokers, clientId, topicPrefix, partitions, tls, sasl/);
  });

  it('rejects an unknown variable under a section prefix and ignores other SIDECARLESS_ variables', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_KAFKA_BROKER: 'a:1' } });
    assert.equal(error.context.configKey, 'SIDECARLESS_KAFKA_BROKER');
    assert.match(error.message, /known in this section: SIDECARLESS_KAFKA_BROKERS, /);
    assert.equal(loadConfig({ argv: [], env: { SIDECARLESS_STACK_DIR: '/tmp' } }).kafka.clientId, 'sidecarless');
  });

  it('requires a username and password with a SASL mechanism', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_KAFKA_SASL_MECHANISM: 'scram-sha-512', SIDECARLESS_KAFKA_SASL_USERNAME: 'u' } });
    assert.equal(error.message, 'config kafka.sasl.password: required when kafka.sasl.mechanism is scram-sha-512');
  });

  it('takes a ClickHouse cluster by its name, an identifier', () => {
    assert.equal(loadConfig({ argv: [], env: { SIDECARLESS_CLICKHOUSE_CLUSTER: 'main_cluster' } }).clickhouse.cluster, 'main_cluster');
    const error = rejection({ argv: [], env: { SIDECARLESS_CLICKHOUSE_CLUSTER: 'main; DROP' } });
    assert.equal(error.context.configKey, 'clickhouse.cluster');
  });

  it('rejects credentials inside the ClickHouse URL', () => {
    const error = rejection({ argv: [], env: { SIDECARLESS_CLICKHOUSE_URL: 'http://u:hunter2@ch:8123' } });
    assert.equal(error.context.configKey, 'clickhouse.url');
  });

  it('never shows a secret in an error, even a file that is not JSON', () => {
    const badType = rejection({ file: configFile({ clickhouse: { password: 12345678 } }), env: {} });
    assert.match(badType.message, /^config clickhouse\.password: expected a string, got a number \(value hidden\)/);
    assert.doesNotMatch(badType.message, /12345678/);
    const badJson = rejection({ file: configFile('{\n "clickhouse": {\n  "password": hunter2 } }'), env: {} });
    assert.match(badJson.message, /is not valid JSON$/);
    assert.doesNotMatch(badJson.message, /hunter2/);
    const trailingComma = rejection({ file: configFile('{\n "log": {\n  "level": "info",\n }\n}'), env: {} });
    assert.match(trailingComma.message, /is not valid JSON at line 4$/);
  });

  it('redacts every secret that is set, leaving the rest as is', () => {
    const config = loadConfig({
      argv: [],
      env: {
        SIDECARLESS_CLICKHOUSE_PASSWORD: 'hunter2',
        SIDECARLESS_KAFKA_SASL_MECHANISM: 'plain',
        SIDECARLESS_KAFKA_SASL_USERNAME: 'svc',
        SIDECARLESS_KAFKA_SASL_PASSWORD: 's3cret',
      },
    });
    const redacted = redactConfig(config);
    assert.equal(redacted.clickhouse.password, REDACTED);
    assert.deepEqual(redacted.kafka.sasl, { mechanism: 'plain', username: 'svc', password: REDACTED });
    assert.doesNotMatch(JSON.stringify(redacted), /hunter2|s3cret/);
    assert.equal(config.clickhouse.password, 'hunter2');
    assert.deepEqual(redacted.kafka.brokers, config.kafka.brokers);
  });
});
