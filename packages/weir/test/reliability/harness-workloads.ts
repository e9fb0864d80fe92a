import { type Channel, type ChannelModel, connect, type ConfirmChannel } from 'amqplib';
import { type ConsumedMessage, type Consumer, type CreateTopicOptions, type QueueConsumer, WeirClient, WeirClientError } from 'weir-client';
import type { BrokerProcess } from '../support/broker-process.js';
import type { History, SendRecord, TargetRules } from './history.js';

/**
 * What the harness runs against a broker: producers and consumers of one topic or queue, each recording into the run's
 * history. A workload's runs end by themselves when the broker dies (every pending send becomes `unknown`), or when
 * stopped.
 */
export interface Workload {
  readonly target: string;
  readonly rules: TargetRules;
  /** Creates the topic or queue on a fresh broker. */
  setup(broker: BrokerProcess): Promise<void>;
  /** Starts producers; `stop()` stops issuing sends and resolves once every send in flight has an outcome. */
  produce(broker: BrokerProcess, cycle: number): Running;
  /** Starts consumers (recording and acknowledging what they get); `stop()` closes them. */
  consume(broker: BrokerProcess): Running;
  /** Storage-level reads for the audit: every partition from offset 0 (positional targets only). */
  readonly auditable: boolean;
}

export interface Running {
  stop(): Promise<void>;
  /** Drops every connection at once (after a kill); resolves when the loops have ended. */
  abort(): Promise<void>;
}

/** Native error codes that mean the broker refused the message: it was not stored. */
const DEFINITE_FAILURES = new Set(['MESSAGE_TOO_LARGE', 'INVALID_ARGUMENT', 'UNKNOWN_TOPIC', 'NOT_AUTHORIZED']);

export function nativeClient(broker: BrokerProcess, clientId: string): WeirClient {
  return new WeirClient({ brokers: [`127.0.0.1:${broker.port}`], clientId, retry: { initialMs: 10, maxMs: 50, retries: 2 }, requestTimeoutMs: 5000 });
}

/**
 * Keeps up to `window` sends in flight until stopped: each send is invoked in the history, then marked by `settle`.
 * Resolves once stopped (or broken) with nothing in flight.
 */
function windowedSends(window: number, issue: (stopped: () => boolean) => Promise<void> | null): { stop(): void; done: Promise<void> } {
  let stopped = false;
  let inflight = 0;
  let wake: (() => void) | null = null;
  const done = (async () => {
    while (!stopped) {
      while (!stopped && inflight < window) {
        const sending = issue(() => stopped);
        if (sending === null) {
          stopped = true;
          break;
        }
        inflight++;
        void sending.finally(() => {
          inflight--;
          wake?.();
        });
      }
      if (stopped) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    while (inflight > 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  })();
  return {
    stop() {
      stopped = true;
      wake?.();
    },
    done,
  };
}

function classifyNative(history: History, record: SendRecord, error: unknown): void {
  if (error instanceof WeirClientError && DEFINITE_FAILURES.has(error.code)) history.failed(record);
  else history.unknown(record);
}

/** The body the harness sends for a record: its value, padded to a wanted size after a space. */
function bodyOf(record: SendRecord, size: number): string {
  return size > record.value.length ? `${record.value} ${'.'.repeat(size - record.value.length - 1)}` : record.value;
}

/** The value a stored or delivered body carries. */
export function valueOf(body: Buffer | string): string {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const space = text.indexOf(' ');
  return space < 0 ? text : text.slice(0, space);
}

/**
 * Reads a native consumer until it ends, recording each message (and acknowledging work-queue deliveries); returns
 * when the iterator stops or throws.
 */
async function recordAll(
  iterable: AsyncIterable<ConsumedMessage & { redelivered?: boolean; ack?: () => Promise<unknown> }>,
  history: History,
  target: string,
  onMessage?: (message: ConsumedMessage) => void,
): Promise<void> {
  try {
    for await (const message of iterable) {
      history.receive({ target, partition: message.partition, offset: message.offset, value: valueOf(message.body), redelivered: message.redelivered ?? false });
      onMessage?.(message);
      if (message.ack) void message.ack().catch(() => {});
    }
  } catch {
    // The connection died with the broker: the loop is over.
  }
}

/** Creates a topic on a fresh broker, through a client of its own. */
async function createTopic(broker: BrokerProcess, topic: string, options: CreateTopicOptions): Promise<void> {
  const client = nativeClient(broker, 'harness-setup');
  try {
    await client.admin().createTopic(topic, options);
  } finally {
    await client.close();
  }
}

/**
 * Subscribes `consumer` to `target` and records what it reads until it ends; `stop()` closes the consumer and its
 * client, `abort()` drops the client's connections.
 */
function consuming(
  client: WeirClient,
  consumer: Consumer | QueueConsumer,
  history: History,
  target: string,
  onMessage?: (message: ConsumedMessage) => void,
): Running {
  const loop = (async () => {
    try {
      await consumer.subscribe(target);
    } catch {
      return;
    }
    await recordAll(consumer, history, target, onMessage);
  })();
  return {
    async stop() {
      await consumer.close().catch(() => {});
      await client.close().catch(() => {});
      await loop;
    },
    async abort() {
      client.abort();
      await loop;
    },
  };
}

/**
 * Native stream: idempotent producers (acks `durable`) over four partitions, one consumer group with auto-commit.
 * Each producer keys its messages so each partition gets several producers' values in their send order. Every 40th
 * message of a producer is larger than the topic allows: the broker refuses it, and it must never be read.
 */
export class NativeStream implements Workload {
  readonly rules = { positional: true, duplicatesForbidden: true };
  readonly auditable = true;
  static readonly MAX_MESSAGE_BYTES = 1024;

  constructor(
    readonly target: string,
    private readonly history: History,
    private readonly partitions = 4,
  ) {}

  async setup(broker: BrokerProcess): Promise<void> {
    await createTopic(broker, this.target, { partitions: this.partitions, flushPolicy: 'sync', maxMessageBytes: NativeStream.MAX_MESSAGE_BYTES });
  }

  produce(broker: BrokerProcess, cycle: number): Running {
    const client = nativeClient(broker, `harness-${this.target}-producer`);
    const senders = [0, 1].map((index) => {
      const producer = client.producer({ lingerMs: 1 });
      const name = `${this.target}.c${cycle}.p${index}`;
      return windowedSends(16, () => {
        const record = this.history.invoke(this.target, name);
        const oversized = record.sequence % 40 === 0;
        const body = bodyOf(record, oversized ? NativeStream.MAX_MESSAGE_BYTES * 2 : 24);
        const key = `${name}/${record.sequence % 3}`;
        return producer.send(this.target, { key, body }).then(
          (result) => this.history.ok(record, { partition: result.partition, offset: result.offset }),
          (error: unknown) => classifyNative(this.history, record, error),
        );
      });
    });
    return runningOf(client, senders);
  }

  /**
   * Offsets the broker reported damaged (found by the audit), per partition: the group consumer stops at the first of
   * them with DATA_DAMAGED, as it should, and is moved past them, as an operator would.
   */
  readonly damaged = new Map<number, Set<number>>();

  consume(broker: BrokerProcess): Running {
    const client = nativeClient(broker, `harness-${this.target}-consumer`);
    const group = `${this.target}-readers`;
    const consumer = client.consumer({ group, maxWaitMs: 100, autoCommitIntervalMs: 100, sessionTimeoutMs: 3000, rebalanceTimeoutMs: 3000 });
    const next = new Map<number, number>();
    consumer.on('error', (error) => {
      if (error.code === 'DATA_DAMAGED') void this.skipDamaged(client, consumer, group, next);
    });
    return consuming(client, consumer, this.history, this.target, (message) => next.set(message.partition, message.offset + 1));
  }

  /** Moves the group consumer past damaged offsets it stands at: where it continues is its last read + 1, else its committed offset. */
  private async skipDamaged(client: WeirClient, consumer: Consumer, group: string, next: Map<number, number>): Promise<void> {
    try {
      const committed = await client.admin().fetchOffsets(group, this.target);
      for (const { topic, partition } of consumer.assignment()) {
        const damaged = this.damaged.get(partition);
        if (topic !== this.target || damaged === undefined) continue;
        let at = next.get(partition) ?? Math.max(0, committed.find((entry) => entry.partition === partition)?.offset ?? 0);
        if (!damaged.has(at)) continue;
        while (damaged.has(at)) at++;
        next.set(partition, at);
        await consumer.seek({ topic: this.target, partition, to: at });
      }
    } catch {
      // The consumer retries the fetch and reports again.
    }
  }
}

/** Native work queue: one producer (acks `durable`), one consumer of a shared group acknowledging each message. */
export class NativeWorkQueue implements Workload {
  readonly rules = { positional: true, duplicatesForbidden: false };
  readonly auditable = true;

  constructor(
    readonly target: string,
    private readonly history: History,
  ) {}

  async setup(broker: BrokerProcess): Promise<void> {
    await createTopic(broker, this.target, { partitions: 2, flushPolicy: 'sync' });
  }

  produce(broker: BrokerProcess, cycle: number): Running {
    const client = nativeClient(broker, `harness-${this.target}-producer`);
    const producer = client.producer({ lingerMs: 1 });
    const name = `${this.target}.c${cycle}`;
    const sender = windowedSends(16, () => {
      const record = this.history.invoke(this.target, name);
      return producer.send(this.target, { body: bodyOf(record, 24) }, { partition: record.sequence % 2 }).then(
        (result) => this.history.ok(record, { partition: result.partition, offset: result.offset }),
        (error: unknown) => classifyNative(this.history, record, error),
      );
    });
    return runningOf(client, [sender]);
  }

  consume(broker: BrokerProcess): Running {
    const client = nativeClient(broker, `harness-${this.target}-consumer`);
    const consumer = client.queueConsumer({ group: `${this.target}-workers`, prefetch: 50 });
    consumer.on('error', () => {});
    return consuming(client, consumer, this.history, this.target);
  }
}

function runningOf(client: WeirClient, senders: ReadonlyArray<{ stop(): void; done: Promise<void> }>): Running {
  return {
    async stop() {
      for (const sender of senders) sender.stop();
      await Promise.all(senders.map((sender) => sender.done));
      await client.close().catch(() => {});
    },
    async abort() {
      for (const sender of senders) sender.stop();
      client.abort();
      await Promise.all(senders.map((sender) => sender.done));
    },
  };
}

async function amqpConnection(broker: BrokerProcess): Promise<ChannelModel> {
  const model = await connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}?heartbeat=0`);
  model.on('error', () => {});
  return model;
}

/**
 * AMQP 0-9-1 through amqplib: a durable queue, a publisher with confirms (64 unconfirmed at most), a consumer with
 * manual acks (prefetch 100). basic.nack means the append failed: the message was not stored.
 */
export class AmqpQueue implements Workload {
  readonly rules = { positional: false, duplicatesForbidden: false };
  readonly auditable = false;

  constructor(
    readonly target: string,
    private readonly history: History,
  ) {}

  async setup(broker: BrokerProcess): Promise<void> {
    const model = await amqpConnection(broker);
    try {
      const channel = await model.createChannel();
      await channel.assertQueue(this.target, { durable: true });
    } finally {
      await model.close().catch(() => {});
    }
  }

  produce(broker: BrokerProcess, cycle: number): Running {
    const name = `${this.target}.c${cycle}`;
    let model: ChannelModel | null = null;
    let closed = false;
    let sender: { stop(): void; done: Promise<void> } | null = null;
    const started = (async () => {
      try {
        model = await amqpConnection(broker);
        const channel: ConfirmChannel = await model.createConfirmChannel();
        channel.on('error', () => {});
        model.once('close', () => (closed = true));
        sender = windowedSends(64, (stopped) => {
          if (closed || stopped()) return null;
          const record = this.history.invoke(this.target, name);
          return new Promise<void>((resolve) => {
            const settle = (error: unknown): void => {
              if (error === null || error === undefined) this.history.ok(record);
              // amqplib fails every waiting callback with "channel closed" when the connection dies: no outcome.
              else if (error instanceof Error && error.message === 'message nacked') this.history.failed(record);
              else this.history.unknown(record);
              resolve();
            };
            try {
              channel.sendToQueue(this.target, Buffer.from(record.value), { persistent: true }, settle);
            } catch {
              this.history.unknown(record);
              resolve();
            }
          });
        });
        await sender.done;
      } catch {
        // The broker died while connecting or publishing.
      }
    })();
    return {
      async stop() {
        closed = true;
        (sender as { stop(): void } | null)?.stop();
        await started;
        await (model as ChannelModel | null)?.close().catch(() => {});
      },
      async abort() {
        closed = true;
        (sender as { stop(): void } | null)?.stop();
        // The killed broker's socket closes; amqplib then fails every confirm still waiting.
        await started;
      },
    };
  }

  consume(broker: BrokerProcess): Running {
    let model: ChannelModel | null = null;
    let channel: Channel | null = null;
    const started = (async () => {
      try {
        model = await amqpConnection(broker);
        channel = await model.createChannel();
        channel.on('error', () => {});
        await channel.prefetch(100);
        const open = channel;
        await open.consume(this.target, (message) => {
          if (message === null) return;
          this.history.receive({ target: this.target, value: valueOf(message.content), redelivered: message.fields.redelivered });
          open.ack(message);
        });
      } catch {
        // The broker died while subscribing.
      }
    })();
    return {
      async stop() {
        await started;
        await (model as ChannelModel | null)?.close().catch(() => {});
      },
      async abort() {
        await started;
      },
    };
  }
}
