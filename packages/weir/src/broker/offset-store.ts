import type { Clock } from '../core/clock.js';
import type { KeyValueStore } from '../storage/message-store.js';
import type { MetadataOp } from './errors.js';
import type { Topic, TopicObserver } from './topic-registry.js';

const OFFSETS_KEY_PREFIX = 'offsets/';

export interface CommittedOffset {
  /** The next offset to consume. */
  offset: number;
  /** Free text stored with the commit. */
  metadata: string;
  /** Wall-clock time of the commit. */
  timestamp: number;
}

export interface OffsetCommit {
  topic: string;
  partition: number;
  offset: number;
  metadata: string;
}

/** Group names may hold any printable character, '/' included, so they are URI-encoded inside keys. */
function offsetKey(group: string, topic: string, partition: number): string {
  return `${OFFSETS_KEY_PREFIX}${encodeURIComponent(group)}/${topic}/${partition}`;
}

/**
 * Committed offsets, one metadata key per (group, topic, partition): `offsets/<uri-encoded group>/<topic>/<partition>`
 * → `{ offset, metadata, timestamp }`. An in-memory index by group and topic mirrors the metadata map (which sees
 * writes at call time): it is updated when a commit is called and re-read from the metadata map if the commit fails
 * (the metadata store then reverts to what is durable). One commit call is one atomic `apply`.
 */
export class OffsetStore implements TopicObserver {
  private readonly byGroup = new Map<string, Map<string, Map<number, CommittedOffset>>>();

  constructor(
    private readonly metadata: KeyValueStore,
    private readonly clock: Clock,
  ) {
    for (const [key, value] of metadata.entries(OFFSETS_KEY_PREFIX)) {
      const parsed = parseKey(key);
      if (parsed !== null) this.remember(parsed.group, parsed.topic, parsed.partition, value as CommittedOffset);
    }
  }

  get(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.byGroup.get(group)?.get(topic)?.get(partition);
  }

  /** Topics with offsets committed by the group. */
  topicsOf(group: string): string[] {
    return [...(this.byGroup.get(group)?.keys() ?? [])];
  }

  /** Stores the offsets (plus `extraOps`, e.g. the group's record) atomically; resolves once durable. */
  async commit(group: string, commits: readonly OffsetCommit[], extraOps: readonly MetadataOp[] = []): Promise<void> {
    const timestamp = this.clock.now();
    const ops: MetadataOp[] = [...extraOps];
    for (const commit of commits) {
      const value: CommittedOffset = { offset: commit.offset, metadata: commit.metadata, timestamp };
      ops.push({ key: offsetKey(group, commit.topic, commit.partition), value });
      this.remember(group, commit.topic, commit.partition, value);
    }
    try {
      await this.metadata.apply(ops);
    } catch (error) {
      for (const commit of commits) {
        const durable = this.metadata.get(offsetKey(group, commit.topic, commit.partition)) as CommittedOffset | undefined;
        if (durable === undefined) this.forget(group, commit.topic, commit.partition);
        else this.remember(group, commit.topic, commit.partition, durable);
      }
      throw error;
    }
  }

  topicDeleting(topic: Topic): MetadataOp[] {
    const ops: MetadataOp[] = [];
    for (const [group, topics] of this.byGroup) {
      for (const partition of topics.get(topic.name)?.keys() ?? []) ops.push({ key: offsetKey(group, topic.name, partition), delete: true });
    }
    return ops;
  }

  topicDeleted(topic: Topic): void {
    for (const [group, topics] of this.byGroup) {
      topics.delete(topic.name);
      if (topics.size === 0) this.byGroup.delete(group);
    }
  }

  private remember(group: string, topic: string, partition: number, value: CommittedOffset): void {
    let topics = this.byGroup.get(group);
    if (topics === undefined) this.byGroup.set(group, (topics = new Map()));
    let partitions = topics.get(topic);
    if (partitions === undefined) topics.set(topic, (partitions = new Map()));
    partitions.set(partition, value);
  }

  private forget(group: string, topic: string, partition: number): void {
    const topics = this.byGroup.get(group);
    const partitions = topics?.get(topic);
    if (topics === undefined || partitions === undefined) return;
    partitions.delete(partition);
    if (partitions.size === 0) topics.delete(topic);
    if (topics.size === 0) this.byGroup.delete(group);
  }
}

function parseKey(key: string): { group: string; topic: string; partition: number } | null {
  const parts = key.slice(OFFSETS_KEY_PREFIX.length).split('/');
  if (parts.length !== 3) return null;
  const partition = Number(parts[2]);
  if (!Number.isSafeInteger(partition)) return null;
  return { group: decodeURIComponent(parts[0]!), topic: parts[1]!, partition };
}
