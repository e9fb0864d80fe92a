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

/** A user as the broker lists it: the broker keeps only a salted hash of the password, and never returns it here. */
export interface UserInfo {
  readonly name: string;
  readonly tags: readonly string[];
}

/**
 * A user's permissions on a virtual host: regular expressions over resource names (queues, exchanges), matched
 * anywhere in the name unless anchored with `^…$`; '' grants nothing.
 */
export interface PermissionInfo {
  readonly user: string;
  readonly vhost: string;
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

export interface DefinitionsImportReport {
  /** Entries imported per top-level key, e.g. `{ users: 3, vhosts: 2, permissions: 4 }`. */
  readonly applied: Readonly<Record<string, number>>;
  /** Top-level keys the broker ignores (e.g. RabbitMQ's `policies`, `parameters`). */
  readonly skipped: readonly string[];
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

  // ---- users, virtual hosts, permissions, definitions (RabbitMQ's model) --------------------------------------------
  // The broker answers these only over a loopback connection (ACCESS_REFUSED otherwise): the native protocol has no
  // authentication yet (docs/access-control.md).

  async listUsers(): Promise<UserInfo[]> {
    const { users } = await this.client.requestWithRetry('ListUsers', {});
    return users.map((user) => ({ name: user.name, tags: [...user.tags] }));
  }

  /** USER_EXISTS when the name is taken. */
  async addUser(name: string, password: string, tags: readonly string[] = []): Promise<void> {
    await this.client.request('AddUser', { name, password, tags });
  }

  /** Deletes the user and its permissions. */
  async deleteUser(name: string): Promise<void> {
    await this.client.request('DeleteUser', { name });
  }

  async changePassword(name: string, password: string): Promise<void> {
    await this.client.request('ChangePassword', { name, password });
  }

  /** Replaces the user's tags (none: no tags). */
  async setUserTags(name: string, tags: readonly string[]): Promise<void> {
    await this.client.request('SetUserTags', { name, tags });
  }

  async listVhosts(): Promise<string[]> {
    return [...(await this.client.requestWithRetry('ListVhosts', {})).vhosts];
  }

  /** VHOST_EXISTS when the name is taken. */
  async addVhost(name: string): Promise<void> {
    await this.client.request('AddVhost', { name });
  }

  /** Deletes the vhost, everything in it, and every permission on it. */
  async deleteVhost(name: string): Promise<void> {
    await this.client.request('DeleteVhost', { name });
  }

  /** Sets (replaces) the user's permissions on the vhost; INVALID_ARGUMENT names a pattern that is not a regular expression. */
  async setPermissions(user: string, vhost: string, permissions: { configure: string; write: string; read: string }): Promise<void> {
    await this.client.request('SetPermissions', { user, vhost, configure: permissions.configure, write: permissions.write, read: permissions.read });
  }

  /** Removes the user's permissions on the vhost: it can no longer use the vhost. */
  async clearPermissions(user: string, vhost: string): Promise<void> {
    await this.client.request('ClearPermissions', { user, vhost });
  }

  /** By vhost, then user; a filter naming an unknown user or vhost fails with UNKNOWN_USER / UNKNOWN_VHOST. */
  async listPermissions(filter: { user?: string; vhost?: string } = {}): Promise<PermissionInfo[]> {
    const { permissions } = await this.client.requestWithRetry('ListPermissions', { user: filter.user ?? null, vhost: filter.vhost ?? null });
    return permissions.map((permission) => ({ ...permission }));
  }

  /** Users (with password hashes), vhosts, permissions and the rest, as a RabbitMQ-format definitions document. */
  async exportDefinitions(): Promise<Record<string, unknown>> {
    const { definitions } = await this.client.requestWithRetry('ExportDefinitions', {});
    try {
      return JSON.parse(Buffer.from(definitions).toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new WeirClientError('INVALID_REQUEST', 'the broker exported definitions that are not JSON', { retriable: false });
    }
  }

  /**
   * Creates or updates what a definitions document describes (ours, or a RabbitMQ export: JSON text or the parsed
   * object); deletes nothing. A bad entry fails the whole import with INVALID_ARGUMENT naming it, and nothing changes.
   */
  async importDefinitions(definitions: string | object): Promise<DefinitionsImportReport> {
    const text = typeof definitions === 'string' ? definitions : JSON.stringify(definitions);
    const report = await this.client.request('ImportDefinitions', { definitions: Buffer.from(text, 'utf8') });
    return { applied: Object.fromEntries(report.applied.map(({ key, count }) => [key, count])), skipped: [...report.skipped] };
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
