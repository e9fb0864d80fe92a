import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { MessageStore } from '../../storage/message-store.js';
import { decodeHeaders, type HeaderValue, type StoredMessage } from '../../storage/record-batch.js';
import { brokerError, invalidArgument, type MetadataOp, shuttingDown } from '../errors.js';
import type { CompiledFilter, FilterSpec } from '../filter/index.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
import { type Topic, type TopicObserver, type TopicRegistry, validateTopicName } from '../topic-registry.js';
import { PullConsumer } from './pull-consumer.js';
import {
  type ConsumerState,
  type CreditPool,
  type DeadLetterEntry,
  defaultSharedGroupSettings,
  type Delivery,
  type DeliverySink,
  type PartitionCursor,
  type SettleOutcome,
  SharedSubscription,
  type SharedGroupSettings,
  type SharedMode,
  type StoredCursor,
  type SubscriptionStats,
  type SubscriptionTraceEvent,
} from './shared-subscription.js';

const GROUP_KEY_PREFIX = 'group/';
const CURSOR_KEY_PREFIX = 'qcursor/';
const MAX_PREFETCH = 65_535;
const MAX_RECEIVE = 10_000;
const MAX_WAIT_MS = 300_000;
const MAX_TIMEOUT_MS = 12 * 3_600_000;

/** A shared group's definition under `group/<uri-encoded name>` (the same key space as stream groups). */
interface StoredSharedGroup {
  mode: SharedMode;
  generation: 0;
  settings: SharedGroupSettings;
  filter: FilterSpec | null;
}

/** The name broker-core and the native protocol import a filter spec by (filter/types.ts). */
export type FilterDefinition = FilterSpec;

/** Compiles a group's filter (the broker's, which turns syntax errors into INVALID_FILTER). */
export type FilterCompiler = (spec: FilterSpec) => CompiledFilter;

/** Work-queue events for the message trace (broker-core maps them onto trace records). */
export type WorkQueueTraceEvent =
  | (SubscriptionTraceEvent & { group: string; topic: string })
  | (DeadLetter & { kind: 'dead-lettered'; to: { topic: string; partition: number; offset: number } });

export type TraceSink = (event: WorkQueueTraceEvent) => void;

/** A dead letter of a group and topic. */
export interface DeadLetter extends DeadLetterEntry {
  group: string;
  topic: string;
}
/** Stores a dead letter of a group with `externalDeadLetters`; resolves once it is stored wherever it goes. */
export type DeadLetterHandler = (deadLetter: DeadLetter) => Promise<void>;

export interface WorkQueuesOptions {
  /** How often changed cursors are written (default 1 s): after kill -9, acks of at most this long are redelivered. */
  ackFlushIntervalMs: number;
  compileFilter: FilterCompiler;
  trace?: TraceSink;
  /** Creates a topic (for dead-letter topics); the broker's registry call. */
  createTopic: (name: string, partitions: number) => Promise<unknown>;
}

/** What identifies a consumer of a shared group, and the group definition used when the call creates the group. */
interface SharedGroupCall {
  group: string;
  topic: string;
  mode: SharedMode;
  /** Applied when the group is created; later calls may leave it out. */
  settings?: Partial<SharedGroupSettings>;
  /** The group's filter; a different one while other consumers are attached is INVALID_GROUP. Absent: keep it. */
  filter?: FilterSpec | null;
  consumerId: string;
  clientId: string;
  address: string;
}

export interface SubscribeRequest extends SharedGroupCall {
  prefetch: number;
  priority?: number;
  sink: DeliverySink;
  /** A prefetch limit shared with other consumers (AMQP basic.qos with global). */
  pool?: CreditPool;
}

/**
 * A pull (pull-consumer.ts). One pull consumer per connection and group/topic (`consumerId`): it stays attached
 * between Receives, and its leases end when the connection closes (the protocol layer unsubscribes it) or when it is
 * unsubscribed.
 */
export interface ReceiveRequest extends SharedGroupCall {
  maxMessages: number;
  waitMs: number;
  /** The connection closed: the Receive ends, and the pull consumer is detached (its leases are redelivered). */
  signal?: AbortSignal;
}

export interface SharedGroupDescription {
  group: string;
  mode: SharedMode;
  settings: SharedGroupSettings;
  filter: FilterSpec | null;
  topics: Array<{ topic: string; stats: SubscriptionStats; consumers: ReturnType<SharedSubscription['describeConsumers']> }>;
}

interface SharedGroup {
  name: string;
  mode: SharedMode;
  settings: SharedGroupSettings;
  /** Compiled; its `spec` is the definition stored and shown. */
  filter: CompiledFilter | null;
  subscriptions: Map<string, SharedSubscription>;
}

function groupKey(group: string): string {
  return GROUP_KEY_PREFIX + encodeURIComponent(group);
}

/** A cursor in a flush: its floor as written, which is as far as its group's acks are durable. */
interface WrittenCursor {
  cursor: PartitionCursor;
  subscription: SharedSubscription;
  floor: number;
}

function cursorKey(group: string, topic: string, partition: number): string {
  return `${CURSOR_KEY_PREFIX}${encodeURIComponent(group)}/${topic}/${partition}`;
}

function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) throw invalidArgument(`${name} must be an integer from ${min} to ${max}, not ${String(value)}`);
}

/** Settings with defaults filled in, each checked; INVALID_ARGUMENT names the first bad one. */
export function checkedSharedSettings(update: Partial<SharedGroupSettings> = {}): SharedGroupSettings {
  const settings = { ...defaultSharedGroupSettings, ...update };
  checkInteger('ackTimeoutMs', settings.ackTimeoutMs, 10, MAX_TIMEOUT_MS);
  checkInteger('maxDeliveries', settings.maxDeliveries, 0, 1_000_000);
  checkInteger('backoffInitialMs', settings.backoffInitialMs, 0, MAX_TIMEOUT_MS);
  checkInteger('backoffMaxMs', settings.backoffMaxMs, settings.backoffInitialMs, MAX_TIMEOUT_MS);
  checkInteger('readAhead', settings.readAhead, 1, 1_000_000);
  if (settings.maxLength !== null) checkInteger('maxLength', settings.maxLength, 0, Number.MAX_SAFE_INTEGER);
  if (settings.maxBytes !== null) checkInteger('maxBytes', settings.maxBytes, 0, Number.MAX_SAFE_INTEGER);
  if (settings.messageTtlMs !== null) checkInteger('messageTtlMs', settings.messageTtlMs, 1, Number.MAX_SAFE_INTEGER);
  if (!['drop-head', 'reject-publish', 'dead-letter'].includes(settings.overflow)) throw invalidArgument(`overflow must be drop-head, reject-publish or dead-letter, not ${String(settings.overflow)}`);
  if (settings.start !== 'earliest' && settings.start !== 'latest') throw invalidArgument(`start must be earliest or latest, not ${String(settings.start)}`);
  for (const name of ['deadLetterExpired', 'discardAcked', 'externalDeadLetters'] as const) {
    if (typeof settings[name] !== 'boolean') throw invalidArgument(`${name} must be true or false`);
  }
  if (settings.deadLetterTopic !== null) {
    const problem = validateTopicName(settings.deadLetterTopic);
    if (problem) throw invalidArgument(`deadLetterTopic: ${problem}`);
  }
  return settings;
}

/** The default dead-letter topic of a group: `<group>.dlq`, with characters a topic name cannot have replaced. */
export function defaultDeadLetterTopic(group: string): string {
  return `${group.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 240)}.dlq`;
}

/**
 * Every shared and key_shared group: their definitions, their subscriptions (one dispatcher per group and topic),
 * the ack-state writer and dead-lettering. Stream and broadcast groups live in ConsumerGroups; the two share the group
 * name space, and a name keeps the mode of its first use.
 */
export class WorkQueues implements TopicObserver {
  private readonly groups = new Map<string, SharedGroup>();
  /** Storage queue id → the subscriptions reading it, for append notifications. */
  private readonly byQueue = new Map<number, SharedSubscription[]>();
  private readonly dirty = new Map<PartitionCursor, SharedSubscription>();
  private flushTimer: TimerHandle | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private readonly unsubscribeAppends: () => void;
  private deadLetterHandler: DeadLetterHandler | null = null;
  /** Dead letters of `externalDeadLetters` groups that came before the handler was set (e.g. expiry at start-up). */
  private readonly awaitingHandler: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly store: MessageStore,
    private readonly registry: TopicRegistry,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly options: WorkQueuesOptions,
    /** Claims a group name for a shared mode in the stream groups' registry (throws INVALID_GROUP on a clash). */
    private readonly claimGroup: (group: string, mode: SharedMode) => void,
    /** Gives a deleted group's name back to that registry. */
    private readonly releaseGroup: (group: string) => void = () => {},
  ) {
    for (const [key, value] of store.metadata.entries(GROUP_KEY_PREFIX)) {
      const stored = value as Partial<StoredSharedGroup> & { mode: string };
      if (stored.mode !== 'shared' && stored.mode !== 'key_shared') continue;
      const name = decodeURIComponent(key.slice(GROUP_KEY_PREFIX.length));
      const filter = stored.filter ?? null;
      this.groups.set(name, {
        name,
        mode: stored.mode,
        settings: { ...defaultSharedGroupSettings, ...stored.settings },
        filter: filter === null ? null : this.options.compileFilter(filter),
        subscriptions: new Map(),
      });
    }
    // Subscriptions whose cursors are on disk resume at once, so limits and retention see them before a consumer comes.
    const topics = new Map<string, Set<string>>();
    for (const [key] of store.metadata.entries(CURSOR_KEY_PREFIX)) {
      const [group, topic] = key.slice(CURSOR_KEY_PREFIX.length).split('/');
      if (group === undefined || topic === undefined) continue;
      const name = decodeURIComponent(group);
      if (!topics.has(name)) topics.set(name, new Set());
      topics.get(name)!.add(topic);
    }
    for (const [group, names] of topics) {
      const entry = this.groups.get(group);
      if (entry === undefined) continue;
      for (const topic of names) if (registry.find(topic) !== undefined) this.subscription(entry, topic);
    }
    this.unsubscribeAppends = store.onAppend((queueId) => {
      const subscriptions = this.byQueue.get(queueId);
      if (subscriptions !== undefined) for (const subscription of subscriptions) subscription.appended();
    });
  }

  // ---- consumers ----------------------------------------------------------------------------------------------------

  subscribe(request: SubscribeRequest): ConsumerState {
    this.assertOpen();
    checkInteger('prefetch', request.prefetch, 0, MAX_PREFETCH);
    checkInteger('priority', request.priority ?? 0, -1_000_000, 1_000_000);
    if (typeof request.consumerId !== 'string' || request.consumerId.length === 0 || request.consumerId.length > 255) throw invalidArgument('a consumer id is 1 to 255 characters');
    const group = this.group(request.group, request.mode, request.settings, request.filter);
    const subscription = this.subscription(group, request.topic);
    if (subscription.consumer(request.consumerId) !== undefined) throw invalidArgument(`consumer id "${request.consumerId}" is already subscribed to ${request.topic} in group "${request.group}"`);
    return subscription.attach({
      consumerId: request.consumerId,
      prefetch: request.prefetch,
      priority: request.priority ?? 0,
      clientId: request.clientId,
      address: request.address,
      sink: request.sink,
      pool: request.pool,
    });
  }

  /**
   * Ends a consumer: whatever it had in flight is redelivered. Unknown consumers are ignored (idempotent). With
   * `only`, the consumer is ended only if it is still that one: a closing connection must not end a newer consumer
   * that reused the id elsewhere.
   */
  unsubscribe(group: string, topic: string, consumerId: string, only?: ConsumerState): void {
    const subscription = this.groups.get(group)?.subscriptions.get(topic);
    if (subscription === undefined) return;
    if (only !== undefined && subscription.consumer(consumerId) !== only) return;
    subscription.detach(consumerId);
  }

  settle(group: string, topic: string, consumerId: string, outcomes: readonly SettleOutcome[]): number {
    this.assertOpen();
    for (const outcome of outcomes) {
      if (outcome.delayMs !== undefined) checkInteger('nack delayMs', outcome.delayMs, 0, MAX_TIMEOUT_MS);
      if (outcome.error !== undefined && (typeof outcome.error !== 'string' || outcome.error.length > 4096)) throw invalidArgument('an error text is at most 4096 characters');
    }
    const subscription = this.existing(group, topic);
    if (subscription === null) return 0;
    return subscription.settle(consumerId, outcomes);
  }

  extend(group: string, topic: string, consumerId: string, deliveries: ReadonlyArray<{ partition: number; offset: number }>, ms: number): number {
    this.assertOpen();
    checkInteger('extend ms', ms, 1, MAX_TIMEOUT_MS);
    return this.existing(group, topic)?.extend(consumerId, deliveries, ms) ?? 0;
  }

  /** Pull: up to `maxMessages` deliveries, waiting up to `waitMs` for the first. Leases belong to `consumerId`. */
  async receive(request: ReceiveRequest): Promise<Delivery[]> {
    this.assertOpen();
    checkInteger('maxMessages', request.maxMessages, 1, MAX_RECEIVE);
    checkInteger('waitMs', request.waitMs, 0, MAX_WAIT_MS);
    const group = this.group(request.group, request.mode, request.settings, request.filter);
    const subscription = this.subscription(group, request.topic);
    const existing = subscription.consumer(request.consumerId);
    if (existing !== undefined && !(existing.options.sink instanceof PullConsumer)) {
      throw invalidArgument(`consumer id "${request.consumerId}" is subscribed to ${request.topic} in group "${request.group}"; a pull needs an id of its own`);
    }
    const puller = (existing?.options.sink as PullConsumer | undefined) ?? PullConsumer.attach(subscription, this.scheduler, request);
    return puller.receive(request.maxMessages, request.waitMs, request.signal);
  }

  peek(group: string, topic: string, limit: number): Array<{ partition: number; message: StoredMessage; deliveries: number }> {
    checkInteger('limit', limit, 1, 10_000);
    return this.existing(group, topic)?.peek(limit) ?? [];
  }

  /** Whether a topic accepts produces: refused (QUEUE_FULL) while a reject-publish group over it is at a limit. */
  admit(topic: string): void {
    for (const group of this.groups.values()) {
      const limit = group.subscriptions.get(topic)?.rejectingLimit();
      if (limit === undefined || limit === null) continue;
      const held = limit.setting === 'maxLength' ? `${limit.max} ready messages` : `${limit.max} bytes of ready message bodies`;
      throw brokerError(ErrorCode.QueueFull, `group "${group.name}" on topic "${topic}" holds its maximum of ${held} (overflow reject-publish); consume or raise ${limit.setting}`);
    }
  }

  // ---- groups -------------------------------------------------------------------------------------------------------

  describe(group: string): SharedGroupDescription {
    const entry = this.groups.get(group);
    if (entry === undefined) throw brokerError(ErrorCode.InvalidGroup, `group "${group}" is not a shared group`);
    return {
      group,
      mode: entry.mode,
      settings: entry.settings,
      filter: entry.filter?.spec ?? null,
      topics: [...entry.subscriptions].map(([topic, subscription]) => ({ topic, stats: subscription.stats(), consumers: subscription.describeConsumers() })),
    };
  }

  list(): Array<{ group: string; mode: SharedMode; consumers: number }> {
    return [...this.groups.values()].map((entry) => ({
      group: entry.name,
      mode: entry.mode,
      consumers: [...entry.subscriptions.values()].reduce((sum, subscription) => sum + subscription.consumerCount, 0),
    }));
  }

  /**
   * Creates a shared group consuming `topic` before any consumer comes, so its limits, TTL and counts apply from now
   * (an AMQP queue.declare). INVALID_GROUP when the name is taken by a group of another mode. An existing group keeps
   * its settings and filter (an AMQP queue over an adopted topic may have a filtered group of the same name).
   */
  createGroup(name: string, topic: string, settings: Partial<SharedGroupSettings>): void {
    this.assertOpen();
    const group = this.group(name, 'shared', settings, undefined);
    this.subscription(group, topic);
  }

  /** Where dead letters of groups with `externalDeadLetters` go (the AMQP layer's dead-letter exchanges). */
  setDeadLetterHandler(handler: DeadLetterHandler | null): void {
    this.deadLetterHandler = handler;
    if (handler !== null) for (const wake of this.awaitingHandler.splice(0)) wake();
  }

  /** Removes every ready message of the group's subscription of `topic`; returns how many. */
  purge(group: string, topic: string): number {
    this.assertOpen();
    return this.existing(group, topic)?.purge() ?? 0;
  }

  /**
   * Forgets a group: its consumers are dropped without redelivery and its definition and ack state are deleted. The
   * name is free again afterwards (with new settings).
   */
  async deleteGroup(name: string): Promise<void> {
    this.assertOpen();
    const entry = this.groups.get(name);
    if (entry === undefined) return;
    // The cursors on disk, and those of the subscriptions: a first write of one may still be under way.
    const cursorKeys = new Set<string>();
    for (const [key] of this.store.metadata.entries(`${CURSOR_KEY_PREFIX}${encodeURIComponent(name)}/`)) cursorKeys.add(key);
    for (const [topic, subscription] of [...entry.subscriptions]) {
      for (const cursor of subscription.cursors) if (cursor !== undefined) cursorKeys.add(cursorKey(name, topic, cursor.partition));
      this.dropSubscription(entry, topic, subscription);
    }
    this.groups.delete(name);
    this.releaseGroup(name);
    await this.store.metadata.apply([{ key: groupKey(name), delete: true }, ...[...cursorKeys].map((key) => ({ key, delete: true as const }))]);
  }

  settingsOf(group: string): SharedGroupSettings | undefined {
    return this.groups.get(group)?.settings;
  }

  /** The subscription of a group and topic (stats, resuming a paused consumer; tests inspect it). */
  subscriptionOf(group: string, topic: string): SharedSubscription | undefined {
    return this.groups.get(group)?.subscriptions.get(topic);
  }

  private group(name: string, mode: SharedMode, settings: Partial<SharedGroupSettings> | undefined, filter: FilterSpec | null | undefined): SharedGroup {
    if (mode !== 'shared' && mode !== 'key_shared') throw invalidArgument(`a shared group's mode is shared or key_shared, not ${String(mode)}`);
    let entry = this.groups.get(name);
    if (entry !== undefined) {
      if (entry.mode !== mode) throw brokerError(ErrorCode.InvalidGroup, `group "${name}" is a ${entry.mode} group; it cannot be used as a ${mode} group`);
      const current = entry.filter?.spec ?? null;
      if (filter !== undefined && !sameFilter(filter, current)) {
        if (this.consumerCount(entry) > 0) {
          throw brokerError(ErrorCode.InvalidGroup, `group "${name}" filters with ${describeFilter(current)}; every consumer of a group must use the same filter`);
        }
        // No consumer is attached: the newcomer's filter becomes the group's (as a RocketMQ subscription update does).
        entry.filter = filter === null ? null : this.options.compileFilter(filter);
        this.persistGroup(entry);
        this.refilter(entry);
      }
      return entry;
    }
    const checked = checkedSharedSettings(settings);
    const compiled = filter === undefined || filter === null ? null : this.options.compileFilter(filter);
    this.claimGroup(name, mode);
    entry = { name, mode, settings: checked, filter: compiled, subscriptions: new Map() };
    this.groups.set(name, entry);
    this.persistGroup(entry);
    return entry;
  }

  /**
   * Rebuilds a group's subscriptions under its new filter. Each cursor's state goes over as it is in memory (acks not
   * flushed yet, delivery counts, nack waits), so nothing settled comes back; unsettled messages are read again and
   * meet the new filter.
   */
  private refilter(group: SharedGroup): void {
    for (const [topic, old] of [...group.subscriptions]) {
      const carried = old.cursors.map((cursor) => cursor?.toStored(this.wallOf));
      this.dropSubscription(group, topic, old);
      this.subscription(group, topic, carried);
    }
  }

  /** Ends a subscription (dispose: no redelivery) and forgets where it was registered and what it had to write. */
  private dropSubscription(group: SharedGroup, topic: string, subscription: SharedSubscription): void {
    subscription.dispose();
    group.subscriptions.delete(topic);
    for (const cursor of subscription.cursors) {
      if (cursor === undefined) continue;
      this.dirty.delete(cursor);
      cursor.unwritten = false;
      const readers = this.byQueue.get(cursor.queueId);
      if (readers === undefined) continue;
      const index = readers.indexOf(subscription);
      if (index >= 0) readers.splice(index, 1);
      if (readers.length === 0) this.byQueue.delete(cursor.queueId);
    }
  }

  private consumerCount(entry: SharedGroup): number {
    let count = 0;
    for (const subscription of entry.subscriptions.values()) count += subscription.consumerCount;
    return count;
  }

  private persistGroup(entry: SharedGroup): void {
    const value: StoredSharedGroup = { mode: entry.mode, generation: 0, settings: entry.settings, filter: entry.filter?.spec ?? null };
    this.store.metadata.put(groupKey(entry.name), value).catch((error: unknown) => this.logger.warn({ err: error, group: entry.name }, 'could not store group definition'));
  }

  /** The group's subscription of a topic, created on first use; `carried` replaces the cursors stored on disk. */
  private subscription(group: SharedGroup, topicName: string, carried?: ReadonlyArray<StoredCursor | undefined>): SharedSubscription {
    let subscription = group.subscriptions.get(topicName);
    if (subscription !== undefined) return subscription;
    const topic = this.registry.get(topicName);
    subscription = new SharedSubscription(
      group.name,
      topic.name,
      group.mode,
      group.settings,
      group.filter,
      this.store,
      this.clock,
      this.scheduler,
      this.logger,
      {
        deadLetter: (entry) => this.deadLetter(group, topic.name, entry),
        dirty: (cursor) => this.markDirty(cursor, subscription!),
        trace: this.options.trace === undefined ? undefined : (event) => this.options.trace!({ ...event, group: group.name, topic: topic.name }),
      },
    );
    group.subscriptions.set(topic.name, subscription);
    this.addPartitions(group, subscription, topic, carried);
    return subscription;
  }

  private addPartitions(group: SharedGroup, subscription: SharedSubscription, topic: Topic, carried?: ReadonlyArray<StoredCursor | undefined>): void {
    topic.queueIds.forEach((queueId, partition) => {
      if (subscription.cursors[partition] !== undefined) return;
      const handed = carried?.[partition];
      const stored = handed ?? (this.store.metadata.get(cursorKey(group.name, topic.name, partition)) as StoredCursor | undefined) ?? null;
      let list = this.byQueue.get(queueId);
      if (list === undefined) this.byQueue.set(queueId, (list = []));
      list.push(subscription);
      subscription.addPartition(partition, queueId, stored);
      // State handed over from memory is newer than what is on disk.
      if (handed !== undefined) this.markDirty(subscription.cursors[partition]!, subscription);
    });
  }

  /** The group's subscription of a topic; null when the group does not consume it (nothing to settle or show). */
  private existing(group: string, topic: string): SharedSubscription | null {
    const entry = this.groups.get(group);
    if (entry === undefined) throw brokerError(ErrorCode.InvalidGroup, `group "${group}" is not a shared group`);
    const subscription = entry.subscriptions.get(topic);
    if (subscription === undefined) {
      this.registry.get(topic);
      return null;
    }
    return subscription;
  }

  // ---- dead letters -------------------------------------------------------------------------------------------------

  private async deadLetter(group: SharedGroup, topic: string, entry: DeadLetterEntry): Promise<void> {
    if (group.settings.externalDeadLetters) {
      while (this.deadLetterHandler === null) {
        if (this.closed) throw shuttingDown();
        await new Promise<void>((resolve) => this.awaitingHandler.push(resolve));
      }
      await this.deadLetterHandler({ group: group.name, topic, ...entry });
      return;
    }
    const target = group.settings.deadLetterTopic ?? defaultDeadLetterTopic(group.name);
    let dlq = this.registry.find(target);
    if (dlq === undefined) {
      try {
        await this.options.createTopic(target, 1);
      } catch (error) {
        if (!isWeirError(error, ErrorCode.TopicExists)) throw error;
      }
      dlq = this.registry.get(target);
    }
    const { message } = entry;
    const headers: Record<string, HeaderValue> = message.headers.length > 0 ? decodeHeaders(message.headers) : {};
    // The dead-letter headers are documented in docs/design/work-queues.md ("Dead letters, TTL and overflow").
    headers['weir.dlq.reason'] = entry.reason;
    headers['weir.dlq.topic'] = topic;
    headers['weir.dlq.partition'] = String(entry.partition);
    headers['weir.dlq.offset'] = String(message.offset);
    headers['weir.dlq.group'] = group.name;
    headers['weir.dlq.deliveries'] = String(entry.deliveries);
    headers['weir.dlq.time'] = String(this.clock.now());
    headers['weir.dlq.id'] = message.id.toString('hex');
    if (entry.error !== null) headers['weir.dlq.error'] = entry.error;
    const result = await this.store.append(dlq.queueIds[0]!, [{ key: message.key, tag: message.tag, headers, timestamp: message.timestamp, body: message.body }]);
    this.options.trace?.({
      kind: 'dead-lettered',
      group: group.name,
      topic,
      partition: entry.partition,
      message,
      reason: entry.reason,
      deliveries: entry.deliveries,
      error: entry.error,
      to: { topic: dlq.name, partition: 0, offset: result.baseOffset },
    });
  }

  // ---- ack state ----------------------------------------------------------------------------------------------------

  private markDirty(cursor: PartitionCursor, subscription: SharedSubscription): void {
    if (cursor.unwritten) return;
    cursor.unwritten = true;
    this.dirty.set(cursor, subscription);
    if (this.flushTimer === null && !this.closed) {
      this.flushTimer = this.scheduler.setTimeout(
        () => {
          this.flushTimer = null;
          void this.flush();
        },
        this.options.ackFlushIntervalMs,
        { background: true },
      );
    }
  }

  /** A monotonic deadline as wall time, for what is written to disk (a restart resets the monotonic clock). */
  private readonly wallOf = (monotonic: number): number => this.clock.now() + (monotonic - this.clock.monotonic());

  /** Writes every changed cursor in one atomic apply; a failed write leaves them changed, for the next flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.dirty.size === 0) return;
      const ops: MetadataOp[] = [];
      const written: WrittenCursor[] = [];
      for (const [cursor, subscription] of this.dirty) {
        cursor.unwritten = false;
        if (!this.isCurrent(subscription)) continue;
        const stored = cursor.toStored(this.wallOf);
        written.push({ cursor, subscription, floor: stored.floor });
        ops.push({ key: cursorKey(subscription.group, subscription.topic, cursor.partition), value: stored });
      }
      this.dirty.clear();
      if (ops.length === 0) return;
      try {
        await this.store.metadata.apply(ops);
      } catch (error) {
        this.logger.warn({ err: error, cursors: ops.length }, 'could not write ack state; retrying at the next flush');
        // Nothing of it reached the disk: mark it again (cursors changed meanwhile already are), so the next flush
        // or the one at close writes it.
        for (const { cursor, subscription } of written) if (this.isCurrent(subscription)) this.markDirty(cursor, subscription);
        return;
      }
      await this.discardAcked(written);
    });
    return this.flushing;
  }

  private isCurrent(subscription: SharedSubscription): boolean {
    return this.groups.get(subscription.group)?.subscriptions.get(subscription.topic) === subscription;
  }

  /**
   * Moves the low-water mark of topics owned by their group up to the ack floor just written: only then, because a
   * crash before the ack state is durable would otherwise redeliver messages that are no longer there to read. Every
   * other group reading the partition must be past a message too, so the mark goes no further than the lowest floor.
   */
  private async discardAcked(written: readonly WrittenCursor[]): Promise<void> {
    for (const { cursor, subscription, floor } of written) {
      if (!subscription.settings.discardAcked) continue;
      let upTo = floor;
      for (const reader of this.byQueue.get(cursor.queueId) ?? []) {
        const theirs = reader.cursors[cursor.partition];
        if (reader !== subscription && theirs?.queueId === cursor.queueId) upTo = Math.min(upTo, theirs.acks.floor);
      }
      const info = this.store.queueById(cursor.queueId);
      if (info === null || upTo <= info.startOffset) continue;
      try {
        await this.store.advanceLowWaterMark(cursor.queueId, Math.min(upTo, info.endOffset));
      } catch (error) {
        if (!isWeirError(error, ErrorCode.UnknownQueue)) this.logger.warn({ err: error, group: subscription.group, topic: subscription.topic }, 'could not remove acknowledged messages');
      }
    }
  }

  // ---- topics -------------------------------------------------------------------------------------------------------

  topicDeleting(topic: Topic): MetadataOp[] {
    const ops: MetadataOp[] = [];
    for (const group of this.groups.values()) {
      for (let partition = 0; partition < topic.queueIds.length; partition++) {
        const key = cursorKey(group.name, topic.name, partition);
        if (this.store.metadata.has(key)) ops.push({ key, delete: true });
      }
    }
    return ops;
  }

  topicDeleted(topic: Topic): void {
    for (const group of this.groups.values()) {
      const subscription = group.subscriptions.get(topic.name);
      if (subscription !== undefined) this.dropSubscription(group, topic.name, subscription);
    }
  }

  topicChanged(name: string): void {
    const topic = this.registry.find(name);
    if (topic === undefined) return;
    for (const group of this.groups.values()) {
      const subscription = group.subscriptions.get(name);
      if (subscription !== undefined) this.addPartitions(group, subscription, topic);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer !== null) this.scheduler.clearTimeout(this.flushTimer);
    this.unsubscribeAppends();
    for (const wake of this.awaitingHandler.splice(0)) wake();
    for (const group of this.groups.values()) for (const subscription of group.subscriptions.values()) subscription.close();
    await this.flush();
  }

  private assertOpen(): void {
    if (this.closed) throw shuttingDown();
  }
}

function sameFilter(a: FilterSpec | null, b: FilterSpec | null): boolean {
  if (a === null || b === null) return a === b;
  return a.kind === b.kind && a.expression === b.expression;
}

function describeFilter(filter: FilterSpec | null): string {
  return filter === null ? 'no filter' : `${filter.kind} "${filter.expression}"`;
}
