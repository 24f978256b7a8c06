/**
 * The policy messages this node's enforcer dead-lettered in earlier runs, read back from the dead-letter topic at
 * start, so that a restarted enforcer, which replays the policy topic from its beginning and finds the same
 * messages it cannot apply, does not letter them again (a letter per message, not per run). The key is the
 * message's place (topic, partition, offset): a message is lettered once, whatever the reason this run finds.
 * The cost: each start reads the dead-letter topic once (time-retained, all writers' letters, normally small).
 */
import type { Kafka } from 'kafkajs';
import type { DeadLetter } from '../common/kafka/dead-letter.js';
import type { Logger } from '../common/logger.js';
import { readToEnd } from '../common/kafka/read-to-end.js';
import type { DeadLetterCodec } from '../events/deadletter.js';

/** Where a dead-lettered message came from, as the enforcer remembers it. */
export const letterPlace = (letter: Pick<DeadLetter, 'topic' | 'partition' | 'offset'>): string => `${letter.topic}/${letter.partition}/${letter.offset}`;

/** The places of the messages of `sourceTopic` that `writer` dead-lettered before. */
export async function previousLetters(kafka: Kafka, topic: string, writer: string, sourceTopic: string, codec: DeadLetterCodec, logger: Logger): Promise<Set<string>> {
  const places = new Set<string>();
  let unreadable = 0;
  const messages = await readToEnd(
    kafka,
    topic,
    (message) => {
      if (!message.value) return;
      try {
        const letter = codec.decode(message.value);
        if (letter.writer !== writer || letter.source_topic !== sourceTopic) return;
        places.add(letterPlace({ topic: letter.source_topic, partition: letter.source_partition, offset: String(letter.source_offset) }));
      } catch (error) {
        // Another writer's letter of a newer schema: not one of ours, since we wrote ours with this one.
        if (unreadable++ === 0) logger.warn({ err: error, offset: message.offset }, 'an unreadable dead letter is skipped');
      }
    },
    { groupPrefix: `sidecarless-enforcer-letters`, logger },
  );
  logger.info({ messages, lettered_before: places.size, unreadable }, 'read the dead letters this enforcer wrote before');
  return places;
}
