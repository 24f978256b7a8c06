/**
 * `sidecarless observe`: the event topics live in a terminal, each event named as the enricher names it (the same
 * metadata feed and event-time index), filtered, without ClickHouse. What `hubble observe` is to Cilium.
 *
 *   1. The metadata topic is read to its end into an index (metadata-feed.ts), and followed from then on.
 *   2. The chosen event topics are read from their end (or their beginning) by a consumer group of this process's
 *      own that never commits: observing takes nothing from the enricher, and leaves nothing behind.
 *   3. Each event is joined at its table's join time (a flow's start, a request's start, a decision's time), kept if
 *      the filter says so, and handed to `write` as one line. Nothing is held back: an end whose metadata has not
 *      arrived yet is shown by its address (the enricher, which writes what stays, waits for it).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { metrics } from '@opentelemetry/api';
import { loadRegistry } from '../../common/avro.js';
import type { Config } from '../../common/config.js';
import { ConfigError } from '../../common/errors.js';
import { createKafka, kafkaOptionsFromConfig } from '../../common/kafka/client.js';
import type { Logger } from '../../common/logger.js';
import { createDropCounter } from '../../common/telemetry.js';
import { bindCodec } from '../../events/contract.js';
import { FLOWS } from '../../events/flows.js';
import { HTTP } from '../../events/http.js';
import { bindMetadataCodec } from '../../events/metadata.js';
import { topicSpecs } from '../../events/topics.js';
import { bindVerdictsCodec } from '../../events/verdicts.js';
import { MetadataIndex } from '../../metadata/index/metadata-index.js';
import { FLOWS_TABLE } from '../flow-row.js';
import { HTTP_TABLE } from '../http-row.js';
import { MetadataFeed } from '../metadata-feed.js';
import type { EventTable } from '../row-binary.js';
import { VERDICTS_TABLE } from '../verdict-row.js';
import { jsonLine, matches, textLine, type Observed, type ObservedKind, type ObserveFilter } from './observed-line.js';

export interface ObserveOptions {
  kinds: readonly ObservedKind[];
  filter: ObserveFilter;
  format: 'text' | 'json';
  /** Read the topics from their beginning instead of from now on. */
  fromBeginning: boolean;
  /** Stop after this many events passed the filter. */
  count?: number;
  write(line: string): void;
  /** Called once the index is built and the consumer has joined: from here on, new events are seen. */
  ready(description: string): void;
}

/** A kind's messages as its events, each with both ends named at its table's join time. */
type Namer = (value: Buffer) => Observed[];

function namer<Event extends Observed['event']>(kind: ObservedKind, decode: (value: Buffer) => readonly Event[], table: EventTable<Event>, index: MetadataIndex): Namer {
  // The kind and its event type go together by construction; TypeScript cannot follow that through the generic.
  return (value) => decode(value).map((event) => ({ kind, event, ends: index.join(table.ends(event), table.joinTimeNs(event)) }) as Observed);
}

/** Observes until `stop` resolves or `count` events were written; rejects if Kafka fails for good. */
export async function observe(config: Config, logger: Logger, options: ObserveOptions, stop: Promise<void>): Promise<void> {
  const registry = loadRegistry();
  const topics = topicSpecs(config.kafka.topicPrefix);
  const topicOf: Record<ObservedKind, string> = { flow: topics.flows.topic, http: topics.http.topic, verdict: topics.verdicts.topic };
  const kindOfTopic = new Map(options.kinds.map((kind) => [topicOf[kind], kind]));
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'observe'), logger);

  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = [topics.metadata.topic, ...kindOfTopic.keys()].filter((topic) => !existing.has(topic));
    if (missing.length > 0) throw new ConfigError('kafka.topicPrefix', `no topic ${missing.join(', ')} on the brokers: start the roles (or sidecarless init) with this prefix first`);
  } finally {
    await admin.disconnect();
  }

  const { metadataHoldMs: holdMs, metadataHistoryMs: historyMs, labels } = config.enricher;
  const index = new MetadataIndex({ labels, historyNs: BigInt(historyMs) * 1_000_000n });
  const flows = bindCodec(registry, FLOWS);
  const http = bindCodec(registry, HTTP);
  const verdicts = bindVerdictsCodec(registry);
  const namers: Record<ObservedKind, Namer> = {
    flow: namer('flow', (value) => flows.decode(value), FLOWS_TABLE, index),
    http: namer('http', (value) => http.decode(value), HTTP_TABLE, index),
    verdict: namer('verdict', (value) => verdicts.decode(value), VERDICTS_TABLE, index),
  };
  const meter = metrics.getMeter('sidecarless.observe'); // no provider: observing exports no metrics
  const undecodable = createDropCounter(meter, logger, {
    name: 'observe',
    remedies: { decode_error: 'messages that do not decode as their topic\'s events are not shown; the enricher dead-letters them (deadletter.v1 says why)' },
  });
  const feed = new MetadataFeed({ kafka, topic: topics.metadata.topic, groupId: 'sidecarless-observe', codec: bindMetadataCodec(registry), index, holdMs, historyMs, logger, meter });
  const feedStarted = Date.now();
  await feed.start();
  const feedFailed = feed.failed.then((error) => Promise.reject(error));
  feedFailed.catch(() => {}); // raced below
  const consumer = kafka.consumer({ groupId: `sidecarless-observe-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 200 });
  try {
    await Promise.race([feed.caughtUp(feedStarted), feedFailed]);
    let written = 0;
    let counted: () => void = () => {};
    const enough = new Promise<void>((resolve) => (counted = resolve));
    let crashed: (error: unknown) => void = () => {};
    const failed = new Promise<never>((_, reject) => (crashed = reject));
    // Handled where it is raced below; this keeps a crash before that from counting as an unhandled rejection.
    failed.catch(() => {});
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) crashed(event.payload.error);
    });
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topics: [...kindOfTopic.keys()], fromBeginning: options.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, message }) => {
        if (message.value === null || (options.count !== undefined && written >= options.count)) return;
        let named: Observed[];
        try {
          named = namers[kindOfTopic.get(topic)!](message.value);
        } catch {
          // Counted and reported once per interval, as every drop is; the enricher dead-letters such a message.
          undecodable.add('decode_error');
          return;
        }
        for (const observed of named) {
          if (!matches(options.filter, observed)) continue;
          options.write(options.format === 'json' ? jsonLine(observed) : textLine(observed));
          if (++written === options.count) {
            counted();
            return;
          }
        }
      },
    });
    await Promise.race([joined, failed]);
    options.ready(`${[...kindOfTopic.keys()].join(', ')} from ${options.fromBeginning ? 'the beginning' : 'now on'}, named by ${index.stats().objects} objects of ${topics.metadata.topic}`);
    await Promise.race([stop, enough, failed, feedFailed]);
  } finally {
    await consumer.disconnect();
    await feed.stop();
    undecodable.flush();
  }
}
