/**
 * Kafka for every role: a kafkajs client built from plain options (TLS material read from PEM files once, at
 * creation, so a missing file fails at start-up and not at the first reconnect), and kafkajs' own logs routed into
 * pino. Topics: ./topics.ts; producing: ./producer.ts.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
// Default import: kafkajs is CommonJS and Node cannot see ConfigResourceTypes as a named export of it.
import kafkajs, { type Kafka, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import { ConfigError, describeError } from '../errors.js';
import type { Config } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import './request-queue.js';
import './encoder.js';
import './record-batch.js';
import './produce-request.js';

export interface KafkaOptions {
  /** host:port of one or more bootstrap brokers. */
  brokers: readonly string[];
  clientId: string;
  /** PEM file paths (names as in config.ts). Present, even empty, means TLS; without caPath the system CAs apply. */
  tls?: { caPath?: string; certPath?: string; keyPath?: string; rejectUnauthorized?: boolean };
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(key, `cannot read PEM file ${path}: ${describeError(error)}`);
  }
}

function tlsOptions(tls: NonNullable<KafkaOptions['tls']>): ConnectionOptions {
  if ((tls.certPath === undefined) !== (tls.keyPath === undefined)) {
    throw new ConfigError(tls.certPath === undefined ? 'kafka.tls.certPath' : 'kafka.tls.keyPath', 'a client certificate and its key go together: set both or neither');
  }
  const options: ConnectionOptions = {};
  if (tls.caPath !== undefined) options.ca = [readPem(tls.caPath, 'kafka.tls.caPath')];
  if (tls.certPath !== undefined) options.cert = readPem(tls.certPath, 'kafka.tls.certPath');
  if (tls.keyPath !== undefined) options.key = readPem(tls.keyPath, 'kafka.tls.keyPath');
  if (tls.rejectUnauthorized !== undefined) options.rejectUnauthorized = tls.rejectUnauthorized;
  return options;
}

function saslOptions({ mechanism, username, password }: NonNullable<KafkaOptions['sasl']>): SASLOptions {
  // One branch per mechanism because kafkajs types SASL options as a union discriminated by the literal.
  switch (mechanism) {
    case 'plain':
      return { mechanism, username, password };
    case 'scram-sha-256':
      return { mechanism, username, password };
    case 'scram-sha-512':
      return { mechanism, username, password };
  }
}

/**
 * kafkajs logs through pino, tagged with the kafkajs namespace. Its own timestamp and `logger: 'kafkajs'` fields
 * are dropped: pino adds a time, and the namespace tag already says where the line came from.
 */
/**
 * kafkajs warns about this on every idempotent producer with bounded retries. Our producers bound them on purpose
 * (their caller retries the same messages, which keep their sequence numbers, so the broker still de-duplicates):
 * the warning is noise, kept at debug.
 */
const EXPECTED_WARNINGS = new Set(['Limiting retries for the idempotent producer may invalidate EoS guarantees']);

/**
 * kafkajs logs each error a broker answers at error level, also those Kafka marks retriable, which it retries
 * itself: a group coordinator still loading after the broker started (what the demo's first run met), a partition
 * whose leader moved. Those lines go to info: an operation that still fails after kafkajs's retries reaches our code,
 * which logs it with what to do. The messages are kafkajs's own, from its table of Kafka's error codes.
 */
const RETRIABLE_BROKER_ERRORS = new Set(
  (createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ message: string; retriable: boolean }> }).errorCodes
    .filter((error) => error.retriable)
    .map((error) => error.message),
);

/**
 * And the broker's answer to creating topics: roles starting together race to create the same ones, and the loser's
 * TOPIC_ALREADY_EXISTS is as good (ensureTopics checks that the topics exist); a creation that really failed is
 * thrown by ensureTopics, naming the topics.
 */
const CREATE_TOPICS_RESPONSE = 'Response CreateTopics(';

/**
 * And a consumer's crash on a retriable error the broker answered (`Crash: KafkaJSProtocolError: <message>`: the new
 * broker of the demo's first run, still loading the group coordinator), after which kafkajs restarts the consumer
 * itself and says so ("Restarting the consumer in N ms", logged only then). A crash after kafkajs's retries ran out
 * (KafkaJSNumberOfRetriesExceeded) or on any other error stays at error.
 */
const RETRIABLE_CONSUMER_CRASH = /^Crash: KafkaJSProtocolError: (.*)$/s;
const CONSUMER_RESTART = 'Restarting the consumer in ';

/** Whether a line kafkajs logs at error is one of the above, which it handles itself. */
function handledByKafkajs(message: string, error: unknown): boolean {
  if (RETRIABLE_BROKER_ERRORS.has(String(error)) || message.startsWith(CREATE_TOPICS_RESPONSE) || message.startsWith(CONSUMER_RESTART)) return true;
  const crash = RETRIABLE_CONSUMER_CRASH.exec(message);
  return crash !== null && RETRIABLE_BROKER_ERRORS.has(crash[1]!);
}

/** An outage makes kafkajs log every reconnect attempt: the same line is logged at most once per interval. */
const REPEAT_INTERVAL_MS = 10_000;
const MAX_TRACKED_LINES = 1000;

export function logCreator(logger: Logger, now: () => number = Date.now): NonNullable<KafkaConfig['logCreator']> {
  const lastLogged = new Map<string, { at: number; suppressed: number }>();
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
      // The error too: kafkajs names only the request in a response line's message.
      const key = `${namespace}\u0000${message}\u0000${String(fields.error ?? '')}`;
      const seen = lastLogged.get(key);
      const at = now();
      if (seen && at - seen.at < REPEAT_INTERVAL_MS) {
        seen.suppressed++;
        return;
      }
      if (lastLogged.size >= MAX_TRACKED_LINES) lastLogged.clear();
      lastLogged.set(key, { at, suppressed: 0 });
      const bound = { kafkajs: namespace, ...fields, ...(seen?.suppressed ? { repeatedSinceLastLine: seen.suppressed } : {}) };
      if (EXPECTED_WARNINGS.has(message)) logger.debug(bound, message);
      else if (level === kafkajs.logLevel.ERROR && handledByKafkajs(message, fields.error)) logger.info(bound, message);
      else if (level === kafkajs.logLevel.ERROR) logger.error(bound, message);
      else if (level === kafkajs.logLevel.WARN) logger.warn(bound, message);
      else if (level === kafkajs.logLevel.INFO) logger.info(bound, message);
      else logger.debug(bound, message);
    };
}

export function createKafka(options: KafkaOptions, logger: Logger = createLogger()): Kafka {
  if (options.brokers.length === 0) throw new ConfigError('kafka.brokers', 'give at least one bootstrap broker as host:port');
  const malformed = options.brokers.find((broker) => !/^\S+:\d{1,5}$/.test(broker));
  if (malformed !== undefined) throw new ConfigError('kafka.brokers', `"${malformed}" is not host:port`);
  if (options.sasl !== undefined && options.sasl.username === '') {
    throw new ConfigError('kafka.sasl.username', `SASL ${options.sasl.mechanism} needs a username`);
  }
  const log = logger.child({ component: 'kafka' });
  if (options.sasl?.mechanism === 'plain' && options.tls === undefined) {
    log.warn('SASL PLAIN without TLS sends the password in clear text; enable kafka.tls');
  }
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: [...options.brokers],
    // Below warn kafkajs narrates every connection and rebalance; our own logs say what matters.
    logLevel: kafkajs.logLevel.WARN,
    logCreator: logCreator(log),
  };
  if (options.tls !== undefined) config.ssl = tlsOptions(options.tls);
  if (options.sasl !== undefined) config.sasl = saslOptions(options.sasl);
  return new kafkajs.Kafka(config);
}

/** KafkaOptions from the kafka section of the configuration (config.ts names; TLS only when kafka.tls.enabled). */
export function kafkaOptionsFromConfig(kafka: Config['kafka'], role: string): KafkaOptions {
  const options: KafkaOptions = { brokers: kafka.brokers, clientId: `${kafka.clientId}-${role}` };
  if (kafka.tls.enabled) {
    const { caPath, certPath, keyPath, rejectUnauthorized } = kafka.tls;
    options.tls = { rejectUnauthorized, ...(caPath && { caPath }), ...(certPath && { certPath }), ...(keyPath && { keyPath }) };
  }
  if (kafka.sasl.mechanism !== undefined) {
    options.sasl = { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username ?? '', password: kafka.sasl.password ?? '' };
  }
  return options;
}

