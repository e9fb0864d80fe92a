import { ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { checkedQueueSettings, defaultQueueSettings, type MessageStore, type QueueSettings } from '../storage/message-store.js';
import { brokerError, invalidArgument, type MetadataOp } from './errors.js';

/** A topic's settings; each partition's storage queue gets exactly these. */
export type TopicConfig = QueueSettings;

export const defaultTopicConfig: Readonly<TopicConfig> = Object.freeze({ ...defaultQueueSettings });

export const MAX_PARTITIONS = 10_000;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const TOPIC_KEY_PREFIX = 'topic/';
/** Queue creations or deletions in flight at once while a topic's partitions are set up or torn down. */
const QUEUE_OPERATION_CONCURRENCY = 32;

export interface PartitionState {
  partition: number;
  /** First readable offset. */
  startOffset: number;
  /** One past the last acknowledged message. */
  endOffset: number;
  /** Bytes stored between start and end. */
  bytes: number;
}

export interface TopicDescription {
  name: string;
  config: TopicConfig;
  partitions: PartitionState[];
}

/** A topic as the hot paths see it: an immutable snapshot, replaced (not changed) by alter. */
export interface Topic {
  readonly name: string;
  readonly config: Readonly<TopicConfig>;
  /** The storage queue id of each partition, by partition number. */
  readonly queueIds: readonly number[];
}

/** Where a storage queue sits in the topic model. */
export interface PartitionRef {
  readonly topic: Topic;
  readonly partition: number;
}

/** Modules holding per-topic state hear about topic changes through this. */
export interface TopicObserver {
  /** Called synchronously when a deletion starts; the returned ops are applied atomically with the deletion mark. */
  topicDeleting?(topic: Topic): MetadataOp[];
  /** The deletion is durable: drop in-memory state and wake waiters. Called before the queues are removed. */
  topicDeleted?(topic: Topic): void;
  /** A topic appeared, gained partitions or went away (consumer groups rebalance on this). */
  topicChanged?(name: string): void;
}

/** The durable definition under `topic/<name>`. The record is written first and is the intent recovery completes. */
interface StoredTopic {
  name: string;
  partitions: number;
  config: TopicConfig;
  /** Set while the topic's queues are being deleted; open finishes the job. */
  deleting?: boolean;
}

/** The storage queue name of a partition. */
export function partitionQueueName(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

export function validateTopicName(name: unknown): string | null {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name)) return 'a topic name is 1 to 249 characters of letters, digits, ".", "_" and "-"';
  return null;
}

function validatePartitionCount(partitions: unknown): void {
  if (!Number.isSafeInteger(partitions) || (partitions as number) < 1 || (partitions as number) > MAX_PARTITIONS) {
    throw brokerError(ErrorCode.InvalidPartition, `a topic has 1 to ${MAX_PARTITIONS} partitions, not ${String(partitions)}`);
  }
}

function sameSettings(a: QueueSettings, b: QueueSettings): boolean {
  return (
    a.flushPolicy === b.flushPolicy &&
    a.flushIntervalMs === b.flushIntervalMs &&
    a.retentionMs === b.retentionMs &&
    a.retentionBytes === b.retentionBytes &&
    a.maxMessageBytes === b.maxMessageBytes
  );
}

/** Runs `work` over `items` with at most `limit` calls in flight; fails with the first error once all have settled. */
async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === null) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}

/**
 * Topics and their partitions. A topic with N partitions is N storage queues named `<topic>/<partition>`, all with
 * the topic's settings; the definition lives in the store's metadata under `topic/<name>`.
 *
 * Crash behaviour: every change writes the topic record first and then brings the queues in line with it, so the
 * record is the intent. `open` completes whatever a crash interrupted: it creates missing partition queues, re-applies
 * settings that differ, and finishes deletions (records marked `deleting`).
 *
 * Concurrency: create, alter and delete of one topic name run one at a time (a per-name chain); different topics
 * proceed in parallel. Lookups are synchronous and see a topic only once all its partitions exist.
 */
export class TopicRegistry {
  private readonly topics = new Map<string, Topic>();
  private readonly byQueueId = new Map<number, PartitionRef>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly observers: TopicObserver[] = [];

  private constructor(
    private readonly store: MessageStore,
    private readonly logger: Logger,
  ) {}

  /** Loads every topic and repairs what a crash left half done. */
  static async open(store: MessageStore, logger: Logger): Promise<TopicRegistry> {
    const registry = new TopicRegistry(store, logger);
    for (const [key, value] of store.metadata.entries(TOPIC_KEY_PREFIX)) {
      const record = value as StoredTopic;
      if (record.deleting) {
        logger.warn({ topic: record.name }, 'finishing the deletion of a topic interrupted by a restart');
        await registry.removeQueues(record);
        await store.metadata.delete(key);
        continue;
      }
      const queueIds = await registry.ensureQueues(record);
      registry.register({ name: record.name, config: Object.freeze({ ...record.config }), queueIds });
    }
    return registry;
  }

  observe(observer: TopicObserver): void {
    this.observers.push(observer);
  }

  async create(name: string, partitions: number, config: Partial<TopicConfig> = {}): Promise<TopicDescription> {
    const nameError = validateTopicName(name);
    if (nameError) throw invalidArgument(nameError);
    validatePartitionCount(partitions);
    const settings = checkedQueueSettings(defaultQueueSettings, config);
    return this.exclusive(name, async () => {
      if (this.topics.has(name)) throw brokerError(ErrorCode.TopicExists, `topic "${name}" already exists`);
      if (this.store.metadata.has(TOPIC_KEY_PREFIX + name)) throw brokerError(ErrorCode.TopicExists, `topic "${name}" is still being deleted`);
      for (let partition = 0; partition < partitions; partition++) {
        const queueName = partitionQueueName(name, partition);
        if (this.store.queue(queueName) !== null) throw brokerError(ErrorCode.TopicExists, `storage queue "${queueName}" already exists`);
      }
      const record: StoredTopic = { name, partitions, config: settings };
      await this.store.metadata.put(TOPIC_KEY_PREFIX + name, record);
      let queueIds: number[];
      try {
        queueIds = await this.ensureQueues(record);
      } catch (error) {
        // Take the half-made topic back; should that fail too, open finishes it (the record says deleting).
        try {
          await this.store.metadata.put(TOPIC_KEY_PREFIX + name, { ...record, deleting: true });
          await this.removeQueues(record);
          await this.store.metadata.delete(TOPIC_KEY_PREFIX + name);
        } catch (rollbackError) {
          this.logger.error({ topic: name, err: rollbackError }, 'could not take back a topic whose creation failed');
        }
        throw error;
      }
      const topic = this.register({ name, config: Object.freeze({ ...settings }), queueIds });
      this.logger.info({ topic: name, partitions }, 'topic created');
      this.notifyChanged(name);
      return this.describeTopic(topic);
    });
  }

  /**
   * Changes settings (applied to every partition) and/or raises the partition count (`partitions` -1 or absent keeps
   * it; partitions are never removed). A call that fails part way is completed by repeating it, or by the next open.
   */
  async alter(name: string, change: { partitions?: number; config?: Partial<TopicConfig> }): Promise<TopicDescription> {
    return this.exclusive(name, async () => {
      const topic = this.get(name);
      const current = topic.queueIds.length;
      const partitions = change.partitions === undefined || change.partitions === -1 ? current : change.partitions;
      validatePartitionCount(partitions);
      if (partitions < current) throw brokerError(ErrorCode.InvalidPartition, `topic "${name}" has ${current} partitions; the count can only grow, not become ${partitions}`);
      const settings = checkedQueueSettings(topic.config, change.config ?? {});
      const record: StoredTopic = { name, partitions, config: settings };
      await this.store.metadata.put(TOPIC_KEY_PREFIX + name, record);
      const queueIds = await this.ensureQueues(record);
      const altered = this.register({ name, config: Object.freeze({ ...settings }), queueIds });
      this.logger.info({ topic: name, partitions }, 'topic altered');
      if (partitions !== current) this.notifyChanged(name);
      return this.describeTopic(altered);
    });
  }

  /** Deletes the topic, its partition queues, and whatever observers delete with it (committed offsets, producer state). */
  async delete(name: string): Promise<void> {
    return this.exclusive(name, async () => {
      const key = TOPIC_KEY_PREFIX + name;
      const stored = this.store.metadata.get(key) as StoredTopic | undefined;
      const topic = this.topics.get(name);
      if (topic === undefined) {
        // A deletion that failed part way may be resumed; anything else is unknown.
        if (stored?.deleting !== true) throw brokerError(ErrorCode.UnknownTopic, `topic "${name}" does not exist`);
        await this.removeQueues(stored);
        await this.store.metadata.delete(key);
        return;
      }
      this.unregister(topic);
      const record: StoredTopic = { name, partitions: topic.queueIds.length, config: { ...topic.config }, deleting: true };
      const ops: MetadataOp[] = [{ key, value: record }];
      for (const observer of this.observers) ops.push(...(observer.topicDeleting?.(topic) ?? []));
      try {
        await this.store.metadata.apply(ops);
      } catch (error) {
        this.register(topic);
        throw error;
      }
      for (const observer of this.observers) observer.topicDeleted?.(topic);
      this.notifyChanged(name);
      await this.removeQueues(record);
      await this.store.metadata.delete(key);
      this.logger.info({ topic: name }, 'topic deleted');
    });
  }

  list(): TopicDescription[] {
    return [...this.topics.keys()].sort().map((name) => this.describeTopic(this.topics.get(name)!));
  }

  describe(name: string): TopicDescription {
    return this.describeTopic(this.get(name));
  }

  /** The topic, or UNKNOWN_TOPIC. */
  get(name: string): Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) throw brokerError(ErrorCode.UnknownTopic, `topic "${name}" does not exist`);
    return topic;
  }

  find(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  all(): IterableIterator<Topic> {
    return this.topics.values();
  }

  /** The storage queue of a partition, or UNKNOWN_TOPIC / INVALID_PARTITION. */
  queueId(topicName: string, partition: number): number {
    const topic = this.get(topicName);
    const queueId = Number.isSafeInteger(partition) ? topic.queueIds[partition] : undefined;
    if (queueId === undefined) throw brokerError(ErrorCode.InvalidPartition, `topic "${topicName}" has partitions 0 to ${topic.queueIds.length - 1}, not ${partition}`);
    return queueId;
  }

  /** The (topic, partition) a storage queue belongs to, or undefined for queues that are not partitions. */
  locate(queueId: number): PartitionRef | undefined {
    return this.byQueueId.get(queueId);
  }

  private describeTopic(topic: Topic): TopicDescription {
    return {
      name: topic.name,
      config: { ...topic.config },
      partitions: topic.queueIds.map((queueId, partition) => {
        const info = this.store.queueById(queueId);
        return { partition, startOffset: info?.startOffset ?? 0, endOffset: info?.endOffset ?? 0, bytes: info?.bytes ?? 0 };
      }),
    };
  }

  private register(topic: Topic): Topic {
    const previous = this.topics.get(topic.name);
    if (previous) this.unregister(previous);
    this.topics.set(topic.name, topic);
    topic.queueIds.forEach((queueId, partition) => this.byQueueId.set(queueId, { topic, partition }));
    return topic;
  }

  private unregister(topic: Topic): void {
    this.topics.delete(topic.name);
    for (const queueId of topic.queueIds) this.byQueueId.delete(queueId);
  }

  private notifyChanged(name: string): void {
    for (const observer of this.observers) {
      try {
        observer.topicChanged?.(name);
      } catch (error) {
        this.logger.error({ topic: name, err: error }, 'a topic observer failed');
      }
    }
  }

  /** Creates missing partition queues and re-applies settings that differ; returns the queue ids by partition. */
  private async ensureQueues(record: StoredTopic): Promise<number[]> {
    const queueIds = new Array<number>(record.partitions);
    const partitions = Array.from({ length: record.partitions }, (_, partition) => partition);
    await forEachLimited(partitions, QUEUE_OPERATION_CONCURRENCY, async (partition) => {
      const queueName = partitionQueueName(record.name, partition);
      let info = this.store.queue(queueName);
      if (info === null) info = await this.store.createQueue(queueName, record.config);
      else if (!sameSettings(info.settings, record.config)) info = await this.store.updateQueue(queueName, record.config);
      queueIds[partition] = info.id;
    });
    return queueIds;
  }

  private async removeQueues(record: StoredTopic): Promise<void> {
    const partitions = Array.from({ length: record.partitions }, (_, partition) => partition);
    await forEachLimited(partitions, QUEUE_OPERATION_CONCURRENCY, async (partition) => {
      const queueName = partitionQueueName(record.name, partition);
      if (this.store.queue(queueName) !== null) await this.store.deleteQueue(queueName);
    });
  }

  /** Runs `work` after every earlier exclusive call for the same topic name has settled. */
  private exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(work);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }
}
