import { inspect } from 'node:util';
import type { StructOf } from 'weir-protocol';
import type { Connection } from './connection.js';
import type { ConsumedMessage } from './consumer.js';
import { toClientError, WeirClientError } from './errors.js';
import { asBuffer, decodeHeaderList } from './wire-message.js';

export interface NackOptions {
  /** Redeliver after this long (ms); default: the group's backoff, growing with each delivery. */
  delayMs?: number;
  /** Why processing failed; kept as `weir.dlq.error` if the message is dead-lettered later. */
  error?: string;
}

export interface RejectOptions {
  /** Why the message is rejected; kept as `weir.dlq.error` in the dead-letter topic. */
  reason?: string;
}

/**
 * What a settle resolves with: `true` when the broker applied the outcome; `false` when it ignored it because this
 * consumer no longer held the delivery (its lease expired and it went to another consumer). Outcomes travel in
 * batches and the broker answers with a count, so when it applied only part of a batch the client cannot tell which:
 * then `null`.
 */
export type SettleApplied = boolean | null;

/**
 * A message delivered by a work queue (shared or key_shared group): the fields of a consumed message plus its delivery
 * count, and the outcome methods. Each delivery takes exactly one outcome — `ack`, `nack` or `reject` — a second one
 * rejects with ALREADY_SETTLED. `extend` may be called any number of times before that.
 *
 * Settling a message whose connection closed rejects with CONNECTION_CLOSED: the broker has already handed the message
 * to another consumer (or will hand it again). Those rejections are marked handled, so a fire-and-forget `ack()` does
 * not crash the process when the connection drops; await the promise to see them.
 */
export interface QueueMessage extends ConsumedMessage {
  /** 1 for the first delivery. */
  readonly deliveryCount: number;
  /** Delivered before (deliveryCount > 1): processing may have happened in part. */
  readonly redelivered: boolean;
  /** The consumer the delivery is leased to (a pull consumer's id for `receive`). */
  readonly consumerId: string;
  /** Whether an outcome was given. */
  readonly settled: boolean;
  /** Done: the message is settled and never delivered again. */
  ack(): Promise<SettleApplied>;
  /** Failed, try again: the message is delivered again after `delayMs` (or the group's backoff). */
  nack(options?: NackOptions): Promise<SettleApplied>;
  /** Never: the message goes to the group's dead-letter topic at once. */
  reject(options?: RejectOptions): Promise<SettleApplied>;
  /** Still working: renews the lease for `ms` from now, so the ack timeout does not redeliver it. Resolves with whether it applied. */
  extend(ms: number): Promise<boolean>;
}

/** A message shown by `Admin.peek`: a ready message of a queue, not delivered by looking at it. */
export interface PeekedMessage extends ConsumedMessage {
  /** How often it was delivered before (0 for a message never delivered). */
  readonly deliveryCount: number;
}

export const OutcomeCode = { ack: 0, nack: 1, reject: 2 } as const;
type OutcomeValue = (typeof OutcomeCode)[keyof typeof OutcomeCode];

/** Outcomes per Settle request at most; more in one tick go out in several. */
export const MAX_OUTCOMES_PER_SETTLE = 1000;
/** The broker's limit for nack delays and lease extensions (12 hours). */
export const MAX_LEASE_MS = 12 * 3_600_000;
/** The broker's limit for an error text. */
const MAX_ERROR_CHARS = 4096;

interface PendingOutcome {
  readonly outcome: StructOf<'Outcome'>;
  readonly promise: Promise<SettleApplied>;
  resolve(applied: SettleApplied): void;
  reject(error: WeirClientError): void;
}

function noop(): void {}

/** Codes that mean "the lease is gone with the connection": expected, so not an unhandled rejection. */
function leaseLost(error: WeirClientError): boolean {
  return error.code === 'CONNECTION_CLOSED' || error.code === 'CLIENT_CLOSED';
}

function rejectPending(entry: PendingOutcome, error: WeirClientError): void {
  if (leaseLost(error)) entry.promise.catch(noop);
  entry.reject(error);
}

function rejected<T>(error: WeirClientError): Promise<T> {
  const promise = Promise.reject(error);
  if (leaseLost(error)) promise.catch(noop);
  return promise;
}

/**
 * The deliveries leased to one consumer id on one topic over one connection (leases die with their connection).
 * Outcomes given in one tick go out together in one Settle request (at most MAX_OUTCOMES_PER_SETTLE each), and each
 * promise settles when that request is answered.
 */
export class LeaseChannel {
  /** Set once outcomes can no longer apply (the connection closed, or the consumer closed); every later settle fails with it. */
  dead: WeirClientError | null = null;
  private pending: PendingOutcome[] = [];
  private scheduled = false;
  /** Settle requests not answered yet (a closing consumer waits for them before it unsubscribes). */
  readonly inFlight = new Set<Promise<void>>();

  constructor(
    readonly connection: Connection,
    readonly group: string,
    readonly topic: string,
    readonly consumerId: string,
    /** Pull channels (Receive) are not the consumer's to close: their leases belong to the connection. */
    readonly pull: boolean,
  ) {}

  settle(partition: number, offset: number, outcome: OutcomeValue, delayMs: number, error: string | null): Promise<SettleApplied> {
    if (this.dead !== null) return rejected(this.dead);
    let entry!: PendingOutcome;
    const promise = new Promise<SettleApplied>((resolve, reject) => {
      entry = { outcome: { partition, offset, outcome, delayMs, error }, promise: null as never, resolve, reject };
    });
    (entry as { promise: Promise<SettleApplied> }).promise = promise;
    this.pending.push(entry);
    if (this.pending.length >= MAX_OUTCOMES_PER_SETTLE) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
    return promise;
  }

  /** Sends every outcome given so far. */
  flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_OUTCOMES_PER_SETTLE);
      const request = this.connection
        .request('Settle', { group: this.group, topic: this.topic, consumerId: this.consumerId, outcomes: batch.map((entry) => entry.outcome) })
        .then(
          ({ applied }) => {
            const result: SettleApplied = applied >= batch.length ? true : applied <= 0 ? false : null;
            for (const entry of batch) entry.resolve(result);
          },
          (error: unknown) => {
            const failure = this.requestFailure(toClientError(error));
            for (const entry of batch) rejectPending(entry, copy(failure));
          },
        );
      this.inFlight.add(request);
      void request.finally(() => this.inFlight.delete(request));
    }
  }

  async extend(partition: number, offset: number, ms: number): Promise<boolean> {
    if (this.dead !== null) return rejected(this.dead);
    try {
      const { applied } = await this.connection.request('Extend', { group: this.group, topic: this.topic, consumerId: this.consumerId, ms, deliveries: [{ partition, offset }] });
      return applied > 0;
    } catch (error) {
      return rejected(this.requestFailure(toClientError(error)));
    }
  }

  /** No outcome can apply any more: those waiting to go out fail with `error`, and so does every later one. */
  kill(error: WeirClientError): void {
    if (this.dead !== null) return;
    this.dead = error;
    const pending = this.pending;
    this.pending = [];
    for (const entry of pending) rejectPending(entry, copy(error));
  }

  private requestFailure(error: WeirClientError): WeirClientError {
    if (error.code !== 'CONNECTION_CLOSED') return error;
    return new WeirClientError(
      'CONNECTION_CLOSED',
      `the connection to ${this.connection.address} closed before the broker answered (${error.message}); the outcome may or may not have applied, and a message it did not settle is redelivered`,
      { cause: error },
    );
  }
}

function copy(error: WeirClientError): WeirClientError {
  return new WeirClientError(error.code, error.message, { retriable: error.retriable, cause: error.cause });
}

function invalid(message: string): WeirClientError {
  return new WeirClientError('INVALID_ARGUMENT', message, { retriable: false });
}

function checkErrorText(name: string, text: string | undefined): string | null {
  if (text === undefined || text === null) return null;
  if (typeof text !== 'string') throw invalid(`${name} must be a string`);
  // The broker refuses longer texts (and the whole batch with them): cut here instead.
  return text.length > MAX_ERROR_CHARS ? text.slice(0, MAX_ERROR_CHARS) : text;
}

function checkMs(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > MAX_LEASE_MS) throw invalid(`${name} must be an integer from ${min} to ${MAX_LEASE_MS} ms, not ${String(value)}`);
  return value;
}

/** A delivery, decoded from the wire, with its lease. */
export class Delivered implements QueueMessage, PeekedMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly deliveryCount: number;
  readonly idBytes: Buffer;
  readonly key: Buffer | null;
  readonly tag: string | null;
  readonly headers: Record<string, string | Buffer>;
  readonly timestamp: number;
  readonly storeTimestamp: number;
  readonly body: Buffer;
  readonly #channel: LeaseChannel | null;
  #id: string | undefined = undefined;
  #settled = false;

  /** `channel` null: a peeked message (not leased; the outcome methods refuse). */
  constructor(topic: string, delivery: StructOf<'Delivery', 'decode'>, channel: LeaseChannel | null) {
    this.topic = topic;
    this.partition = delivery.partition;
    this.offset = delivery.offset;
    this.deliveryCount = delivery.deliveryCount;
    this.idBytes = asBuffer(delivery.id);
    this.key = delivery.key === null ? null : asBuffer(delivery.key);
    this.tag = delivery.tag;
    this.headers = delivery.headers.length === 0 ? {} : decodeHeaderList(delivery.headers);
    this.timestamp = delivery.timestamp;
    this.storeTimestamp = delivery.storeTimestamp;
    this.body = asBuffer(delivery.body);
    this.#channel = channel;
  }

  get id(): string {
    return (this.#id ??= this.idBytes.toString('hex'));
  }

  get redelivered(): boolean {
    return this.deliveryCount > 1;
  }

  get consumerId(): string {
    return this.#channel?.consumerId ?? '';
  }

  get settled(): boolean {
    return this.#settled;
  }

  /** @internal Whether the lease can still be settled (its connection and consumer are alive). */
  get live(): boolean {
    return this.#channel !== null && this.#channel.dead === null;
  }

  // Each outcome checks the lease first, then its arguments (a bad one throws and leaves the message unsettled).
  ack(): Promise<SettleApplied> {
    const channel = this.leased('ack');
    if (channel instanceof WeirClientError) return Promise.reject(channel);
    this.#settled = true;
    return channel.settle(this.partition, this.offset, OutcomeCode.ack, -1, null);
  }

  nack(options: NackOptions = {}): Promise<SettleApplied> {
    const channel = this.leased('nack');
    if (channel instanceof WeirClientError) return Promise.reject(channel);
    let delayMs: number, error: string | null;
    try {
      delayMs = options.delayMs === undefined ? -1 : checkMs('nack delayMs', options.delayMs, 0);
      error = checkErrorText('nack error', options.error);
    } catch (failure) {
      return Promise.reject(failure);
    }
    this.#settled = true;
    return channel.settle(this.partition, this.offset, OutcomeCode.nack, delayMs, error);
  }

  reject(options: RejectOptions = {}): Promise<SettleApplied> {
    const channel = this.leased('reject');
    if (channel instanceof WeirClientError) return Promise.reject(channel);
    let reason: string | null;
    try {
      reason = checkErrorText('reject reason', options.reason);
    } catch (failure) {
      return Promise.reject(failure);
    }
    this.#settled = true;
    return channel.settle(this.partition, this.offset, OutcomeCode.reject, -1, reason);
  }

  extend(ms: number): Promise<boolean> {
    const channel = this.leased('extend');
    if (channel instanceof WeirClientError) return Promise.reject(channel);
    try {
      checkMs('extend ms', ms, 1);
    } catch (failure) {
      return Promise.reject(failure);
    }
    return channel.extend(this.partition, this.offset, ms);
  }

  private leased(what: string): LeaseChannel | WeirClientError {
    if (this.#channel === null) return invalid(`cannot ${what} a peeked message: peeking does not deliver it`);
    if (this.#settled) {
      return new WeirClientError('ALREADY_SETTLED', `cannot ${what} message ${this.topic}/${this.partition}@${this.offset}: it was settled already (each delivery takes one ack, nack or reject)`);
    }
    return this.#channel;
  }

  /** Every field as a plain object. */
  toJSON(): Omit<QueueMessage, 'ack' | 'nack' | 'reject' | 'extend' | 'settled' | 'consumerId'> {
    return {
      topic: this.topic,
      partition: this.partition,
      offset: this.offset,
      deliveryCount: this.deliveryCount,
      redelivered: this.redelivered,
      id: this.id,
      idBytes: this.idBytes,
      key: this.key,
      tag: this.tag,
      headers: this.headers,
      timestamp: this.timestamp,
      storeTimestamp: this.storeTimestamp,
      body: this.body,
    };
  }

  [inspect.custom](depth: number, options: object): string {
    return `QueueMessage ${inspect(this.toJSON(), { ...options, depth })}`;
  }
}
