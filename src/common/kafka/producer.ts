// Default import: kafkajs is CommonJS and Node cannot see Partitioners as a named export of it.
import kafkajs, { type Kafka, type Message, type Producer, type RetryOptions } from 'kafkajs';

/**
 * An idempotent producer (acks=all, one request in flight, the Java-compatible partitioner for keyed messages)
 * that connects on its first send, so a role can start while the broker is down, and disconnects only if it ever
 * connected. `retry` bounds kafkajs' own retries when the caller retries itself.
 */
export class LazyProducer {
  private producer: Producer;
  private connected = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly retry?: RetryOptions,
  ) {
    this.producer = this.create();
  }

  async send(topic: string, messages: Message[]): Promise<void> {
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    await this.producer.send({ topic, acks: -1, messages });
  }

  /**
   * Replaces the producer with a new one (a new producer id): the way out when the broker no longer accepts this
   * producer's sequence numbers. A message whose earlier attempt was written may then be written twice.
   */
  async reset(): Promise<void> {
    const old = this.producer;
    this.producer = this.create();
    if (this.connected) await old.disconnect().catch(() => {});
    this.connected = false;
  }

  async shutdown(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }

  private create(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
      ...(this.retry && { retry: this.retry }),
    });
  }
}
