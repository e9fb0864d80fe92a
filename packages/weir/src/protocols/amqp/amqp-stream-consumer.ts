import type { BrokerCore } from '../../broker/broker-core.js';
import type { FetchResult } from '../../broker/fetch.js';
import { parseStreamDuration } from '../../broker/vhost/queue-arguments.js';
import type { Queue, QueueConsumer, VirtualHost } from '../../broker/vhost/virtual-host.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { decodeMessages, type StoredMessage } from '../../storage/record-batch.js';
import { preconditionFailed } from './amqp-error.js';
import { decodeProperties, encodeProperties, Field, type FieldValue } from './codec/index.js';

/**
 * Where a stream consumer starts (RabbitMQ's x-stream-offset, https://www.rabbitmq.com/docs/streams#consuming):
 * the first retained message, the last one, the next one published, an offset, or the first message stored at or
 * after a time (milliseconds since the epoch).
 */
export type StreamStart = { kind: 'first' } | { kind: 'last' } | { kind: 'next' } | { kind: 'offset'; offset: number } | { kind: 'time'; ms: number };

const INTEGER_TYPES: ReadonlySet<string> = new Set(['b', 'B', 's', 'u', 'I', 'i', 'l']);

/**
 * The consumer argument x-stream-offset: "first", "last", "next" (the default), an integer offset, an AMQP
 * timestamp (seconds), or an interval string ("1h", "30m", "7D": messages stored within it before now). Anything
 * else is PRECONDITION_FAILED, as RabbitMQ answers an invalid consumer argument.
 */
export function parseStreamOffset(value: FieldValue | undefined, queue: string, vhost: string, now: number): StreamStart {
  if (value === undefined) return { kind: 'next' };
  const invalid = (why: string) => preconditionFailed(`invalid arg 'x-stream-offset' for queue '${queue}' in vhost '${vhost}': ${why}`);
  if (value.type === 'S') {
    const text = value.value.toString('utf8');
    if (text === 'first' || text === 'last' || text === 'next') return { kind: text };
    const interval = parseStreamDuration(text);
    if (interval === null) throw invalid(`'${text}' is not first, last, next or an interval such as 30m, 1h or 7D`);
    return { kind: 'time', ms: Math.max(0, now - interval) };
  }
  if (value.type === 'T') return { kind: 'time', ms: Math.min(Number(value.value) * 1000, Number.MAX_SAFE_INTEGER) };
  if (INTEGER_TYPES.has(value.type)) {
    const offset = Number(value.value as number | bigint);
    if (offset < 0) throw invalid(`offset ${offset} is negative`);
    return { kind: 'offset', offset: Math.min(offset, Number.MAX_SAFE_INTEGER) };
  }
  throw invalid(`a value of field type '${value.type}' is neither a string, an integer nor a timestamp`);
}

/**
 * The content properties of a stream delivery: the message's own, with the header `x-stream-offset` (a long, the
 * message's offset in the stream) added, as RabbitMQ adds it so a consumer can resume from where it stopped.
 */
export function streamDeliveryProperties(rawProperties: Buffer, offset: number): Buffer {
  const properties = rawProperties.byteLength > 2 ? decodeProperties(rawProperties) : {};
  const headers = new Map(properties.headers ?? []);
  headers.set('x-stream-offset', Field.long(offset));
  return encodeProperties({ ...properties, headers });
}

/** What a stream consumer needs from its channel. */
export interface StreamConsumerChannel {
  /** False while the client paused the channel with channel.flow. */
  readonly flowActive: boolean;
  /** Writes the basic.deliver of one stream message (numbering it) and returns whether the socket can take more. */
  deliverStream(consumer: AmqpStreamConsumer, message: StoredMessage): boolean;
  /** The consumer ended without the client asking (queue deleted, topic gone): basic.cancel to the client. */
  streamCancelledByBroker(consumer: AmqpStreamConsumer): void;
  /** Runs `resume` once the socket drained. */
  whenWritable(resume: () => void): void;
}

/** Longest wait of one fetch at the stream's end; the wait is then simply renewed. */
const IDLE_WAIT_MS = 30_000;
/** Bytes read from the stream at a time. */
const READ_BYTES = 256 * 1024;

/**
 * One basic.consume on a stream queue: it reads the queue's topic from its own position (nothing is removed, and
 * other consumers read independently), delivering up to its prefetch of unacknowledged messages. Acks, nacks and
 * rejects only give credit back; nothing is redelivered. At the end of the stream it long-polls the topic (a fetch
 * woken by the next append), so an idle consumer costs one waiting fetch and no timer per message.
 */
export class AmqpStreamConsumer implements QueueConsumer {
  /** Deliveries the client has not settled yet. */
  unacked = 0;
  /** The next offset to deliver. */
  private position = -1;
  /** Messages read from the stream and not yet delivered. */
  private buffered: StoredMessage[] = [];
  private bufferedAt = 0;
  private started = false;
  private stopped = false;
  private removed = false;
  /** The socket is over its high-water mark: nothing more until it drains. */
  private socketFull = false;
  private wake: (() => void) | null = null;
  private readonly reading = new AbortController();

  constructor(
    readonly tag: string,
    readonly queue: Queue,
    private readonly vhost: VirtualHost,
    private readonly core: BrokerCore,
    private readonly channel: StreamConsumerChannel,
    private readonly logger: Logger,
    readonly options: { exclusive: boolean; prefetch: number; start: StreamStart },
  ) {}

  get exclusive(): boolean {
    return this.options.exclusive;
  }

  get topic(): string {
    return this.queue.definition.topic;
  }

  activate(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.run();
  }

  /** Some of its deliveries were acked, nacked or rejected: that much credit is back. */
  settled(count: number): void {
    this.unacked -= count;
    if (this.unacked < this.options.prefetch) this.resume();
  }

  /** channel.flow turned delivery back on (or off: the loop checks before each delivery). */
  flowChanged(): void {
    this.resume();
  }

  /** basic.cancel from the client: nothing more is delivered; what was delivered can still be settled. */
  cancel(): void {
    this.stop();
    this.leaveQueue();
  }

  /** From the vhost: the queue is gone. */
  queueDeleted(): void {
    this.removed = true;
    this.stop();
    this.channel.streamCancelledByBroker(this);
  }

  /** The channel closed. */
  close(): void {
    this.stop();
    this.leaveQueue();
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.buffered = [];
    this.reading.abort(new Error(`consumer '${this.tag}' stopped`));
    this.resume();
  }

  private leaveQueue(): void {
    if (this.removed) return;
    this.removed = true;
    this.vhost.removeConsumer(this.queue, this);
  }

  private resume(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private get canDeliver(): boolean {
    return !this.socketFull && this.channel.flowActive && this.unacked < this.options.prefetch;
  }

  private async run(): Promise<void> {
    try {
      this.position = await this.startOffset();
      while (!this.stopped) {
        if (!this.canDeliver) await new Promise<void>((resolve) => (this.wake = resolve));
        else if (this.bufferedAt < this.buffered.length) this.deliverBuffered();
        else await this.read();
      }
    } catch (error) {
      if (this.stopped || isWeirError(error, ErrorCode.BrokerShuttingDown)) return;
      // The topic went away under the queue (deleted through another protocol) or could not be read: the client is
      // told its consumer is cancelled rather than left waiting.
      if (!isWeirError(error, ErrorCode.UnknownTopic)) this.logger.warn({ err: error, queue: this.queue.name, consumer: this.tag }, 'stream consumer stopped');
      this.stop();
      this.leaveQueue();
      this.channel.streamCancelledByBroker(this);
    }
  }

  private async startOffset(): Promise<number> {
    const topic = this.topic;
    const [first, end] = await Promise.all([this.core.listOffsets(topic, 0, -2), this.core.listOffsets(topic, 0, -1)]);
    const start = this.options.start;
    switch (start.kind) {
      case 'first':
        return first;
      case 'last':
        return end > first ? end - 1 : end;
      case 'next':
        return end;
      case 'offset':
        // RabbitMQ starts a reader at an offset no longer retained from the first one, and past the end at the next.
        return Math.min(Math.max(start.offset, first), end);
      case 'time':
        return this.core.listOffsets(topic, 0, start.ms);
    }
  }

  /** Reads the next messages, waiting at the end of the stream until one is appended. */
  private async read(): Promise<void> {
    let result: FetchResult;
    try {
      const request = { topic: this.topic, partition: 0, offset: this.position, maxBytes: READ_BYTES, minBytes: 1, maxWaitMs: IDLE_WAIT_MS };
      result = await this.core.fetch({ ...request, signal: this.reading.signal });
    } catch (error) {
      if (!isWeirError(error, ErrorCode.OffsetOutOfRange)) throw error;
      // Retention moved the stream's start past this reader: it goes on from the first message still there.
      const [first, end] = await Promise.all([this.core.listOffsets(this.topic, 0, -2), this.core.listOffsets(this.topic, 0, -1)]);
      this.position = Math.min(Math.max(this.position, first), end);
      return;
    }
    if (this.stopped) return;
    const messages: StoredMessage[] = [];
    for (const batch of result.batches) decodeMessages(batch, 0, 0, this.position, Number.POSITIVE_INFINITY, messages);
    this.buffered = messages;
    this.bufferedAt = 0;
  }

  private deliverBuffered(): void {
    while (this.bufferedAt < this.buffered.length && this.canDeliver) {
      const message = this.buffered[this.bufferedAt++]!;
      this.unacked++;
      this.position = message.offset + 1;
      if (!this.channel.deliverStream(this, message)) {
        // The socket is full: no more until it drains, so a slow reader cannot make the broker buffer without bound.
        this.socketFull = true;
        this.channel.whenWritable(() => {
          this.socketFull = false;
          this.resume();
        });
      }
    }
    if (this.bufferedAt >= this.buffered.length) {
      this.buffered = [];
      this.bufferedAt = 0;
    }
  }
}
