import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { generatedMessageId, partitionForKey, type DecodedResponseOf, type Header, type Message } from 'weir-protocol';
import {
  Accumulator,
  MAX_BATCH_MESSAGES,
  type AcksLevel,
  type Batch,
  type PartitionQueue,
  type PendingMessage,
  type ProduceResult,
  type TopicQueues,
} from './accumulator.js';
import { backoffDelay, resolveRetry, sleep, type RetryOptions } from './backoff.js';
import type { WeirClient } from './client.js';
import type { Connection } from './connection.js';
import { clientClosed, cloneError, toClientError, WeirClientError } from './errors.js';

export type { ProduceResult } from './accumulator.js';

/** A message to produce. Strings are sent as UTF-8. */
export interface ProducerMessage {
  /** Your id for the message (1–255 bytes; a string is taken as UTF-8). Without one the broker generates a time-ordered id. */
  id?: string | Uint8Array;
  /** Partitioning and lookup key: messages with the same key go to the same partition, in order. */
  key?: string | Uint8Array;
  /** A short label for filtering (at most 255 UTF-8 bytes). */
  tag?: string;
  /** Application headers. Names starting with `weir.` are reserved for the broker (use the fields below). */
  headers?: Record<string, string | Uint8Array>;
  /** The message's own time; default: the broker's append time. */
  timestamp?: number | Date;
  body: string | Uint8Array;
  /**
   * Deliver this many ms after the broker receives it: until then it is held in the broker's delay schedule, and no
   * group (stream or queue) sees it. Delayed messages go out in Produce requests of their own, without idempotence
   * (the broker refuses both mixing); a retry is caught by broker-side dedup of the message id, generated here when
   * `id` is not given. Their result has offset -1: they are stored in the partition when due.
   */
  delayMs?: number;
  /** Deliver at this time (a Date or ms since the epoch; at most 10 years ahead); a time past is "now". Exclusive with `delayMs`. */
  deliverAt?: Date | number;
  /** Work queues never deliver the message once this long has passed since it became visible (at least 1). */
  ttlMs?: number;
  /** Work-queue priority, 0 (default) to 9: a shared group delivers higher priorities first. */
  priority?: number;
}

/** `none`: no acknowledgement at all; `written`: the broker appended it (page cache); `durable`: after the fsync the topic's flush policy asks for. */
export type Acks = 'none' | 'written' | 'durable';

export interface SendOptions {
  /** Send to this partition instead of choosing one (by key, else round-robin). */
  partition?: number;
  /** Default: the producer's `acks` (itself `durable` by default). */
  acks?: Acks;
}

export interface ProducerOptions {
  /** How long a batch waits for more messages before it is sent (default 5 ms; 0 sends what one tick produced at once). */
  lingerMs?: number;
  /** Largest batch, in encoded bytes (default 256 KiB). */
  maxBatchBytes?: number;
  /** Most messages per batch (default 10,000; at most 65,535). */
  maxBatchMessages?: number;
  /** Bytes of messages held until acknowledged; a full buffer makes `send` wait (default 32 MiB). */
  maxBufferedBytes?: number;
  /** Batches in flight per partition (default 5). Order holds at any value: failed batches are resent in order. */
  maxInFlightPerPartition?: number;
  /** Broker-side deduplication of retried batches (default true). Applies to acks `written` and `durable`. */
  idempotent?: boolean;
  /** Default acks of `send` (default `durable`). */
  acks?: Acks;
  /** Retries of a batch after retriable failures, and their backoff (default: the client's `retry`). */
  retry?: Partial<RetryOptions>;
  /** Timeout of one Produce request (default: the client's requestTimeoutMs). */
  requestTimeoutMs?: number;
}

const ACKS: Record<Acks, AcksLevel> = { none: 0, written: 1, durable: 2 };

interface Identity {
  producerId: number;
  producerEpoch: number;
}

/** A `send` call whose messages are not all in the accumulator yet (waiting for buffer space or metadata). */
interface Admission {
  readonly topic: string;
  readonly messages: PendingSend[];
  readonly partition: number | undefined;
  readonly acks: AcksLevel;
  /** Messages admitted so far. */
  index: number;
}

/** Keyless messages stick to one partition per batch, then move on round-robin. */
interface Sticky {
  partition: number;
  /** The queue of `partition` (null until a message chose it). */
  queue: PartitionQueue | null;
  batch: Batch | null;
}

/** Per topic: its partition queues and the keyless partition choice (one lookup per send). */
interface TopicState {
  readonly queues: TopicQueues;
  sticky: Sticky | null;
}

const NO_OPTIONS: SendOptions = {};
const NO_HEADERS: readonly Header[] = Object.freeze([]);

/**
 * The sends made between two `flush` calls: how many of their messages are not settled yet. A flush starts a new group
 * and waits for its own and every earlier one, so it waits for exactly the sends made before it without keeping a
 * promise per send.
 */
class SendGroup {
  unsettled = 0;
  private waiters: Array<() => void> | null = null;

  settleOne(): void {
    if (--this.unsettled !== 0 || this.waiters === null) return;
    const waiters = this.waiters;
    this.waiters = null;
    for (const wake of waiters) wake();
  }

  whenSettled(): Promise<void> {
    if (this.unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => (this.waiters ??= []).push(resolve));
  }
}

/** The promise of a `send` of a list: resolves with every result in order once all succeeded, or with the first failure. */
class ListSend {
  private remaining: number;
  private done = false;
  readonly results: ProduceResult[];

  constructor(
    count: number,
    private readonly resolve: (results: ProduceResult[]) => void,
    private readonly reject: (error: WeirClientError) => void,
  ) {
    this.remaining = count;
    this.results = new Array<ProduceResult>(count);
  }

  succeed(index: number, result: ProduceResult): void {
    this.results[index] = result;
    if (--this.remaining === 0 && !this.done) {
      this.done = true;
      this.resolve(this.results);
    }
  }

  fail(error: WeirClientError): void {
    if (this.done) return;
    this.done = true;
    this.reject(error);
  }
}

function noop(): void {}

// `new Promise(capture)` hands the promise's resolve and reject over in these, without a closure per promise; the
// caller takes them at once (typed for its promise).
let capturedResolve: ((value: never) => void) | null = null;
let capturedReject: ((error: never) => void) | null = null;
function capture(resolve: (value: never) => void, reject: (error: never) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/**
 * A message accepted by `send`: its wire form (it is its own `Message`, so a batch goes out without another object per
 * message), its size, and where its outcome goes — the `send` promise of a single message, or a slot of a `ListSend`.
 * One class, every field set in the constructor, so all pending messages share one shape.
 */
class PendingSend implements PendingMessage, Message {
  /** The `send` promise's settlers (single-message sends). */
  onResolve: ((result: ProduceResult) => void) | null = null;
  onReject: ((error: WeirClientError) => void) | null = null;
  /** The list send this message belongs to (list sends), and its index there. */
  list: ListSend | null = null;
  index = 0;
  /** The flush group of its send; null once settled. */
  group: SendGroup | null = null;

  constructor(
    readonly id: Buffer | null,
    readonly key: Buffer | null,
    readonly tag: string | null,
    readonly headers: readonly Header[],
    readonly timestamp: number,
    readonly body: Buffer,
    /** Encoded size inside a Produce request. */
    readonly bytes: number,
    /** Held by the broker until due: travels in delayed-only, non-idempotent batches. */
    readonly delayed: boolean,
  ) {}

  get message(): Message {
    return this;
  }

  get idBytes(): Buffer | null {
    return this.id;
  }

  get keyBytes(): Buffer | null {
    return this.key;
  }

  resolve(result: ProduceResult): void {
    const group = this.group;
    if (group === null) return;
    this.group = null;
    if (this.list === null) this.onResolve!(result);
    else this.list.succeed(this.index, result);
    group.settleOne();
  }

  reject(error: WeirClientError): void {
    const group = this.group;
    if (group === null) return;
    this.group = null;
    if (this.list === null) this.onReject!(error);
    else this.list.fail(error);
    group.settleOne();
  }
}

/** What the broker answered for one batch, shared by the results of its messages. */
class BatchAck {
  constructor(
    readonly topic: string,
    readonly partition: number,
    /** Offset of the batch's first message, or -1 when unknown. */
    readonly baseOffset: number,
    /** Store time and position of the batch (for generated ids), or -1 when unknown. */
    readonly storeTimestamp: number,
    readonly position: number,
    readonly duplicate: boolean,
  ) {}
}

/** A ProduceResult whose id (hex string and bytes) is only computed when read. */
class SendResult implements ProduceResult {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly duplicate: boolean;
  readonly #ack: BatchAck;
  readonly #index: number;
  /** The id's bytes; undefined until a generated one is computed. */
  #idBytes: Buffer | null | undefined;
  #id: string | null | undefined = undefined;

  constructor(ack: BatchAck, index: number, given: Buffer | null) {
    this.topic = ack.topic;
    this.partition = ack.partition;
    this.offset = ack.baseOffset >= 0 ? ack.baseOffset + index : -1;
    this.duplicate = ack.duplicate;
    this.#ack = ack;
    this.#index = index;
    this.#idBytes = given ?? (ack.storeTimestamp >= 0 && ack.position >= 0 ? undefined : null);
  }

  get idBytes(): Buffer | null {
    if (this.#idBytes === undefined) this.#idBytes = generatedMessageId(this.#ack.storeTimestamp, this.#ack.position, this.#index);
    return this.#idBytes;
  }

  get id(): string | null {
    if (this.#id === undefined) {
      const bytes = this.idBytes;
      this.#id = bytes === null ? null : bytes.toString('hex');
    }
    return this.#id;
  }

  toJSON(): ProduceResult {
    return { topic: this.topic, partition: this.partition, offset: this.offset, id: this.id, idBytes: this.idBytes, duplicate: this.duplicate };
  }

  [inspect.custom](depth: number, options: object): string {
    return `ProduceResult ${inspect(this.toJSON(), { ...options, depth })}`;
  }
}

/**
 * Sends messages in batches, one partition per batch.
 *
 * Partitioning: `options.partition` if given, else by key with `partitionForKey` (Kafka's murmur2, so a key lands on
 * the same partition number as with the broker's own choice), else round-robin, sticking to one partition until its
 * batch closes. Both need the topic's partition count: DescribeTopic, cached on the client, fetched again after
 * UNKNOWN_TOPIC or INVALID_PARTITION.
 *
 * Memory: messages count against `maxBufferedBytes` from `send` until they are acknowledged (or fail); a full buffer
 * makes `send` wait, in call order, so memory stays bounded however fast the application sends.
 *
 * Delivery: at most `maxInFlightPerPartition` batches in flight per partition. A batch that fails with a retriable
 * error (CONNECTION_CLOSED, TIMEOUT, STORAGE_ERROR, BROKER_SHUTTING_DOWN, INTERNAL_ERROR) stops the partition: once
 * every batch in flight there has settled, the failed ones go out again, in order, after a backoff with jitter.
 * With idempotence (the default) the producer has an id from InitProducer and each batch a sequence, fixed when the
 * batch closes and kept across retries, so the broker stores a retried batch once (its answer then says `duplicate`
 * and carries the original offsets). UNKNOWN_PRODUCER (or a sequence gap the broker reports for the oldest batch)
 * makes the producer wait for everything in flight, initialise again (a new epoch) and renumber what is unacknowledged
 * from 0. INVALID_PRODUCER_EPOCH (another instance took over the id) fails everything: this producer is fenced.
 *
 * Delayed messages (`delayMs`, or a `deliverAt` still ahead) travel in batches of their own, never idempotent (the
 * broker refuses a produce that mixes delayed and immediate messages, and delayed ones from an idempotent producer):
 * each gets a random 16-byte id unless it has one, so the broker's dedup by id drops a retried copy instead.
 */
export class Producer {
  private readonly lingerMs: number;
  private readonly maxBufferedBytes: number;
  private readonly maxInFlight: number;
  /** Whether retried batches are deduplicated by sequence number (producer id); false: by message id, if given. */
  readonly idempotent: boolean;
  private readonly defaultAcks: AcksLevel;
  private readonly retry: RetryOptions;
  private readonly requestTimeoutMs: number;
  private readonly accumulator: Accumulator;

  private buffered = 0;
  private spaceWaiter: { bytes: number; resolve(): void } | null = null;
  private readonly admissions: Admission[] = [];
  private pumping = false;
  private readonly topicStates = new Map<string, TopicState>();
  /** The sends made since the last `flush` (what the next flush waits for). */
  private sendGroup = new SendGroup();
  /** Resolves once every send made before the latest `flush` settled. */
  private flushed: Promise<void> = Promise.resolve();

  private identity: Identity | null = null;
  /** Sending is stopped until InitProducer (first, or again after UNKNOWN_PRODUCER) completes. */
  private identityNeeded = false;
  private identityRunning = false;
  private fatal: WeirClientError | null = null;
  private waitingWritable = false;
  /** Batches waiting for a connection; while any do, later batches queue behind them (same promise, same order). */
  private awaitingConnection = 0;
  private closed = false;
  /** `abort` was called: nothing is retried or admitted any more. */
  private closedAbruptly = false;
  private closePromise: Promise<void> | null = null;

  constructor(
    private readonly client: WeirClient,
    options: ProducerOptions = {},
  ) {
    this.lingerMs = nonNegative('lingerMs', options.lingerMs ?? 5);
    const maxBatchBytes = positive('maxBatchBytes', options.maxBatchBytes ?? 256 * 1024);
    const maxBatchMessages = Math.min(MAX_BATCH_MESSAGES, positive('maxBatchMessages', options.maxBatchMessages ?? 10_000));
    this.maxBufferedBytes = positive('maxBufferedBytes', options.maxBufferedBytes ?? 32 * 1024 * 1024);
    this.maxInFlight = positive('maxInFlightPerPartition', options.maxInFlightPerPartition ?? 5);
    this.idempotent = options.idempotent ?? true;
    this.defaultAcks = ACKS[options.acks ?? 'durable'];
    if (this.defaultAcks === undefined) throw new TypeError(`acks must be none, written or durable, not ${String(options.acks)}`);
    this.retry = resolveRetry(options.retry, client.retry);
    this.requestTimeoutMs = options.requestTimeoutMs ?? client.requestTimeoutMs;
    this.accumulator = new Accumulator({ lingerMs: this.lingerMs, maxBatchBytes, maxBatchMessages }, (queue) => this.drain(queue));
  }

  /** Bytes of messages accepted and not yet acknowledged. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The producer id from InitProducer, or -1 before it (or when not idempotent). */
  get producerId(): number {
    return this.identity?.producerId ?? -1;
  }

  get producerEpoch(): number {
    return this.identity?.producerEpoch ?? -1;
  }

  /**
   * Sends one message (resolving with its result) or several (resolving with their results, in order) once the broker
   * acknowledged them. Waits while the producer's buffer is full. Rejects with a WeirClientError: UNKNOWN_TOPIC,
   * INVALID_PARTITION, MESSAGE_TOO_LARGE and the like at once; retriable failures only after the retries ran out.
   */
  send(topic: string, message: ProducerMessage, options?: SendOptions): Promise<ProduceResult>;
  send(topic: string, messages: readonly ProducerMessage[], options?: SendOptions): Promise<ProduceResult[]>;
  send(topic: string, input: ProducerMessage | readonly ProducerMessage[], options: SendOptions = NO_OPTIONS): Promise<ProduceResult | ProduceResult[]> {
    if (this.closed) return Promise.reject(clientClosed('the producer'));
    if (this.fatal !== null) return Promise.reject(cloneError(this.fatal));
    const single = !Array.isArray(input);
    let acks: AcksLevel;
    let first: PendingSend;
    let pending: PendingSend[] | null = null;
    try {
      if (typeof topic !== 'string' || topic.length === 0) throw invalid(`topic must be a non-empty string, not ${JSON.stringify(topic)}`);
      acks = options.acks === undefined ? this.defaultAcks : ACKS[options.acks];
      if (acks === undefined) throw invalid(`acks must be none, written or durable, not ${String(options.acks)}`);
      const partition = options.partition;
      if (partition !== undefined) {
        if (!Number.isInteger(partition) || partition < 0) throw invalid(`partition must be a non-negative integer, not ${String(partition)}`);
        const count = this.client.metadata.cachedPartitionCount(topic);
        if (count !== undefined && partition >= count) {
          throw new WeirClientError('INVALID_PARTITION', `topic ${JSON.stringify(topic)} has ${count} partitions (0-${count - 1}); there is no partition ${partition}`);
        }
      }
      if (single) {
        first = prepare(input as ProducerMessage, 'message');
      } else {
        const list = input as readonly ProducerMessage[];
        if (list.length === 0) return Promise.resolve([]);
        pending = new Array<PendingSend>(list.length);
        for (let index = 0; index < list.length; index++) pending[index] = prepare(list[index]!, list.length > 1 ? `messages[${index}]` : 'message');
        first = pending[0]!;
      }
    } catch (error) {
      return Promise.reject(toClientError(error));
    }
    const group = this.sendGroup;
    if (pending === null) {
      // One message: its promise is the send's, settled directly by the message.
      const promise = new Promise<ProduceResult>(capture);
      first.onResolve = capturedResolve as (result: ProduceResult) => void;
      first.onReject = capturedReject as (error: WeirClientError) => void;
      capturedResolve = capturedReject = null;
      first.group = group;
      group.unsettled++;
      if (this.admissions.length === 0 && !this.pumping && this.admitOne(topic, first, options.partition, acks)) return promise;
      this.enqueue({ topic, messages: [first], partition: options.partition, acks, index: 0 });
      return promise;
    }
    const promise = new Promise<ProduceResult[]>(capture);
    const list = new ListSend(pending.length, capturedResolve as (results: ProduceResult[]) => void, capturedReject as (error: WeirClientError) => void);
    capturedResolve = capturedReject = null;
    for (let index = 0; index < pending.length; index++) {
      const message = pending[index]!;
      message.list = list;
      message.index = index;
      message.group = group;
    }
    group.unsettled += pending.length;
    const admission: Admission = { topic, messages: pending, partition: options.partition, acks, index: 0 };
    if (this.admissions.length === 0 && !this.pumping && this.admit(admission)) return promise;
    this.enqueue(admission);
    return promise;
  }

  /**
   * Sends without waiting for any acknowledgement (acks `none`): resolves once the messages were handed to the
   * connection. Nothing says whether the broker stored them.
   */
  async sendOneway(topic: string, input: ProducerMessage | readonly ProducerMessage[], options: Omit<SendOptions, 'acks'> = {}): Promise<void> {
    await this.send(topic, Array.isArray(input) ? (input as readonly ProducerMessage[]) : [input as ProducerMessage], { ...options, acks: 'none' });
  }

  /**
   * Sends everything buffered now (without waiting for linger) and resolves once every `send` made before the call
   * has settled (acknowledged or failed). Sends made meanwhile also go out at once but are not waited for.
   */
  async flush(): Promise<void> {
    this.accumulator.flushing++;
    try {
      // Sends from now on belong to the next flush; this one waits for its group and those of earlier flushes.
      const group = this.sendGroup;
      if (group.unsettled > 0) this.sendGroup = new SendGroup();
      const earlier = this.flushed;
      const settled = group.unsettled === 0 ? earlier : Promise.all([earlier, group.whenSettled()]).then(noop);
      this.flushed = settled;
      this.drainAll();
      await settled;
    } finally {
      this.accumulator.flushing--;
    }
  }

  /** Flushes, then stops: later sends fail with CLIENT_CLOSED. */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.closed = true;
      try {
        await this.flush();
      } finally {
        this.accumulator.clearTimers();
        this.client.untrack(this);
      }
    })();
    return this.closePromise;
  }

  /** Stops at once: everything not yet acknowledged fails with CLIENT_CLOSED. */
  abort(): void {
    this.closed = true;
    this.failEverything(clientClosed('the producer'));
    this.client.untrack(this);
    this.closePromise ??= Promise.resolve();
  }

  // ---- admission: buffer space and partition choice ------------------------------------------------------------------

  /** Queues a call that could not be admitted at once; `pump` admits it when it can. */
  private enqueue(admission: Admission): void {
    this.admissions.push(admission);
    if (!this.pumping) void this.pump();
  }

  /** Puts one message into a batch right now if it can (metadata known, buffer space); true when it is in. */
  private admitOne(topic: string, message: PendingSend, partition: number | undefined, acks: AcksLevel): boolean {
    let count = 0;
    if (partition === undefined) {
      const cached = this.client.metadata.cachedPartitionCount(topic);
      if (cached === undefined) return false;
      count = cached;
    }
    if (this.buffered > 0 && this.buffered + message.bytes > this.maxBufferedBytes) return false;
    this.buffered += message.bytes;
    const queue = this.place(this.topicState(topic), message, partition, acks, count);
    // During a flush new batches are due at once; nothing else would wake their partitions.
    if (this.accumulator.flushing > 0) this.drain(queue);
    return true;
  }

  /** Puts as many of the call's messages into batches as possible right now; true when all are in. */
  private admit(admission: Admission): boolean {
    let count = 0;
    if (admission.partition === undefined) {
      const cached = this.client.metadata.cachedPartitionCount(admission.topic);
      if (cached === undefined) return false;
      count = cached;
    }
    const flushing = this.accumulator.flushing > 0;
    const touched = flushing ? new Set<PartitionQueue>() : null;
    try {
      const state = this.topicState(admission.topic);
      while (admission.index < admission.messages.length) {
        const message = admission.messages[admission.index]!;
        if (this.buffered > 0 && this.buffered + message.bytes > this.maxBufferedBytes) return false;
        this.buffered += message.bytes;
        admission.index++;
        const queue = this.place(state, message, admission.partition, admission.acks, count);
        touched?.add(queue);
      }
      return true;
    } finally {
      // During a flush new batches are due at once; nothing else would wake their partitions.
      if (touched !== null) for (const queue of touched) this.drain(queue);
    }
  }

  private topicState(topic: string): TopicState {
    let state = this.topicStates.get(topic);
    if (state === undefined) {
      state = { queues: this.accumulator.topic(topic), sticky: null };
      this.topicStates.set(topic, state);
    }
    return state;
  }

  /** Chooses the message's partition and appends it to that partition's batch; returns the partition's queue. */
  private place(state: TopicState, message: PendingSend, partition: number | undefined, acks: AcksLevel, count: number): PartitionQueue {
    // The broker refuses delayed messages from an idempotent producer: their retries are deduplicated by message id.
    const delayed = message.delayed;
    const idempotent = this.idempotent && acks !== 0 && !delayed;
    if (partition !== undefined || message.key !== null) {
      const queue = this.accumulator.queueOf(state.queues, partition ?? partitionForKey(message.key!, count));
      this.accumulator.append(queue, message, acks, idempotent, delayed);
      return queue;
    }
    // Keyless: stick to one partition until the batch the last keyless message joined has closed, then move on.
    let sticky = state.sticky;
    if (sticky === null) {
      sticky = state.sticky = { partition: Math.floor(Math.random() * count), queue: null, batch: null };
    } else {
      if (sticky.partition >= count) {
        sticky.partition %= count;
        sticky.queue = null;
      }
      if (sticky.batch === null || sticky.queue === null || sticky.queue.open !== sticky.batch) {
        sticky.partition = (sticky.partition + 1) % count;
        sticky.queue = null;
        sticky.batch = null;
      }
    }
    const queue = (sticky.queue ??= this.accumulator.queueOf(state.queues, sticky.partition));
    const batch = this.accumulator.append(queue, message, acks, idempotent, delayed);
    sticky.batch = queue.open === batch ? batch : null;
    return queue;
  }

  /** Admits waiting calls in order, waiting for metadata or buffer space as needed. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.admissions.length > 0) {
        const admission = this.admissions[0]!;
        if (this.fatal !== null || this.closedAbruptly) {
          this.admissions.shift();
          this.rejectAdmission(admission, this.fatal ?? clientClosed('the producer'));
          continue;
        }
        if (this.admit(admission)) {
          this.admissions.shift();
          continue;
        }
        if (admission.partition === undefined && this.client.metadata.cachedPartitionCount(admission.topic) === undefined) {
          try {
            await this.client.metadata.partitionCount(admission.topic);
          } catch (error) {
            this.admissions.shift();
            this.rejectAdmission(admission, toClientError(error));
          }
          continue;
        }
        const next = admission.messages[admission.index]!;
        await new Promise<void>((resolve) => {
          this.spaceWaiter = { bytes: next.bytes, resolve };
        });
      }
    } finally {
      this.pumping = false;
    }
  }

  private rejectAdmission(admission: Admission, error: WeirClientError): void {
    for (let index = admission.index; index < admission.messages.length; index++) admission.messages[index]!.reject(cloneError(error));
    admission.index = admission.messages.length;
  }

  private release(bytes: number): void {
    this.buffered -= bytes;
    const waiter = this.spaceWaiter;
    if (waiter !== null && (this.buffered === 0 || this.buffered + waiter.bytes <= this.maxBufferedBytes)) {
      this.spaceWaiter = null;
      waiter.resolve();
    }
  }

  // ---- sending --------------------------------------------------------------------------------------------------------

  private drainAll(): void {
    for (const queue of this.accumulator.allQueues()) this.drain(queue);
  }

  /** Sends the partition's sendable batches while it has room in flight. */
  private drain(queue: PartitionQueue): void {
    if (this.fatal !== null || queue.recovering || this.identityNeeded) return;
    while (queue.inFlight.length < this.maxInFlight && this.accumulator.hasSendable(queue)) {
      if (this.idempotent && this.identity === null) {
        this.requestIdentity();
        return;
      }
      const connection = this.client.currentConnection;
      if (connection !== null && !connection.writable) {
        this.waitForWritable(connection);
        return;
      }
      const batch = this.accumulator.takeSendable(queue)!;
      this.dispatch(queue, batch, connection);
    }
  }

  private waitForWritable(connection: Connection): void {
    if (this.waitingWritable) return;
    this.waitingWritable = true;
    connection
      .whenWritable()
      .catch(() => {})
      .finally(() => {
        this.waitingWritable = false;
        this.drainAll();
      });
  }

  private dispatch(queue: PartitionQueue, batch: Batch, connection: Connection | null): void {
    queue.inFlight.push(batch);
    batch.wireMessages ??= batch.messages.map((message) => message.message);
    const identity = batch.idempotent ? this.identity! : null;
    const body = {
      topic: batch.topic,
      partition: batch.partition,
      acks: batch.acks,
      producerId: identity?.producerId ?? -1,
      producerEpoch: identity?.producerEpoch ?? -1,
      baseSequence: batch.idempotent ? batch.sequence : -1,
      messages: batch.wireMessages,
    };
    const sendOn = (open: Connection): void => {
      if (batch.acks === 0) {
        try {
          open.send('Produce', body);
        } catch (error) {
          this.settle(queue, batch, toClientError(error), null);
          return;
        }
        this.settle(queue, batch, null, null);
        return;
      }
      open.request('Produce', body, { timeoutMs: this.requestTimeoutMs }).then(
        (response) => this.settle(queue, batch, null, response),
        (error: unknown) => this.settle(queue, batch, toClientError(error), null),
      );
    };
    // With a connection at hand the request is written synchronously, so batches leave in the order they were taken;
    // otherwise they wait for the shared connect, whose callbacks run in the order they were registered.
    if (connection !== null && this.awaitingConnection === 0) {
      sendOn(connection);
      return;
    }
    this.awaitingConnection++;
    this.client.connection().then(
      (open) => {
        this.awaitingConnection--;
        sendOn(open);
      },
      (error: unknown) => {
        this.awaitingConnection--;
        this.settle(queue, batch, toClientError(error, 'CONNECTION_CLOSED'), null);
      },
    );
  }

  /** A batch's attempt ended: complete it, or decide how to retry it. */
  private settle(queue: PartitionQueue, batch: Batch, error: WeirClientError | null, response: DecodedResponseOf<'Produce'> | null): void {
    const index = queue.inFlight.indexOf(batch);
    if (index >= 0) queue.inFlight.splice(index, 1);
    if (error === null) this.complete(batch, response);
    else if (this.fatal !== null) this.failBatch(batch, this.fatal);
    else this.onFailure(queue, batch, error);
    if (this.identityNeeded) {
      this.maybeReinitialise();
      return;
    }
    if (queue.recovering) {
      if (queue.inFlight.length === 0) void this.recover(queue);
      return;
    }
    this.drain(queue);
  }

  private onFailure(queue: PartitionQueue, batch: Batch, error: WeirClientError): void {
    const code = error.code;
    if (code === 'INVALID_PRODUCER_EPOCH') {
      const fenced = new WeirClientError('INVALID_PRODUCER_EPOCH', `${error.message} — another instance of this producer took over its id; this producer is fenced and stops`, {
        retriable: false,
        cause: error,
      });
      this.failEverything(fenced);
      this.failBatch(batch, fenced);
      return;
    }
    if (batch.idempotent && (code === 'UNKNOWN_PRODUCER' || code === 'OUT_OF_ORDER_SEQUENCE')) {
      if (code === 'OUT_OF_ORDER_SEQUENCE' && this.followsFailure(queue, batch)) {
        // An earlier batch of this partition failed or is still in flight: this one is resent after it, in order.
        queue.failed.push(batch);
        queue.recovering = true;
        return;
      }
      // The broker lost (or never had) this producer's state here: start a new epoch and renumber from 0.
      batch.attempts++;
      if (batch.attempts > this.retry.retries) {
        this.failBatch(batch, error);
      } else {
        queue.failed.push(batch);
      }
      queue.recovering = true;
      this.identityNeeded = true;
      return;
    }
    if (error.retriable) {
      batch.attempts++;
      if (batch.attempts <= this.retry.retries && !this.closedAbruptly) {
        queue.failed.push(batch);
        queue.recovering = true;
        return;
      }
      this.failBatch(batch, error);
      if (batch.idempotent && !this.closedAbruptly) {
        // Out of retries, the batch may still have been stored (a lost answer): renumbering later batches into its
        // sequences could make the broker take one of them for its duplicate. A new epoch starts clean instead.
        queue.recovering = true;
        this.identityNeeded = true;
      }
      return;
    }
    // A rejection: the broker stored nothing of the batch.
    if (code === 'UNKNOWN_TOPIC' || code === 'INVALID_PARTITION') this.client.metadata.invalidate(batch.topic);
    this.failBatch(batch, error);
    if (batch.idempotent) {
      if (queue.gap === null || batch.order < queue.gap.order) queue.gap = { sequence: batch.sequence, order: batch.order };
      queue.recovering = true;
    }
  }

  /** Whether an earlier idempotent batch of the partition is in flight, failed, or was rejected (a gap). */
  private followsFailure(queue: PartitionQueue, batch: Batch): boolean {
    const before = (other: Batch): boolean => other.idempotent && other !== batch && other.order < batch.order;
    if (queue.gap !== null && queue.gap.order < batch.order) return true;
    return queue.inFlight.some(before) || queue.failed.some(before);
  }

  /** After a failure, once nothing is in flight: queue the failed batches again (in order) and resume after a backoff. */
  private async recover(queue: PartitionQueue): Promise<void> {
    if (this.identityNeeded) return this.maybeReinitialise();
    const failed = queue.failed.sort((a, b) => a.order - b.order);
    queue.failed = [];
    const resend = [...failed, ...queue.ready];
    const gap = queue.gap;
    if (gap !== null) {
      // Batches before the gap keep their sequences; those after it move down into it.
      this.accumulator.renumber(
        queue,
        resend.filter((batch) => batch.order > gap.order),
        gap.sequence,
      );
      queue.gap = null;
    }
    queue.ready = resend;
    const attempts = failed.reduce((most, batch) => Math.max(most, batch.attempts), 0);
    if (attempts > 0) await sleep(backoffDelay(attempts - 1, this.retry), this.client.closeSignal);
    queue.recovering = false;
    if (this.identityNeeded) return this.maybeReinitialise();
    this.drain(queue);
  }

  private complete(batch: Batch, response: DecodedResponseOf<'Produce'> | null): void {
    const canGenerate = response !== null && response.storeTimestamp >= 0 && response.position >= 0;
    const ack = new BatchAck(
      batch.topic,
      response?.partition ?? batch.partition,
      response !== null && response.baseOffset >= 0 ? response.baseOffset : -1,
      canGenerate ? response.storeTimestamp : -1,
      canGenerate ? response.position : -1,
      response?.duplicate ?? false,
    );
    const messages = batch.messages;
    for (let index = 0; index < messages.length; index++) {
      const message = messages[index]!;
      message.resolve(new SendResult(ack, index, message.idBytes));
    }
    this.release(batch.bytes);
  }

  private failBatch(batch: Batch, error: WeirClientError): void {
    for (const message of batch.messages) message.reject(cloneError(error));
    this.release(batch.bytes);
  }

  // ---- producer identity ----------------------------------------------------------------------------------------------

  private requestIdentity(): void {
    this.identityNeeded = true;
    this.maybeReinitialise();
  }

  /** Once no partition has a batch in flight: InitProducer, then renumber every partition's unacknowledged batches from 0. */
  private maybeReinitialise(): void {
    if (this.identityRunning || this.fatal !== null) return;
    for (const queue of this.accumulator.allQueues()) if (queue.inFlight.length > 0) return;
    this.identityRunning = true;
    void this.reinitialise().finally(() => {
      this.identityRunning = false;
    });
  }

  private async reinitialise(): Promise<void> {
    const previous = this.identity;
    let attempt = 0;
    let identity: Identity | null = null;
    while (identity === null) {
      try {
        identity = await this.client.request('InitProducer', { producerId: previous?.producerId ?? -1 });
      } catch (error) {
        const failure = toClientError(error);
        if (failure.code === 'UNKNOWN_PRODUCER' && previous !== null) {
          try {
            identity = await this.client.request('InitProducer', { producerId: -1 });
            continue;
          } catch (retryError) {
            const next = toClientError(retryError);
            if (!next.retriable) return this.failEverything(next);
          }
        } else if (!failure.retriable || this.client.closed) {
          return this.failEverything(failure);
        }
        if (this.closedAbruptly) return;
        await sleep(backoffDelay(attempt++, this.retry), this.client.closeSignal);
        if (this.client.closed) return this.failEverything(clientClosed());
      }
    }
    this.identity = { producerId: identity.producerId, producerEpoch: identity.producerEpoch };
    for (const queue of this.accumulator.allQueues()) {
      const resend = [...queue.failed.sort((a, b) => a.order - b.order), ...queue.ready];
      queue.failed = [];
      queue.gap = null;
      queue.recovering = false;
      queue.ready = resend;
      this.accumulator.renumber(queue, resend, 0);
    }
    this.identityNeeded = false;
    this.drainAll();
  }

  /** Fails every message not yet acknowledged (those in flight fail as their requests end). */
  private failEverything(error: WeirClientError): void {
    if (this.fatal === null && error.code !== 'CLIENT_CLOSED') this.fatal = error;
    if (error.code === 'CLIENT_CLOSED') this.closedAbruptly = true;
    this.accumulator.clearTimers();
    for (const queue of this.accumulator.allQueues()) {
      const batches = [...queue.failed, ...queue.ready, ...(queue.open === null ? [] : [queue.open])];
      queue.failed = [];
      queue.ready = [];
      queue.open = null;
      queue.recovering = false;
      for (const batch of batches) this.failBatch(batch, error);
    }
    for (const admission of this.admissions.splice(0)) this.rejectAdmission(admission, error);
    const waiter = this.spaceWaiter;
    this.spaceWaiter = null;
    waiter?.resolve();
  }
}

function invalid(message: string): WeirClientError {
  return new WeirClientError('INVALID_ARGUMENT', message, { retriable: false });
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be >= 0, got ${value}`);
  return value;
}

function bytesOf(value: string | Uint8Array, what: string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw invalid(`${what} must be a string or a Uint8Array, not ${typeof value}`);
}

/** Checks a message as `send` does and returns its wire form (for the transactional producer). @internal */
export function prepareMessage(input: ProducerMessage, what: string): Message {
  return prepare(input, what);
}

/** Checks a message and converts it to its wire form, computing its encoded size. */
function prepare(input: ProducerMessage, what: string): PendingSend {
  if (input === null || typeof input !== 'object') throw invalid(`${what} must be an object with a body, not ${input === null ? 'null' : typeof input}`);
  if (input.body === undefined || input.body === null) throw invalid(`${what}.body is missing`);
  const body = bytesOf(input.body, `${what}.body`);
  let idBytes: Buffer | null = null;
  if (input.id !== undefined && input.id !== null) {
    idBytes = bytesOf(input.id, `${what}.id`);
    if (idBytes.length < 1 || idBytes.length > 255) throw invalid(`${what}.id must be 1-255 bytes, not ${idBytes.length}`);
  }
  const keyBytes = input.key === undefined || input.key === null ? null : bytesOf(input.key, `${what}.key`);
  let tag: string | null = null;
  let tagBytes = 0;
  if (input.tag !== undefined && input.tag !== null) {
    if (typeof input.tag !== 'string') throw invalid(`${what}.tag must be a string`);
    tagBytes = Buffer.byteLength(input.tag);
    if (tagBytes > 255) throw invalid(`${what}.tag must be at most 255 UTF-8 bytes`);
    tag = input.tag;
  }
  let headers: readonly Header[] = NO_HEADERS;
  let headerBytes = 4;
  let attributes: QueueAttributes | null = null;
  if (input.delayMs !== undefined || input.deliverAt !== undefined || input.ttlMs !== undefined || input.priority !== undefined) {
    attributes = queueAttributes(input, what);
  }
  if ((input.headers !== undefined && input.headers !== null) || attributes !== null) {
    const list: Header[] = [];
    for (const [name, value] of Object.entries(input.headers ?? {})) {
      if (name.startsWith(RESERVED_PREFIX)) {
        throw invalid(`${what}.headers: header names starting with "${RESERVED_PREFIX}" are reserved for the broker (${JSON.stringify(name)}); use the message's delayMs, deliverAt, ttlMs or priority`);
      }
      const isString = typeof value === 'string';
      const encoded = bytesOf(value, `${what}.headers[${JSON.stringify(name)}]`);
      list.push({ name, isString, value: encoded });
      headerBytes += 2 + Buffer.byteLength(name) + 1 + 4 + encoded.length;
    }
    for (const [name, value] of attributes?.headers ?? []) {
      const encoded = Buffer.from(value, 'utf8');
      list.push({ name, isString: true, value: encoded });
      headerBytes += 2 + name.length + 1 + 4 + encoded.length;
    }
    if (list.length > 0) headers = list;
  }
  const delayed = attributes?.delayed ?? false;
  // Delayed messages are not idempotent: a random id lets the broker's dedup drop a retry that was stored already.
  if (delayed && idBytes === null) idBytes = randomBytes(16);
  let timestamp = -1;
  if (input.timestamp !== undefined && input.timestamp !== null) {
    timestamp = input.timestamp instanceof Date ? input.timestamp.getTime() : input.timestamp;
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw invalid(`${what}.timestamp must be a Date or non-negative integer milliseconds, not ${String(input.timestamp)}`);
  }
  const bytes = 4 + (idBytes?.length ?? 0) + 4 + (keyBytes?.length ?? 0) + 2 + tagBytes + headerBytes + 8 + 4 + body.length;
  return new PendingSend(idBytes, keyBytes, tag, headers, timestamp, body, bytes, delayed);
}

/** Reserved header names start with this (docs/design/work-queues.md, "Message attributes"). */
const RESERVED_PREFIX = 'weir.';
/** The broker's limit for how far ahead a message may be delayed (10 years). */
const MAX_DELAY_MS = 10 * 366 * 86_400_000;
const MAX_PRIORITY = 9;

interface QueueAttributes {
  /** The reserved headers carrying them, as the broker reads them. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Held until a time still ahead (by this machine's clock). */
  readonly delayed: boolean;
}

/** Checks delayMs, deliverAt, ttlMs and priority as the broker will, and turns them into reserved headers. */
function queueAttributes(input: ProducerMessage, what: string): QueueAttributes {
  const headers: Array<readonly [string, string]> = [];
  let delayed = false;
  if (input.delayMs !== undefined && input.deliverAt !== undefined) throw invalid(`${what}: give delayMs or deliverAt, not both`);
  if (input.delayMs !== undefined) {
    const delayMs = input.delayMs;
    if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
      throw invalid(`${what}.delayMs must be a whole number of milliseconds from 0 to ${MAX_DELAY_MS} (10 years), not ${String(delayMs)}`);
    }
    headers.push(['weir.delayMs', String(delayMs)]);
    delayed = delayMs > 0;
  }
  if (input.deliverAt !== undefined) {
    const at = input.deliverAt instanceof Date ? input.deliverAt.getTime() : input.deliverAt;
    const now = Date.now();
    if (!Number.isSafeInteger(at) || at < 0 || at > now + MAX_DELAY_MS) {
      throw invalid(`${what}.deliverAt must be a Date or milliseconds since the epoch, at most 10 years ahead, not ${String(input.deliverAt)}`);
    }
    headers.push(['weir.deliverAt', String(at)]);
    delayed = at > now;
  }
  if (input.ttlMs !== undefined) {
    if (!Number.isSafeInteger(input.ttlMs) || input.ttlMs < 1) throw invalid(`${what}.ttlMs must be a whole number of milliseconds, at least 1, not ${String(input.ttlMs)}`);
    headers.push(['weir.ttlMs', String(input.ttlMs)]);
  }
  if (input.priority !== undefined) {
    if (!Number.isInteger(input.priority) || input.priority < 0 || input.priority > MAX_PRIORITY) {
      throw invalid(`${what}.priority must be an integer from 0 to ${MAX_PRIORITY}, not ${String(input.priority)}`);
    }
    headers.push(['weir.priority', String(input.priority)]);
  }
  return { headers, delayed };
}
