import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { backoffDelay, sleep } from './backoff.js';
import type { WeirClient } from './client.js';
import type { Connection } from './connection.js';
import { clientClosed, toClientError, WeirClientError } from './errors.js';
import { type DeliverPush, PushRouter } from './push-router.js';
import { Delivered, LeaseChannel, type QueueMessage } from './queue-message.js';

export type QueueMode = 'shared' | 'key_shared';

/** A subscription filter: a tag expression (`'a || b'`) or an SQL-92 condition over headers (`"region = 'eu'"`). */
export type QueueFilter = { readonly tag: string; readonly sql?: undefined } | { readonly sql: string; readonly tag?: undefined };

/**
 * Group settings (docs/design/work-queues.md), applied when the group is created by its first subscriber; a later
 * subscriber's settings are ignored. Every field is optional: the broker fills in its defaults.
 */
export interface QueueGroupSettings {
  /** Visibility timeout: a delivery not settled or extended within this is redelivered (default 30 s). */
  ackTimeoutMs?: number;
  /** Dead-letter a message whose lease ends after this many deliveries; 0 never (default 16). */
  maxDeliveries?: number;
  /** Default nack delay: min(backoffMaxMs, backoffInitialMs × 2^(deliveries−1)) (defaults 1 s and 60 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Where dead letters go (default `<group>.dlq`). */
  deadLetterTopic?: string | null;
  /** Dead-letter expired messages (reason `expired`) instead of dropping them (default false). */
  deadLetterExpired?: boolean;
  /** Messages stored longer ago than this expire for the group (default none); a message's own ttlMs may be earlier. */
  messageTtlMs?: number | null;
  /** Most ready messages; null: no limit (default). */
  maxLength?: number | null;
  /** Most body bytes of ready messages (keys and headers not counted), as RabbitMQ's x-max-length-bytes; null: no limit (default). */
  maxBytes?: number | null;
  /**
   * What happens beyond maxLength or maxBytes, whichever is reached first (default `drop-head`): `reject-publish`
   * makes produces fail with QUEUE_FULL while the group is at a limit.
   */
  overflow?: 'drop-head' | 'reject-publish' | 'dead-letter';
  /** Most ready messages the broker holds in memory per topic (default 10,000); priority order is exact within it. */
  readAhead?: number;
  /** Where a new group starts: the partitions' start or their end (default `earliest`). */
  start?: 'earliest' | 'latest';
}

export interface QueueConsumerOptions {
  /** The shared group: each message goes to one of its consumers. */
  group: string;
  /** `shared` (default): any consumer, no order promised. `key_shared`: per key, one consumer at a time, in order. */
  mode?: QueueMode;
  /** Most unsettled deliveries this consumer holds per topic (default 100; 0: unlimited; at most 65,535). */
  prefetch?: number;
  /** Consumers of higher priority get messages first while they have room (default 0). */
  priority?: number;
  /** Deliver only matching messages; the others are settled for this group without delivery. Fixed by the group's first subscriber. */
  filter?: QueueFilter;
  /** Group settings, applied if this subscribe creates the group. */
  settings?: QueueGroupSettings;
  /** This consumer's name in the group, unique per group and topic (default a random UUID). Kept across reconnects. */
  consumerId?: string;
}

export interface ReceiveOptions {
  topic: string;
  /** Most messages to return (default 1; at most 10,000). */
  maxMessages?: number;
  /** How long to wait for the first message (long polling; default 0: answer at once). */
  waitMs?: number;
}

interface QueueConsumerEvents {
  /** Problems the consumer works around (it keeps going, e.g. re-subscribing after a reconnect); only emitted when a listener is attached. */
  error: [error: WeirClientError];
  /** A topic's subscription was made again on a new connection (after the old one dropped). */
  resubscribed: [info: { topic: string; connectionId: string }];
}

const MAX_PREFETCH = 65_535;

/**
 * A consumer of a work queue (a shared or key_shared group): `await consumer.subscribe('jobs')`, then
 * `for await (const message of consumer) { …; await message.ack(); }`.
 *
 * Delivery: the broker pushes messages while this consumer holds fewer than `prefetch` unsettled ones, so the buffer
 * the iterator reads from never holds more than `prefetch` per topic. Each message must be settled — `ack`, `nack`
 * or `reject` — and outcomes given in one tick go out together in one Settle request. Messages may be settled in any
 * order and concurrently: process several at once by not awaiting each before taking the next, up to `prefetch`.
 *
 * Pull: `receive({ topic, maxMessages, waitMs })` takes messages with a long poll instead (the Receive API), without
 * `subscribe`; they are settled the same way.
 *
 * Connection loss: the broker gives whatever this consumer held unsettled to the other consumers (redelivered).
 * Messages buffered but not yet handed out are dropped; settling one already handed out rejects with CONNECTION_CLOSED
 * (see QueueMessage). The consumer subscribes again on the client's next connection, retrying with backoff until it
 * can, and keeps delivering.
 *
 * `close()` sends the outcomes given so far, then Unsubscribe: what is still unsettled is redelivered to the others
 * (messages taken with `receive` stay leased to the connection until settled or the ack timeout). Breaking out of
 * `for await` does not close the consumer.
 */
export class QueueConsumer extends EventEmitter<QueueConsumerEvents> implements AsyncIterable<QueueMessage> {
  readonly group: string;
  readonly mode: QueueMode;
  readonly prefetch: number;
  readonly priority: number;
  readonly consumerId: string;
  readonly filter: QueueFilter | null;
  /** The filter and settings as Subscribe and Receive carry them. */
  private readonly filterKind: '' | 'tag' | 'sql';
  private readonly filterExpression: string;
  private readonly settingsJson: string;

  /** Subscribed topics → the connection each is subscribed on now (null while being subscribed again). */
  private readonly topics = new Map<string, Connection | null>();
  /** The connection the subscriptions live on; null while there is none. */
  private connection: Connection | null = null;
  /** Lease channels per connection, keyed by topic and consumer id. */
  private readonly channels = new Map<Connection, Map<string, LeaseChannel>>();
  private readonly closeWatches = new Map<Connection, () => void>();
  /** Messages delivered and not yet handed out, in arrival order. */
  private buffer: Delivered[] = [];
  private bufferHead = 0;
  private waiters: Array<() => void> = [];
  /** Subscribes and re-subscribes, one at a time, in order; `busy` counts those queued or running. */
  private work: Promise<unknown> = Promise.resolve();
  private busy = 0;
  private closing = false;
  private closed = false;
  private readonly stopping = new AbortController();
  /** Aborts backoff sleeps when this consumer or its client closes. */
  private readonly stopSignal: AbortSignal;
  private closePromise: Promise<void> | null = null;

  constructor(
    private readonly client: WeirClient,
    options: QueueConsumerOptions,
  ) {
    super();
    if (options === null || typeof options !== 'object') throw new TypeError('queueConsumer needs options with a group');
    if (typeof options.group !== 'string' || options.group.length === 0) throw new TypeError('group must be a non-empty string');
    this.group = options.group;
    this.mode = options.mode ?? 'shared';
    if (this.mode !== 'shared' && this.mode !== 'key_shared') throw new TypeError(`mode must be shared or key_shared, not ${String(this.mode)}`);
    this.prefetch = options.prefetch ?? 100;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 0 || this.prefetch > MAX_PREFETCH) throw new RangeError(`prefetch must be an integer from 0 to ${MAX_PREFETCH}, got ${this.prefetch}`);
    this.priority = options.priority ?? 0;
    if (!Number.isInteger(this.priority)) throw new RangeError(`priority must be an integer, got ${this.priority}`);
    this.consumerId = options.consumerId ?? randomUUID();
    if (typeof this.consumerId !== 'string' || this.consumerId.length === 0 || this.consumerId.length > 255) throw new TypeError('consumerId must be 1 to 255 characters');
    this.filter = checkFilter(options.filter);
    this.filterKind = this.filter === null ? '' : this.filter.tag !== undefined ? 'tag' : 'sql';
    this.filterExpression = this.filter?.tag ?? this.filter?.sql ?? '';
    this.settingsJson = options.settings === undefined ? '' : JSON.stringify(options.settings);
    this.stopSignal = AbortSignal.any([client.closeSignal, this.stopping.signal]);
  }

  /** Topics this consumer is subscribed to. */
  subscriptions(): string[] {
    return [...this.topics.keys()];
  }

  /** Messages delivered and waiting to be handed out. */
  get buffered(): number {
    return this.buffer.length - this.bufferHead;
  }

  /**
   * Subscribes to one or more topics (creating the group with `settings`, `mode` and `filter` if it is new). Resolves
   * once the broker attached this consumer; deliveries start at once. Rejects with the broker's error: UNKNOWN_TOPIC,
   * INVALID_GROUP (the group exists with another mode or filter), INVALID_FILTER (the message gives the position),
   * INVALID_ARGUMENT (a bad setting). Retriable failures (a connection loss) are retried.
   */
  async subscribe(topics: string | readonly string[]): Promise<void> {
    this.checkOpen();
    const list = typeof topics === 'string' ? [topics] : [...topics];
    if (list.length === 0) throw invalid('subscribe needs at least one topic');
    for (const topic of list) if (typeof topic !== 'string' || topic.length === 0) throw invalid(`a topic is a non-empty string, not ${JSON.stringify(topic)}`);
    await Promise.all(list.filter((topic, index) => list.indexOf(topic) === index).map((topic) => this.serial(() => this.subscribeTopic(topic))));
  }

  [Symbol.asyncIterator](): AsyncIterator<QueueMessage> {
    return {
      next: () => this.next(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /** The next delivered message; waits for one. Resolves `done` once the consumer is closed. */
  next(): Promise<IteratorResult<QueueMessage, undefined>> {
    if (this.closing) return Promise.resolve({ done: true, value: undefined });
    const message = this.take();
    if (message !== null) return Promise.resolve({ done: false, value: message });
    return this.waitForMessage();
  }

  /**
   * Pulls up to `maxMessages` messages from `topic`, waiting up to `waitMs` for the first (long polling), with this
   * consumer's group, mode, filter and settings. Needs no `subscribe`. The messages are leased to the connection's pull
   * consumer until settled (or their ack timeout); an empty list means none came in time. Retriable failures are
   * retried (what a lost answer leased is redelivered when its connection closes).
   */
  async receive(options: ReceiveOptions): Promise<QueueMessage[]> {
    this.checkOpen();
    const topic = options?.topic;
    if (typeof topic !== 'string' || topic.length === 0) throw invalid(`receive needs a topic, not ${JSON.stringify(topic)}`);
    const maxMessages = options.maxMessages ?? 1;
    if (!Number.isInteger(maxMessages) || maxMessages < 1 || maxMessages > 10_000) throw invalid(`maxMessages must be an integer from 1 to 10000, not ${maxMessages}`);
    const waitMs = options.waitMs ?? 0;
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 300_000) throw invalid(`waitMs must be an integer from 0 to 300000, not ${waitMs}`);
    const body = {
      group: this.group,
      topic,
      mode: this.mode,
      maxMessages,
      waitMs,
      filterKind: this.filterKind,
      filter: this.filterExpression,
      settings: this.settingsJson,
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const connection = await this.client.connection();
        const answer = await connection.request('Receive', body, { timeoutMs: this.client.requestTimeoutMs + waitMs });
        const channel = this.channel(connection, topic, answer.consumerId, true);
        return answer.deliveries.map((delivery) => new Delivered(topic, delivery, channel));
      } catch (error) {
        const failure = toClientError(error);
        if (!failure.retriable || attempt >= this.client.retry.retries || this.closing || this.client.closed) throw failure;
        await sleep(backoffDelay(attempt, this.client.retry), this.stopSignal);
      }
    }
  }

  /**
   * Sends the outcomes given so far, then unsubscribes: whatever this consumer still holds unsettled is redelivered to
   * the others. Ends every iteration. Settling a pushed message afterwards rejects with CLIENT_CLOSED.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.closing = true;
      this.stopping.abort(clientClosed('the queue consumer'));
      this.wakeWaiters();
      try {
        // A subscribe in progress on a live connection finishes first, so it is undone below. (Without a connection
        // there is nothing to undo, and a reconnect may take long: a subscribe that succeeds later undoes itself.)
        if (this.busy > 0 && this.connection !== null && !this.connection.closed) await this.work.catch(() => {});
        // Outcomes first (an Unsubscribe ahead of them would redeliver what they settle), and in the same tick as the
        // Unsubscribe, so both leave in one write: the broker applies the outcomes and detaches this consumer before it
        // dispatches again, and no delivery slips in between only to be redelivered with a raised count.
        const flights: Promise<unknown>[] = [];
        for (const channels of this.channels.values()) {
          for (const channel of channels.values()) {
            if (channel.pull) continue;
            channel.flush();
            flights.push(...channel.inFlight);
          }
        }
        const connection = this.connection;
        if (connection !== null && !connection.closed) {
          for (const [topic, on] of this.topics) {
            if (on === connection) flights.push(connection.request('Unsubscribe', { group: this.group, topic, consumerId: this.consumerId }));
          }
        }
        await Promise.allSettled(flights);
      } finally {
        this.shutDown();
      }
    })();
    return this.closePromise;
  }

  /** Stops at once, as if the process died: no outcome or Unsubscribe is sent (the broker redelivers when the connection closes). */
  abort(): void {
    this.closing = true;
    this.stopping.abort(clientClosed('the queue consumer'));
    this.shutDown();
    this.closePromise ??= Promise.resolve();
  }

  // ---- subscribing --------------------------------------------------------------------------------------------------

  /** Runs subscription work one step at a time, so a re-subscribe never races a subscribe of the same topic. */
  private serial<T>(step: () => Promise<T>): Promise<T> {
    this.busy++;
    const run = this.work.then(step, step).finally(() => this.busy--);
    this.work = run.catch(() => {});
    return run;
  }

  private async subscribeTopic(topic: string): Promise<void> {
    if (this.topics.has(topic)) return;
    for (let attempt = 0; ; attempt++) {
      this.checkOpen();
      try {
        const connection = await this.attach();
        await this.subscribeOn(connection, topic);
        if (this.closed) {
          this.undoSubscribe(connection, topic);
          throw clientClosed('the queue consumer');
        }
        this.topics.set(topic, connection);
        // Closed after answering (its close handler ran before this topic was recorded): subscribe again, later.
        if (connection.closed) {
          this.topics.set(topic, null);
          void this.serial(() => this.resubscribe());
        }
        return;
      } catch (error) {
        const failure = toClientError(error);
        if (!failure.retriable || attempt >= this.client.retry.retries || this.closing) throw failure;
        await sleep(backoffDelay(attempt, this.client.retry), this.stopSignal);
      }
    }
  }

  private async subscribeOn(connection: Connection, topic: string): Promise<void> {
    const router = PushRouter.of(connection);
    // Deliveries may arrive before the Subscribe answer: route them first.
    router.route(this.group, topic, this.consumerId, (push) => this.onDeliver(connection, push));
    try {
      await connection.request('Subscribe', {
        group: this.group,
        topic,
        mode: this.mode,
        consumerId: this.consumerId,
        prefetch: this.prefetch,
        priority: this.priority,
        filterKind: this.filterKind,
        filter: this.filterExpression,
        settings: this.settingsJson,
      });
    } catch (error) {
      router.unroute(this.group, topic, this.consumerId);
      throw error;
    }
  }

  /** A subscribe answered after the consumer closed: detach it again (its deliveries go back to the group). */
  private undoSubscribe(connection: Connection, topic: string): void {
    PushRouter.of(connection).unroute(this.group, topic, this.consumerId);
    connection.request('Unsubscribe', { group: this.group, topic, consumerId: this.consumerId }).catch(() => {});
  }

  /** The client's connection, watched for closing; adopting a new one means the old one is gone. */
  private async attach(): Promise<Connection> {
    const connection = await this.client.connection();
    if (this.connection !== connection) {
      this.connection = connection;
      this.watch(connection);
    }
    return connection;
  }

  private watch(connection: Connection): void {
    if (this.closeWatches.has(connection)) return;
    this.closeWatches.set(
      connection,
      PushRouter.of(connection).watchClose((error) => this.onConnectionClosed(connection, error)),
    );
  }

  private onConnectionClosed(connection: Connection, error: WeirClientError): void {
    this.closeWatches.delete(connection);
    const channels = this.channels.get(connection);
    this.channels.delete(connection);
    if (channels !== undefined) {
      for (const channel of channels.values()) {
        channel.kill(
          new WeirClientError(
            'CONNECTION_CLOSED',
            `the connection this message was delivered on closed (${error.message}); the broker redelivers it, so this outcome cannot apply`,
            { cause: error },
          ),
        );
      }
    }
    if (this.connection !== connection) return;
    this.connection = null;
    let subscribed = false;
    for (const [topic, on] of this.topics) {
      if (on !== connection) continue;
      this.topics.set(topic, null);
      subscribed = true;
    }
    // Buffered messages of the dead connection are skipped by `take`; drop them now to free their memory.
    this.compactBuffer();
    if (subscribed && !this.closing) void this.serial(() => this.resubscribe());
  }

  /** After a connection loss: subscribes every topic again on the next connection, backing off until it works. */
  private async resubscribe(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      let connection: Connection;
      try {
        connection = await this.attach();
      } catch (error) {
        const failure = toClientError(error);
        if (this.closing || failure.code === 'CLIENT_CLOSED') return;
        this.report(failure);
        await sleep(backoffDelay(attempt, this.client.retry), this.stopSignal);
        continue;
      }
      try {
        for (const [topic, on] of this.topics) {
          if (on === connection || this.closing) continue;
          await this.subscribeOn(connection, topic);
          if (this.closed) return this.undoSubscribe(connection, topic);
          this.topics.set(topic, connection);
          this.emit('resubscribed', { topic, connectionId: connection.info.connectionId });
        }
        return;
      } catch (error) {
        if (this.closing) return;
        const failure = toClientError(error);
        // The broker may not have noticed yet that the old connection is gone (it still holds this consumer id); that
        // clears by itself. Anything else (a deleted topic) is reported and retried at the slowest pace.
        const stale = failure.code === 'INVALID_ARGUMENT' && /already subscribed/.test(failure.message);
        if (!failure.retriable && !stale) this.report(new WeirClientError(failure.code, `re-subscribing to group ${JSON.stringify(this.group)}: ${failure.message}`, { retriable: false, cause: failure }));
        const delay = failure.retriable || stale ? backoffDelay(attempt, this.client.retry) : this.client.retry.maxMs;
        await sleep(delay, this.stopSignal);
      }
    }
  }

  // ---- deliveries ---------------------------------------------------------------------------------------------------

  private channel(connection: Connection, topic: string, consumerId: string, pull: boolean): LeaseChannel {
    let channels = this.channels.get(connection);
    if (channels === undefined) {
      this.channels.set(connection, (channels = new Map()));
      this.watch(connection);
    }
    const key = `${topic}\u0000${consumerId}`;
    let channel = channels.get(key);
    if (channel === undefined) {
      channel = new LeaseChannel(connection, this.group, topic, consumerId, pull);
      channels.set(key, channel);
      // A connection closed before we got here: its leases are gone already.
      if (connection.closed) channel.kill(new WeirClientError('CONNECTION_CLOSED', `the connection to ${connection.address} closed; the broker redelivers its messages`));
    }
    return channel;
  }

  private onDeliver(connection: Connection, push: DeliverPush): void {
    // Closing: not handed out; the Unsubscribe that follows returns them to the group.
    if (this.closing) return;
    const channel = this.channel(connection, push.topic, push.consumerId, false);
    for (const delivery of push.deliveries) this.buffer.push(new Delivered(push.topic, delivery, channel));
    this.wakeWaiters();
  }

  private take(): Delivered | null {
    while (this.bufferHead < this.buffer.length) {
      const message = this.buffer[this.bufferHead]!;
      this.buffer[this.bufferHead++] = undefined as never;
      if (this.bufferHead === this.buffer.length) {
        this.buffer = [];
        this.bufferHead = 0;
      } else if (this.bufferHead > 1024 && this.bufferHead * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.bufferHead);
        this.bufferHead = 0;
      }
      // A message whose connection closed was redelivered elsewhere: handing it out would process it twice.
      if (message.live) return message;
    }
    return null;
  }

  private compactBuffer(): void {
    this.buffer = this.buffer.slice(this.bufferHead).filter((message) => message.live);
    this.bufferHead = 0;
  }

  private async waitForMessage(): Promise<IteratorResult<QueueMessage, undefined>> {
    for (;;) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (this.closing) return { done: true, value: undefined };
      const message = this.take();
      if (message !== null) return { done: false, value: message };
    }
  }

  private wakeWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  // ---- plumbing -----------------------------------------------------------------------------------------------------

  private shutDown(): void {
    if (this.closed) return;
    this.closed = true;
    const closedError = new WeirClientError('CLIENT_CLOSED', 'the queue consumer is closed; the broker redelivers what it held unsettled to the other consumers');
    for (const [connection, channels] of this.channels) {
      for (const [key, channel] of channels) {
        if (channel.pull && !connection.closed) continue;
        channel.kill(closedError);
        channels.delete(key);
      }
    }
    for (const [topic, on] of this.topics) if (on !== null) PushRouter.of(on).unroute(this.group, topic, this.consumerId);
    this.topics.clear();
    // Pulled messages stay settleable while their connection lives, so its close is still watched.
    for (const [connection, stop] of this.closeWatches) {
      if ((this.channels.get(connection)?.size ?? 0) > 0) continue;
      stop();
      this.closeWatches.delete(connection);
    }
    this.buffer = [];
    this.bufferHead = 0;
    this.wakeWaiters();
    this.client.untrack(this);
  }

  /** Emits a non-fatal problem when someone listens (an unheard 'error' event would crash the process). */
  private report(error: WeirClientError): void {
    if (error.code === 'CLIENT_CLOSED' || this.listenerCount('error') === 0) return;
    this.emit('error', error);
  }

  private checkOpen(): void {
    if (this.closing || this.client.closed) throw clientClosed('the queue consumer');
  }
}

function invalid(message: string): WeirClientError {
  return new WeirClientError('INVALID_ARGUMENT', message, { retriable: false });
}

function checkFilter(filter: QueueFilter | undefined): QueueFilter | null {
  if (filter === undefined || filter === null) return null;
  const hasTag = typeof filter.tag === 'string';
  const hasSql = typeof filter.sql === 'string';
  if (hasTag === hasSql) throw new TypeError("filter is { tag: 'a || b' } or { sql: \"region = 'eu'\" }: give exactly one of tag and sql");
  const expression = (hasTag ? filter.tag : filter.sql)!;
  if (expression.trim().length === 0) throw new TypeError('a filter expression must not be empty');
  return hasTag ? { tag: expression } : { sql: expression };
}
