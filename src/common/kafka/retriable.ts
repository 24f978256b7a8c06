/**
 * Kafka admin calls asked again while the cluster answers with a retriable error, until a deadline.
 *
 * kafkajs retries some admin calls itself, but not every error its protocol marks retriable: a broker that has just
 * started, or a topic created a moment earlier, answers UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this
 * topic-partition"), NOT_LEADER_OR_FOLLOWER or LEADER_NOT_AVAILABLE until it has loaded its metadata and taken up
 * its leaderships. A role starting beside a broker (the local stack's `stack up`, a cluster rolling both) must wait
 * that out, not exit. A non-retriable error, or a retriable one past the deadline, is thrown as it came.
 */
const RETRY_MS = 100;

/** The result of `call`, asked again every 100 ms while it throws a retriable error, for up to `timeoutMs`. */
export async function whileRetriable<T>(call: () => Promise<T>, timeoutMs: number, onRetry?: (error: unknown) => void): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if ((error as { retriable?: boolean }).retriable !== true || Date.now() >= deadline) throw error;
      onRetry?.(error);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
