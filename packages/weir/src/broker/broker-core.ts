import { type Clock, systemClock } from '../core/clock.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { MessageStore } from '../storage/message-store.js';
import { ConsumerGroups, type CommitOffsetsRequest, type GroupDescription, type GroupMode, type GroupSummary, type HeartbeatRequest, type LeaveGroupRequest, type PartitionOffset, type SyncGroupRequest } from './consumer-groups.js';
import { shuttingDown } from './errors.js';
import { Fetcher, type FetchRequest, type FetchResult } from './fetch.js';
import type { JoinGroupRequest, JoinGroupResult, TopicAssignment } from './group-coordinator.js';
import { type FoundMessage, type GetMessageRequest, MessageLookup } from './message-lookup.js';
import { OffsetStore } from './offset-store.js';
import { PartitionWriter, type ProduceRequest, type ProduceResult } from './partition-writer.js';
import { Partitioner } from './partitioner.js';
import { type ProducerIdentity, ProducerIds } from './producer-ids.js';
import { ProducerStateManager } from './producer-state.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { type TopicConfig, type TopicDescription, TopicRegistry } from './topic-registry.js';

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
    const writer = new PartitionWriter(store, topics, partitioner, producerState);
    const fetcher = new Fetcher(store, topics, scheduler, logger);
    const offsets = new OffsetStore(store.metadata, clock);
    const groups = new ConsumerGroups(store, topics, offsets, clock, scheduler, logger, { initialRebalanceDelayMs: options.initialRebalanceDelayMs ?? 0 });
    const lookup = new MessageLookup(store, topics);
    topics.observe(offsets);
    topics.observe(producerState);
    topics.observe(fetcher);
    topics.observe(groups);
    topics.observe({ topicDeleted: (topic) => partitioner.forget(topic.name) });
    logger.info({ topics: topics.list().length }, 'broker opened');
    return new BrokerCore(topics, producerIds, producerState, writer, fetcher, groups, lookup);
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
    return this.groups.list();
  }

  // ---- lookup -------------------------------------------------------------------------------------------------------

  async getMessage(request: GetMessageRequest): Promise<FoundMessage[]> {
    this.assertOpen();
    return this.lookup.getMessage(request);
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
    await this.producerState.close();
  }

  private assertOpen(): void {
    if (this.closing !== null) throw shuttingDown();
  }

  /** Internals the tests in this folder inspect (waiting fetches, producer snapshots, group invariants). */
  get internals(): { fetcher: Fetcher; producerState: ProducerStateManager; groups: ConsumerGroups } {
    return { fetcher: this.fetcher, producerState: this.producerState, groups: this.groups };
  }
}
