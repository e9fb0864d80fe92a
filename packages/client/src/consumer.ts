import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { decodeRecordBatches, RecordFlag, type FetchedMessage, type TopicPartitions } from 'weir-protocol';
import { backoffDelay, resolveRetry, sleep, type RetryOptions } from './backoff.js';
import type { WeirClient } from './client.js';
import { clientClosed, cloneError, isWeirClientError, toClientError, WeirClientError } from './errors.js';

/** A message as the consumer yields it. Byte fields are views of the fetched frame (copy them to keep them long). */
export interface ConsumedMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** The message id as lowercase hex. */
  readonly id: string;
  readonly idBytes: Buffer;
  readonly key: Buffer | null;
  readonly tag: string | null;
  readonly headers: Record<string, string | Buffer>;
  /** The message's own time (the producer's, else the broker's append time), ms since the epoch. */
  readonly timestamp: number;
  /** When the broker stored it, ms since the epoch. */
  readonly storeTimestamp: number;
  readonly body: Buffer;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface RebalanceEvent {
  /** Partitions this consumer owns now and did not before. */
  readonly assigned: TopicPartition[];
  /** Partitions it owned before and does not any more. */
  readonly revoked: TopicPartition[];
  /** Everything it owns now. */
  readonly assignment: TopicPartition[];
  /** The group generation (-1 outside group coordination). */
  readonly generation: number;
}

export type AssignmentStrategy = 'range' | 'round-robin' | 'sticky';

export interface ConsumerOptions {
  /** Consumer group. Without one the consumer reads every partition from `from` and never commits. */
  group?: string;
  /**
   * `stream` (default with a group): the group's members share the partitions, each partition read by one member.
   * `broadcast`: every instance reads every partition and keeps its own offsets under `<group>/<instanceId>`.
   */
  mode?: 'stream' | 'broadcast';
  /**
   * Broadcast mode: this instance's name (default a random one). Offsets are committed per instance, so an instance
   * restarted with the same `instanceId` resumes where it stopped; a random one starts afresh from `from`.
   */
  instanceId?: string;
  /** Commit what was consumed every `autoCommitIntervalMs`, before a rebalance and on close (default true). */
  autoCommit?: boolean;
  autoCommitIntervalMs?: number;
  /** Stream mode: the broker drops this member when no heartbeat arrives for this long (default 10 s). */
  sessionTimeoutMs?: number;
  /** Stream mode: how long a rebalance waits for members to rejoin (default 30 s). */
  rebalanceTimeoutMs?: number;
  /** Stream mode: heartbeat interval (default sessionTimeoutMs / 3). */
  heartbeatIntervalMs?: number;
  /** Stream mode: assignment strategy, used when this member is the first of the group (default `range`). */
  strategy?: AssignmentStrategy;
  /** Where to start a partition with no committed offset (default `earliest`). */
  from?: 'earliest' | 'latest';
  /** Most bytes one Fetch returns (default 1 MiB; at least one whole batch is returned). */
  maxBytes?: number;
  /** Longest a Fetch waits for data (long poll; default 500 ms). */
  maxWaitMs?: number;
  /** Backoff after failed fetches and joins (default: the client's `retry`; retries never stop while open). */
  retry?: Partial<RetryOptions>;
  /**
   * Check each fetched record batch's CRC-32C (default true). A mismatch fails the fetch with DATA_DAMAGED (retried
   * with backoff, reported on 'error'). Turning it off saves the checksum's CPU and trusts the connection and broker.
   */
  verifyCrc?: boolean;
}

interface ConsumerEvents {
  rebalance: [event: RebalanceEvent];
  /** Problems the consumer works around (it keeps going); only emitted when a listener is attached. */
  error: [error: WeirClientError];
}

/** Per-message memory estimate beyond its bytes in the response frame. */
const MESSAGE_OVERHEAD = 96;
const EMPTY_CHUNK: Chunk = { messages: [], messageBytes: 0 };

/** One partition this consumer reads. */
class PartitionState {
  readonly key: string;
  /** Next offset to fetch; -1 until the start position is known. */
  position = -1;
  /** Offset after the last message handed to the application; -1 when none. */
  yielded = -1;
  /** Offset after the last message whose processing finished (the application asked for the next one). */
  processed = -1;
  /** Last committed offset known (-1 none). */
  committed = -1;
  /** Moved by `seek` since the last commit: the next commit stores the position even when it went backwards. */
  seeked = false;
  /** Fetched messages not yet handed out, one chunk per Fetch response; the head chunk is read from `cursor` on. */
  chunks: Chunk[] = [];
  chunkHead = 0;
  cursor = 0;
  /** Estimated memory of the buffered messages (their share of the response frames, plus per-message overhead). */
  bufferedBytes = 0;
  fetching = false;
  /** Cancels the fetch in flight (its answer is then ignored); null when none is. */
  fetchAbort: AbortController | null = null;
  paused = false;
  active = true;
  /** Bumped by seek and stop: a fetch answered for an older epoch is dropped. */
  epoch = 0;
  /** Consecutive failed fetches (backoff exponent). */
  failures = 0;
  retryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {
    this.key = partitionKey(topic, partition);
  }
}

/** The messages one Fetch response added to a partition's buffer. */
interface Chunk {
  readonly messages: readonly FetchedMessage[];
  /** Each message's share of `bufferedBytes`. */
  readonly messageBytes: number;
}

function hasBuffered(state: PartitionState): boolean {
  return state.chunkHead < state.chunks.length;
}

function clearBuffer(state: PartitionState): void {
  state.chunks = [];
  state.chunkHead = 0;
  state.cursor = 0;
  state.bufferedBytes = 0;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * What the consumer yields: topic, partition and offset are plain properties; the other fields are read from the
 * fetched message (itself decoded lazily) on first access, so a reader pays only for the fields it uses. The id's hex
 * string is built once, when first read.
 */
class ConsumerRecord implements ConsumedMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly #message: FetchedMessage;
  #id: string | undefined = undefined;

  constructor(topic: string, partition: number, offset: number, message: FetchedMessage) {
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.#message = message;
  }

  get id(): string {
    return (this.#id ??= this.#message.id.toString('hex'));
  }

  get idBytes(): Buffer {
    return this.#message.id;
  }

  get key(): Buffer | null {
    return this.#message.key;
  }

  get tag(): string | null {
    return this.#message.tag;
  }

  get headers(): Record<string, string | Buffer> {
    return this.#message.headers;
  }

  get timestamp(): number {
    return this.#message.timestamp;
  }

  get storeTimestamp(): number {
    return this.#message.storeTimestamp;
  }

  get body(): Buffer {
    return this.#message.body;
  }

  /** Every field as a plain object. */
  toJSON(): ConsumedMessage {
    return {
      topic: this.topic,
      partition: this.partition,
      offset: this.offset,
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

  [INSPECT](depth: number, options: object, inspect: (value: unknown, options: object) => string): string {
    return `ConsumedMessage ${inspect(this.toJSON(), { ...options, depth })}`;
  }
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function sortPartitions(list: TopicPartition[]): TopicPartition[] {
  return list.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
}

/** Errors that mean "join the group again" rather than "something is wrong". */
const REJOIN_CODES = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER']);

/**
 * Reads messages: `await consumer.subscribe('orders')`, then `for await (const message of consumer)`.
 *
 * Fetching: one long-polling Fetch in flight per partition read; its messages wait in a per-partition buffer, and the
 * next Fetch goes out while the buffer holds less than half of `maxBytes` (so memory stays around `maxBytes` per
 * partition). The iterator takes messages from the partitions in turn, a Fetch response's worth at a time, each
 * partition's in offset order. Messages decode their fields on first access.
 *
 * Groups (stream mode): JoinGroup → SyncGroup gives this member its partitions; each starts at the group's committed
 * offset (or `from`). A Heartbeat goes out every `heartbeatIntervalMs`; when the broker answers that the group is
 * rebalancing (or that this member's generation or id is stale), the consumer stops its partitions, commits what it
 * yielded (with autoCommit), and joins again. `close()` commits and sends LeaveGroup, so the others take over at once.
 *
 * Commits: the offset after the last message yielded per partition. The auto-commit timer commits only messages the
 * application has finished with (it asked for the next one), so a crash mid-message never skips that message; an
 * explicit `commit()`, a rebalance and `close()` commit everything yielded.
 *
 * Breaking out of `for await` does not close the consumer: iterate again to continue, or call `close()`.
 */
export class Consumer extends EventEmitter<ConsumerEvents> implements AsyncIterable<ConsumedMessage> {
  readonly group: string | null;
  readonly mode: 'stream' | 'broadcast' | null;
  /** Broadcast mode: this instance's name. */
  readonly instanceId: string | null;
  private readonly autoCommit: boolean;
  private readonly autoCommitIntervalMs: number;
  private readonly sessionTimeoutMs: number;
  private readonly rebalanceTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly strategy: AssignmentStrategy;
  private readonly from: 'earliest' | 'latest';
  private readonly maxBytes: number;
  private readonly maxWaitMs: number;
  private readonly retry: RetryOptions;
  private readonly verifyCrc: boolean;

  private readonly topics = new Set<string>();
  private partitions = new Map<string, PartitionState>();
  /** Partitions with buffered messages waiting for their turn, in turn order (not `current`). */
  private readonly ready = new Set<PartitionState>();
  /** The partition whose turn it is: it hands out the rest of its head chunk, then goes to the back of `ready`. */
  private current: PartitionState | null = null;
  private readonly pausedTopics = new Set<string>();
  private readonly pausedPartitions = new Set<string>();
  private iteratorWaiters: Array<() => void> = [];
  /** The partition and offset after the message handed out last (finished when the next one is asked for). */
  private lastState: PartitionState | null = null;
  private lastNext = -1;

  // Group membership (stream mode).
  private memberId = '';
  private generation = -1;
  private groupLoopRunning = false;
  private rejoinNeeded = false;
  private groupWake: (() => void) | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Bumped when heartbeats stop: an answer to an older heartbeat is ignored. */
  private heartbeatEpoch = 0;
  /** Calls of `subscribe` waiting for the assignment that includes their topics. */
  private assignmentWaiters: Array<{ version: number; resolve(): void; reject(error: unknown): void }> = [];
  /** Bumped by every subscribe that adds topics; a join answers the waiters of the versions it included. */
  private subscriptionVersion = 0;
  private joinFailures = 0;

  private autoCommitTimer: NodeJS.Timeout | null = null;
  private discoveryTimer: NodeJS.Timeout | null = null;
  private committing: Promise<void> | null = null;
  private readonly stopping = new AbortController();
  private closing = false;
  private closed = false;
  private fatal: WeirClientError | null = null;
  private closePromise: Promise<void> | null = null;

  constructor(
    private readonly client: WeirClient,
    options: ConsumerOptions = {},
  ) {
    super();
    this.group = options.group ?? null;
    if (this.group !== null && (typeof this.group !== 'string' || this.group.length === 0)) throw new TypeError('group must be a non-empty string');
    if (options.mode !== undefined && options.mode !== 'stream' && options.mode !== 'broadcast') {
      throw new TypeError(`mode must be stream or broadcast, not ${String(options.mode)}`);
    }
    if (this.group === null && options.mode !== undefined) throw new TypeError(`mode ${options.mode} needs a group; give \`group\``);
    this.mode = this.group === null ? null : (options.mode ?? 'stream');
    this.instanceId = this.mode === 'broadcast' ? (options.instanceId ?? randomUUID()) : null;
    this.autoCommit = options.autoCommit ?? true;
    this.autoCommitIntervalMs = positive('autoCommitIntervalMs', options.autoCommitIntervalMs ?? 5000);
    this.sessionTimeoutMs = positive('sessionTimeoutMs', options.sessionTimeoutMs ?? 10_000);
    this.rebalanceTimeoutMs = positive('rebalanceTimeoutMs', options.rebalanceTimeoutMs ?? 30_000);
    this.heartbeatIntervalMs = positive('heartbeatIntervalMs', options.heartbeatIntervalMs ?? Math.max(1, Math.floor(this.sessionTimeoutMs / 3)));
    this.strategy = options.strategy ?? 'range';
    if (!['range', 'round-robin', 'sticky'].includes(this.strategy)) throw new TypeError(`strategy must be range, round-robin or sticky, not ${String(this.strategy)}`);
    this.from = options.from ?? 'earliest';
    if (this.from !== 'earliest' && this.from !== 'latest') throw new TypeError(`from must be earliest or latest, not ${String(this.from)}`);
    this.maxBytes = positive('maxBytes', options.maxBytes ?? 1024 * 1024);
    this.maxWaitMs = nonNegative('maxWaitMs', options.maxWaitMs ?? 500);
    this.retry = resolveRetry(options.retry, client.retry);
    this.verifyCrc = options.verifyCrc ?? true;
  }

  /** The group name offsets are committed under (`<group>/<instanceId>` in broadcast mode), or null. */
  get commitGroup(): string | null {
    if (this.group === null) return null;
    return this.mode === 'broadcast' ? `${this.group}/${this.instanceId}` : this.group;
  }

  /** Partitions this consumer reads now. */
  assignment(): TopicPartition[] {
    return sortPartitions([...this.partitions.values()].filter((state) => state.active).map(({ topic, partition }) => ({ topic, partition })));
  }

  /**
   * Subscribes to one or more topics. Resolves once the consumer reads them: in stream mode when the group assigned
   * this member its partitions (possibly none); otherwise when every partition's start position is known. Rejects
   * with UNKNOWN_TOPIC (outside stream mode) for a topic that does not exist.
   */
  async subscribe(topics: string | readonly string[]): Promise<void> {
    this.checkOpen();
    const list = typeof topics === 'string' ? [topics] : [...topics];
    if (list.length === 0) throw new WeirClientError('INVALID_ARGUMENT', 'subscribe needs at least one topic', { retriable: false });
    for (const topic of list) {
      if (typeof topic !== 'string' || topic.length === 0) throw new WeirClientError('INVALID_ARGUMENT', `a topic is a non-empty string, not ${JSON.stringify(topic)}`, { retriable: false });
    }
    const added = list.filter((topic) => !this.topics.has(topic));
    if (this.mode === 'stream') {
      for (const topic of added) this.topics.add(topic);
      if (added.length === 0 && this.generation >= 0) return;
      const version = ++this.subscriptionVersion;
      const assigned = new Promise<void>((resolve, reject) => this.assignmentWaiters.push({ version, resolve, reject }));
      this.requestRejoin();
      if (!this.groupLoopRunning) void this.groupLoop();
      this.startAutoCommit();
      return assigned;
    }
    const descriptions = await Promise.all(added.map((topic) => this.client.metadata.describe(topic)));
    this.checkOpen();
    const assigned: TopicPartition[] = [];
    const states: PartitionState[] = [];
    const newTopics: string[] = [];
    for (const description of descriptions) {
      if (this.topics.has(description.name)) continue;
      this.topics.add(description.name);
      newTopics.push(description.name);
      for (const { partition } of description.partitions) {
        const state = this.addPartition(description.name, partition);
        states.push(state);
        assigned.push({ topic: description.name, partition });
      }
    }
    try {
      await this.initialisePositions(states, this.from);
    } catch (error) {
      // Leave no half-subscribed topic behind: a later subscribe can try again.
      for (const state of states) this.partitions.delete(state.key);
      for (const topic of newTopics) this.topics.delete(topic);
      throw error;
    }
    this.startAutoCommit();
    this.startDiscovery();
    this.emitRebalance(sortPartitions(assigned), [], -1);
    for (const state of states) this.maybeFetch(state);
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    return {
      next: () => this.next(),
      return: async () => {
        this.finishLastMessage();
        return { done: true, value: undefined };
      },
    };
  }

  /** The next message; waits for one. Resolves `done` once the consumer is closed. */
  next(): Promise<IteratorResult<ConsumedMessage, undefined>> {
    this.finishLastMessage();
    if (this.fatal !== null) return Promise.reject(cloneError(this.fatal));
    if (this.closed || this.closing) return Promise.resolve({ done: true, value: undefined });
    // A buffered message is handed out at once, without an async function's extra promise and ticks.
    const message = this.take();
    if (message !== null) return Promise.resolve({ done: false, value: message });
    return this.waitForMessage();
  }

  private async waitForMessage(): Promise<IteratorResult<ConsumedMessage, undefined>> {
    for (;;) {
      await new Promise<void>((resolve) => this.iteratorWaiters.push(resolve));
      if (this.fatal !== null) throw cloneError(this.fatal);
      if (this.closed || this.closing) return { done: true, value: undefined };
      const message = this.take();
      if (message !== null) return { done: false, value: message };
    }
  }

  /**
   * Commits, per partition, the offset after the last message yielded. Needs a group (offsets are stored under it).
   * Rejects with REBALANCE_IN_PROGRESS/ILLEGAL_GENERATION/UNKNOWN_MEMBER when the group moved on (the consumer then
   * rejoins by itself; the partitions' new owners start from the last successful commit).
   */
  async commit(): Promise<void> {
    if (this.group === null) {
      throw new WeirClientError('INVALID_ARGUMENT', 'this consumer has no group, so it has nowhere to commit offsets; create it with `group`', { retriable: false });
    }
    this.checkOpen();
    await this.commitPositions('yielded');
  }

  /**
   * Moves where a partition (or every partition this consumer reads of `topic`) continues: an offset, `earliest`,
   * `latest`, or the first message stored at or after a Date. Buffered messages of the partition are dropped. A later
   * commit stores the new position.
   */
  async seek(target: { topic: string; partition?: number; to: 'earliest' | 'latest' | number | Date }): Promise<void> {
    this.checkOpen();
    const states = [...this.partitions.values()].filter((state) => state.active && state.topic === target.topic && (target.partition === undefined || state.partition === target.partition));
    if (states.length === 0) {
      const which = target.partition === undefined ? `any partition of ${JSON.stringify(target.topic)}` : `partition ${target.partition} of ${JSON.stringify(target.topic)}`;
      throw new WeirClientError('INVALID_ARGUMENT', `this consumer does not read ${which}; subscribe first (in a group, only assigned partitions can be moved)`, { retriable: false });
    }
    const to = target.to;
    if (typeof to === 'number' && (!Number.isSafeInteger(to) || to < 0)) {
      throw new WeirClientError('INVALID_ARGUMENT', `seek offset must be a non-negative integer, not ${to}`, { retriable: false });
    }
    const offsets = await Promise.all(
      states.map((state) => {
        if (typeof to === 'number') return to;
        const timestamp = to === 'earliest' ? -2 : to === 'latest' ? -1 : to.getTime();
        return this.listOffset(state, timestamp);
      }),
    );
    states.forEach((state, index) => {
      if (!state.active) return;
      this.resetPartition(state, offsets[index]!);
      state.yielded = state.processed = offsets[index]!;
      state.seeked = true;
      this.maybeFetch(state);
    });
  }

  /** Stops yielding (and fetching) the given partitions of a topic, or all of them; `resume` undoes it. */
  pause(topic: string, partitions?: readonly number[]): void {
    if (partitions === undefined) this.pausedTopics.add(topic);
    else for (const partition of partitions) this.pausedPartitions.add(partitionKey(topic, partition));
    for (const state of this.partitions.values()) {
      if (state.topic !== topic || (partitions !== undefined && !partitions.includes(state.partition))) continue;
      state.paused = true;
      this.ready.delete(state);
    }
  }

  resume(topic: string, partitions?: readonly number[]): void {
    if (partitions === undefined) {
      this.pausedTopics.delete(topic);
      for (const key of [...this.pausedPartitions]) if (key.startsWith(`${topic}\u0000`)) this.pausedPartitions.delete(key);
    } else for (const partition of partitions) this.pausedPartitions.delete(partitionKey(topic, partition));
    for (const state of this.partitions.values()) {
      if (state.topic !== topic || (partitions !== undefined && !partitions.includes(state.partition))) continue;
      if (this.isPaused(state)) continue;
      state.paused = false;
      if (hasBuffered(state) && state !== this.current) this.ready.add(state);
      this.maybeFetch(state);
    }
    this.wakeIterators();
  }

  /** Commits (with autoCommit), leaves the group, and ends every iteration. */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.closing = true;
      this.stopTimers();
      this.finishLastMessage();
      for (const state of this.partitions.values()) this.stopPartition(state);
      this.wakeIterators();
      try {
        if (this.autoCommit && this.group !== null && this.fatal === null) {
          await this.commitPositions('yielded').catch((error: unknown) => this.report(toClientError(error)));
        }
        if (this.mode === 'stream' && this.memberId !== '') {
          const memberId = this.memberId;
          this.memberId = '';
          await this.client.request('LeaveGroup', { group: this.group!, memberId }).catch(() => {});
        }
      } finally {
        this.closed = true;
        this.stopping.abort(clientClosed('the consumer'));
        this.wakeGroupLoop();
        this.rejectAssignmentWaiters(clientClosed('the consumer'));
        this.wakeIterators();
        this.client.untrack(this);
      }
    })();
    return this.closePromise;
  }

  /** Stops at once, as if the process died: no commit, no LeaveGroup (the group notices when the session times out). */
  abort(): void {
    this.closing = true;
    this.closed = true;
    this.stopTimers();
    for (const state of this.partitions.values()) this.stopPartition(state);
    this.stopping.abort(clientClosed('the consumer'));
    this.wakeGroupLoop();
    this.rejectAssignmentWaiters(clientClosed('the consumer'));
    this.wakeIterators();
    this.client.untrack(this);
    this.closePromise ??= Promise.resolve();
  }

  // ---- yielding -------------------------------------------------------------------------------------------------------

  /**
   * The next buffered message, or null. Partitions take turns by chunk (the messages of one Fetch response): the
   * current partition hands out the rest of its head chunk, then goes to the back of the line.
   */
  private take(): ConsumedMessage | null {
    for (;;) {
      const state = this.current;
      if (state === null) {
        if (this.ready.size === 0) return null;
        const next = this.ready.values().next().value!;
        this.ready.delete(next);
        if (next.active && !next.paused && hasBuffered(next)) this.current = next;
        continue;
      }
      if (!state.active || state.paused || !hasBuffered(state)) {
        this.current = null;
        continue;
      }
      const chunk = state.chunks[state.chunkHead]!;
      const message = chunk.messages[state.cursor++]!;
      state.bufferedBytes -= chunk.messageBytes;
      if (state.cursor === chunk.messages.length) {
        // End of the chunk, and of this partition's turn.
        state.chunks[state.chunkHead++] = EMPTY_CHUNK;
        state.cursor = 0;
        if (state.chunkHead === state.chunks.length) clearBuffer(state);
        else this.ready.add(state);
        this.current = null;
      }
      const offset = message.offset;
      state.yielded = offset + 1;
      this.lastState = state;
      this.lastNext = offset + 1;
      if (!state.fetching && state.bufferedBytes < this.maxBytes / 2) this.maybeFetch(state);
      return new ConsumerRecord(state.topic, state.partition, offset, message);
    }
  }

  private finishLastMessage(): void {
    const state = this.lastState;
    if (state === null) return;
    this.lastState = null;
    if (state.active && this.lastNext > state.processed) state.processed = this.lastNext;
  }

  private wakeIterators(): void {
    const waiters = this.iteratorWaiters;
    this.iteratorWaiters = [];
    for (const wake of waiters) wake();
  }

  // ---- fetching -------------------------------------------------------------------------------------------------------

  private addPartition(topic: string, partition: number): PartitionState {
    const state = new PartitionState(topic, partition);
    state.paused = this.isPaused(state);
    this.partitions.set(state.key, state);
    return state;
  }

  private isPaused(state: PartitionState): boolean {
    return this.pausedTopics.has(state.topic) || this.pausedPartitions.has(state.key);
  }

  private maybeFetch(state: PartitionState): void {
    if (!state.active || state.paused || state.fetching || state.retryTimer !== null || state.position < 0 || this.closing) return;
    if (state.bufferedBytes >= this.maxBytes / 2) return;
    state.fetching = true;
    const epoch = state.epoch;
    const offset = state.position;
    const controller = new AbortController();
    state.fetchAbort = controller;
    this.client
      .request(
        'Fetch',
        { topic: state.topic, partition: state.partition, offset, maxBytes: this.maxBytes, minBytes: 1, maxWaitMs: this.maxWaitMs },
        // The partition's own controller is enough: close(), abort(), seeks and rebalances all abort it. Combining it
        // with `stopping` through AbortSignal.any would cost a signal per fetch that Node 20 does not free.
        { timeoutMs: this.client.requestTimeoutMs + this.maxWaitMs, signal: controller.signal },
      )
      .then(
        (response) => {
          if (state.fetchAbort !== controller) return; // cancelled by a seek or a stop
          state.fetchAbort = null;
          state.fetching = false;
          if (epoch !== state.epoch || !state.active) return this.maybeFetch(state);
          let messages: FetchedMessage[];
          try {
            messages = decodeRecordBatches(response.records, offset, { verifyCrc: this.verifyCrc });
          } catch (error) {
            return this.fetchFailed(state, toClientError(error));
          }
          state.failures = 0;
          // Usually every message is new and none is a control record: the decoded list is buffered as it is.
          let kept: FetchedMessage[] = messages;
          for (let index = 0; index < messages.length; index++) {
            const message = messages[index]!;
            if (message.offset >= state.position && (message.flags & RecordFlag.Control) === 0) {
              state.position = message.offset + 1;
              continue;
            }
            kept = messages.slice(0, index);
            for (let rest = index; rest < messages.length; rest++) {
              const other = messages[rest]!;
              if (other.offset < state.position) continue;
              state.position = other.offset + 1;
              if ((other.flags & RecordFlag.Control) === 0) kept.push(other);
            }
            break;
          }
          if (kept.length > 0) {
            const messageBytes = response.records.length / kept.length + MESSAGE_OVERHEAD;
            state.chunks.push({ messages: kept, messageBytes });
            state.bufferedBytes += messageBytes * kept.length;
            if (!state.paused) {
              if (state !== this.current) this.ready.add(state);
              this.wakeIterators();
            }
          }
          this.maybeFetch(state);
        },
        (error: unknown) => {
          if (state.fetchAbort !== controller) return;
          state.fetchAbort = null;
          state.fetching = false;
          if (epoch !== state.epoch || !state.active || this.closing) return this.maybeFetch(state);
          this.fetchFailed(state, toClientError(error));
        },
      );
  }

  private fetchFailed(state: PartitionState, error: WeirClientError): void {
    if (error.code === 'CLIENT_CLOSED') return;
    if (error.code === 'OFFSET_OUT_OF_RANGE') {
      this.report(new WeirClientError('OFFSET_OUT_OF_RANGE', `${error.message}; ${state.topic}/${state.partition} continues from the ${this.from} offset`, { retriable: false, cause: error }));
      const epoch = state.epoch;
      this.listOffset(state, this.from === 'earliest' ? -2 : -1).then(
        (offset) => {
          if (epoch !== state.epoch || !state.active) return;
          state.position = offset;
          this.maybeFetch(state);
        },
        (failure: unknown) => this.retryFetchLater(state, toClientError(failure)),
      );
      return;
    }
    if (error.code === 'UNKNOWN_TOPIC' || error.code === 'INVALID_PARTITION') this.client.metadata.invalidate(state.topic);
    if (!error.retriable || state.failures >= 3) this.report(error);
    this.retryFetchLater(state, error);
  }

  private retryFetchLater(state: PartitionState, error: WeirClientError): void {
    if (!state.active || this.closing) return;
    // Retriable trouble (a broker restart) backs off gradually; anything else waits the longest delay.
    const delay = error.retriable ? backoffDelay(state.failures, this.retry) : this.retry.maxMs;
    state.failures++;
    state.retryTimer = setTimeout(() => {
      state.retryTimer = null;
      this.maybeFetch(state);
    }, delay);
  }

  /** Cancels the partition's fetch in flight: a long poll for the old position must not delay the new one. */
  private cancelFetch(state: PartitionState): void {
    const controller = state.fetchAbort;
    state.fetchAbort = null;
    state.fetching = false;
    controller?.abort(clientClosed('the fetch'));
  }

  private resetPartition(state: PartitionState, position: number): void {
    this.cancelFetch(state);
    state.epoch++;
    state.position = position;
    clearBuffer(state);
    this.ready.delete(state);
  }

  private stopPartition(state: PartitionState): void {
    this.cancelFetch(state);
    state.active = false;
    state.epoch++;
    clearBuffer(state);
    if (state.retryTimer !== null) clearTimeout(state.retryTimer);
    state.retryTimer = null;
    this.ready.delete(state);
  }

  private async listOffset(state: PartitionState, timestamp: number): Promise<number> {
    const { offset } = await this.client.requestWithRetry('ListOffsets', { topic: state.topic, partition: state.partition, timestamp }, { signal: this.stopping.signal });
    return offset;
  }

  /** Sets each partition's start: its committed offset (with a group), else `from`. */
  private async initialisePositions(states: readonly PartitionState[], from: 'earliest' | 'latest'): Promise<void> {
    const commitGroup = this.commitGroup;
    if (commitGroup !== null) {
      for (const topic of new Set(states.map((state) => state.topic))) {
        const { offsets } = await this.client.requestWithRetry('FetchOffsets', { group: commitGroup, topic }, { signal: this.stopping.signal });
        for (const entry of offsets) {
          const state = this.partitions.get(partitionKey(topic, entry.partition));
          if (state === undefined || !states.includes(state) || entry.offset < 0) continue;
          state.position = state.committed = state.yielded = state.processed = entry.offset;
        }
      }
    }
    const missing = states.filter((state) => state.position < 0);
    const offsets = await Promise.all(missing.map((state) => this.listOffset(state, from === 'earliest' ? -2 : -1)));
    missing.forEach((state, index) => {
      state.position = offsets[index]!;
    });
  }

  /** Outside stream mode: picks up partitions added to subscribed topics (they start at their earliest offset). */
  private startDiscovery(): void {
    if (this.discoveryTimer !== null) return;
    const interval = Math.max(1000, Math.min(60_000, this.client.metadata.maxAge));
    this.discoveryTimer = setInterval(() => {
      void this.discoverPartitions().catch((error: unknown) => this.report(toClientError(error)));
    }, interval);
    this.discoveryTimer.unref();
  }

  private async discoverPartitions(): Promise<void> {
    const added: PartitionState[] = [];
    for (const topic of this.topics) {
      const description = await this.client.metadata.describe(topic, true);
      for (const { partition } of description.partitions) {
        if (this.closing || this.partitions.has(partitionKey(topic, partition))) continue;
        added.push(this.addPartition(topic, partition));
      }
    }
    if (added.length === 0 || this.closing) return;
    await this.initialisePositions(added, 'earliest');
    this.emitRebalance(
      sortPartitions(added.map(({ topic, partition }) => ({ topic, partition }))),
      [],
      -1,
    );
    for (const state of added) this.maybeFetch(state);
  }

  // ---- committing -----------------------------------------------------------------------------------------------------

  private startAutoCommit(): void {
    if (!this.autoCommit || this.group === null || this.autoCommitTimer !== null) return;
    this.autoCommitTimer = setInterval(() => {
      if (this.closing) return;
      this.commitPositions('processed').catch((error: unknown) => this.report(toClientError(error)));
    }, this.autoCommitIntervalMs);
    this.autoCommitTimer.unref();
  }

  /** Commits `yielded` or `processed` positions that moved past the last commit. One commit at a time. */
  private async commitPositions(which: 'yielded' | 'processed'): Promise<void> {
    while (this.committing !== null) await this.committing.catch(() => {});
    const group = this.commitGroup;
    if (group === null) return;
    const states = [...this.partitions.values()].filter(
      (state) => state[which] >= 0 && (state[which] > state.committed || (state.seeked && state[which] !== state.committed)),
    );
    if (states.length === 0) return;
    const offsets = states.map((state) => ({ topic: state.topic, partition: state.partition, offset: state[which], metadata: '' }));
    const stream = this.mode === 'stream';
    const body = { group, generation: stream ? this.generation : -1, memberId: stream ? this.memberId : '', offsets };
    if (stream && (this.generation < 0 || this.memberId === '')) return;
    const request = (async () => {
      try {
        await (stream ? this.client.request('CommitOffsets', body) : this.client.requestWithRetry('CommitOffsets', body));
      } catch (error) {
        const failure = toClientError(error);
        if (stream && REJOIN_CODES.has(failure.code) && !this.closing) {
          if (failure.code === 'UNKNOWN_MEMBER') this.memberId = '';
          this.requestRejoin();
        }
        throw failure;
      }
      offsets.forEach((entry, index) => {
        const state = states[index]!;
        state.committed = entry.offset;
        if (state[which] === entry.offset) state.seeked = false;
      });
    })();
    this.committing = request;
    try {
      await request;
    } finally {
      this.committing = null;
    }
  }

  // ---- group membership (stream mode) ---------------------------------------------------------------------------------

  private requestRejoin(): void {
    this.rejoinNeeded = true;
    this.wakeGroupLoop();
  }

  private wakeGroupLoop(): void {
    const wake = this.groupWake;
    this.groupWake = null;
    wake?.();
  }

  private async groupLoop(): Promise<void> {
    this.groupLoopRunning = true;
    try {
      while (!this.closing) {
        if (!this.rejoinNeeded) {
          await new Promise<void>((resolve) => {
            this.groupWake = resolve;
          });
          continue;
        }
        this.rejoinNeeded = false;
        this.stopHeartbeat();
        await this.revokeAll();
        if (this.closing) break;
        try {
          await this.joinAndSync();
          this.joinFailures = 0;
        } catch (error) {
          if (this.closing) break;
          const failure = toClientError(error);
          if (!failure.retriable && !REJOIN_CODES.has(failure.code)) {
            this.failFatal(failure);
            break;
          }
          this.report(failure);
          await sleep(backoffDelay(this.joinFailures++, this.retry), this.stopping.signal);
          this.rejoinNeeded = true;
        }
      }
    } finally {
      this.groupLoopRunning = false;
    }
  }

  /** Stops every partition, committing what was yielded first (with autoCommit). */
  private async revokeAll(): Promise<void> {
    const states = [...this.partitions.values()].filter((state) => state.active);
    if (states.length === 0) return;
    this.finishLastMessage();
    // Stopped partitions keep their positions, so what was yielded can still be committed.
    for (const state of states) this.stopPartition(state);
    if (this.autoCommit) {
      try {
        await this.commitPositions('yielded');
      } catch (error) {
        const failure = toClientError(error);
        if (!REJOIN_CODES.has(failure.code)) this.report(failure);
      }
      this.rejoinNeeded = false; // a REBALANCE answer to that commit asks for the join we are about to do
    }
  }

  private async joinAndSync(): Promise<void> {
    const group = this.group!;
    for (;;) {
      if (this.closing) return;
      const version = this.subscriptionVersion;
      let join;
      try {
        join = await this.client.request(
          'JoinGroup',
          {
            group,
            memberId: this.memberId,
            topics: [...this.topics].sort(),
            strategy: this.strategy,
            sessionTimeoutMs: this.sessionTimeoutMs,
            rebalanceTimeoutMs: this.rebalanceTimeoutMs,
          },
          { timeoutMs: this.rebalanceTimeoutMs + this.client.requestTimeoutMs, signal: this.stopping.signal },
        );
      } catch (error) {
        if (isWeirClientError(error, 'UNKNOWN_MEMBER')) {
          this.memberId = '';
          continue;
        }
        throw error;
      }
      this.memberId = join.memberId;
      this.generation = join.generation;
      let assignment: readonly TopicPartitions[];
      try {
        ({ assignment } = await this.client.request('SyncGroup', { group, generation: join.generation, memberId: join.memberId }, { signal: this.stopping.signal }));
      } catch (error) {
        const failure = toClientError(error);
        if (failure.code === 'UNKNOWN_MEMBER') this.memberId = '';
        if (REJOIN_CODES.has(failure.code)) continue;
        throw failure;
      }
      if (this.closing) return;
      await this.applyAssignment(assignment, version);
      return;
    }
  }

  private async applyAssignment(assignment: readonly TopicPartitions[], version: number): Promise<void> {
    const previous = new Map(this.partitions);
    const next = new Map<string, PartitionState>();
    const states: PartitionState[] = [];
    for (const { topic, partitions } of assignment) {
      for (const partition of partitions) {
        const state = new PartitionState(topic, partition);
        state.paused = this.isPaused(state);
        next.set(state.key, state);
        states.push(state);
      }
    }
    this.partitions = next;
    // Heartbeats start at once: reading committed offsets may take a while when the broker is busy.
    this.startHeartbeat();
    await this.initialisePositions(states, this.from);
    if (this.closing || this.partitions !== next) return;
    const assigned = states.filter((state) => !previous.has(state.key)).map(({ topic, partition }) => ({ topic, partition }));
    const revoked = [...previous.values()].filter((state) => !next.has(state.key)).map(({ topic, partition }) => ({ topic, partition }));
    this.emitRebalance(sortPartitions(assigned), sortPartitions(revoked), this.generation);
    for (const state of states) this.maybeFetch(state);
    const waiting = this.assignmentWaiters;
    this.assignmentWaiters = waiting.filter((waiter) => waiter.version > version);
    for (const waiter of waiting) if (waiter.version <= version) waiter.resolve();
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const generation = this.generation;
    const epoch = this.heartbeatEpoch;
    const current = (): boolean => !this.closing && epoch === this.heartbeatEpoch && generation === this.generation;
    const beat = (): void => {
      this.heartbeatTimer = null;
      if (!current() || this.rejoinNeeded) return;
      this.client
        .request('Heartbeat', { group: this.group!, generation, memberId: this.memberId }, { timeoutMs: this.sessionTimeoutMs, signal: this.stopping.signal })
        .then(
          () => schedule(),
          (error: unknown) => {
            const failure = toClientError(error);
            if (!current()) return;
            if (REJOIN_CODES.has(failure.code)) {
              if (failure.code === 'UNKNOWN_MEMBER') this.memberId = '';
              this.requestRejoin();
              return;
            }
            if (!failure.retriable) this.report(failure);
            schedule();
          },
        );
    };
    const schedule = (): void => {
      if (!current() || this.heartbeatTimer !== null) return;
      this.heartbeatTimer = setTimeout(beat, this.heartbeatIntervalMs);
    };
    schedule();
  }

  private stopHeartbeat(): void {
    this.heartbeatEpoch++;
    if (this.heartbeatTimer !== null) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  // ---- plumbing -------------------------------------------------------------------------------------------------------

  private emitRebalance(assigned: TopicPartition[], revoked: TopicPartition[], generation: number): void {
    const event: RebalanceEvent = { assigned, revoked, assignment: this.assignment(), generation };
    try {
      this.emit('rebalance', event);
    } catch (error) {
      this.report(toClientError(error));
    }
  }

  /** Emits a non-fatal problem when someone listens (an unheard 'error' event would crash the process). */
  private report(error: WeirClientError): void {
    if (error.code === 'CLIENT_CLOSED' || this.listenerCount('error') === 0) return;
    this.emit('error', error);
  }

  private failFatal(error: WeirClientError): void {
    this.fatal = error;
    this.rejectAssignmentWaiters(error);
    this.wakeIterators();
    this.report(error);
  }

  private rejectAssignmentWaiters(error: WeirClientError): void {
    const waiters = this.assignmentWaiters;
    this.assignmentWaiters = [];
    for (const waiter of waiters) waiter.reject(cloneError(error));
  }

  private stopTimers(): void {
    this.stopHeartbeat();
    if (this.autoCommitTimer !== null) clearInterval(this.autoCommitTimer);
    if (this.discoveryTimer !== null) clearInterval(this.discoveryTimer);
    this.autoCommitTimer = this.discoveryTimer = null;
  }

  private checkOpen(): void {
    if (this.fatal !== null) throw cloneError(this.fatal);
    if (this.closing || this.closed) throw clientClosed('the consumer');
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be >= 0, got ${value}`);
  return value;
}
