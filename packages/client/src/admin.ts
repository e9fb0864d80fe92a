import type { DecodedResponseOf, FoundMessage, GroupLag, GroupMember, GroupSummary, PartitionState, StructOf, TopicConfig, TopicDescription } from 'weir-protocol';
import type { WeirClient } from './client.js';
import type { ConsumedMessage } from './consumer.js';
import { WeirClientError } from './errors.js';
import type { QueueFilter, QueueGroupSettings, QueueMode } from './queue-consumer.js';
import { Delivered, type PeekedMessage } from './queue-message.js';
import { consumedMessageOf } from './wire-message.js';
import { parseTraceEntry, type TraceEvent } from './trace.js';

/**
 * An idempotent producer the broker has seen since it started, with what its sequence numbers revealed: `duplicates`
 * (messages of retried batches recognised and not stored again) and `gaps` (batches refused because sequence numbers
 * were skipped: loss upstream of the broker).
 */
export type ProducerInfo = StructOf<'ProducerInfo', 'decode'>;

/** Topic settings; every field optional (the rest keep their defaults, or their current values in `alterTopic`). */
export interface TopicSettings {
  /** Delete messages older than this; -1 keeps them (default -1). */
  retentionMs?: number;
  /** Keep about this many bytes per partition; -1 for no limit (default -1). */
  retentionBytes?: number;
  /** `sync` (default), `interval` or `none`: when the broker fsyncs (docs/storage.md). */
  flushPolicy?: 'sync' | 'interval' | 'none';
  /** Sync interval of the `interval` policy (default 1000 ms). */
  flushIntervalMs?: number;
  /** Largest message accepted (default 1 MiB). */
  maxMessageBytes?: number;
}

export interface CreateTopicOptions extends TopicSettings {
  /** Number of partitions (1–10,000). */
  partitions: number;
}

export interface AlterTopicOptions extends TopicSettings {
  /** New partition count (only ever grows). */
  partitions?: number;
}

/** The defaults the protocol needs for fields not given (docs/protocol.md, TopicConfig). */
export const DEFAULT_TOPIC_CONFIG: Readonly<TopicConfig> = {
  retentionMs: -1,
  retentionBytes: -1,
  flushPolicy: 'sync',
  flushIntervalMs: 1000,
  maxMessageBytes: 1024 * 1024,
};

export interface TopicInfo {
  readonly name: string;
  readonly config: TopicConfig;
  readonly partitions: readonly PartitionState[];
}

/** A message found by id or key: the same fields a consumer yields (its id as lowercase hex). */
export type FoundMessageInfo = ConsumedMessage;

export interface GroupDescription {
  readonly summary: GroupSummary;
  readonly generation: number;
  readonly strategy: string;
  readonly members: readonly GroupMember[];
  readonly lag: readonly GroupLag[];
}

/** A shared (work-queue) group as `describeSharedGroup` shows it. */
export interface SharedGroupDescription {
  readonly group: string;
  readonly mode: QueueMode;
  /** Every setting, defaults filled in. */
  readonly settings: Required<QueueGroupSettings>;
  readonly filter: QueueFilter | null;
  readonly topics: readonly SharedTopicDescription[];
}

export interface SharedTopicDescription {
  readonly topic: string;
  /** Read ahead and waiting for a consumer. */
  readonly ready: number;
  /** Unsettled and not read ahead yet. */
  readonly unread: number;
  /** Delivered and not settled yet. */
  readonly inflight: number;
  /** Nacked, waiting for their redelivery time. */
  readonly waiting: number;
  readonly consumers: ReadonlyArray<{ consumerId: string; clientId: string; host: string; prefetch: number; inflight: number }>;
}

export interface GetMessageQuery {
  /** A message id: hex as results show it, or bytes (for a text id, pass `Buffer.from(text)`). */
  id?: string | Uint8Array;
  /** A key (a string is taken as UTF-8). */
  key?: string | Uint8Array;
  /** Restrict a key lookup to one topic. */
  topic?: string;
  /** Most messages for a key lookup (default 100). */
  limit?: number;
}

/**
 * Topic and group administration, and lookups. Reads are retried after retriable failures; changes (create, delete,
 * alter) are sent once, because repeating one after a lost answer could report an error for a change that happened.
 */
export class Admin {
  constructor(private readonly client: WeirClient) {}

  async createTopic(name: string, options: CreateTopicOptions): Promise<TopicInfo> {
    if (options === undefined || !Number.isInteger(options.partitions)) {
      throw new WeirClientError('INVALID_ARGUMENT', `createTopic(${JSON.stringify(name)}, { partitions }): partitions must be an integer`, { retriable: false });
    }
    const { topic } = await this.client.request('CreateTopic', { name, partitions: options.partitions, config: configOf(options, DEFAULT_TOPIC_CONFIG) });
    this.client.metadata.remember(topic);
    return topic;
  }

  async deleteTopic(name: string): Promise<void> {
    try {
      await this.client.request('DeleteTopic', { name });
    } finally {
      this.client.metadata.invalidate(name);
    }
  }

  async listTopics(): Promise<TopicInfo[]> {
    const { topics } = await this.client.requestWithRetry('ListTopics', {});
    for (const topic of topics) this.client.metadata.remember(topic);
    return [...topics];
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    return this.client.metadata.describe(name, true);
  }

  /** Changes settings and/or grows the partition count; fields not given keep their current values. */
  async alterTopic(name: string, options: AlterTopicOptions): Promise<TopicInfo> {
    const current = await this.client.metadata.describe(name, true);
    const { topic } = await this.client.request('AlterTopic', { name, partitions: options.partitions ?? -1, config: configOf(options, current.config) });
    this.client.metadata.remember(topic);
    return topic;
  }

  async listGroups(): Promise<GroupSummary[]> {
    const { groups } = await this.client.requestWithRetry('ListGroups', {});
    return [...groups];
  }

  async describeGroup(group: string): Promise<GroupDescription> {
    const answer = await this.client.requestWithRetry('DescribeGroup', { group });
    return { summary: answer.summary, generation: answer.generation, strategy: answer.strategy, members: answer.members, lag: answer.lag };
  }

  /** Mode, settings, filter, message counts and consumers of a shared or key_shared group (INVALID_GROUP for other groups). */
  async describeSharedGroup(group: string): Promise<SharedGroupDescription> {
    const answer = await this.client.requestWithRetry('DescribeSharedGroup', { group });
    let settings: Required<QueueGroupSettings>;
    try {
      settings = JSON.parse(answer.settings) as Required<QueueGroupSettings>;
    } catch {
      throw new WeirClientError('INVALID_REQUEST', `the broker described group ${JSON.stringify(group)} with settings that are not JSON`, { retriable: false });
    }
    const filter: QueueFilter | null = answer.filterKind === 'tag' ? { tag: answer.filter } : answer.filterKind === 'sql' ? { sql: answer.filter } : null;
    return {
      group,
      mode: answer.mode as QueueMode,
      settings,
      filter,
      topics: answer.topics.map((entry) => ({
        topic: entry.topic,
        ready: entry.ready,
        unread: entry.unread,
        inflight: entry.inflight,
        waiting: entry.waiting,
        consumers: entry.consumers.map((consumer) => ({ ...consumer })),
      })),
    };
  }

  /** Up to `limit` ready messages of a shared group's topic, in dispatch order, without delivering them. */
  async peek(group: string, topic: string, limit = 10): Promise<PeekedMessage[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new WeirClientError('INVALID_ARGUMENT', `peek limit must be an integer from 1 to 10000, not ${limit}`, { retriable: false });
    const { messages } = await this.client.requestWithRetry('Peek', { group, topic, limit });
    return messages.map((delivery) => new Delivered(topic, delivery, null));
  }

  /** Committed offsets of a group for one topic (offset -1 where none is committed). */
  async fetchOffsets(group: string, topic: string): Promise<DecodedResponseOf<'FetchOffsets'>['offsets']> {
    return (await this.client.requestWithRetry('FetchOffsets', { group, topic })).offsets;
  }

  /** Looks messages up by id or by key (newest first). */
  async getMessage(query: GetMessageQuery): Promise<FoundMessageInfo[]> {
    const id = query.id === undefined ? null : idBytesOf(query.id);
    const key = query.key === undefined ? null : typeof query.key === 'string' ? Buffer.from(query.key, 'utf8') : query.key;
    if (id === null && key === null) throw new WeirClientError('INVALID_ARGUMENT', 'getMessage needs an id or a key', { retriable: false });
    const { messages } = await this.client.requestWithRetry('GetMessage', { id, key, topic: query.topic ?? null, limit: query.limit ?? 100 });
    return messages.map(toFoundMessage);
  }

  /** Idempotent producers seen since the broker started, by producer id (ListProducers). */
  async listProducers(): Promise<ProducerInfo[]> {
    const { producers } = await this.client.requestWithRetry('ListProducers', {});
    return producers.map((producer) => ({ ...producer }));
  }

  /**
   * What happened to a message, oldest first: where it is stored, then each delay, delivery, ack, nack, reject,
   * dead-lettering, expiry and transaction step the broker recorded (GetTrace). The id is hex as results show it, or
   * bytes. Best effort: the broker keeps events for its traceRetentionMs and drops some under overload.
   */
  async trace(id: string | Uint8Array): Promise<TraceEvent[]> {
    const { events } = await this.client.requestWithRetry('GetTrace', { id: idBytesOf(id) });
    return events.map(parseTraceEntry);
  }

  /**
   * An offset of one partition: `earliest` (the first readable), `latest` (one past the last message), or the first
   * message stored at or after a time.
   */
  async listOffsets(topic: string, partition: number, at: 'earliest' | 'latest' | Date | number = 'latest'): Promise<number> {
    const timestamp = at === 'earliest' ? -2 : at === 'latest' ? -1 : at instanceof Date ? at.getTime() : at;
    return (await this.client.requestWithRetry('ListOffsets', { topic, partition, timestamp })).offset;
  }
}

function configOf(settings: TopicSettings, base: Readonly<TopicConfig>): TopicConfig {
  return {
    retentionMs: settings.retentionMs ?? base.retentionMs,
    retentionBytes: settings.retentionBytes ?? base.retentionBytes,
    flushPolicy: settings.flushPolicy ?? base.flushPolicy,
    flushIntervalMs: settings.flushIntervalMs ?? base.flushIntervalMs,
    maxMessageBytes: settings.maxMessageBytes ?? base.maxMessageBytes,
  };
}

function idBytesOf(id: string | Uint8Array): Uint8Array {
  if (typeof id !== 'string') return id;
  if (id.length === 0 || id.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(id)) {
    throw new WeirClientError('INVALID_ARGUMENT', `message id ${JSON.stringify(id)} is not hex; pass the hex id a result showed, or bytes (Buffer.from(text) for a text id)`, {
      retriable: false,
    });
  }
  return Buffer.from(id, 'hex');
}

function toFoundMessage(found: StructOf<'FoundMessage', 'decode'>): FoundMessageInfo {
  return consumedMessageOf(found.topic, found.partition, found.offset, found);
}

export type { FoundMessage, TopicDescription };
