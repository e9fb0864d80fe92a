import { type Clock, systemClock } from '../core/clock.js';
import {
  type AppendListener,
  type AppendOptions,
  type AppendResult,
  type BatchReadResult,
  defaultQueueSettings,
  type KeyValueStore,
  type MessageStore,
  type MetadataOp,
  type QueueInfo,
  type QueueSettings,
  type ReadOptions,
  type ReadResult,
  checkedQueueSettings,
  checkLowWaterMark,
  checkQueueName,
  checkReadOffset,
  keyLookupLimit,
  prepareBatch,
  queueExists,
  readLimits,
  type RetentionReport,
  type SharedAppendOptions,
  checkSharedQueueIds,
  prepareSharedBatch,
  storeClosed,
} from './message-store.js';
import { checkOps } from './metadata-store.js';
import { type QueueRecord, QueueTable } from './queue-table.js';
import {
  batchBytes,
  batchForQueue,
  RecordFlag,
  decodeMessages,
  encodeBatch,
  encodeSharedBatch,
  sharedBatchBytes,
  type MessageInput,
  type StoredMessage,
  toBytes,
} from './record-batch.js';

interface MemoryBatch {
  /** The offset of the batch's first message in the queue that holds this entry. */
  baseOffset: number;
  /** Encoded batch, in the same format the commit log stores; a shared batch's buffer is held by each of its queues. */
  buffer: Buffer;
  position: number;
  storeTimestamp: number;
  /** Encoded size of each message. */
  sizes: number[];
}

interface MemoryQueue extends QueueRecord {
  settings: QueueSettings;
  batches: MemoryBatch[];
  startOffset: number;
  endOffset: number;
  /** Bytes of the messages in [startOffset, endOffset). */
  bytes: number;
}

/**
 * A KeyValueStore that lives only in memory. Values are checked and kept as MetadataStore keeps them (what JSON gives
 * back, deep-frozen; INVALID_ARGUMENT for what JSON cannot represent), so code tested against it behaves the same on
 * disk.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  private readonly map = new Map<string, unknown>();

  get(key: string): unknown {
    return this.map.get(key);
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  entries(prefix = ''): Array<[string, unknown]> {
    return [...this.map.entries()].filter(([key]) => key.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  put(key: string, value: unknown): Promise<void> {
    return this.apply([{ key, value }]);
  }
  delete(key: string): Promise<void> {
    return this.apply([{ key, delete: true }]);
  }
  async apply(ops: readonly MetadataOp[]): Promise<void> {
    for (const op of checkOps(ops)) {
      if (op.delete) this.map.delete(op.key);
      else this.map.set(op.key, op.value);
    }
  }
}

/**
 * A MessageStore that keeps everything in memory: for non-persistent queues and fast tests. Batches are encoded in
 * the commit log's format, so reads (and `readBatches`) behave exactly as the disk store's; the conformance suite
 * checks both. A counter stands in for the commit-log position (it feeds generated ids).
 */
export class MemoryMessageStore implements MessageStore {
  readonly metadata = new MemoryKeyValueStore();
  private readonly queues = new QueueTable<MemoryQueue>();
  private nextQueueId = 1;
  private nextPosition = 0;
  private lastStoreTimestamp = 0;
  private closed = false;

  constructor(private readonly clock: Clock = systemClock) {}

  async createQueue(name: string, settings: Partial<QueueSettings> = {}): Promise<QueueInfo> {
    this.assertOpen();
    checkQueueName(name);
    if (this.queues.named(name)) throw queueExists(name);
    const resolved = checkedQueueSettings(defaultQueueSettings, settings);
    const queue: MemoryQueue = { id: this.nextQueueId++, name, settings: resolved, batches: [], startOffset: 0, endOffset: 0, bytes: 0, damaged: false };
    this.queues.add(queue);
    return this.queues.info(queue);
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    this.assertOpen();
    const queue = this.queues.requireNamed(name);
    queue.settings = checkedQueueSettings(queue.settings, settings);
    return this.queues.info(queue);
  }

  async deleteQueue(name: string): Promise<void> {
    this.assertOpen();
    this.queues.remove(this.queues.requireNamed(name));
  }

  queue(name: string): QueueInfo | null {
    return this.queues.infoNamed(name);
  }

  queueById(id: number): QueueInfo | null {
    return this.queues.infoById(id);
  }

  listQueues(): QueueInfo[] {
    return this.queues.list();
  }

  async append(queueId: number, inputs: readonly MessageInput[], attributes: AppendOptions = {}): Promise<AppendResult> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    const prepared = prepareBatch(queue.name, queue.settings, inputs);
    const storeTimestamp = Math.max(this.lastStoreTimestamp, this.clock.now());
    this.lastStoreTimestamp = storeTimestamp;
    const position = this.nextPosition++;
    const baseOffset = queue.endOffset;
    const length = batchBytes(prepared);
    const buffer = Buffer.allocUnsafe(length);
    encodeBatch(buffer, 0, queue.id, baseOffset, storeTimestamp, position, prepared, attributes, length);
    const sizes = prepared.map((message) => message.encodedBytes);
    queue.batches.push({ baseOffset, buffer, position, storeTimestamp, sizes });
    queue.endOffset += prepared.length;
    for (const size of sizes) queue.bytes += size;
    const result: AppendResult = { queueId: queue.id, baseOffset, count: prepared.length, position, storeTimestamp };
    attributes.onWritten?.(result);
    this.queues.appended(queue.id, queue.endOffset);
    return result;
  }

  async appendShared(queueIds: readonly number[], inputs: readonly MessageInput[], options: SharedAppendOptions = {}): Promise<AppendResult[]> {
    this.assertOpen();
    checkSharedQueueIds(queueIds);
    if (queueIds.length === 1) {
      const onWritten = options.onWritten;
      return [await this.append(queueIds[0]!, inputs, { flags: options.flags, onWritten: onWritten && ((result) => onWritten([result])) })];
    }
    const queues = queueIds.map((id) => this.queues.require(id));
    const prepared = prepareSharedBatch(queues, inputs);
    const storeTimestamp = Math.max(this.lastStoreTimestamp, this.clock.now());
    this.lastStoreTimestamp = storeTimestamp;
    const position = this.nextPosition++;
    const length = sharedBatchBytes(prepared, queues.length);
    const buffer = Buffer.allocUnsafe(length);
    encodeSharedBatch(buffer, 0, queues.map((queue) => ({ queueId: queue.id, baseOffset: queue.endOffset })), storeTimestamp, position, prepared, { flags: options.flags }, length);
    const sizes = prepared.map((message) => message.encodedBytes);
    const results: AppendResult[] = [];
    for (const queue of queues) {
      results.push({ queueId: queue.id, baseOffset: queue.endOffset, count: prepared.length, position, storeTimestamp });
      queue.batches.push({ baseOffset: queue.endOffset, buffer, position, storeTimestamp, sizes });
      queue.endOffset += prepared.length;
      for (const size of sizes) queue.bytes += size;
    }
    options.onWritten?.(results);
    for (const queue of queues) this.queues.appended(queue.id, queue.endOffset);
    return results;
  }

  async read(queueId: number, offset: number, options: ReadOptions = {}): Promise<ReadResult> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    this.checkOffset(queue, offset);
    const { maxMessages, maxBytes } = readLimits(options);
    const messages: StoredMessage[] = [];
    let next = offset;
    let bytes = 0;
    for (let index = this.batchIndexOf(queue, offset); index < queue.batches.length && messages.length < maxMessages; index++) {
      const batch = queue.batches[index]!;
      if (messages.length > 0 && bytes + batch.buffer.byteLength > maxBytes) break;
      bytes += batch.buffer.byteLength;
      next += decodeMessages(batch.buffer, 0, batch.position, next, maxMessages - messages.length, messages, queue.id);
    }
    return { messages, nextOffset: next, startOffset: queue.startOffset, endOffset: queue.endOffset };
  }

  async readBatches(queueId: number, offset: number, options: { maxBytes?: number } = {}): Promise<BatchReadResult> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    const { maxBytes } = readLimits(options);
    this.checkOffset(queue, offset);
    const batches: Buffer[] = [];
    let next = offset;
    let bytes = 0;
    for (let index = this.batchIndexOf(queue, offset); index < queue.batches.length; index++) {
      const batch = queue.batches[index]!;
      if (batches.length > 0 && bytes + batch.buffer.byteLength > maxBytes) break;
      bytes += batch.buffer.byteLength;
      batches.push(batchForQueue(batch.buffer, 0, queue.id));
      next = batch.baseOffset + batch.sizes.length;
    }
    return { batches, nextOffset: next, startOffset: queue.startOffset, endOffset: queue.endOffset };
  }

  private checkOffset(queue: MemoryQueue, offset: number): void {
    checkReadOffset(queue.name, offset, queue.startOffset, queue.endOffset);
  }

  /** Index of the batch holding `offset` (or batches.length at the end). */
  private batchIndexOf(queue: MemoryQueue, offset: number): number {
    let low = 0;
    let high = queue.batches.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      const batch = queue.batches[middle]!;
      if (batch.baseOffset + batch.sizes.length <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  async offsetForTimestamp(queueId: number, timestamp: number): Promise<number> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    const index = queue.batches.findIndex((batch) => batch.storeTimestamp >= timestamp);
    return index < 0 ? queue.endOffset : Math.max(queue.startOffset, queue.batches[index]!.baseOffset);
  }

  async findById(id: Uint8Array | string): Promise<StoredMessage | null> {
    this.assertOpen();
    const wanted = toBytes(id);
    // Newest first, and never an uncommitted (half) copy: a committed transactional message keeps its half copy's id.
    const found = this.allMessages().filter((message) => message.id.equals(wanted) && (message.flags & RecordFlag.Transactional) === 0);
    found.sort((a, b) => b.position - a.position || b.offset - a.offset);
    return found[0] ?? null;
  }

  async findByKey(key: Uint8Array | string, options: { queueIds?: readonly number[]; limit?: number } = {}): Promise<StoredMessage[]> {
    this.assertOpen();
    const wanted = toBytes(key);
    const limit = keyLookupLimit(options);
    const allowed = options.queueIds ? new Set(options.queueIds) : null;
    const found = this.allMessages().filter((message) => message.key !== null && message.key.equals(wanted) && (allowed === null || allowed.has(message.queueId)));
    // Newest first: by position, then by offset within a batch.
    found.sort((a, b) => b.position - a.position || b.offset - a.offset);
    return found.slice(0, limit);
  }

  private allMessages(): StoredMessage[] {
    const all: StoredMessage[] = [];
    for (const queue of this.queues.values()) {
      for (const batch of queue.batches) decodeMessages(batch.buffer, 0, batch.position, queue.startOffset, Infinity, all, queue.id);
    }
    return all;
  }

  async advanceLowWaterMark(queueId: number, offset: number): Promise<void> {
    this.assertOpen();
    checkLowWaterMark(offset);
    this.trim(this.queues.require(queueId), offset);
  }

  private trim(queue: MemoryQueue, offset: number): boolean {
    const target = Math.min(offset, queue.endOffset);
    if (target <= queue.startOffset) return false;
    for (let at = queue.startOffset; at < target; at++) queue.bytes -= this.sizeOf(queue, at);
    queue.startOffset = target;
    while (queue.batches.length > 0 && queue.batches[0]!.baseOffset + queue.batches[0]!.sizes.length <= target) queue.batches.shift();
    return true;
  }

  private sizeOf(queue: MemoryQueue, offset: number): number {
    const batch = queue.batches[this.batchIndexOf(queue, offset)]!;
    return batch.sizes[offset - batch.baseOffset]!;
  }

  async enforceRetention(): Promise<RetentionReport> {
    this.assertOpen();
    const report: RetentionReport = { queuesTrimmed: 0, segmentsDeleted: 0 };
    const now = this.clock.now();
    for (const queue of this.queues.values()) {
      let target = queue.startOffset;
      if (queue.settings.retentionMs !== null) target = Math.max(target, await this.offsetForTimestamp(queue.id, now - queue.settings.retentionMs));
      if (queue.settings.retentionBytes !== null) {
        let bytes = queue.bytes;
        let at = queue.startOffset;
        while (at < target) bytes -= this.sizeOf(queue, at++);
        while (bytes > queue.settings.retentionBytes && at < queue.endOffset) bytes -= this.sizeOf(queue, at++);
        target = Math.max(target, at);
      }
      if (this.trim(queue, target)) report.queuesTrimmed++;
    }
    return report;
  }

  onAppend(listener: AppendListener): () => void {
    return this.queues.onAppend(listener);
  }

  async flush(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw storeClosed();
  }
}
