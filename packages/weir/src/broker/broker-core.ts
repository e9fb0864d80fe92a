import { type Clock, systemClock } from '../core/clock.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { KeyValueStore, MessageStore } from '../storage/message-store.js';
import { ConsumerGroups, type CommitOffsetsRequest, type GroupDescription, type GroupMode, type GroupSummary, type HeartbeatRequest, type LeaveGroupRequest, type PartitionOffset, type SyncGroupRequest } from './consumer-groups.js';
import { brokerError, shuttingDown } from './errors.js';
import { Fetcher, type FetchRequest, type FetchResult } from './fetch.js';
import type { JoinGroupRequest, JoinGroupResult, TopicAssignment } from './group-coordinator.js';
import { type FoundMessage, type GetMessageRequest, MessageLookup } from './message-lookup.js';
import { OffsetStore } from './offset-store.js';
import { PartitionWriter, type ProduceRequest, type ProduceResult, type SharedProduceOutcome, type SharedProduceRequest } from './partition-writer.js';
import { Partitioner } from './partitioner.js';
import { type ProducerIdentity, ProducerIds } from './producer-ids.js';
import { ProducerStateManager } from './producer-state.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { partitionQueueName, type TopicConfig, type TopicDescription, TopicRegistry } from './topic-registry.js';
import { compileFilter, FilterSyntaxError } from './filter/index.js';
import type { ConsumerState, Delivery, SettleOutcome, SharedGroupSettings, SubscriptionStats } from './queue/shared-subscription.js';
import { type DeadLetterHandler, type FilterDefinition, type ReceiveRequest, type SharedGroupDescription, type SubscribeRequest, WorkQueues } from './queue/work-queues.js';
import { ErrorCode } from '../core/errors.js';
import type { MessageInput, StoredMessage } from '../storage/record-batch.js';
import { MessageDedup } from './queue/dedup.js';
import { MessageTrace, type TraceEvent } from './queue/trace.js';
import { traceOfTransactionEvent, traceOfWorkQueueEvent } from './queue/trace-events.js';
import { TransactionManager, type TransactionOutcome, type TransactionSummary } from './queue/transactions.js';
import { type ProducerGroupMember, ProducerGroups } from './queue/producer-groups.js';
import { DelaySchedule } from './queue/delay-schedule.js';
import { Attribute } from './queue/message-attributes.js';
import { AccessControl } from './access/access-control.js';
import { accessDefinitions } from './access/access-definitions.js';
import { DefinitionsRegistry } from './access/definitions.js';

export interface BrokerCoreOptions {
  /** The broker builds on this store but does not own it: close the store after the broker. */
  store: MessageStore;
  clock?: Clock;
  logger?: Logger;
  /** Timers (tests pass a ManualScheduler driven by a ManualClock). */
  scheduler?: Scheduler;
  /** How often changed idempotent-producer state is snapshotted (default 10 s): bounds the log re-read after a crash. */
  producerSnapshotIntervalMs?: number;
  /** A producer silent on a partition this long is forgotten there (default 1 day). */
  producerStateRetentionMs?: number;
  /** An empty group's first round waits this long for more members (default 0). */
  initialRebalanceDelayMs?: number;
  /** How often shared groups write their ack state (default 1 s): after kill -9, at most this much is redelivered. */
  ackFlushIntervalMs?: number;
  /** Record the message trace (deliveries, outcomes, dead letters, expiry, delays, transactions); default true. */
  traceEnabled?: boolean;
  /** How long trace records are kept (default 3 days). */
  traceRetentionMs?: number;
  /** Broker-side dedup of client-chosen message ids from non-idempotent producers: the window (default 10 min). */
  dedupWindowMs?: number;
  /** …and the most ids remembered in memory (default 100,000; older ones are found through the id index after a restart). */
  dedupMaxEntries?: number;
  /** Transactions: inactivity before the first check-back (default 60 s), and the checks before giving up (default 15). */
  transactionCheckAfterMs?: number;
  transactionCheckIntervalMs?: number;
  transactionMaxChecks?: number;
  /** What a transaction nobody answers for becomes after the last check (default rollback). */
  transactionOutcomeAfterMaxChecks?: 'commit' | 'rollback';
}

/** Compiles a subscription filter, turning a syntax error into INVALID_FILTER with its position. */
function compileSubscriptionFilter(definition: FilterDefinition) {
  try {
    return compileFilter(definition);
  } catch (error) {
    if (error instanceof FilterSyntaxError) throw brokerError(ErrorCode.InvalidFilter, `${definition.kind} filter: ${error.message}`, error);
    throw error;
  }
}

/**
 * The protocol-neutral broker: topics of partitions over storage queues, produce with idempotence and ack levels,
 * fetch with long polling, consumer groups with broker-side assignment and durable offsets, and message lookup.
 * Protocol servers map their requests onto these methods; every failure is a WeirError with a stable code.
 *
 * Every method may be called at any time from the event loop. `close()` refuses new calls, rejects waiting fetches and
 * joins with BROKER_SHUTTING_DOWN, lets appends in flight finish, writes the producer-state snapshot and clears every
 * timer; the store stays open.
 */
export class BrokerCore {
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly topics: TopicRegistry,
    private readonly producerIds: ProducerIds,
    private readonly producerState: ProducerStateManager,
    private readonly writer: PartitionWriter,
    private readonly fetcher: Fetcher,
    private readonly groups: ConsumerGroups,
    private readonly lookup: MessageLookup,
    private readonly workQueues: WorkQueues,
    private readonly trace: MessageTrace,
    private readonly transactions: TransactionManager,
    private readonly producerGroups: ProducerGroups,
    private readonly delays: DelaySchedule,
    private readonly store: MessageStore,
    /** Users, virtual hosts and permissions. */
    readonly access: AccessControl,
    /** Definitions export and import (RabbitMQ's JSON format); layers above register their sections here. */
    readonly definitions: DefinitionsRegistry,
  ) {}

  static async open(options: BrokerCoreOptions): Promise<BrokerCore> {
    const { store } = options;
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const scheduler = options.scheduler ?? systemScheduler;
    const topics = await TopicRegistry.open(store, logger);
    const producerIds = new ProducerIds(store.metadata);
    const producerState = await ProducerStateManager.open(store, topics, producerIds, clock, scheduler, logger, {
      snapshotIntervalMs: options.producerSnapshotIntervalMs ?? 10_000,
      retentionMs: options.producerStateRetentionMs ?? 86_400_000,
    });
    const partitioner = new Partitioner();
    const fetcher = new Fetcher(store, topics, scheduler, logger);
    const offsets = new OffsetStore(store.metadata, clock);
    const groups = new ConsumerGroups(store, topics, offsets, clock, scheduler, logger, { initialRebalanceDelayMs: options.initialRebalanceDelayMs ?? 0 });
    const lookup = new MessageLookup(store, topics);
    const trace = await MessageTrace.open({ store, clock, scheduler, logger, enabled: options.traceEnabled ?? true, retentionMs: options.traceRetentionMs });
    const record = (event: TraceEvent) => trace.record(event);
    const workQueues = new WorkQueues(
      store,
      topics,
      clock,
      scheduler,
      logger,
      {
        ackFlushIntervalMs: options.ackFlushIntervalMs ?? 1000,
        compileFilter: compileSubscriptionFilter,
        trace: options.traceEnabled === false ? undefined : (event) => record(traceOfWorkQueueEvent(event, clock.now())),
        createTopic: (name, partitions) => topics.create(name, partitions),
      },
      (group, mode) => groups.claim(group, mode),
      (group) => groups.release(group),
    );
    const appendTo = async (queueName: string, messages: MessageInput[]) => {
      const queue = store.queue(queueName);
      if (queue === null) throw brokerError(ErrorCode.UnknownTopic, `the storage queue ${queueName} no longer exists`);
      await store.append(queue.id, messages);
    };
    const producerGroups = new ProducerGroups();
    const transactions = await TransactionManager.open({
      store,
      clock,
      scheduler,
      logger,
      deliver: appendTo,
      check: (group, check) => producerGroups.ask(group, check),
      onEvent: (event) => {
        if (event.kind !== 'check' && event.kind !== 'begin') producerGroups.answer(event.transactionId, event.outcome ?? 'unknown');
        for (const traced of traceOfTransactionEvent(event)) record(traced);
      },
      checkAfterMs: options.transactionCheckAfterMs,
      checkIntervalMs: options.transactionCheckIntervalMs,
      maxChecks: options.transactionMaxChecks,
      outcomeAfterMaxChecks: () => options.transactionOutcomeAfterMaxChecks ?? 'rollback',
    });
    const delays = await DelaySchedule.open({ store, clock, scheduler, logger, deliver: appendTo });
    const writer = new PartitionWriter(store, topics, partitioner, producerState, clock, {
      admit: (topic) => workQueues.admit(topic),
      dedup: new MessageDedup({ store, clock, windowMs: options.dedupWindowMs ?? 600_000, maxEntries: options.dedupMaxEntries ?? 100_000 }),
      delay: async (topic, partition, messages) => {
        await delays.schedule(partitionQueueName(topic, partition), messages);
        if (options.traceEnabled === false) return;
        const time = clock.now();
        for (const message of messages) {
          if (message.id === null || message.id === undefined) continue;
          const deliverAt = Number(message.headers?.[Attribute.deliverAt] ?? 0);
          record({ kind: 'delayed', messageId: Buffer.from(message.id), time, topic, partition, deliverAt, producer: {} });
        }
      },
    });
    topics.observe(workQueues);
    topics.observe(offsets);
    topics.observe(producerState);
    topics.observe(fetcher);
    topics.observe(groups);
    topics.observe({
      topicDeleted: (topic) => {
        partitioner.forget(topic.name);
        topic.queueIds.forEach((_, partition) => delays.dropTarget(partitionQueueName(topic.name, partition)));
      },
    });
    const access = await AccessControl.open(store.metadata);
    const definitions = new DefinitionsRegistry();
    definitions.register(accessDefinitions(access));
    logger.info({ topics: topics.list().length }, 'broker opened');
    return new BrokerCore(topics, producerIds, producerState, writer, fetcher, groups, lookup, workQueues, trace, transactions, producerGroups, delays, store, access, definitions);
  }

  // ---- topics -------------------------------------------------------------------------------------------------------

  /** Name: 1–249 of [A-Za-z0-9._-]; partitions: 1–10,000. TOPIC_EXISTS, INVALID_PARTITION, INVALID_ARGUMENT. */
  async createTopic(name: string, partitions: number, config?: Partial<TopicConfig>): Promise<TopicDescription> {
    this.assertOpen();
    return this.topics.create(name, partitions, config);
  }

  /** Deletes the topic's partitions, committed offsets and producer state. UNKNOWN_TOPIC. */
  async deleteTopic(name: string): Promise<void> {
    this.assertOpen();
    return this.topics.delete(name);
  }

  /** New settings and/or more partitions (`partitions` -1 or absent keeps the count; it never shrinks). */
  async alterTopic(name: string, change: { partitions?: number; config?: Partial<TopicConfig> }): Promise<TopicDescription> {
    this.assertOpen();
    return this.topics.alter(name, change);
  }

  async listTopics(): Promise<TopicDescription[]> {
    this.assertOpen();
    return this.topics.list();
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    this.assertOpen();
    return this.topics.describe(name);
  }

  // ---- produce ------------------------------------------------------------------------------------------------------

  /** A new producer id (no argument or -1), or the next epoch of a known one, fencing its older instances. */
  async initProducer(producerId = -1): Promise<ProducerIdentity> {
    this.assertOpen();
    return this.producerIds.init(producerId);
  }

  async produce(request: ProduceRequest): Promise<ProduceResult> {
    this.assertOpen();
    return this.writer.produce(request);
  }

  /**
   * The same messages to several topics (no producer id), stored once: one outcome per target, in order; a target
   * that refuses (unknown topic, QUEUE_FULL) does not stop the others. See PartitionWriter.produceShared.
   */
  async produceShared(request: SharedProduceRequest): Promise<SharedProduceOutcome[]> {
    this.assertOpen();
    return this.writer.produceShared(request);
  }

  // ---- consume ------------------------------------------------------------------------------------------------------

  async fetch(request: FetchRequest): Promise<FetchResult> {
    this.assertOpen();
    return this.fetcher.fetch(request);
  }

  /** `timestamp` -2: earliest, -1: latest (the end), else the first offset stored at or after it. */
  async listOffsets(topic: string, partition: number, timestamp: number): Promise<number> {
    this.assertOpen();
    return this.fetcher.listOffsets(topic, partition, timestamp);
  }

  // ---- groups -------------------------------------------------------------------------------------------------------

  /** Resolves when the rebalance round this join belongs to completes. */
  async joinGroup(request: JoinGroupRequest): Promise<JoinGroupResult> {
    this.assertOpen();
    return this.groups.join(request);
  }

  async syncGroup(request: SyncGroupRequest): Promise<{ assignment: TopicAssignment[] }> {
    this.assertOpen();
    return { assignment: this.groups.sync(request) };
  }

  async heartbeat(request: HeartbeatRequest): Promise<void> {
    this.assertOpen();
    this.groups.heartbeat(request);
  }

  async leaveGroup(request: LeaveGroupRequest): Promise<void> {
    this.assertOpen();
    this.groups.leave(request);
  }

  async commitOffsets(request: CommitOffsetsRequest): Promise<void> {
    this.assertOpen();
    return this.groups.commit(request);
  }

  async fetchOffsets(group: string, topic: string, options: { mode?: GroupMode } = {}): Promise<PartitionOffset[]> {
    this.assertOpen();
    return this.groups.fetchOffsets(group, topic, options.mode);
  }

  async describeGroup(group: string): Promise<GroupDescription> {
    this.assertOpen();
    return this.groups.describe(group);
  }

  async listGroups(): Promise<GroupSummary[]> {
    this.assertOpen();
    const shared = new Map(this.workQueues.list().map((entry) => [entry.group, entry.consumers]));
    return this.groups.list().map((summary) => {
      const consumers = shared.get(summary.group);
      return consumers === undefined ? summary : { ...summary, state: consumers > 0 ? 'Stable' : 'Empty', members: consumers };
    });
  }

  // ---- shared groups (work queues) ----------------------------------------------------------------------------------

  /**
   * Attaches a consumer to a shared or key_shared group; deliveries go to `request.sink` while it has credit, from a
   * later microtask on. Synchronous, like `settle`: protocol layers call both per message and need no promise.
   */
  subscribe(request: SubscribeRequest): ConsumerState {
    this.assertOpen();
    return this.workQueues.subscribe(request);
  }

  /** Detaches a consumer; its unsettled deliveries are redelivered to the others. */
  unsubscribe(group: string, topic: string, consumerId: string, only?: ConsumerState): void {
    this.workQueues.unsubscribe(group, topic, consumerId, only);
  }

  /** Applies ack / nack / reject outcomes; returns how many applied (others named deliveries the consumer no longer holds). */
  settle(group: string, topic: string, consumerId: string, outcomes: readonly SettleOutcome[]): number {
    this.assertOpen();
    return this.workQueues.settle(group, topic, consumerId, outcomes);
  }

  async extend(group: string, topic: string, consumerId: string, deliveries: ReadonlyArray<{ partition: number; offset: number }>, ms: number): Promise<number> {
    this.assertOpen();
    return this.workQueues.extend(group, topic, consumerId, deliveries, ms);
  }

  async receive(request: ReceiveRequest): Promise<Delivery[]> {
    this.assertOpen();
    return this.workQueues.receive(request);
  }

  async peek(group: string, topic: string, limit: number): Promise<Array<{ partition: number; message: StoredMessage; deliveries: number }>> {
    this.assertOpen();
    return this.workQueues.peek(group, topic, limit);
  }

  async describeSharedGroup(group: string): Promise<SharedGroupDescription> {
    this.assertOpen();
    return this.workQueues.describe(group);
  }

  /** A shared group consuming `topic` from now on, before any consumer subscribes (an AMQP queue). */
  async createSharedGroup(group: string, topic: string, settings: Partial<SharedGroupSettings>): Promise<void> {
    this.assertOpen();
    this.workQueues.createGroup(group, topic, settings);
  }

  /** Removes the ready messages of a group's subscription (AMQP queue.purge); returns how many. */
  purgeSharedGroup(group: string, topic: string): number {
    this.assertOpen();
    return this.workQueues.purge(group, topic);
  }

  /** Deletes a shared group's definition and ack state; its consumers get nothing more. */
  async deleteSharedGroup(group: string): Promise<void> {
    this.assertOpen();
    await this.workQueues.deleteGroup(group);
  }

  /** The counts of a group's subscription of a topic (null when it has none yet). */
  sharedGroupStats(group: string, topic: string): SubscriptionStats | null {
    return this.workQueues.subscriptionOf(group, topic)?.stats() ?? null;
  }

  /** A consumer paused by its protocol layer (full socket) takes deliveries again. */
  resumeConsumer(group: string, topic: string, consumer: ConsumerState): void {
    this.workQueues.subscriptionOf(group, topic)?.resume(consumer);
  }

  /** Where dead letters of groups created with `externalDeadLetters` go. */
  setDeadLetterHandler(handler: DeadLetterHandler | null): void {
    this.workQueues.setDeadLetterHandler(handler);
  }

  // ---- transactions (half messages) --------------------------------------------------------------------------------

  /** Starts a transaction of a producer group; its messages stay invisible until commit. */
  async beginTransaction(producerGroup: string): Promise<string> {
    this.assertOpen();
    return this.transactions.begin(producerGroup);
  }

  /** Stores messages in a transaction (durable, invisible), choosing the partition as a produce would. */
  async transactionProduce(transactionId: string, topicName: string, partition: number, messages: readonly MessageInput[]): Promise<{ partition: number; ids: Buffer[] }> {
    this.assertOpen();
    const { queueName, partition: chosen } = this.writer.route(topicName, partition, messages);
    const result = await this.transactions.add(transactionId, queueName, messages);
    return { partition: chosen, ids: result.ids };
  }

  /** Commits, rolls back, or (from a check-back) says it does not know yet. */
  async endTransaction(transactionId: string, outcome: TransactionOutcome): Promise<void> {
    this.assertOpen();
    if (outcome === 'commit') await this.transactions.commit(transactionId);
    else if (outcome === 'rollback') await this.transactions.rollback(transactionId);
    this.producerGroups.answer(transactionId, outcome);
  }

  /** A live transactional producer: check-backs for its group may go to it. Returns the function that removes it. */
  joinProducerGroup(producerGroup: string, member: ProducerGroupMember): () => void {
    return this.producerGroups.join(producerGroup, member);
  }

  listTransactions(): TransactionSummary[] {
    return this.transactions.list();
  }

  /** Idempotent producers with their sequence statistics (duplicates recognised, gaps refused). */
  listProducers(): ReturnType<ProducerStateManager['listProducers']> {
    return this.producerState.listProducers();
  }

  // ---- trace --------------------------------------------------------------------------------------------------------

  /**
   * Where a message went: where it is stored (from the message itself), then every recorded event, oldest first.
   */
  async traceMessage(id: Uint8Array): Promise<TraceEvent[]> {
    this.assertOpen();
    const messageId = Buffer.from(id);
    const events = await this.trace.traceOf(messageId);
    const stored = await this.store.findById(messageId);
    const where = stored === null ? undefined : this.topics.locate(stored.queueId);
    if (stored !== null && where !== undefined) {
      const storedEvent: TraceEvent = {
        kind: 'stored',
        messageId,
        time: stored.storeTimestamp,
        topic: where.topic.name,
        partition: where.partition,
        offset: stored.offset,
        producer: stored.producerId > 0 ? { producerId: stored.producerId } : {},
      };
      // First among events of the same millisecond: a message is stored before anything else can happen to it.
      events.unshift(storedEvent);
      events.sort((a, b) => a.time - b.time);
    }
    return events;
  }

  // ---- lookup -------------------------------------------------------------------------------------------------------

  async getMessage(request: GetMessageRequest): Promise<FoundMessage[]> {
    this.assertOpen();
    return this.lookup.getMessage(request);
  }

  /** The durable metadata map layers above the core keep their definitions in (e.g. AMQP's vhosts). */
  get metadata(): KeyValueStore {
    return this.store.metadata;
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.fetcher.close();
    this.groups.close();
    await this.writer.close();
    await this.workQueues.close();
    this.producerGroups.close();
    await this.transactions.close();
    await this.delays.close();
    await this.trace.close();
    await this.producerState.close();
  }

  private assertOpen(): void {
    if (this.closing !== null) throw shuttingDown();
  }

  /** Internals the tests in this folder inspect (waiting fetches, producer snapshots, group invariants). */
  get internals(): { fetcher: Fetcher; producerState: ProducerStateManager; groups: ConsumerGroups; workQueues: WorkQueues } {
    return { fetcher: this.fetcher, producerState: this.producerState, groups: this.groups, workQueues: this.workQueues };
  }
}
