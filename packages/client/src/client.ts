import { EventEmitter } from 'node:events';
import type { ApiName, DecodedResponseOf, RequestOf } from 'weir-protocol';
import { DEFAULT_PORT, formatAddress, parseAddress, type BrokerAddress } from './address.js';
import { Admin } from './admin.js';
import { backoffDelay, resolveRetry, sleep, type RetryOptions } from './backoff.js';
import { Connection, type RequestOptions } from './connection.js';
import { Consumer, type ConsumerOptions } from './consumer.js';
import { clientClosed, isWeirClientError, toClientError, WeirClientError } from './errors.js';
import { TopicMetadata } from './metadata.js';
import { Producer, type ProducerOptions } from './producer.js';
import { QueueConsumer, type QueueConsumerOptions } from './queue-consumer.js';
import { TransactionalProducer, type TransactionalProducerOptions } from './transactional-producer.js';

export interface WeirClientOptions {
  /** Brokers to connect to, tried in order (default `['localhost:7654']`). */
  brokers?: readonly string[];
  /** Names this application in broker logs and group listings (default `weir-client`). */
  clientId?: string;
  /** How long a request may wait for its response (default 30 s); long polls and joins add their own wait to it. */
  requestTimeoutMs?: number;
  /** Limit for a TCP connect plus handshake (default 10 s). */
  connectTimeoutMs?: number;
  /** Backoff for reconnects and for retried requests (default 100 ms doubling to 10 s, 10 retries). */
  retry?: Partial<RetryOptions>;
  /** Requested heartbeat interval; 0 (the default) lets the broker choose. */
  heartbeatMs?: number;
  /** Largest frame this client accepts (default 16 MiB; the broker may lower it). */
  maxFrameBytes?: number;
  /** Topic metadata (partition counts) older than this is fetched again (default 5 minutes). */
  metadataMaxAgeMs?: number;
}

export interface RetryRequestOptions extends RequestOptions {
  /** Retries of retriable failures (default the client's `retry.retries`). */
  retries?: number;
}

interface ClientEvents {
  /** A connection was established (also after a reconnect). */
  connect: [info: { address: string; connectionId: string }];
  /** The connection was lost; the next request reconnects. */
  disconnect: [error: WeirClientError];
}

interface Closable {
  close(): Promise<void>;
  /** Stops at once, without flushing, committing or leaving. */
  abort(): void;
}

/**
 * The entry point: `new WeirClient({ brokers: ['localhost:7654'] })`. Holds one connection to a broker, opened on the
 * first request and shared by every producer, consumer and admin made from this client (requests are pipelined on it;
 * a long-polling fetch does not block other requests).
 *
 * When the connection drops, every request in flight fails with CONNECTION_CLOSED (retriable) and the next request
 * reconnects: brokers are tried in turn, with exponential backoff and jitter between failed attempts (`retry`), up to
 * `retry.retries` attempts per request before it fails with a message saying what to check. Producers and consumers
 * retry on their own, so they ride out a broker restart.
 */
export class WeirClient extends EventEmitter<ClientEvents> {
  readonly clientId: string;
  readonly requestTimeoutMs: number;
  readonly retry: RetryOptions;
  /** Cached topic metadata (partition counts), shared by this client's producers and consumers. */
  readonly metadata: TopicMetadata;
  private readonly addresses: BrokerAddress[];
  private readonly connectTimeoutMs: number;
  private readonly heartbeatMs: number;
  private readonly maxFrameBytes: number | undefined;
  private current: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  /** Consecutive failed connect attempts (the backoff exponent); reset by a connection that lasted. */
  private failures = 0;
  private nextAddress = 0;
  private readonly children = new Set<Closable>();
  private readonly closing = new AbortController();
  private closePromise: Promise<void> | null = null;

  constructor(options: WeirClientOptions = {}) {
    super();
    const brokers = options.brokers ?? [`localhost:${DEFAULT_PORT}`];
    if (brokers.length === 0) throw new TypeError('WeirClient: brokers is empty; give at least one "host:port"');
    this.addresses = brokers.map((broker) => parseAddress(broker));
    this.clientId = options.clientId ?? 'weir-client';
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.heartbeatMs = options.heartbeatMs ?? 0;
    this.maxFrameBytes = options.maxFrameBytes;
    this.retry = resolveRetry(options.retry);
    this.metadata = new TopicMetadata(this, options.metadataMaxAgeMs ?? 300_000);
  }

  /** Whether `close()` or `abort()` was called. */
  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /** Aborts when the client closes; long waits inside producers and consumers listen to it. */
  get closeSignal(): AbortSignal {
    return this.closing.signal;
  }

  /** The open connection, or null while there is none (nothing is started). */
  get currentConnection(): Connection | null {
    return this.current !== null && !this.current.closed ? this.current : null;
  }

  /**
   * The shared connection, connecting (and reconnecting) as needed: brokers in turn, backing off between failed
   * attempts, at most `retry.retries + 1` attempts per call. Rejects with CONNECTION_CLOSED naming the broker and
   * what to check, UNSUPPORTED_VERSION when the broker speaks another protocol version, or CLIENT_CLOSED.
   */
  connection(): Promise<Connection> {
    if (this.closed) return Promise.reject(clientClosed());
    const current = this.currentConnection;
    if (current !== null) return Promise.resolve(current);
    this.connecting ??= this.connectWithRetry().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Sends one request on the shared connection (no retry of the request itself; connecting does retry). */
  async request<N extends ApiName>(name: N, body: RequestOf<N>, options: RequestOptions = {}): Promise<DecodedResponseOf<N>> {
    const connection = this.currentConnection ?? (await this.connection());
    return connection.request(name, body, options);
  }

  /**
   * Sends a request and retries it after retriable failures (connection loss, timeouts, retriable broker errors),
   * with backoff. Only for requests that are safe to repeat.
   */
  async requestWithRetry<N extends ApiName>(name: N, body: RequestOf<N>, options: RetryRequestOptions = {}): Promise<DecodedResponseOf<N>> {
    const retries = options.retries ?? this.retry.retries;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request(name, body, options);
      } catch (error) {
        const failure = toClientError(error);
        if (!failure.retriable || attempt >= retries || this.closed || options.signal?.aborted) throw failure;
        await sleep(backoffDelay(attempt, this.retry), this.closeSignal);
      }
    }
  }

  producer(options: ProducerOptions = {}): Producer {
    if (this.closed) throw clientClosed();
    const producer = new Producer(this, options);
    this.track(producer);
    return producer;
  }

  /**
   * A transactional producer (RocketMQ's half messages): `await producer.transaction(async (tx) => { await
   * tx.send(topic, message); …local work… })` commits when the work resolves and rolls back when it throws.
   * `onCheck` answers the broker's check-backs about transactions left open (by a crash between the local commit and
   * the broker commit); the producer joins its producer group at once, and again after every reconnection, so keep
   * one open in every instance of the application.
   */
  transactionalProducer(options: TransactionalProducerOptions): TransactionalProducer {
    if (this.closed) throw clientClosed();
    const producer = new TransactionalProducer(this, options);
    this.track(producer);
    return producer;
  }

  /**
   * A consumer. With `group`, a member of that consumer group (mode `stream`: the group's partitions are shared out
   * among its members) or, with `mode: 'broadcast'`, an instance that reads everything and keeps its own offsets.
   * Without a group it reads every partition from `from` and never commits.
   */
  consumer(options: ConsumerOptions = {}): Consumer {
    if (this.closed) throw clientClosed();
    const consumer = new Consumer(this, options);
    this.track(consumer);
    return consumer;
  }

  /**
   * A work-queue consumer: a member of a shared (or key_shared) group, where each message goes to one consumer and is
   * acknowledged on its own (see QueueConsumer).
   */
  queueConsumer(options: QueueConsumerOptions): QueueConsumer {
    if (this.closed) throw clientClosed();
    const consumer = new QueueConsumer(this, options);
    this.track(consumer);
    return consumer;
  }

  admin(): Admin {
    return new Admin(this);
  }

  /**
   * Closes every producer (flushing it) and consumer (committing and leaving its group; queue consumers settle what
   * was given and unsubscribe) made from this client, then the connection. Further calls fail with CLIENT_CLOSED.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      const children = [...this.children];
      // Producers first: a consumer in the same process may be waiting for what they still hold.
      const isProducer = (child: Closable): boolean => child instanceof Producer || child instanceof TransactionalProducer;
      const order = [...children.filter(isProducer), ...children.filter((child) => !isProducer(child))];
      const results = await Promise.allSettled(order.map((child) => child.close()));
      this.closing.abort(clientClosed());
      await this.connecting?.catch(() => {});
      const connection = this.current;
      this.current = null;
      await connection?.close();
      const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed !== undefined && !isWeirClientError(failed.reason, 'CLIENT_CLOSED')) throw failed.reason;
    })();
    return this.closePromise;
  }

  /**
   * Stops everything at once, as if the process died: no flush, no commit, no LeaveGroup; the connection is dropped.
   * Group members made from this client are removed by the broker when their session times out.
   */
  abort(): void {
    this.closing.abort(clientClosed());
    for (const child of this.children) child.abort();
    this.children.clear();
    const connection = this.current;
    this.current = null;
    connection?.destroy(clientClosed());
    this.closePromise ??= Promise.resolve();
  }

  /** @internal Producers and consumers deregister themselves when closed. */
  untrack(child: Closable): void {
    this.children.delete(child);
  }

  private track(child: Closable): void {
    this.children.add(child);
  }

  private async connectWithRetry(): Promise<Connection> {
    let lastError: WeirClientError | null = null;
    const attempts = this.retry.retries + 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (this.failures > 0) await sleep(backoffDelay(this.failures - 1, this.retry), this.closeSignal);
      if (this.closed) throw clientClosed();
      const address = this.addresses[this.nextAddress % this.addresses.length]!;
      try {
        const connection = await Connection.connect(address, {
          clientId: this.clientId,
          connectTimeoutMs: this.connectTimeoutMs,
          requestTimeoutMs: this.requestTimeoutMs,
          heartbeatMs: this.heartbeatMs,
          ...(this.maxFrameBytes === undefined ? {} : { maxFrameBytes: this.maxFrameBytes }),
        });
        if (this.closed) {
          connection.destroy(clientClosed());
          throw clientClosed();
        }
        this.adopt(connection);
        return connection;
      } catch (error) {
        const failure = toClientError(error, 'CONNECTION_CLOSED');
        if (failure.code === 'CLIENT_CLOSED') throw failure;
        lastError = failure;
        this.failures++;
        this.nextAddress++;
        if (!failure.retriable) throw failure;
      }
    }
    const tried = this.addresses.map(formatAddress).join(', ');
    throw new WeirClientError('CONNECTION_CLOSED', `${lastError?.message ?? `cannot connect to ${tried}`} (gave up after ${attempts} attempts)`, { cause: lastError ?? undefined });
  }

  private adopt(connection: Connection): void {
    const openedAt = Date.now();
    this.current = connection;
    connection.once('close', (error) => {
      if (this.current === connection) this.current = null;
      // A connection that dies at once counts as a failed attempt, so a broker that accepts and drops is not hammered.
      if (Date.now() - openedAt >= 1000) this.failures = 0;
      if (!this.closed) this.emit('disconnect', error);
    });
    this.emit('connect', { address: connection.address, connectionId: connection.info.connectionId });
  }
}
