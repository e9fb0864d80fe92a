/** The native protocol through weir-client: one client (one connection) per producer and per consumer. */
import { type ProducerMessage, WeirClient } from 'weir-client';
import type { ConsumerKind, PerfConsumer, PerfDriver, PerfProducer } from './driver.js';
import type { PerfParameters } from './options.js';

export class NativeDriver implements PerfDriver {
  private readonly admin: WeirClient;
  private readonly clients = new Set<WeirClient>();
  private topics: string[] = [];
  private kind: ConsumerKind = 'group';

  constructor(
    private readonly parameters: PerfParameters,
    private readonly runId: string,
  ) {
    this.admin = this.client('admin');
  }

  private client(role: string): WeirClient {
    // A broker that is not there should fail the run in seconds, not after the client's long default retries.
    const client = new WeirClient({ brokers: [this.parameters.target], clientId: `weir-perf-${role}`, retry: { retries: 3 } });
    this.clients.add(client);
    return client;
  }

  async setUp(layout: { destinations: number; kind: ConsumerKind }): Promise<void> {
    this.kind = layout.kind;
    const names = Array.from({ length: layout.destinations }, (_, index) => `perf-${this.runId}-${index}`);
    for (const name of names) {
      await this.admin.admin().createTopic(name, { partitions: this.parameters.partitions });
      this.topics.push(name);
    }
  }

  async producer(index: number): Promise<PerfProducer> {
    const client = this.client(`producer-${index}`);
    const producer = client.producer({ acks: this.parameters.acks, ...(this.parameters.lingerMs === null ? {} : { lingerMs: this.parameters.lingerMs }) });
    // Connect and learn the partition counts before the clock starts.
    for (const topic of this.topics) await client.metadata.partitionCount(topic);
    const topics = this.topics;
    return {
      async send(destination, bodies) {
        const topic = topics[destination]!;
        if (bodies.length === 1) await producer.send(topic, { body: bodies[0]! });
        else await producer.send(topic, bodies.map((body): ProducerMessage => ({ body })));
      },
      flush: () => producer.flush(),
      async close() {
        await producer.close();
        await client.close();
      },
    };
  }

  async consumer(destination: number, index: number, onMessage: (body: Buffer) => void): Promise<PerfConsumer> {
    const client = this.client(`consumer-${destination}-${index}`);
    // Fanout subscribers all read the one topic.
    const topic = this.topics[this.kind === 'fanout' ? 0 : destination]!;
    const group = `perf-${this.runId}-${destination}`;
    if (this.kind === 'queue') {
      const consumer = client.queueConsumer({ group, mode: 'shared', prefetch: this.parameters.prefetch, settings: { start: 'earliest' } });
      await consumer.subscribe(topic);
      const reading = (async () => {
        for await (const message of consumer) {
          onMessage(message.body);
          void message.ack();
        }
      })();
      return this.closer(client, () => consumer.close(), reading);
    }
    const consumer = client.consumer(this.kind === 'fanout' ? { from: 'earliest' } : { group, from: 'earliest' });
    await consumer.subscribe(topic);
    const reading = (async () => {
      for await (const message of consumer) onMessage(message.body);
    })();
    return this.closer(client, () => consumer.close(), reading);
  }

  private closer(client: WeirClient, closeConsumer: () => Promise<void>, reading: Promise<void>): PerfConsumer {
    // A consumer closed mid-iteration may end its loop with an error; the run is over by then.
    reading.catch(() => {});
    return {
      async close() {
        await closeConsumer();
        await reading.catch(() => {});
        await client.close();
      },
    };
  }

  async tearDown(): Promise<void> {
    for (const topic of this.topics) await this.admin.admin().deleteTopic(topic).catch(() => {});
    this.topics = [];
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients].map((client) => client.close().catch(() => client.abort())));
  }
}
