import { ErrorCode, WeirError } from '../core/errors.js';
import { type BatchAttributes, MAX_MESSAGES_PER_BATCH, MAX_QUEUES_PER_BATCH, type MessageInput, type PreparedMessage, prepareMessage, type StoredMessage } from './record-batch.js';

/**
 * The storage engine's contract, implemented by `DiskMessageStore` (the commit log) and `MemoryMessageStore`
 * (non-persistent queues, fast tests). One conformance suite (message-store.conformance.ts) runs against both.
 *
 * A queue is an ordered sequence of messages numbered by contiguous offsets from 0. Readers only ever see messages
 * whose append has been acknowledged under the queue's flush policy.
 */
export type FlushPolicy = 'sync' | 'interval' | 'none';

export interface QueueSettings {
  /**
   * `sync` (default): an append resolves after the fdatasync that covers it. `interval`: the store fdatasyncs every
   * `flushIntervalMs`; an append resolves after its write. `none`: page cache only; an append resolves after its write.
   */
  flushPolicy: FlushPolicy;
  flushIntervalMs: number;
  /** Messages older than this (by store time) become unreadable and their space reclaimable; null keeps them. */
  retentionMs: number | null;
  /** The queue keeps at most about this many bytes of messages (the oldest go first); null means no limit. */
  retentionBytes: number | null;
  /** Largest encoded message accepted, in bytes. */
  maxMessageBytes: number;
}

export const defaultQueueSettings: QueueSettings = {
  flushPolicy: 'sync',
  flushIntervalMs: 1000,
  retentionMs: null,
  retentionBytes: null,
  maxMessageBytes: 1 << 20,
};

export interface QueueInfo {
  id: number;
  name: string;
  settings: QueueSettings;
  /** First readable offset (the low-water mark). */
  startOffset: number;
  /** One past the last acknowledged message. */
  endOffset: number;
  /** Bytes of the messages in [startOffset, endOffset). */
  bytes: number;
  /** True once stored data of this queue failed its checksum; damaged messages are never served. */
  damaged: boolean;
}

/** How an append is stored (producer fields, flags) and who wants to hear that it reached the file. */
export interface AppendOptions extends BatchAttributes {
  /**
   * Called once the batch is written to the commit log (page cache), before the append resolves under a `sync`
   * policy: what a producer asking for "written" acknowledgement waits for. Not called when the append fails first.
   */
  onWritten?: (result: AppendResult) => void;
}

/** How a shared append (several queues, one stored copy) is stored, and who wants to hear it reached the file. */
export interface SharedAppendOptions {
  /** Batch flags (see record-batch.ts). An idempotent producer's sequence is per queue, so a shared batch has none. */
  flags?: number;
  /** As AppendOptions.onWritten, with one result per queue. */
  onWritten?: (results: readonly AppendResult[]) => void;
}

export interface AppendResult {
  queueId: number;
  baseOffset: number;
  count: number;
  /** Commit-log position of the batch (with the store time, the source of generated message ids). */
  position: number;
  storeTimestamp: number;
}

export interface ReadOptions {
  /** At most this many messages (default 1000). */
  maxMessages?: number;
  /** Stop adding batches once this many bytes were read (default 1 MiB); at least one batch is always returned. */
  maxBytes?: number;
}

export interface ReadResult {
  messages: StoredMessage[];
  /** The offset to read from next. */
  nextOffset: number;
  startOffset: number;
  endOffset: number;
}

export interface BatchReadResult {
  /** Whole record batches (see record-batch.ts), in offset order; the first may start before the requested offset. */
  batches: Buffer[];
  /** One past the last message of the last batch. */
  nextOffset: number;
  startOffset: number;
  endOffset: number;
}

export interface RetentionReport {
  /** Queues whose low-water mark moved. */
  queuesTrimmed: number;
  /** Commit-log segments deleted. */
  segmentsDeleted: number;
}

/** One change of an atomic `apply`: `{ key, value }` sets the key, `{ key, delete: true }` removes it. */
export interface MetadataOp {
  key: string;
  value?: unknown;
  delete?: boolean;
}

/** A small durable map of JSON values; writes resolve once durable, reads see every write at once. */
export interface KeyValueStore {
  get(key: string): unknown;
  has(key: string): boolean;
  /** [key, value] pairs whose key starts with `prefix`, sorted by key. */
  entries(prefix?: string): Array<[string, unknown]>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  /** All of `ops` become durable together or not at all. */
  apply(ops: readonly MetadataOp[]): Promise<void>;
}

/** Called after a queue's end offset moved (an append became visible). */
export type AppendListener = (queueId: number, endOffset: number) => void;

export interface MessageStore {
  createQueue(name: string, settings?: Partial<QueueSettings>): Promise<QueueInfo>;
  updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo>;
  deleteQueue(name: string): Promise<void>;
  queue(name: string): QueueInfo | null;
  queueById(id: number): QueueInfo | null;
  listQueues(): QueueInfo[];

  /** Appends messages to one queue as one batch; resolves once acknowledged under the queue's flush policy. */
  append(queueId: number, messages: readonly MessageInput[], options?: AppendOptions): Promise<AppendResult>;
  /**
   * Appends the same messages to several distinct queues as one batch, stored once: each queue gets its own offsets
   * and points at the shared batch. Resolves with one result per queue, in the order given (same position and store
   * time), once acknowledged under the strictest flush policy among the queues (`sync`, then `interval`, then
   * `none`); the messages become visible in every queue at that moment. A message over any queue's size limit fails
   * the whole append (MESSAGE_TOO_LARGE naming that queue). With one queue id it is `append`.
   */
  appendShared(queueIds: readonly number[], messages: readonly MessageInput[], options?: SharedAppendOptions): Promise<AppendResult[]>;
  /** Reads from `offset` (which must lie in [startOffset, endOffset]); an empty result at endOffset. */
  read(queueId: number, offset: number, options?: ReadOptions): Promise<ReadResult>;
  /**
   * Reads whole stored batches from `offset` on, up to about `maxBytes` (at least one batch): what a fetch forwards
   * to a consumer without decoding it.
   */
  readBatches(queueId: number, offset: number, options?: { maxBytes?: number }): Promise<BatchReadResult>;
  /** The first offset whose store time is at or after `timestamp` (endOffset when there is none). */
  offsetForTimestamp(queueId: number, timestamp: number): Promise<number>;
  /** The message with this id, or null. */
  findById(id: Uint8Array | string): Promise<StoredMessage | null>;
  /** Messages with this key, newest first. */
  findByKey(key: Uint8Array | string, options?: { queueIds?: readonly number[]; limit?: number }): Promise<StoredMessage[]>;

  /** Moves the queue's low-water mark forward: messages below it become unreadable and their space reclaimable. */
  advanceLowWaterMark(queueId: number, offset: number): Promise<void>;
  /** Applies every queue's retention settings now and deletes what no queue needs any more. */
  enforceRetention(): Promise<RetentionReport>;

  onAppend(listener: AppendListener): () => void;
  /** Durable key-value metadata shared with the layers above (keys `queue/` and `store/` belong to the store). */
  readonly metadata: KeyValueStore;
  /** Makes everything acknowledged so far durable, whatever the policies. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Queue names: 1–255 bytes of printable characters, so they can be shown and typed. Throws INVALID_ARGUMENT. */
export function checkQueueName(name: string): void {
  let problem: string | null = null;
  if (typeof name !== 'string' || name.length === 0) problem = 'a queue name must not be empty';
  else if (Buffer.byteLength(name) > 255) problem = 'a queue name must be at most 255 bytes';
  else if (/[\u0000-\u001f\u007f]/.test(name)) problem = 'a queue name must not contain control characters';
  if (problem !== null) throw new WeirError(ErrorCode.InvalidArgument, problem);
}

/** `base` with `update` applied, checked field by field; throws INVALID_ARGUMENT naming the first bad field. */
export function checkedQueueSettings(base: QueueSettings, update: Partial<QueueSettings>): QueueSettings {
  const settings = { ...base, ...update };
  const invalid = (message: string) => new WeirError(ErrorCode.InvalidArgument, message);
  if (!['sync', 'interval', 'none'].includes(settings.flushPolicy)) throw invalid(`flushPolicy must be sync, interval or none, not ${settings.flushPolicy}`);
  if (!Number.isSafeInteger(settings.flushIntervalMs) || settings.flushIntervalMs < 1) throw invalid('flushIntervalMs must be a positive integer');
  if (settings.retentionMs !== null && (!Number.isSafeInteger(settings.retentionMs) || settings.retentionMs < 0)) throw invalid('retentionMs must be a non-negative integer or null');
  if (settings.retentionBytes !== null && (!Number.isSafeInteger(settings.retentionBytes) || settings.retentionBytes < 0)) throw invalid('retentionBytes must be a non-negative integer or null');
  if (!Number.isSafeInteger(settings.maxMessageBytes) || settings.maxMessageBytes < 64) throw invalid('maxMessageBytes must be an integer of at least 64');
  return settings;
}

/** Checks a batch against the batch limits and the queue's message size limit, and measures its messages. */
export function prepareBatch(queueName: string, settings: QueueSettings, messages: readonly MessageInput[]): PreparedMessage[] {
  if (messages.length === 0 || messages.length > MAX_MESSAGES_PER_BATCH) {
    throw new WeirError(ErrorCode.InvalidArgument, `a batch holds 1 to ${MAX_MESSAGES_PER_BATCH} messages, not ${messages.length}`);
  }
  const prepared = messages.map(prepareMessage);
  for (const message of prepared) {
    if (message.encodedBytes > settings.maxMessageBytes) {
      throw new WeirError(ErrorCode.MessageTooLarge, `a message of ${message.encodedBytes} bytes exceeds queue "${queueName}"'s limit of ${settings.maxMessageBytes} bytes`);
    }
  }
  return prepared;
}

/** Checks the queue ids of a shared append: 1 to 65,535 distinct ids. Throws INVALID_ARGUMENT. */
export function checkSharedQueueIds(queueIds: readonly number[]): void {
  if (!Array.isArray(queueIds) || queueIds.length === 0 || queueIds.length > MAX_QUEUES_PER_BATCH) {
    throw new WeirError(ErrorCode.InvalidArgument, `a shared append names 1 to ${MAX_QUEUES_PER_BATCH} queues, not ${Array.isArray(queueIds) ? queueIds.length : String(queueIds)}`);
  }
  if (new Set(queueIds).size !== queueIds.length) throw new WeirError(ErrorCode.InvalidArgument, 'a shared append names each queue once');
}

/** Prepares a shared batch once and checks every message against every queue's size limit. */
export function prepareSharedBatch(queues: ReadonlyArray<{ name: string; settings: QueueSettings }>, messages: readonly MessageInput[]): PreparedMessage[] {
  let strictest = queues[0]!;
  for (const queue of queues) if (queue.settings.maxMessageBytes < strictest.settings.maxMessageBytes) strictest = queue;
  return prepareBatch(strictest.name, strictest.settings, messages);
}

/** Throws INVALID_ARGUMENT unless `offset` can be a low-water mark: a non-negative integer. */
export function checkLowWaterMark(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new WeirError(ErrorCode.InvalidArgument, `a low-water mark must be a non-negative integer, not ${offset}`);
}

/** `read`'s limits with their defaults (1,000 messages, 1 MiB); throws INVALID_ARGUMENT for a bad maxMessages. */
export function readLimits(options: ReadOptions): { maxMessages: number; maxBytes: number } {
  const maxMessages = options.maxMessages ?? 1000;
  if (!Number.isSafeInteger(maxMessages) || maxMessages < 1) throw new WeirError(ErrorCode.InvalidArgument, 'maxMessages must be a positive integer');
  return { maxMessages, maxBytes: options.maxBytes ?? 1 << 20 };
}

/** `findByKey`'s limit (default 32); throws INVALID_ARGUMENT unless it is a non-negative integer. */
export function keyLookupLimit(options: { limit?: number }): number {
  const limit = options.limit ?? 32;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new WeirError(ErrorCode.InvalidArgument, `a lookup limit must be a non-negative integer, not ${limit}`);
  return limit;
}

export function storeClosed(): WeirError {
  return new WeirError(ErrorCode.StoreClosed, 'the store is closed');
}

export function unknownQueue(nameOrId: string | number): WeirError {
  return new WeirError(ErrorCode.UnknownQueue, typeof nameOrId === 'string' ? `queue "${nameOrId}" does not exist` : `queue id ${nameOrId} does not exist`);
}

export function queueExists(name: string): WeirError {
  return new WeirError(ErrorCode.QueueExists, `queue "${name}" already exists`);
}

/** Throws OFFSET_OUT_OF_RANGE unless `offset` lies in [start, end]. */
export function checkReadOffset(queueName: string, offset: number, start: number, end: number): void {
  if (!Number.isSafeInteger(offset) || offset < start || offset > end) {
    throw new WeirError(ErrorCode.OffsetOutOfRange, `offset ${offset} is outside queue "${queueName}"'s range [${start}, ${end}]`);
  }
}

/** FNV-1a over the tag's UTF-8 bytes: what a tag filter compares before it reads the message. 0 means "no tag". */
export function tagHash(tag: Uint8Array | null): number {
  if (tag === null || tag.byteLength === 0) return 0;
  let hash = 0x811c9dc5;
  for (let index = 0; index < tag.byteLength; index++) {
    hash ^= tag[index]!;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0 || 1;
}
