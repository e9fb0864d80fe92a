import { randomBytes } from 'node:crypto';
import type { BrokerCore } from '../../broker/broker-core.js';
import { CreditPool, type Delivery, type SettleOutcome } from '../../broker/queue/shared-subscription.js';
import { weirPriority } from '../../broker/vhost/queue-arguments.js';
import type { Queue, VirtualHost } from '../../broker/vhost/virtual-host.js';
import type { VirtualHosts } from '../../broker/vhost/virtual-hosts.js';
import type { Logger } from '../../core/logger.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import { MAX_MESSAGES_PER_BATCH, type MessageInput, type StoredMessage } from '../../storage/record-batch.js';
import type { AccessControl } from '../../broker/access/access-control.js';
import { accessRefused, AmqpError, asAmqpError, commandInvalid, notAllowed, notFound, notImplemented, preconditionFailed, unexpectedFrame } from './amqp-error.js';
import { AmqpConsumer, type ConsumerChannel, type SettleSource } from './amqp-consumer.js';
import { AmqpStreamConsumer, parseStreamOffset, type StreamConsumerChannel, streamDeliveryProperties } from './amqp-stream-consumer.js';
import { bodyBytes, deliveryParts, type DeliveryParts, parseExpiration, plainHeaders, type PublishedMessage, storedInput, StoredInputs } from './amqp-message.js';
import { PublisherConfirms } from './publisher-confirms.js';
import { DirectReplyTo, REPLY_TO_QUEUE } from './direct-reply-to.js';
import {
  type AmqpMethod,
  BASIC_CLASS_ID,
  basicDeliverSize,
  type BasicProperties,
  type ContentHeader,
  ContentHeaderReader,
  encodeBasicDeliver,
  encodeContentFrames,
  encodeMethodFrame,
  encodeProperties,
  type FieldTable,
  putBasicDeliver,
  ReplyCode,
  tableNumber,
  tableToJs,
} from './codec/index.js';

/** What a channel needs from its connection. */
export interface ChannelHost {
  readonly id: string;
  readonly clientId: string;
  readonly address: string;
  readonly user: string;
  readonly vhost: VirtualHost;
  readonly vhosts: VirtualHosts;
  readonly core: BrokerCore;
  readonly access: AccessControl;
  readonly logger: Logger;
  readonly frameMax: number;
  readonly maxMessageBytes: number;
  readonly consumerCancelNotify: boolean;
  /** Writes bytes; false when the socket's buffer is over its high-water mark. */
  send(bytes: Buffer): boolean;
  whenWritable(resume: () => void): void;
  /** A publish arrived (connection.blocked applies to publishing connections). */
  publishing(): void;
  readonly replies: DirectReplyTo;
}

type State = 'open' | 'closing' | 'closed';

interface ContentInProgress {
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  header: ContentHeader | null;
  /** The first body frame: most bodies fit in one, so a list is made only for a second (`chunks`). */
  body: Buffer | null;
  chunks: Buffer[] | null;
  received: number;
}

interface Unacked {
  /** A stream consumer's deliveries settle nothing in the broker: they only give the consumer its credit back. */
  source: SettleSource | AmqpStreamConsumer;
  partition: number;
  offset: number;
}

/** Publishes collected for one append: to one queue, or to several that share one stored copy. */
interface PendingAppend {
  queues: Queue[];
  delayed: boolean;
  inputs: MessageInput[];
  /** Confirm tags (or 0) of the messages in `inputs`, index for index. */
  tags: number[];
  /** Body bytes of `inputs`: an append stops taking more at MAX_APPEND_BYTES, so large messages never make a batch the log refuses. */
  bytes: number;
}

/** Body bytes after which a collected append takes no more publishes (one message alone may be larger). */
const MAX_APPEND_BYTES = 1 << 20;

/** A transaction's work until commit (§1.9.2): its publishes, and the settlements to apply after them. */
interface Transaction {
  publishes: Array<{ queues: Queue[]; message: PublishedMessage; priority: number | undefined }>;
  settles: Array<() => void>;
}

/**
 * One AMQP channel (AMQP 0-9-1 §2.2.2, §4.2.6): content assembly, the exchange / queue / basic / confirm / tx methods
 * mapped onto the vhost and the broker core, delivery tags, consumers, publisher confirms and transactions.
 */
export class AmqpChannel implements ConsumerChannel, StreamConsumerChannel {
  state: State = 'open';
  private content: ContentInProgress | null = null;
  /** The one ContentInProgress a channel needs (content is assembled one message at a time), reused. */
  private readonly nextContent: ContentInProgress = { exchange: '', routingKey: '', mandatory: false, header: null, body: null, chunks: null, received: 0 };
  private readonly headerReader = new ContentHeaderReader();
  private readonly consumers = new Map<string, AmqpConsumer>();
  /** Consumers of stream queues; their tags share the channel's namespace with the others. */
  private readonly streamConsumers = new Map<string, AmqpStreamConsumer>();
  private deliveryTag = 0;
  private readonly unacked = new Map<number, Unacked>();
  /** What a single ack hands the core, reused: the core reads it synchronously and keeps nothing of it. */
  private readonly singleAck: [SettleOutcome] = [{ partition: 0, offset: 0, outcome: 'ack' }];
  private prefetchCount = 0;
  private readonly pool = new CreditPool(0);
  private confirms: PublisherConfirms | null = null;
  private tx: Transaction | null = null;
  private lastQueue: string | null = null;
  /** Appends collected from the current socket read, in the order they were started. */
  private appends: PendingAppend[] = [];
  /** Per set of target queues, the append that may still take publishes for exactly that set. */
  private readonly openAppends = new Map<string, PendingAppend>();
  /**
   * Per queue, the newest collected append holding messages for it. An append takes more publishes only while it is
   * the newest for every one of its queues, so each queue receives its messages in publish order.
   */
  private readonly newestAppend = new Map<Queue, PendingAppend>();
  private appendsScheduled = false;
  /** Flushes of collected publishes not yet settled, and who waits for none to be left (publishesStored). */
  private flushesInFlight = 0;
  private publishWaiters: Array<() => void> = [];
  private readonly storedInputs = new StoredInputs();
  flowActive = true;
  /** basic.get deliveries are leased to one pull consumer per channel and queue. */
  private readonly pullers = new Map<Queue, SettleSource>();
  /** Resources this channel's user may use (RabbitMQ caches permission checks per channel the same way). */
  private readonly permitted = { write: new Set<string>(), read: new Set<string>() };
  /** The channel's direct reply-to consumer: its tag and the reply_to name requests get. */
  private replyConsumer: { tag: string; name: string } | null = null;

  constructor(
    readonly number: number,
    private readonly host: ChannelHost,
  ) {}

  get connectionId(): string {
    return this.host.id;
  }

  get clientId(): string {
    return this.host.clientId;
  }

  get address(): string {
    return this.host.address;
  }

  private send(method: AmqpMethod): boolean {
    return this.host.send(encodeMethodFrame(this.number, method));
  }

  // ---- frames -------------------------------------------------------------------------------------------------------

  /**
   * A method frame for this channel. Throws AmqpError for channel and connection exceptions. Not async: publish,
   * content and ack run synchronously, so the connection handles a read's frames without a promise per frame.
   */
  handleMethod(method: AmqpMethod): Promise<void> | void {
    if (this.state === 'closing') {
      // §4.2.7 (channel.close): after sending close, everything but close and close-ok is discarded.
      if (method.method === 'channel.close-ok') this.state = 'closed';
      else if (method.method === 'channel.close') this.send({ method: 'channel.close-ok' });
      return;
    }
    if (this.content !== null) throw unexpectedFrame(`expected a content header or body for basic.publish on channel ${this.number}, got ${method.method}`);
    switch (method.method) {
      case 'basic.publish':
        return this.startPublish(method.exchange, method.routingKey, method.mandatory, method.immediate);
      case 'basic.ack':
        return this.ack(method.deliveryTag, method.multiple);
      case 'basic.nack':
        return this.reject(method.deliveryTag, method.multiple, method.requeue, 'basic.nack');
      case 'basic.reject':
        return this.reject(method.deliveryTag, false, method.requeue, 'basic.reject');
      case 'basic.qos':
        return this.qos(method.prefetchSize, method.prefetchCount, method.global);
      case 'basic.consume':
        return this.consume(method.queue, method.consumerTag, method.noAck, method.exclusive, method.noWait, method.arguments);
      case 'basic.cancel':
        return this.cancel(method.consumerTag, method.noWait);
      case 'basic.get':
        return this.get(method.queue, method.noAck);
      case 'basic.recover':
      case 'basic.recover-async':
        return this.recover(method.requeue, method.method === 'basic.recover');
      case 'exchange.declare':
        return this.exchangeDeclare(method);
      case 'exchange.delete':
        return this.exchangeDelete(method.exchange, method.ifUnused, method.noWait);
      case 'exchange.bind':
      case 'exchange.unbind':
        return this.exchangeBind(method.method === 'exchange.bind', method.destination, method.source, method.routingKey, method.arguments, method.noWait);
      case 'queue.declare':
        return this.queueDeclare(method);
      case 'queue.bind':
        return this.queueBind(true, method.queue, method.exchange, method.routingKey, method.arguments, method.noWait);
      case 'queue.unbind':
        return this.queueBind(false, method.queue, method.exchange, method.routingKey, method.arguments, false);
      case 'queue.purge':
        return this.queuePurge(method.queue, method.noWait);
      case 'queue.delete':
        return this.queueDelete(method.queue, method.ifUnused, method.ifEmpty, method.noWait);
      case 'confirm.select':
        return this.confirmSelect(method.noWait);
      case 'tx.select':
        return this.txSelect();
      case 'tx.commit':
        return this.txCommit();
      case 'tx.rollback':
        return this.txRollback();
      case 'channel.flow':
        this.flow(method.active);
        return;
      case 'channel.flow-ok':
        return;
      case 'channel.close':
        this.closeResources();
        this.state = 'closed';
        this.send({ method: 'channel.close-ok' });
        return;
      case 'channel.close-ok':
        return;
      case 'channel.open':
        throw new AmqpError(ReplyCode.CHANNEL_ERROR, `second 'channel.open' seen on channel ${this.number}`);
      default:
        throw commandInvalid(`${method.method} is not a method a client sends on a channel`);
    }
  }

  /** A content header frame (§4.2.6.1), payload `buf[start, end)`: must follow basic.publish. */
  handleHeader(buf: Buffer, start: number, end: number): void {
    if (this.state === 'closing') return;
    const content = this.content;
    if (content === null || content.header !== null) throw unexpectedFrame(`content header on channel ${this.number} without a basic.publish before it`);
    const header = this.headerReader.read(buf, start, end);
    if (header.bodySize > this.host.maxMessageBytes) {
      // Refused before the body is read: the frames that follow are discarded with the closing channel.
      this.endContent();
      throw preconditionFailed(`message size ${header.bodySize} is larger than configured max size ${this.host.maxMessageBytes}`);
    }
    content.header = header;
    if (header.bodySize === 0) this.finishPublish();
  }

  /** A content body frame. */
  handleBody(payload: Buffer): void {
    if (this.state === 'closing') return;
    const content = this.content;
    if (content === null || content.header === null) throw unexpectedFrame(`content body on channel ${this.number} without a content header before it`);
    content.received += payload.byteLength;
    if (content.received > content.header.bodySize) throw unexpectedFrame(`content body on channel ${this.number} is longer than the ${content.header.bodySize} bytes its header announced`);
    if (content.body === null) content.body = payload;
    else if (content.chunks === null) content.chunks = [content.body, payload];
    else content.chunks.push(payload);
    if (content.received === content.header.bodySize) this.finishPublish();
  }

  /** Answers an exception that closes only this channel (§4.2.7). */
  fail(error: AmqpError, classId: number, methodId: number): void {
    this.endContent();
    this.closeResources();
    this.state = 'closing';
    this.send({ method: 'channel.close', replyCode: error.replyCode, replyText: error.replyText, classId, methodId });
  }

  // ---- publish ------------------------------------------------------------------------------------------------------

  private startPublish(exchange: string, routingKey: string, mandatory: boolean, immediate: boolean): void {
    if (immediate) throw notImplemented('immediate=true');
    this.host.publishing();
    const content = this.nextContent;
    content.exchange = exchange;
    content.routingKey = routingKey;
    content.mandatory = mandatory;
    content.received = 0;
    this.content = content;
  }

  /** No content in progress; the reused ContentInProgress holds nothing of the last one's frames meanwhile. */
  private endContent(): void {
    const content = this.nextContent;
    content.header = null;
    content.body = null;
    content.chunks = null;
    this.content = null;
  }

  private finishPublish(): void {
    const content = this.content!;
    const header = content.header!;
    const body = content.chunks !== null ? Buffer.concat(content.chunks, content.received) : (content.body ?? Buffer.alloc(0));
    this.endContent();
    const vhost = this.host.vhost;
    const exchange = vhost.routing.exchange(content.exchange);
    if (exchange === undefined) throw notFound(`no exchange '${content.exchange}' in vhost '${vhost.name}'`);
    this.checkPermission('write', 'exchange', content.exchange);
    const properties: BasicProperties = header.properties;
    const ttl = parseExpiration(properties.expiration);
    if (ttl === 'invalid') throw preconditionFailed(`invalid expiration '${properties.expiration}' for message: a string holding a non-negative integer of milliseconds`);
    if (properties.userId !== undefined && properties.userId !== this.host.user) {
      // RabbitMQ validates user-id against the connection's user (https://www.rabbitmq.com/docs/validated-user-id).
      throw preconditionFailed(`user_id property set to '${properties.userId}' but authenticated user was '${this.host.user}'`);
    }
    let rawProperties = header.rawProperties;
    if (properties.replyTo === REPLY_TO_QUEUE) {
      if (this.replyConsumer === null) throw preconditionFailed(`fast reply consumer does not exist: consume from ${REPLY_TO_QUEUE} (no-ack) on this channel before publishing with it as reply_to`);
      rawProperties = encodeProperties({ ...properties, replyTo: this.replyConsumer.name });
    }
    if (content.exchange === '' && DirectReplyTo.isReplyName(content.routingKey)) {
      // A reply: straight to the requesting channel, never stored.
      const delivered = this.host.replies.deliver(content.routingKey, rawProperties, body);
      if (!delivered && content.mandatory) this.returnMessage(content.exchange, content.routingKey, rawProperties, body);
      if (this.confirms !== null) this.confirms.next(0);
      return;
    }
    const headers = properties.headers;
    let delayMs: number | null = null;
    if (vhost.delayedExchanges.has(content.exchange)) {
      const delay = tableNumber(headers, 'x-delay');
      if (delay !== undefined && delay > 0) delayMs = delay;
    }
    const message: PublishedMessage = { exchange: content.exchange, routingKey: content.routingKey, rawProperties, body, ttlMs: ttl, delayMs };
    // Headers are converted only when a headers exchange has bindings: it may be reached through an
    // exchange-to-exchange binding or as an alternate exchange, not only when published to.
    const routingHeaders = headers === undefined || headers.size === 0 || !vhost.routing.readsHeaders ? null : plainHeaders(headers);
    const names = vhost.routing.route(content.exchange, content.routingKey, routingHeaders).queues;
    const queues = names.length === 1 ? oneQueue(vhost.queues.get(names[0]!)) : routedQueues(vhost.queues, names);
    if (queues.length === 0 && content.mandatory) this.returnMessage(content.exchange, content.routingKey, rawProperties, body);
    if (this.tx !== null) {
      this.tx.publishes.push({ queues, message, priority: properties.priority });
      return;
    }
    const tag = this.confirms === null ? 0 : this.confirms.next(queues.length);
    this.enqueue(queues, message, properties.priority, tag);
  }

  /** basic.return: a mandatory message that could not be routed (RabbitMQ's 312 NO_ROUTE). */
  private returnMessage(exchange: string, routingKey: string, rawProperties: Buffer, body: Buffer): void {
    this.host.send(
      Buffer.concat([
        encodeMethodFrame(this.number, { method: 'basic.return', replyCode: ReplyCode.NO_ROUTE, replyText: 'NO_ROUTE', exchange, routingKey }),
        ...encodeContentFrames(this.number, BASIC_CLASS_ID, rawProperties, body, this.host.frameMax),
      ]),
    );
  }

  /**
   * Collects the publishes of one read from the socket, so they take one commit-log write and one fsync. Publishes
   * routed to the same set of queues share appends, each stored once however many queues it goes to (a queue's
   * priority mapping can differ, so queues are grouped by the priority they give the message). A delayed publish waits
   * in each queue's delay schedule, so its copies are appended queue by queue.
   */
  private enqueue(queues: readonly Queue[], message: PublishedMessage, priority: number | undefined, tag: number): void {
    if (queues.length === 0) return;
    if (message.delayMs !== null) {
      for (const queue of queues) this.collect([queue], true, storedInput(message, weirPriority(priority, queue.options.maxPriority)), tag);
    } else if (queues.length === 1) {
      this.collect(queues, false, this.storedInputs.input(message, weirPriority(priority, queues[0]!.options.maxPriority)), tag);
    } else {
      const byPriority = new Map<number, Queue[]>();
      for (const queue of queues) {
        const mapped = weirPriority(priority, queue.options.maxPriority);
        const group = byPriority.get(mapped);
        if (group === undefined) byPriority.set(mapped, [queue]);
        else group.push(queue);
      }
      for (const [mapped, group] of byPriority) this.collect(group, false, this.storedInputs.input(message, mapped), tag);
    }
    if (!this.appendsScheduled) {
      this.appendsScheduled = true;
      // The connection processes a whole socket read synchronously; appends go out once it is done.
      queueMicrotask(this.flushAppendsSoon);
    }
  }

  /** Made once: an arrow written inside enqueue would allocate its context on every publish. */
  private readonly flushAppendsSoon = (): void => void this.flushAppends();

  private collect(queues: readonly Queue[], delayed: boolean, input: MessageInput, tag: number): void {
    const sorted = queues.length === 1 ? queues : [...queues].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const key = (delayed ? 'd\0' : '') + (sorted.length === 1 ? sorted[0]!.name : sorted.map((queue) => queue.name).join('\0'));
    let pending = this.openAppends.get(key);
    const size = bodyBytes(input);
    if (pending === undefined || pending.inputs.length >= MAX_MESSAGES_PER_BATCH || pending.bytes + size > MAX_APPEND_BYTES || !this.takesMore(pending, sorted)) {
      pending = { queues: [...sorted], delayed, inputs: [], tags: [], bytes: 0 };
      this.appends.push(pending);
      this.openAppends.set(key, pending);
      for (const queue of sorted) this.newestAppend.set(queue, pending);
    }
    pending!.inputs.push(input);
    pending!.tags.push(tag);
    pending!.bytes += size;
  }

  /** Whether `pending` may take a publish to `sorted`: it goes to exactly those queues and is the newest for each. */
  private takesMore(pending: PendingAppend, sorted: readonly Queue[]): boolean {
    // A loop, not `every` with a closure: this runs for every publish.
    for (let index = 0; index < sorted.length; index++) {
      const queue = sorted[index]!;
      if (pending.queues[index] !== queue || this.newestAppend.get(queue) !== pending) return false;
    }
    return true;
  }

  /** Starts every collected append; resolves when all are settled (confirmed or refused), never rejects. */
  private flushAppends(): Promise<unknown> {
    this.appendsScheduled = false;
    const pending = this.appends;
    if (pending.length === 0) return Promise.resolve();
    this.appends = [];
    this.openAppends.clear();
    this.newestAppend.clear();
    const settled = Promise.all(pending.map((append) => this.appendNow(append)));
    this.flushesInFlight++;
    void settled.then(this.flushSettled);
    return settled;
  }

  /** Made once, like flushAppendsSoon: runs once per flush of a socket read's publishes. */
  private readonly flushSettled = (): void => {
    if (--this.flushesInFlight > 0) return;
    const waiters = this.publishWaiters;
    this.publishWaiters = [];
    for (const resume of waiters) resume();
  };

  /**
   * Null when every message published on this channel so far is stored (or refused), else a promise of it. Methods
   * that look at a queue's contents (basic.get, queue.declare's count, queue.purge, queue.delete) wait for it, so they
   * see the channel's earlier publishes as they do in RabbitMQ, whose channel hands a publish and a later method to
   * the queue in order. Without it a publish then a get on one channel found the queue empty, and a purge left the
   * messages published just before it.
   */
  private publishesStored(): Promise<void> | null {
    if (this.appendsScheduled) void this.flushAppends();
    if (this.flushesInFlight === 0) return null;
    return new Promise((resolve) => this.publishWaiters.push(resolve));
  }

  /**
   * Which of the new messages a `reject-publish` queue takes (null: all). RabbitMQ decides message by message: one is
   * refused when it would take the queue past x-max-length, or its ready bodies past x-max-length-bytes, so a smaller
   * message after a refused one may still fit. Appends in flight count as taken.
   */
  private room(queue: Queue, inputs: readonly MessageInput[]): boolean[] | null {
    const { maxLength, maxLengthBytes, overflow } = queue.options;
    if ((maxLength === null && maxLengthBytes === null) || overflow === 'drop-head') return null;
    const stats = this.host.core.sharedGroupStats(queue.definition.group, queue.definition.topic);
    let length = (stats?.ready ?? 0) + (stats?.unread ?? 0) + queue.appendsInFlight;
    let bytes = (stats?.readyBytes ?? 0) + queue.appendBytesInFlight;
    let refused = false;
    const taken = inputs.map((input) => {
      const size = bodyBytes(input);
      if ((maxLength !== null && length + 1 > maxLength) || (maxLengthBytes !== null && bytes + size > maxLengthBytes)) {
        refused = true;
        return false;
      }
      length++;
      bytes += size;
      return true;
    });
    return refused ? taken : null;
  }

  /** Publishes a full queue refused: nacked, and dead-lettered when the queue says reject-publish-dlx. */
  private refuse(queue: Queue, inputs: readonly MessageInput[], tags: readonly number[]): void {
    if (this.confirms !== null) for (const tag of tags) if (tag !== 0) this.confirms.settled(tag, false);
    if (queue.options.overflow !== 'reject-publish-dlx') return;
    for (const input of inputs) {
      void this.host.vhosts.rejectedPublish(queue, input).catch((failure: unknown) => this.host.logger.warn({ err: failure, queue: queue.name }, 'could not dead-letter a rejected publish'));
    }
  }

  /**
   * Applies each queue's admission (`room`) to the collected messages: what a queue refuses is nacked (or
   * dead-lettered) for that queue alone. Runs of consecutive messages taken by the same queues are appended once
   * each, in publish order.
   */
  private appendNow(append: PendingAppend): Promise<unknown> {
    const { queues, inputs, tags } = append;
    const taken = queues.map((queue) => (append.delayed ? null : this.room(queue, inputs)));
    for (const [index, mask] of taken.entries()) {
      if (mask !== null) this.refuse(queues[index]!, inputs.filter((_, at) => !mask[at]), tags.filter((_, at) => !mask[at]));
    }
    if (taken.every((mask) => mask === null)) return this.appendRun(queues, inputs, tags);
    const takes = (at: number) => queues.filter((_, index) => taken[index]?.[at] ?? true);
    const runs: Promise<unknown>[] = [];
    for (let start = 0; start < inputs.length; ) {
      let end = start + 1;
      while (end < inputs.length && taken.every((mask) => (mask?.[end] ?? true) === (mask?.[start] ?? true))) end++;
      const takers = takes(start);
      if (takers.length > 0) runs.push(this.appendRun(takers, inputs.slice(start, end), tags.slice(start, end)));
      start = end;
    }
    return Promise.all(runs);
  }

  /**
   * Appends messages to their queues, stored once when there are several; each queue's tags are confirmed (or
   * nacked) on its own outcome, so a publish is acked once it is durable in every queue it went to.
   */
  private appendRun(queues: readonly Queue[], inputs: readonly MessageInput[], tags: readonly number[]): Promise<void> {
    const count = inputs.length;
    const bytes = inputs.reduce((sum, input) => sum + bodyBytes(input), 0);
    for (const queue of queues) {
      queue.appendsInFlight += count;
      queue.appendBytesInFlight += bytes;
    }
    const appended: Promise<unknown[]> =
      queues.length === 1
        ? this.host.vhosts.append(queues[0]!, inputs).then(
            () => [null],
            (error: unknown) => [error],
          )
        : this.host.vhosts.appendShared(queues, inputs).catch((error: unknown) => queues.map(() => error));
    return appended.then((failures) => {
      for (const [index, queue] of queues.entries()) {
        queue.appendsInFlight -= count;
        queue.appendBytesInFlight -= bytes;
        const error = failures[index] ?? null;
        if (error === null) {
          if (this.confirms !== null) for (const tag of tags) if (tag !== 0) this.confirms.settled(tag, true);
        } else if (isWeirError(error, ErrorCode.QueueFull)) {
          this.refuse(queue, inputs, tags);
        } else {
          this.host.logger.warn({ err: error, queue: queue.name }, 'publish failed');
          if (this.confirms !== null) for (const tag of tags) if (tag !== 0) this.confirms.settled(tag, false);
        }
      }
    });
  }

  // ---- consumers ----------------------------------------------------------------------------------------------------

  private qos(prefetchSize: number, prefetchCount: number, global: boolean): void {
    if (prefetchSize !== 0) throw notImplemented(`prefetch_size!=0 (${prefetchSize})`);
    // RabbitMQ's reading of the global flag (https://www.rabbitmq.com/docs/consumer-prefetch): false limits each
    // consumer started afterwards, true the channel as a whole.
    if (global) this.pool.setLimit(prefetchCount);
    else this.prefetchCount = prefetchCount;
    this.send({ method: 'basic.qos-ok' });
  }

  private queueNamed(name: string): Queue {
    const resolved = name === '' ? this.lastQueue : name;
    if (resolved === null) throw notFound('no queue name given and no queue declared on this channel');
    return this.host.vhost.queue(resolved, this.host.id);
  }

  private consume(queueName: string, tag: string, noAck: boolean, exclusive: boolean, noWait: boolean, args: FieldTable): void {
    if (queueName === REPLY_TO_QUEUE) return this.consumeReplies(tag, noAck, noWait);
    const queue = this.queueNamed(queueName);
    this.checkPermission('read', 'queue', queue.name);
    const consumerTag = this.newConsumerTag(tag);
    if (queue.isStream) return this.consumeStream(queue, consumerTag, noAck, exclusive, noWait, args);
    const priority = tableNumber(args, 'x-priority') ?? 0;
    const consumer = new AmqpConsumer(consumerTag, queue, this.host.vhost, this.host.core, this, {
      noAck,
      exclusive,
      prefetch: this.prefetchCount,
      priority,
      pool: this.pool,
      channelNumber: this.number,
    });
    this.register(this.consumers, queue, consumer, noWait);
  }

  /** The tag a new consumer gets: the client's, unless another consumer of this channel has it, or a server-named one. */
  private newConsumerTag(tag: string): string {
    if (tag === '') return `amq.ctag-${randomBytes(16).toString('base64url')}`;
    if (this.consumers.has(tag) || this.streamConsumers.has(tag) || this.replyConsumer?.tag === tag) throw notAllowed(`attempt to reuse consumer tag '${tag}'`);
    return tag;
  }

  /**
   * Adds the consumer to its queue and the channel. Deliveries start in a later microtask (consumers read and
   * dispatch asynchronously), so consume-ok, sent only once the queue accepted the consumer, still precedes them.
   */
  private register<C extends AmqpConsumer | AmqpStreamConsumer>(consumers: Map<string, C>, queue: Queue, consumer: C, noWait: boolean): void {
    consumers.set(consumer.tag, consumer);
    try {
      this.host.vhost.addConsumer(queue, consumer);
    } catch (error) {
      consumers.delete(consumer.tag);
      throw error;
    }
    if (!noWait) this.send({ method: 'basic.consume-ok', consumerTag: consumer.tag });
  }

  /**
   * A consumer of a stream queue, on RabbitMQ's terms (https://www.rabbitmq.com/docs/streams#consuming): manual
   * acknowledgement, a per-consumer prefetch set with basic.qos, and x-stream-offset saying where it starts.
   */
  private consumeStream(queue: Queue, consumerTag: string, noAck: boolean, exclusive: boolean, noWait: boolean, args: FieldTable): void {
    const where = `stream queue '${queue.name}' in vhost '${this.host.vhost.name}'`;
    if (noAck) throw notImplemented(`automatic acknowledgement not supported by stream queues: ${where} (consume with manual acknowledgement)`);
    if (this.pool.limit > 0) throw preconditionFailed(`${where} does not support global qos: set the prefetch with basic.qos global=false`);
    if (this.prefetchCount === 0) throw preconditionFailed(`consumer prefetch count is not set for ${where}: call basic.qos before basic.consume`);
    const start = parseStreamOffset(args.get('x-stream-offset'), queue.name, this.host.vhost.name, Date.now());
    const consumer = new AmqpStreamConsumer(consumerTag, queue, this.host.vhost, this.host.core, this, this.host.logger, { exclusive, prefetch: this.prefetchCount, start });
    this.register(this.streamConsumers, queue, consumer, noWait);
  }

  deliverStream(consumer: AmqpStreamConsumer, message: StoredMessage): boolean {
    const tag = ++this.deliveryTag;
    this.unacked.set(tag, { source: consumer, partition: 0, offset: message.offset });
    const parts = deliveryParts(message, consumer.topic);
    const properties = streamDeliveryProperties(parts.rawProperties, message.offset);
    // Never redelivered: a stream delivers each message once per consumer.
    return this.host.send(encodeBasicDeliver(this.number, consumer.tag, tag, false, parts.exchange, parts.routingKey, properties, message.body, this.host.frameMax));
  }

  streamCancelledByBroker(consumer: AmqpStreamConsumer): void {
    this.forgetCancelled(this.streamConsumers, consumer);
  }

  private consumeReplies(tag: string, noAck: boolean, noWait: boolean): void {
    if (!noAck) throw preconditionFailed(`reply consumer cannot acknowledge: consume from ${REPLY_TO_QUEUE} with no-ack`);
    if (this.replyConsumer !== null) throw preconditionFailed(`reply consumer already set on channel ${this.number}`);
    const consumerTag = this.newConsumerTag(tag);
    const name = this.host.replies.register((routingKey, rawProperties, body) => {
      if (this.state !== 'open') return;
      const deliveryTag = ++this.deliveryTag;
      this.host.send(encodeBasicDeliver(this.number, consumerTag, deliveryTag, false, '', routingKey, rawProperties, body, this.host.frameMax));
    });
    this.replyConsumer = { tag: consumerTag, name };
    if (!noWait) this.send({ method: 'basic.consume-ok', consumerTag });
  }

  private cancel(tag: string, noWait: boolean): void {
    if (this.replyConsumer?.tag === tag) {
      this.host.replies.unregister(this.replyConsumer.name);
      this.replyConsumer = null;
    }
    const consumer = this.consumers.get(tag);
    if (consumer !== undefined) {
      this.consumers.delete(tag);
      consumer.cancel();
    }
    const streamConsumer = this.streamConsumers.get(tag);
    if (streamConsumer !== undefined) {
      this.streamConsumers.delete(tag);
      streamConsumer.cancel();
    }
    if (!noWait) this.send({ method: 'basic.cancel-ok', consumerTag: tag });
  }

  /**
   * Encodes the deliveries into one buffer, written at once: a socket write per delivery costs more than its bytes.
   * Measured first, then written; if one cannot be encoded, those before it still go out (as one by one they would).
   */
  deliver(consumer: AmqpConsumer, deliveries: readonly Delivery[], from: number, to: number): boolean {
    const frameMax = this.host.frameMax;
    const firstTag = this.deliveryTag + 1;
    const parts: DeliveryParts[] = [];
    let size = 0;
    try {
      for (let index = from; index < to; index++) {
        const delivery = deliveries[index]!;
        const tag = ++this.deliveryTag;
        if (!consumer.noAck) this.unacked.set(tag, { source: consumer, partition: delivery.partition, offset: delivery.offset });
        const part = deliveryParts(delivery.message, delivery.topic);
        size += basicDeliverSize(this.number, consumer.tag, tag, part.exchange, part.routingKey, part.rawProperties, delivery.message.body, frameMax);
        parts.push(part);
      }
    } catch (error) {
      if (parts.length > 0) this.sendDeliveries(consumer.tag, firstTag, deliveries, from, parts, size);
      throw error;
    }
    return parts.length === 0 || this.sendDeliveries(consumer.tag, firstTag, deliveries, from, parts, size);
  }

  /** Writes `parts.length` deliveries from `deliveries[from]` on (tags from `firstTag`), measured at `size` bytes; false when the socket is full. */
  private sendDeliveries(consumerTag: string, firstTag: number, deliveries: readonly Delivery[], from: number, parts: readonly DeliveryParts[], size: number): boolean {
    const frameMax = this.host.frameMax;
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (let index = 0; index < parts.length; index++) {
      const delivery = deliveries[from + index]!;
      const part = parts[index]!;
      at = putBasicDeliver(out, at, this.number, consumerTag, firstTag + index, delivery.deliveryCount > 1, part.exchange, part.routingKey, part.rawProperties, delivery.message.body, frameMax);
    }
    return this.host.send(out);
  }

  cancelledByBroker(consumer: AmqpConsumer): void {
    this.forgetCancelled(this.consumers, consumer);
  }

  /** A consumer the broker ended (its queue deleted): its deliveries can no longer be settled, and the client is told. */
  private forgetCancelled<C extends AmqpConsumer | AmqpStreamConsumer>(consumers: Map<string, C>, consumer: C): void {
    if (consumers.get(consumer.tag) !== consumer) return;
    consumers.delete(consumer.tag);
    for (const [tag, entry] of this.unacked) if (entry.source === consumer) this.unacked.delete(tag);
    if (this.state === 'open' && this.host.consumerCancelNotify) this.send({ method: 'basic.cancel', consumerTag: consumer.tag, noWait: true });
  }

  whenWritable(resume: () => void): void {
    this.host.whenWritable(resume);
  }

  private async get(queueName: string, noAck: boolean): Promise<void> {
    await this.publishesStored();
    const queue = this.queueNamed(queueName);
    this.checkPermission('read', 'queue', queue.name);
    if (queue.isStream) throw notImplemented(`basic.get not supported by stream queues: queue '${queue.name}' in vhost '${this.host.vhost.name}' (consume it with basic.consume)`);
    this.host.vhost.touch(queue);
    const puller = this.pullerOf(queue);
    const { group, topic, consumerId } = puller;
    // Messages on disk not yet read into memory (just after a start) are worth a short wait: get-empty would be wrong.
    const stats = this.host.core.sharedGroupStats(group, topic);
    const waitMs = stats !== null && stats.ready === 0 && stats.unread > 0 ? 1000 : 0;
    const deliveries = await this.host.core.receive({
      group,
      topic,
      mode: 'shared',
      consumerId,
      clientId: this.host.clientId,
      address: this.host.address,
      maxMessages: 1,
      waitMs,
    });
    if (this.state !== 'open') return;
    const delivery = deliveries[0];
    if (delivery === undefined) {
      this.send({ method: 'basic.get-empty' });
      return;
    }
    const tag = ++this.deliveryTag;
    if (noAck) this.host.core.settle(group, topic, consumerId, [{ partition: delivery.partition, offset: delivery.offset, outcome: 'ack' }]);
    else this.unacked.set(tag, { source: puller, partition: delivery.partition, offset: delivery.offset });
    const { messageCount } = this.host.vhost.counts(queue);
    const parts = deliveryParts(delivery.message, delivery.topic);
    this.host.send(
      Buffer.concat([
        encodeMethodFrame(this.number, { method: 'basic.get-ok', deliveryTag: tag, redelivered: delivery.deliveryCount > 1, exchange: parts.exchange, routingKey: parts.routingKey, messageCount }),
        ...encodeContentFrames(this.number, BASIC_CLASS_ID, parts.rawProperties, delivery.message.body, this.host.frameMax),
      ]),
    );
  }

  private pullerOf(queue: Queue): SettleSource {
    let puller = this.pullers.get(queue);
    if (puller === undefined) {
      const { group, topic } = queue.definition;
      // Consumers are `<connection>/<channel>/<tag>`; a puller's id has no slash after the channel, so no tag clashes.
      this.pullers.set(queue, (puller = { group, topic, consumerId: `${this.host.id}/${this.number}:get` }));
    }
    return puller;
  }

  // ---- acknowledgements ---------------------------------------------------------------------------------------------

  /** The unacked deliveries a tag names: one, or with `multiple` every one up to it (0 with multiple: all). */
  private take(deliveryTag: number, multiple: boolean, method: string, lenient = false): Unacked[] {
    if (multiple) {
      // RabbitMQ (collect_acks) refuses a multiple ack whose own tag is not outstanding; tag 0 means "all".
      if (deliveryTag !== 0 && !this.unacked.has(deliveryTag)) {
        if (lenient) return [];
        throw preconditionFailed(`unknown delivery tag ${deliveryTag} (${method})`);
      }
      const taken: Unacked[] = [];
      // Tags enter the map in ascending order, so the ones up to `deliveryTag` come first.
      for (const [tag, entry] of this.unacked) {
        if (deliveryTag !== 0 && tag > deliveryTag) break;
        taken.push(entry);
        this.unacked.delete(tag);
      }
      return taken;
    }
    const entry = this.takeOne(deliveryTag, method, lenient);
    return entry === null ? [] : [entry];
  }

  /** One outstanding delivery, taken off the channel; null only when `lenient` and the tag is not outstanding. */
  private takeOne(deliveryTag: number, method: string, lenient = false): Unacked | null {
    const entry = this.unacked.get(deliveryTag);
    // §1.8.3.13: acknowledging a tag that is not outstanding is a channel exception, PRECONDITION_FAILED in RabbitMQ.
    if (entry === undefined) {
      if (lenient) return null;
      throw preconditionFailed(`unknown delivery tag ${deliveryTag} (${method})`);
    }
    this.unacked.delete(deliveryTag);
    return entry;
  }

  private ack(deliveryTag: number, multiple: boolean): void {
    this.settleTags(deliveryTag, multiple, 'ack', 'basic.ack');
  }

  private reject(deliveryTag: number, multiple: boolean, requeue: boolean, method: string): void {
    this.settleTags(deliveryTag, multiple, requeue ? 'nack' : 'reject', method);
  }

  /**
   * In a transaction (§1.9.2) an ack or reject takes effect at commit: the tag is checked now, the deliveries are
   * taken then (a rollback leaves them unacknowledged, to be settled again).
   */
  private settleTags(deliveryTag: number, multiple: boolean, outcome: 'ack' | 'nack' | 'reject', method: string): void {
    if (this.tx !== null) {
      if ((!multiple || deliveryTag !== 0) && !this.unacked.has(deliveryTag)) throw preconditionFailed(`unknown delivery tag ${deliveryTag} (${method})`);
      this.settleAtCommit(this.tx, deliveryTag, multiple, outcome, method);
      return;
    }
    if (!multiple && outcome === 'ack') this.ackOne(deliveryTag);
    else this.settle(this.take(deliveryTag, multiple, method), outcome);
  }

  /** A single ack, nearly every ack there is: settled without the arrays `take` and `settle` make. */
  private ackOne(deliveryTag: number): void {
    const entry = this.takeOne(deliveryTag, 'basic.ack')!;
    const source = entry.source;
    if (source instanceof AmqpStreamConsumer) {
      source.settled(1);
      return;
    }
    const ack = this.singleAck[0]!;
    ack.partition = entry.partition;
    ack.offset = entry.offset;
    this.settleWithCore(source, this.singleAck);
  }

  /** Its own method so that settleTags, run for every ack, holds no closure (V8 would allocate its variables per call). */
  private settleAtCommit(tx: Transaction, deliveryTag: number, multiple: boolean, outcome: 'ack' | 'nack' | 'reject', method: string): void {
    tx.settles.push(() => this.settle(this.take(deliveryTag, multiple, method, true), outcome));
  }

  /**
   * Settles with the core, one call per run of deliveries of the same consumer; `nack` is a requeue at once,
   * `reject` a dead letter (or a drop). Synchronous: an ack costs no promise.
   */
  private settle(entries: readonly Unacked[], outcome: 'ack' | 'nack' | 'reject'): void {
    let start = 0;
    while (start < entries.length) {
      const source = entries[start]!.source;
      let end = start + 1;
      while (end < entries.length && entries[end]!.source === source) end++;
      if (source instanceof AmqpStreamConsumer) {
        // Nothing to requeue or dead-letter in a stream: every outcome only returns credit.
        source.settled(end - start);
        start = end;
        continue;
      }
      // Sized up front: an array grown from [] reserves room for 17 entries, and most acks settle one delivery.
      const outcomes = new Array<SettleOutcome>(end - start);
      for (let index = start; index < end; index++) {
        const entry = entries[index]!;
        outcomes[index - start] = outcome === 'nack' ? { partition: entry.partition, offset: entry.offset, outcome, delayMs: 0 } : { partition: entry.partition, offset: entry.offset, outcome };
      }
      this.settleWithCore(source, outcomes);
      start = end;
    }
  }

  private settleWithCore(source: SettleSource, outcomes: readonly SettleOutcome[]): void {
    try {
      this.host.core.settle(source.group, source.topic, source.consumerId, outcomes);
    } catch (error) {
      // The queue was deleted meanwhile: there is nothing left to settle.
      if (!isWeirError(error, ErrorCode.InvalidGroup) && !isWeirError(error, ErrorCode.UnknownTopic)) throw error;
    }
    source.settled?.(outcomes.length);
  }

  private recover(requeue: boolean, answer: boolean): void {
    if (!requeue) throw notImplemented('basic.recover with requeue=false');
    const taken = [...this.unacked.values()];
    this.unacked.clear();
    this.settle(taken, 'nack');
    if (answer) this.send({ method: 'basic.recover-ok' });
  }

  private flow(active: boolean): void {
    this.flowActive = active;
    for (const consumer of this.consumers.values()) {
      if (consumer.state === null) continue;
      if (active) this.host.core.resumeConsumer(consumer.group, consumer.topic, consumer.state);
      else consumer.state.paused = true;
    }
    for (const consumer of this.streamConsumers.values()) consumer.flowChanged();
    this.send({ method: 'channel.flow-ok', active });
  }

  // ---- exchanges and queues -----------------------------------------------------------------------------------------

  /**
   * RabbitMQ's permission check (docs/access-control.md). A granted write or read is remembered for the channel's
   * life, as RabbitMQ's channel permission cache does, so a publish does not run a regex per message.
   */
  private checkPermission(kind: 'configure' | 'write' | 'read', what: 'exchange' | 'queue', name: string): void {
    const resource = what === 'exchange' && name === '' ? 'amq.default' : name;
    // A set per kind: every publish checks, and a key built from kind and name would be a new string each time.
    const permitted = kind === 'configure' ? null : this.permitted[kind];
    if (permitted !== null && permitted.has(resource)) return;
    if (!this.host.access.check(this.host.user, this.host.vhost.name, kind, resource)) {
      throw accessRefused(`access to ${what} '${name}' in vhost '${this.host.vhost.name}' refused for user '${this.host.user}'`);
    }
    permitted?.add(resource);
  }

  private async exchangeDeclare(method: Extract<AmqpMethod, { method: 'exchange.declare' }>): Promise<void> {
    const name = method.exchange;
    if (!method.passive) {
      if (name === '' || (name.startsWith('amq.') && this.host.vhost.routing.exchange(name) === undefined)) {
        throw accessRefused(`exchange name '${name}' contains reserved prefix 'amq.*'`);
      }
      this.checkPermission('configure', 'exchange', name);
    }
    await this.host.vhost.declareExchange({
      name,
      type: method.type,
      passive: method.passive,
      durable: method.durable,
      autoDelete: method.autoDelete,
      internal: method.internal,
      arguments: tableToJs(method.arguments),
    });
    if (!method.noWait) this.send({ method: 'exchange.declare-ok' });
  }

  private async exchangeDelete(name: string, ifUnused: boolean, noWait: boolean): Promise<void> {
    if (name === '' || name.startsWith('amq.')) throw accessRefused(`exchange '${name}' in vhost '${this.host.vhost.name}' cannot be deleted`);
    this.checkPermission('configure', 'exchange', name);
    await this.host.vhost.deleteExchange(name, ifUnused);
    if (!noWait) this.send({ method: 'exchange.delete-ok' });
  }

  private async exchangeBind(bind: boolean, destination: string, source: string, routingKey: string, args: FieldTable, noWait: boolean): Promise<void> {
    this.checkPermission('write', 'exchange', destination);
    this.checkPermission('read', 'exchange', source);
    const binding = { source, destination, destinationKind: 'exchange' as const, routingKey, arguments: tableToJs(args) };
    if (bind) await this.host.vhost.bind(binding);
    else await this.host.vhost.unbind(binding);
    if (!noWait) this.send(bind ? { method: 'exchange.bind-ok' } : { method: 'exchange.unbind-ok' });
  }

  private async queueDeclare(method: Extract<AmqpMethod, { method: 'queue.declare' }>): Promise<void> {
    if (method.queue === REPLY_TO_QUEUE && method.passive) {
      if (!method.noWait) this.send({ method: 'queue.declare-ok', queue: REPLY_TO_QUEUE, messageCount: 0, consumerCount: 0 });
      return;
    }
    if (!method.passive && method.queue !== '') this.checkPermission('configure', 'queue', method.queue);
    await this.publishesStored();
    const { queue, messageCount, consumerCount } = await this.host.vhost.declareQueue({
      name: method.queue,
      passive: method.passive,
      durable: method.durable,
      exclusive: method.exclusive,
      autoDelete: method.autoDelete,
      arguments: tableToJs(method.arguments),
      connection: this.host.id,
    });
    this.lastQueue = queue.name;
    if (!method.noWait) this.send({ method: 'queue.declare-ok', queue: queue.name, messageCount, consumerCount });
  }

  private async queueBind(bind: boolean, queueName: string, exchange: string, routingKey: string, args: FieldTable, noWait: boolean): Promise<void> {
    const queue = this.queueNamed(queueName);
    this.checkPermission('write', 'queue', queue.name);
    this.checkPermission('read', 'exchange', exchange);
    // §1.8.3: an empty routing key on queue.bind with an empty queue name means the last declared queue's name.
    const key = routingKey === '' && queueName === '' ? queue.name : routingKey;
    const binding = { source: exchange, destination: queue.name, destinationKind: 'queue' as const, routingKey: key, arguments: tableToJs(args) };
    if (exchange === '') throw accessRefused(`operation not permitted on the default exchange`);
    if (bind) await this.host.vhost.bind(binding);
    else await this.host.vhost.unbind(binding);
    if (!noWait) this.send(bind ? { method: 'queue.bind-ok' } : { method: 'queue.unbind-ok' });
  }

  private queuePurge(queueName: string, noWait: boolean): Promise<void> | void {
    const stored = this.publishesStored();
    if (stored !== null) return stored.then(() => this.queuePurge(queueName, noWait));
    const queue = this.queueNamed(queueName);
    this.checkPermission('read', 'queue', queue.name);
    const messageCount = this.host.vhost.purgeQueue(queue.name, this.host.id);
    if (!noWait) this.send({ method: 'queue.purge-ok', messageCount });
  }

  private async queueDelete(queueName: string, ifUnused: boolean, ifEmpty: boolean, noWait: boolean): Promise<void> {
    const name = queueName === '' ? this.lastQueue : queueName;
    if (name === null) throw notFound('no queue name given and no queue declared on this channel');
    this.checkPermission('configure', 'queue', name);
    await this.publishesStored();
    const messageCount = await this.host.vhost.deleteQueue(name, this.host.id, { ifUnused, ifEmpty });
    if (!noWait) this.send({ method: 'queue.delete-ok', messageCount });
  }

  // ---- confirms and transactions ------------------------------------------------------------------------------------

  private confirmSelect(noWait: boolean): void {
    if (this.tx !== null) throw preconditionFailed('cannot switch from tx to confirm mode');
    this.confirms ??= new PublisherConfirms({
      ack: (deliveryTag, multiple) => this.state === 'open' && this.send({ method: 'basic.ack', deliveryTag, multiple }),
      nack: (deliveryTag, multiple) => this.state === 'open' && this.send({ method: 'basic.nack', deliveryTag, multiple, requeue: false }),
    });
    if (!noWait) this.send({ method: 'confirm.select-ok' });
  }

  private txSelect(): void {
    if (this.confirms !== null) throw preconditionFailed('cannot switch from confirm to tx mode');
    this.tx ??= { publishes: [], settles: [] };
    this.send({ method: 'tx.select-ok' });
  }

  /**
   * Applies the transaction's publishes through the same appends as confirmed publishing (limits included: what a
   * full reject-publish queue refuses is dropped, and commit-ok still sent, as RabbitMQ does), then its settlements.
   */
  private async txCommit(): Promise<void> {
    const tx = this.tx;
    if (tx === null) throw preconditionFailed('channel is not transactional');
    for (const { queues, message, priority } of tx.publishes.splice(0)) this.enqueue(queues, message, priority, 0);
    const settles = tx.settles.splice(0);
    await this.flushAppends();
    for (const settle of settles) settle();
    if (this.state === 'open') this.send({ method: 'tx.commit-ok' });
  }

  private txRollback(): void {
    const tx = this.tx;
    if (tx === null) throw preconditionFailed('channel is not transactional');
    tx.publishes.length = 0;
    // Acks of a rolled-back transaction are forgotten; the deliveries stay unacknowledged on the channel (§1.9.2.5
    // leaves them open, RabbitMQ requeues nothing).
    tx.settles.length = 0;
    this.send({ method: 'tx.rollback-ok' });
  }

  // ---- closing ------------------------------------------------------------------------------------------------------

  /** Every consumer of the channel ends (cancelled ones still holding deliveries too); unacked deliveries go back. */
  closeResources(): void {
    const consumers = new Set(this.consumers.values());
    for (const entry of this.unacked.values()) if (entry.source instanceof AmqpConsumer) consumers.add(entry.source);
    this.consumers.clear();
    this.unacked.clear();
    for (const consumer of consumers) consumer.close();
    for (const consumer of this.streamConsumers.values()) consumer.close();
    this.streamConsumers.clear();
    for (const puller of this.pullers.values()) this.host.core.unsubscribe(puller.group, puller.topic, puller.consumerId);
    this.pullers.clear();
    this.tx = null;
    if (this.replyConsumer !== null) this.host.replies.unregister(this.replyConsumer.name);
    this.replyConsumer = null;
  }
}

/** Most publishes reach one queue: a list of its exact size (a list grown by push reserves room for 17). */
function oneQueue(queue: Queue | undefined): Queue[] {
  return queue === undefined ? [] : [queue];
}

function routedQueues(queues: ReadonlyMap<string, Queue>, names: readonly string[]): Queue[] {
  const routed: Queue[] = [];
  for (const name of names) {
    const queue = queues.get(name);
    if (queue !== undefined) routed.push(queue);
  }
  return routed;
}
