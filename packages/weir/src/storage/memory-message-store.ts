import { type Clock, systemClock } from '../core/clock.js';
import { ErrorCode, WeirError } from '../core/errors.js';
import {
  type AppendListener,
  type AppendResult,
  defaultQueueSettings,
  type MessageStore,
  type QueueInfo,
  type QueueSettings,
  type ReadOptions,
  type ReadResult,
  resolveQueueSettings,
  type RetentionReport,
  validateQueueName,
} from './message-store.js';
import { type BatchAttributes, generatedMessageId, MAX_MESSAGES_PER_BATCH, type MessageInput, prepareMessage, type StoredMessage } from './record-batch.js';

interface MemoryQueue {
  id: number;
  name: string;
  settings: QueueSettings;
  /** messages[i] has offset startOffset + i. */
  messages: StoredMessage[];
  /** Encoded size of each message, parallel to `messages`. */
  sizes: number[];
  startOffset: number;
  bytes: number;
}

/**
 * A MessageStore that keeps everything in memory: for non-persistent queues and fast tests. It follows the same
 * contract as DiskMessageStore (the conformance suite checks both); flush policies have nothing to flush, and
 * generated ids have the same layout, with a counter standing in for the commit-log position.
 */
export class MemoryMessageStore implements MessageStore {
  private readonly queuesById = new Map<number, MemoryQueue>();
  private readonly queuesByName = new Map<string, MemoryQueue>();
  private readonly listeners = new Set<AppendListener>();
  private nextQueueId = 1;
  private nextPosition = 0;
  private lastStoreTimestamp = 0;
  private closed = false;

  constructor(private readonly clock: Clock = systemClock) {}

  async createQueue(name: string, settings: Partial<QueueSettings> = {}): Promise<QueueInfo> {
    this.assertOpen();
    const nameError = validateQueueName(name);
    if (nameError) throw new WeirError(ErrorCode.InvalidArgument, nameError);
    if (this.queuesByName.has(name)) throw new WeirError(ErrorCode.QueueExists, `queue "${name}" already exists`);
    const resolved = resolveQueueSettings(defaultQueueSettings, settings);
    if (typeof resolved === 'string') throw new WeirError(ErrorCode.InvalidArgument, resolved);
    const queue: MemoryQueue = { id: this.nextQueueId++, name, settings: resolved, messages: [], sizes: [], startOffset: 0, bytes: 0 };
    this.queuesById.set(queue.id, queue);
    this.queuesByName.set(name, queue);
    return this.info(queue);
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    this.assertOpen();
    const queue = this.byName(name);
    const resolved = resolveQueueSettings(queue.settings, settings);
    if (typeof resolved === 'string') throw new WeirError(ErrorCode.InvalidArgument, resolved);
    queue.settings = resolved;
    return this.info(queue);
  }

  async deleteQueue(name: string): Promise<void> {
    this.assertOpen();
    const queue = this.byName(name);
    this.queuesById.delete(queue.id);
    this.queuesByName.delete(name);
  }

  queue(name: string): QueueInfo | null {
    const queue = this.queuesByName.get(name);
    return queue ? this.info(queue) : null;
  }

  queueById(id: number): QueueInfo | null {
    const queue = this.queuesById.get(id);
    return queue ? this.info(queue) : null;
  }

  listQueues(): QueueInfo[] {
    return [...this.queuesById.values()].map((queue) => this.info(queue));
  }

  async append(queueId: number, inputs: readonly MessageInput[], attributes: BatchAttributes = {}): Promise<AppendResult> {
    this.assertOpen();
    const queue = this.byId(queueId);
    if (inputs.length === 0 || inputs.length > MAX_MESSAGES_PER_BATCH) {
      throw new WeirError(ErrorCode.InvalidArgument, `a batch holds 1 to ${MAX_MESSAGES_PER_BATCH} messages, not ${inputs.length}`);
    }
    const prepared = inputs.map(prepareMessage);
    for (const message of prepared) {
      if (message.encodedBytes > queue.settings.maxMessageBytes) {
        throw new WeirError(ErrorCode.MessageTooLarge, `a message of ${message.encodedBytes} bytes exceeds queue "${queue.name}"'s limit of ${queue.settings.maxMessageBytes} bytes`);
      }
    }
    const storeTimestamp = Math.max(this.lastStoreTimestamp, this.clock.now());
    this.lastStoreTimestamp = storeTimestamp;
    const position = this.nextPosition++;
    const baseOffset = queue.startOffset + queue.messages.length;
    prepared.forEach((message, index) => {
      const id = message.id === null ? generatedMessageId(storeTimestamp, position, index) : Buffer.from(message.id);
      queue.messages.push({
        queueId: queue.id,
        offset: baseOffset + index,
        position,
        timestamp: message.timestamp < 0 ? storeTimestamp : message.timestamp,
        storeTimestamp,
        id,
        key: message.key === null ? null : Buffer.from(message.key),
        tag: message.tag === null || message.tag.byteLength === 0 ? null : Buffer.from(message.tag).toString('utf8'),
        headers: Buffer.from(message.headers ?? new Uint8Array(0)),
        body: Buffer.from(message.body),
        flags: attributes.flags ?? 0,
        producerId: attributes.producerId ?? 0,
        sequence: attributes.baseSequence === undefined || attributes.baseSequence < 0 ? -1 : attributes.baseSequence + index,
      });
      queue.sizes.push(message.encodedBytes);
      queue.bytes += message.encodedBytes;
    });
    const end = queue.startOffset + queue.messages.length;
    for (const listener of this.listeners) listener(queue.id, end);
    return { queueId: queue.id, baseOffset, count: prepared.length, position, storeTimestamp };
  }

  async read(queueId: number, offset: number, options: ReadOptions = {}): Promise<ReadResult> {
    this.assertOpen();
    const queue = this.byId(queueId);
    const end = queue.startOffset + queue.messages.length;
    const maxMessages = options.maxMessages ?? 1000;
    const maxBytes = options.maxBytes ?? 1 << 20;
    if (!Number.isSafeInteger(offset) || offset < queue.startOffset || offset > end) {
      throw new WeirError(ErrorCode.OffsetOutOfRange, `offset ${offset} is outside queue "${queue.name}"'s range [${queue.startOffset}, ${end}]`);
    }
    if (!Number.isSafeInteger(maxMessages) || maxMessages < 1) throw new WeirError(ErrorCode.InvalidArgument, 'maxMessages must be a positive integer');
    const messages: StoredMessage[] = [];
    let bytes = 0;
    for (let index = offset - queue.startOffset; index < queue.messages.length && messages.length < maxMessages; index++) {
      const size = queue.sizes[index]!;
      if (messages.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      messages.push(queue.messages[index]!);
    }
    return { messages, nextOffset: offset + messages.length, startOffset: queue.startOffset, endOffset: end };
  }

  async offsetForTimestamp(queueId: number, timestamp: number): Promise<number> {
    this.assertOpen();
    const queue = this.byId(queueId);
    let low = 0;
    let high = queue.messages.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (queue.messages[middle]!.storeTimestamp < timestamp) low = middle + 1;
      else high = middle;
    }
    return queue.startOffset + low;
  }

  async findById(id: Uint8Array | string): Promise<StoredMessage | null> {
    this.assertOpen();
    const wanted = typeof id === 'string' ? Buffer.from(id, 'utf8') : Buffer.from(id);
    for (const queue of this.queuesById.values()) {
      const found = queue.messages.find((message) => message.id.equals(wanted));
      if (found) return found;
    }
    return null;
  }

  async findByKey(key: Uint8Array | string, options: { queueIds?: readonly number[]; limit?: number } = {}): Promise<StoredMessage[]> {
    this.assertOpen();
    const wanted = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
    const allowed = options.queueIds ? new Set(options.queueIds) : null;
    const found: StoredMessage[] = [];
    for (const queue of this.queuesById.values()) {
      if (allowed && !allowed.has(queue.id)) continue;
      for (const message of queue.messages) if (message.key !== null && message.key.equals(wanted)) found.push(message);
    }
    // Newest first: by position, then by offset within a batch.
    found.sort((a, b) => b.position - a.position || b.offset - a.offset);
    return found.slice(0, options.limit ?? 32);
  }

  async advanceLowWaterMark(queueId: number, offset: number): Promise<void> {
    this.trim(this.byId(queueId), offset);
  }

  private trim(queue: MemoryQueue, offset: number): boolean {
    const end = queue.startOffset + queue.messages.length;
    const target = Math.min(offset, end);
    if (target <= queue.startOffset) return false;
    const count = target - queue.startOffset;
    for (let index = 0; index < count; index++) queue.bytes -= queue.sizes[index]!;
    queue.messages.splice(0, count);
    queue.sizes.splice(0, count);
    queue.startOffset = target;
    return true;
  }

  async enforceRetention(): Promise<RetentionReport> {
    this.assertOpen();
    const report: RetentionReport = { queuesTrimmed: 0, segmentsDeleted: 0 };
    const now = this.clock.now();
    for (const queue of this.queuesById.values()) {
      let target = queue.startOffset;
      if (queue.settings.retentionMs !== null) target = Math.max(target, await this.offsetForTimestamp(queue.id, now - queue.settings.retentionMs));
      if (queue.settings.retentionBytes !== null) {
        let bytes = queue.bytes;
        let index = Math.max(0, target - queue.startOffset);
        for (let skipped = 0; skipped < index; skipped++) bytes -= queue.sizes[skipped]!;
        while (bytes > queue.settings.retentionBytes && index < queue.sizes.length) bytes -= queue.sizes[index++]!;
        target = Math.max(target, queue.startOffset + index);
      }
      if (this.trim(queue, target)) report.queuesTrimmed++;
    }
    return report;
  }

  onAppend(listener: AppendListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async flush(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private info(queue: MemoryQueue): QueueInfo {
    return {
      id: queue.id,
      name: queue.name,
      settings: { ...queue.settings },
      startOffset: queue.startOffset,
      endOffset: queue.startOffset + queue.messages.length,
      bytes: queue.bytes,
      damaged: false,
    };
  }

  private byName(name: string): MemoryQueue {
    const queue = this.queuesByName.get(name);
    if (!queue) throw new WeirError(ErrorCode.UnknownQueue, `queue "${name}" does not exist`);
    return queue;
  }

  private byId(id: number): MemoryQueue {
    const queue = this.queuesById.get(id);
    if (!queue) throw new WeirError(ErrorCode.UnknownQueue, `queue id ${id} does not exist`);
    return queue;
  }

  private assertOpen(): void {
    if (this.closed) throw new WeirError(ErrorCode.StoreClosed, 'the store is closed');
  }
}
