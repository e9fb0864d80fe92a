import type { TopicDescription } from 'weir-protocol';
import type { WeirClient } from './client.js';
import { isWeirClientError, WeirClientError } from './errors.js';

interface Entry {
  description: TopicDescription;
  fetchedAt: number;
  /** Set by a timer once the entry is older than maxAge, so the per-message check needs no clock read. */
  expired: boolean;
  expiry: NodeJS.Timeout | null;
}

/** Longest delay setTimeout takes; entries that live longer (or a maxAge of 0) are checked against the clock. */
const MAX_TIMER_MS = 0x7fffffff;

/**
 * Topic descriptions (partition counts above all) cached per client. Entries older than `maxAgeMs` are fetched again
 * (so partitions added with AlterTopic are picked up); `invalidate` drops one at once, as the producer does after
 * UNKNOWN_TOPIC or INVALID_PARTITION. Concurrent lookups of one topic share one DescribeTopic.
 */
export class TopicMetadata {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<TopicDescription>>();

  constructor(
    private readonly client: WeirClient,
    private readonly maxAgeMs: number,
  ) {}

  /** How long a cached description is used. */
  get maxAge(): number {
    return this.maxAgeMs;
  }

  /** The cached partition count of a topic, or undefined when it is not cached (or too old). */
  cachedPartitionCount(topic: string): number | undefined {
    const entry = this.entries.get(topic);
    if (entry === undefined || entry.expired) return undefined;
    if (entry.expiry === null && Date.now() - entry.fetchedAt > this.maxAgeMs) return undefined;
    return entry.description.partitions.length;
  }

  /** The partition count of a topic; rejects with UNKNOWN_TOPIC (and a hint) when it does not exist. */
  async partitionCount(topic: string): Promise<number> {
    return this.cachedPartitionCount(topic) ?? (await this.describe(topic, true)).partitions.length;
  }

  /** The topic's description, from the cache unless `refresh` or it is too old. */
  describe(topic: string, refresh = false): Promise<TopicDescription> {
    const entry = this.entries.get(topic);
    if (!refresh && entry !== undefined && Date.now() - entry.fetchedAt <= this.maxAgeMs) return Promise.resolve(entry.description);
    let pending = this.loading.get(topic);
    if (pending === undefined) {
      pending = this.fetch(topic).finally(() => this.loading.delete(topic));
      this.loading.set(topic, pending);
    }
    return pending;
  }

  invalidate(topic: string): void {
    this.forget(topic);
  }

  /** Stores a description learnt elsewhere (e.g. from CreateTopic or ListTopics). */
  remember(description: TopicDescription): void {
    this.forget(description.name);
    const entry: Entry = { description, fetchedAt: Date.now(), expired: false, expiry: null };
    if (this.maxAgeMs > 0 && this.maxAgeMs < MAX_TIMER_MS) {
      entry.expiry = setTimeout(() => {
        entry.expired = true;
      }, this.maxAgeMs);
      entry.expiry.unref();
    }
    this.entries.set(description.name, entry);
  }

  private forget(topic: string): void {
    const entry = this.entries.get(topic);
    if (entry === undefined) return;
    if (entry.expiry !== null) clearTimeout(entry.expiry);
    this.entries.delete(topic);
  }

  private async fetch(topic: string): Promise<TopicDescription> {
    try {
      const { topic: description } = await this.client.requestWithRetry('DescribeTopic', { name: topic });
      this.remember(description);
      return description;
    } catch (error) {
      if (isWeirClientError(error, 'UNKNOWN_TOPIC')) {
        this.forget(topic);
        throw new WeirClientError('UNKNOWN_TOPIC', `topic ${JSON.stringify(topic)} does not exist; create it first (admin.createTopic(${JSON.stringify(topic)}, { partitions }) or \`weir topic create\`)`, {
          cause: error,
        });
      }
      throw error;
    }
  }
}
