import type { MessageStore } from '../storage/message-store.js';
import { decodeHeaders, RecordFlag, type StoredMessage } from '../storage/record-batch.js';
import { fromStorage, invalidArgument } from './errors.js';
import type { TopicRegistry } from './topic-registry.js';

const DEFAULT_LIMIT = 32;
const MAX_LIMIT = 1000;

export interface GetMessageRequest {
  /** Message id (one of id and key). */
  id?: Uint8Array | string | null;
  /** Key (one of id and key). */
  key?: Uint8Array | string | null;
  /** Restrict the lookup to one topic. */
  topic?: string | null;
  /** Most messages a key lookup returns (default 32, at most 1000). */
  limit?: number;
}

export interface FoundMessage {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  storeTimestamp: number;
  id: Buffer;
  key: Buffer | null;
  tag: string | null;
  headers: Record<string, string | Buffer>;
  body: Buffer;
}

/**
 * Message lookups by id or key through the store's indexes, with storage queue ids mapped back to (topic, partition).
 * Messages of queues that are not topic partitions, and control records, are never returned.
 */
export class MessageLookup {
  constructor(
    private readonly store: MessageStore,
    private readonly registry: TopicRegistry,
  ) {}

  /** Matches, newest first. */
  async getMessage(request: GetMessageRequest): Promise<FoundMessage[]> {
    const hasId = request.id !== undefined && request.id !== null;
    const hasKey = request.key !== undefined && request.key !== null;
    if (hasId === hasKey) throw invalidArgument('give exactly one of id and key');
    const limit = request.limit ?? DEFAULT_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw invalidArgument(`limit must be 1 to ${MAX_LIMIT}, not ${limit}`);
    const topic = request.topic === undefined || request.topic === null ? null : this.registry.get(request.topic);
    try {
      let messages: StoredMessage[];
      if (hasId) {
        const found = await this.store.findById(request.id!);
        messages = found === null ? [] : [found];
      } else {
        const queueIds = topic !== null ? [...topic.queueIds] : [...this.registry.all()].flatMap((each) => [...each.queueIds]);
        messages = queueIds.length === 0 ? [] : await this.store.findByKey(request.key!, { queueIds, limit });
      }
      const results: FoundMessage[] = [];
      for (const message of messages) {
        if ((message.flags & RecordFlag.Control) !== 0) continue;
        const where = this.registry.locate(message.queueId);
        if (where === undefined || (topic !== null && where.topic.name !== topic.name)) continue;
        results.push({
          topic: where.topic.name,
          partition: where.partition,
          offset: message.offset,
          timestamp: message.timestamp,
          storeTimestamp: message.storeTimestamp,
          id: message.id,
          key: message.key,
          tag: message.tag,
          headers: decodeHeaders(message.headers),
          body: message.body,
        });
      }
      return results.slice(0, limit);
    } catch (error) {
      throw fromStorage(error, request.topic ?? '');
    }
  }
}
