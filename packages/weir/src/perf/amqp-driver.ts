/**
 * AMQP 0-9-1 through amqplib, which is an optional peer dependency: loaded only when `--protocol amqp` runs, so users
 * of the native protocol need not install it. One connection per producer and per consumer, as separate
 * applications would have. Producers publish persistent messages to the default exchange (fanout: to a fanout
 * exchange); with --acks durable they use a confirm channel and a send resolves on the broker's confirm.
 */
import { once } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { type ConsumerKind, errorText, type PerfConsumer, type PerfDriver, type PerfProducer } from './driver.js';
import { type PerfParameters, PerfUsageError } from './options.js';

type Amqplib = typeof import('amqplib');

/** amqplib, or a PerfUsageError that says how to get it. */
export async function loadAmqplib(): Promise<Amqplib> {
  try {
    const loaded = (await import('amqplib')) as Amqplib & { default?: Amqplib };
    return typeof loaded.connect === 'function' ? loaded : loaded.default!;
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new PerfUsageError('--protocol amqp needs the amqplib package, which is not installed: run `npm install amqplib` where weir is installed');
    }
    throw error;
  }
}

/** The channel's fatal error as a promise that only ever rejects: raced against waits that would otherwise hang. */
function channelFailure(channel: Channel): Promise<never> {
  const failure = new Promise<never>((_, reject) => {
    channel.once('error', (error: unknown) => reject(new Error(`AMQP channel error: ${errorText(error)}`)));
    channel.once('close', () => reject(new Error('AMQP channel closed by the broker')));
  });
  failure.catch(() => {});
  return failure;
}

export class AmqpDriver implements PerfDriver {
  private readonly models = new Set<ChannelModel>();
  private queues: string[] = [];
  private exchange = '';
  private kind: ConsumerKind = 'group';

  private constructor(
    private readonly amqp: Amqplib,
    private readonly url: string,
    private readonly parameters: PerfParameters,
    private readonly runId: string,
  ) {}

  static async create(url: string, parameters: PerfParameters, runId: string): Promise<AmqpDriver> {
    return new AmqpDriver(await loadAmqplib(), url, parameters, runId);
  }

  private async connect(): Promise<ChannelModel> {
    const model = await this.amqp.connect(this.url, { timeout: 10_000 });
    // A connection that fails later surfaces through its channels; it must not crash the process as an 'error' event.
    model.on('error', () => {});
    this.models.add(model);
    return model;
  }

  private async withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    const model = await this.connect();
    try {
      const channel = await model.createChannel();
      channel.on('error', () => {});
      return await work(channel);
    } finally {
      this.models.delete(model);
      await model.close().catch(() => {});
    }
  }

  async setUp(layout: { destinations: number; subscribers: number; kind: ConsumerKind }): Promise<void> {
    this.kind = layout.kind;
    const base = `perf-${this.runId}`;
    await this.withChannel(async (channel) => {
      if (layout.kind === 'fanout') {
        this.exchange = base;
        await channel.assertExchange(base, 'fanout', { durable: true });
        for (let index = 0; index < layout.subscribers; index++) {
          const queue = `${base}-sub-${index}`;
          await channel.assertQueue(queue, { durable: true });
          await channel.bindQueue(queue, base, '');
          this.queues.push(queue);
        }
      } else {
        for (let index = 0; index < layout.destinations; index++) {
          const queue = `${base}-${index}`;
          await channel.assertQueue(queue, { durable: true });
          this.queues.push(queue);
        }
      }
    });
  }

  async producer(): Promise<PerfProducer> {
    const model = await this.connect();
    const confirmed = this.parameters.acks !== 'none';
    const channel: Channel | ConfirmChannel = confirmed ? await model.createConfirmChannel() : await model.createChannel();
    const failure = channelFailure(channel);
    const fanout = this.kind === 'fanout';
    const exchange = this.exchange;
    const queues = this.queues;
    const models = this.models;
    const publishOne = (destination: number, body: Buffer): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const callback = (error: unknown): void => (error === null || error === undefined ? resolve() : reject(new Error(`publish nacked: ${errorText(error)}`)));
        const writable = fanout
          ? channel.publish(exchange, '', body, { persistent: true }, confirmed ? callback : undefined)
          : channel.sendToQueue(queues[destination]!, body, { persistent: true }, confirmed ? callback : undefined);
        if (!confirmed) {
          // Without confirms a publish is done once written; false means the socket buffer is full, so wait for it.
          if (writable) resolve();
          else void Promise.race([once(channel, 'drain'), failure]).then(() => resolve(), reject);
        }
      });
    return {
      async send(destination, bodies) {
        const sends = bodies.map((body) => publishOne(destination, body));
        await Promise.race([Promise.all(sends), failure]);
      },
      async flush() {
        if (confirmed) await Promise.race([(channel as ConfirmChannel).waitForConfirms(), failure]);
      },
      async close() {
        await channel.close().catch(() => {});
        models.delete(model);
        await model.close().catch(() => {});
      },
    };
  }

  async consumer(destination: number, _index: number, onMessage: (body: Buffer) => void): Promise<PerfConsumer> {
    const model = await this.connect();
    const channel = await model.createChannel();
    channel.on('error', () => {});
    const autoAck = this.parameters.autoAck;
    if (!autoAck) await channel.prefetch(this.parameters.prefetch);
    const { consumerTag } = await channel.consume(
      this.queues[destination]!,
      (message: ConsumeMessage | null) => {
        if (message === null) return;
        onMessage(message.content);
        if (!autoAck) channel.ack(message);
      },
      { noAck: autoAck },
    );
    const models = this.models;
    return {
      async close() {
        await channel.cancel(consumerTag).catch(() => {});
        await channel.close().catch(() => {});
        models.delete(model);
        await model.close().catch(() => {});
      },
    };
  }

  async tearDown(): Promise<void> {
    await this.withChannel(async (channel) => {
      for (const queue of this.queues) await channel.deleteQueue(queue).catch(() => {});
      if (this.exchange !== '') await channel.deleteExchange(this.exchange).catch(() => {});
    }).catch(() => {});
    this.queues = [];
  }

  async close(): Promise<void> {
    await Promise.all([...this.models].map((model) => model.close().catch(() => {})));
    this.models.clear();
  }
}
