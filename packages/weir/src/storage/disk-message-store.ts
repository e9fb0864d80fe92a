import { type Clock, systemClock } from '../core/clock.js';
import { ErrorCode, isWeirError, WeirError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { CommitLog, type DamagedRange, type PendingAppend } from './commit-log.js';
import { ConsumeQueue, DAMAGED_POSITION, ENTRY_BYTES, batchSizeAt, positionAt } from './consume-queue.js';
import { HandleCache } from './handle-cache.js';
import { type FileSystem, joinPath, readWholeFile, writeFileAtomic } from './io/file-system.js';
import { NodeFileSystem } from './io/node-file-system.js';
import { readU64 } from './u64.js';
import { batchIndexer, IndexKind, MessageIndex } from './message-index.js';
import {
  type AppendListener,
  type AppendOptions,
  type AppendResult,
  type BatchReadResult,
  defaultQueueSettings,
  type MessageStore,
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
  tagHash,
} from './message-store.js';
import { MetadataStore } from './metadata-store.js';
import { type QueueRecord, QueueTable } from './queue-table.js';
import {
  BatchCheck,
  batchBaseOffset,
  batchBytes,
  batchForQueue,
  batchQueues,
  checkBatch,
  checkBatchFrame,
  decodeMessages,
  encodeBatch,
  encodeSharedBatch,
  forEachMessageSummary,
  positionOfGeneratedId,
  RecordFlag,
  type MessageInput,
  type PreparedMessage,
  readBatchHeader,
  RECORD_HEADER_BYTES,
  SHARED_QUEUE_ENTRY_BYTES,
  SHARED_RECORD_VERSION,
  sharedBatchBytes,
  type StoredMessage,
  toBytes,
} from './record-batch.js';

/**
 * The largest batch the commit log takes unless the store is opened with another limit: room for the largest AMQP
 * message (server/config.ts). It also bounds what recovery reads as one batch, so it must never shrink below batches
 * already written.
 */
export const DEFAULT_MAX_BATCH_BYTES = 32 << 20;

export interface DiskMessageStoreOptions {
  dataDir: string;
  fs?: FileSystem;
  clock?: Clock;
  logger?: Logger;
  /** Soft size of a commit-log segment (default 1 GiB). */
  segmentBytes?: number;
  /** Largest batch accepted (default 16 MiB). */
  maxBatchBytes?: number;
  /** Most bytes of pending appends one commit-log write takes (default 1 MiB); see CommitLog.flushLoop. */
  maxWriteBytes?: number;
  /** Entries per consume-queue file (default 1,048,576: 32 MiB). */
  consumeQueueEntriesPerFile?: number;
  /** Entries a consume queue keeps in memory before it writes them out in the background (default 2,048: 64 KiB). */
  consumeQueueFlushEntries?: number;
  /**
   * How often derived data (consume queues, indexes) is synced and the recovery point moved (default 60 s); 0 disables
   * the timer. A crash re-derives everything after the recovery point, so this bounds the work of a restart.
   */
  checkpointIntervalMs?: number;
  /** Also checkpoint once the log has grown this much since the last one (default 1 GiB, the segment size). */
  checkpointBytes?: number;
  /** How often retention runs (default 60 s). 0 disables the timer. */
  retentionIntervalMs?: number;
  indexSlotCount?: number;
  indexMaxEntries?: number;
  /** Idle file handles kept open for consume-queue files (default 4096; Node raises the descriptor limit to the hard one). */
  maxOpenFiles?: number;
}

const CHECKPOINT_VERSION = 1;
const QUEUE_KEY_PREFIX = 'queue/';
const NEXT_QUEUE_ID_KEY = 'store/next-queue-id';

interface Checkpoint {
  version: number;
  /** Commit-log position below which every batch's derived data is flushed and synced. */
  position: number;
  /** Per queue: [id, entries flushed below position, startOffset, bytesBeforeStart]. */
  queues: Array<[number, number, number, number]>;
}

interface StoredQueueDefinition {
  id: number;
  name: string;
  settings: QueueSettings;
}

class QueueState implements QueueRecord {
  /** Next offset to hand out (ahead of the consume queue while appends are in flight). */
  nextOffset: number;
  /** One past the last acknowledged message. */
  visibleEnd: number;
  /** Cumulative bytes of every message written (queueBytes of the last entry). */
  totalBytes: number;
  /** Cumulative bytes of the messages below visibleEnd: what QueueInfo.bytes and retention count. */
  visibleBytes: number;
  /** Bytes of the messages below startOffset. */
  bytesBeforeStart: number;
  damaged = false;
  deleted = false;

  constructor(
    readonly id: number,
    readonly name: string,
    public settings: QueueSettings,
    readonly consumeQueue: ConsumeQueue,
    public startOffset: number,
    bytesBeforeStart: number,
  ) {
    this.nextOffset = consumeQueue.endOffset;
    this.visibleEnd = consumeQueue.endOffset;
    this.totalBytes = bytesBeforeStart;
    this.visibleBytes = bytesBeforeStart;
    this.bytesBeforeStart = bytesBeforeStart;
  }

  get endOffset(): number {
    return this.visibleEnd;
  }

  get bytes(): number {
    return this.visibleBytes - this.bytesBeforeStart;
  }
}

/** A queue an append goes to, and what the append learns about it. */
interface AppendTarget {
  queue: QueueState;
  baseOffset: number;
  /** The queue's cumulative bytes once this batch is counted (known once it is written). */
  bytesThrough: number;
}

/**
 * One append in flight, to one queue or (a shared batch) several: the commit log calls it back in position order.
 * `shared` appends resolve with one result per queue, others with the single result.
 */
class AppendOperation<Result extends AppendResult | AppendResult[]> implements PendingAppend {
  position = 0;
  size = 0;
  readonly sync: boolean;
  readonly promise: Promise<Result>;
  private resolve!: (result: Result) => void;
  private reject!: (error: Error) => void;
  /** Made once: `onWritten` and the resolved promise see the same objects. */
  private resultValue: Result | null = null;

  constructor(
    private readonly store: DiskMessageStore,
    private readonly targets: readonly AppendTarget[],
    private readonly messages: readonly PreparedMessage[],
    private readonly storeTimestamp: number,
    private readonly shared: boolean,
    private readonly onWritten: ((result: Result) => void) | undefined,
  ) {
    // A shared batch is acknowledged under the strictest policy of its queues (docs/storage.md).
    this.sync = targets.some((target) => target.queue.settings.flushPolicy === 'sync');
    this.promise = new Promise<Result>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  written(): void {
    for (const target of this.targets) {
      target.bytesThrough = this.store.addConsumeQueueEntries(target.queue, this.messages, this.position, this.size, this.storeTimestamp);
    }
    this.store.indexMessages(this.messages, this.position);
    this.onWritten?.(this.result());
  }

  private result(): Result {
    if (this.resultValue === null) {
      const results = this.targets.map((target) => ({ queueId: target.queue.id, baseOffset: target.baseOffset, count: this.messages.length, position: this.position, storeTimestamp: this.storeTimestamp }));
      this.resultValue = (this.shared ? results : results[0]!) as Result;
    }
    return this.resultValue;
  }

  done(error: Error | null): void {
    if (error !== null) {
      this.reject(error);
      return;
    }
    for (const target of this.targets) this.store.publishVisible(target.queue, target.baseOffset + this.messages.length, target.bytesThrough);
    this.resolve(this.result());
  }
}

/**
 * The persistent MessageStore: one commit log, a consume queue per queue, id/key indexes, a metadata store and a
 * checkpoint. See docs/storage.md for the layout, recovery and the durability contract.
 *
 * Directory: `commitlog/` (segments), `queues/<id>/` (consume-queue files), `index/` (id/key hash files),
 * `meta/` (queue definitions), `checkpoint` (JSON, replaced atomically).
 *
 * Concurrency: every public method may be called at any time from the event loop. Appends are ordered by call; the
 * commit log serialises writes; checkpoints and retention passes are serialised with each other by `maintenance`.
 */
export class DiskMessageStore implements MessageStore {
  private readonly queues = new QueueTable<QueueState>();
  private lastStoreTimestamp = 0;
  private checkpointPosition: number;
  private lastCheckpointAt: number;
  /** A timer queued this work and it has not finished: a slow maintenance task must not gather one per tick. */
  private checkpointQueued = false;
  private retentionQueued = false;
  /** Names of queues being created, so two concurrent creates of one name cannot both succeed. */
  private readonly creating = new Set<string>();
  private maintenance: Promise<unknown> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private intervalTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly backgroundFlushes = new Set<QueueState>();

  private constructor(
    private readonly fs: FileSystem,
    private readonly options: Required<Omit<DiskMessageStoreOptions, 'fs' | 'clock' | 'logger'>>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly handles: HandleCache,
    readonly metadata: MetadataStore,
    private readonly index: MessageIndex,
    private log: CommitLog,
    checkpointPosition: number,
  ) {
    this.checkpointPosition = checkpointPosition;
    this.lastCheckpointAt = clock.monotonic();
  }

  static async open(options: DiskMessageStoreOptions): Promise<DiskMessageStore> {
    const fs = options.fs ?? new NodeFileSystem();
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const resolved = {
      dataDir: options.dataDir,
      segmentBytes: options.segmentBytes ?? 1 << 30,
      maxBatchBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
      maxWriteBytes: options.maxWriteBytes ?? 1 << 20,
      consumeQueueEntriesPerFile: options.consumeQueueEntriesPerFile ?? 1 << 20,
      consumeQueueFlushEntries: options.consumeQueueFlushEntries ?? 2048,
      checkpointIntervalMs: options.checkpointIntervalMs ?? 60_000,
      checkpointBytes: options.checkpointBytes ?? 1 << 30,
      retentionIntervalMs: options.retentionIntervalMs ?? 60_000,
      indexSlotCount: options.indexSlotCount ?? 1 << 18,
      indexMaxEntries: options.indexMaxEntries ?? 1 << 20,
      maxOpenFiles: options.maxOpenFiles ?? 4096,
    };
    const dir = resolved.dataDir;
    await fs.mkdirp(dir);
    await fs.mkdirp(joinPath(dir, 'queues'));
    const checkpoint = await readCheckpoint(fs, joinPath(dir, 'checkpoint'));
    const metadata = await MetadataStore.open(fs, joinPath(dir, 'meta'), { logger });
    const index = await MessageIndex.open(fs, joinPath(dir, 'index'), { slotCount: resolved.indexSlotCount, maxEntries: resolved.indexMaxEntries, logger });
    await index.truncateFrom(checkpoint.position);
    const handles = new HandleCache(fs, resolved.maxOpenFiles);

    const placeholder = null as unknown as CommitLog;
    const store = new DiskMessageStore(fs, resolved, clock, logger, handles, metadata, index, placeholder, checkpoint.position);
    const fromCheckpoint = new Map(checkpoint.queues.map((entry) => [entry[0], entry]));
    for (const [, value] of metadata.entries(QUEUE_KEY_PREFIX)) {
      const definition = value as StoredQueueDefinition;
      const saved = fromCheckpoint.get(definition.id);
      const consumeQueue = await ConsumeQueue.open(fs, handles, store.queueDirectory(definition.id), resolved.consumeQueueEntriesPerFile, saved?.[1] ?? 0);
      const queue = new QueueState(definition.id, definition.name, { ...defaultQueueSettings, ...definition.settings }, consumeQueue, saved?.[2] ?? 0, saved?.[3] ?? 0);
      store.queues.add(queue);
    }
    // Cumulative sizes continue from the last flushed entry; recovery adds what it re-derives.
    for (const queue of store.queues.values()) {
      const end = queue.consumeQueue.endOffset;
      if (end > queue.consumeQueue.firstOffset) {
        const last = await queue.consumeQueue.entry(end - 1);
        queue.totalBytes = last.queueBytes;
        store.lastStoreTimestamp = Math.max(store.lastStoreTimestamp, last.storeTimestamp);
      }
    }
    store.log = await CommitLog.open(
      fs,
      joinPath(dir, 'commitlog'),
      { segmentBytes: resolved.segmentBytes, maxBatchBytes: resolved.maxBatchBytes, maxWriteBytes: resolved.maxWriteBytes, logger },
      checkpoint.position,
      (batch, position) => store.recoverBatch(batch, position),
    );
    store.log.onRewind = () => {
      for (const queue of store.queues.values()) queue.nextOffset = queue.consumeQueue.endOffset;
    };
    for (const range of store.log.damagedRanges) {
      if (range.held) store.markOffsetsHeld(range.held);
      else await store.markDamagedRange(range.start, range.end);
    }
    for (const queue of store.queues.values()) {
      queue.nextOffset = queue.consumeQueue.endOffset;
      queue.visibleEnd = queue.nextOffset;
      queue.visibleBytes = queue.totalBytes;
      // The checkpoint may have recorded a low-water mark past what survived a power loss.
      if (queue.startOffset > queue.visibleEnd) {
        queue.startOffset = queue.visibleEnd;
        queue.bytesBeforeStart = queue.totalBytes;
      }
    }
    // Damage found by this recovery is settled at once: the next recovery starts past it. Rescanning it later could
    // find nothing valid after it (a crash tore what followed) and cut it as a torn tail, handing out the offsets
    // just marked lost again.
    if (store.log.damagedRanges.length > 0) await store.checkpoint();
    store.startTimers();
    logger.info({ dataDir: dir, queues: store.queues.size, recoveredFrom: checkpoint.position, end: store.log.endPosition }, 'storage opened');
    return store;
  }

  private queueDirectory(id: number): string {
    return joinPath(this.options.dataDir, 'queues', String(id));
  }

  private startTimers(): void {
    if (this.options.checkpointIntervalMs > 0) {
      const timer = setInterval(() => {
        if (this.checkpointQueued || !this.checkpointDue()) return;
        this.checkpointQueued = true;
        void this.runMaintenance(async () => {
          try {
            // A checkpoint run by flush() while this one waited may have made it unnecessary.
            if (this.checkpointDue()) await this.checkpoint();
          } finally {
            this.checkpointQueued = false;
          }
        });
      }, Math.min(1000, this.options.checkpointIntervalMs));
      timer.unref();
      this.timers.push(timer);
    }
    if (this.options.retentionIntervalMs > 0) {
      const timer = setInterval(() => {
        if (this.retentionQueued) return;
        this.retentionQueued = true;
        void this.enforceRetention()
          .catch((error) => this.logger.error({ err: error }, 'retention pass failed'))
          .finally(() => (this.retentionQueued = false));
      }, this.options.retentionIntervalMs);
      timer.unref();
      this.timers.push(timer);
    }
    this.rescheduleIntervalSync();
  }

  /** The `interval` policy: one fdatasync timer at the shortest interval any queue asks for. */
  private rescheduleIntervalSync(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
    let shortest = Infinity;
    for (const queue of this.queues.values()) {
      if (queue.settings.flushPolicy === 'interval') shortest = Math.min(shortest, queue.settings.flushIntervalMs);
    }
    if (shortest === Infinity || this.closed) return;
    this.intervalTimer = setInterval(() => {
      if (this.log.durablePosition < this.log.writtenPosition) void this.log.sync().catch(() => {});
    }, shortest);
    this.intervalTimer.unref();
  }

  private runMaintenance<T>(work: () => Promise<T>): Promise<T> {
    const run = this.maintenance.then(work, work);
    this.maintenance = run.catch((error) => {
      if (!this.closed) this.logger.error({ err: error }, 'storage maintenance failed');
    });
    return run;
  }

  // ---- queues ---------------------------------------------------------------------------------------------------

  async createQueue(name: string, settings: Partial<QueueSettings> = {}): Promise<QueueInfo> {
    this.assertOpen();
    checkQueueName(name);
    if (this.queues.named(name) || this.creating.has(name)) throw queueExists(name);
    const resolved = checkedQueueSettings(defaultQueueSettings, settings);
    this.creating.add(name);
    try {
      return await this.createQueueNamed(name, resolved);
    } finally {
      this.creating.delete(name);
    }
  }

  private async createQueueNamed(name: string, resolved: QueueSettings): Promise<QueueInfo> {
    const id = (this.metadata.get(NEXT_QUEUE_ID_KEY) as number | undefined) ?? 1;
    const definition: StoredQueueDefinition = { id, name, settings: resolved };
    // Ids are never reused: batches of a deleted queue may still sit in the log and must not join a new one.
    await this.metadata.apply([
      { key: NEXT_QUEUE_ID_KEY, value: id + 1 },
      { key: QUEUE_KEY_PREFIX + name, value: definition },
    ]);
    const consumeQueue = await ConsumeQueue.open(this.fs, this.handles, this.queueDirectory(id), this.options.consumeQueueEntriesPerFile, 0);
    await this.fs.syncDirectory(joinPath(this.options.dataDir, 'queues'));
    const queue = new QueueState(id, name, resolved, consumeQueue, 0, 0);
    this.queues.add(queue);
    if (resolved.flushPolicy === 'interval') this.rescheduleIntervalSync();
    return this.queues.info(queue);
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    this.assertOpen();
    const queue = this.queues.requireNamed(name);
    const resolved = checkedQueueSettings(queue.settings, settings);
    await this.metadata.put(QUEUE_KEY_PREFIX + name, { id: queue.id, name, settings: resolved } satisfies StoredQueueDefinition);
    queue.settings = resolved;
    this.rescheduleIntervalSync();
    return this.queues.info(queue);
  }

  async deleteQueue(name: string): Promise<void> {
    this.assertOpen();
    const queue = this.queues.requireNamed(name);
    queue.deleted = true;
    this.queues.remove(queue);
    await this.metadata.delete(QUEUE_KEY_PREFIX + name);
    await this.runMaintenance(async () => {
      await queue.consumeQueue.close();
      await this.handles.forgetDirectory(this.queueDirectory(queue.id));
      await this.fs.removeTree(this.queueDirectory(queue.id));
    });
    this.rescheduleIntervalSync();
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

  private assertOpen(): void {
    if (this.closed) throw storeClosed();
  }

  // ---- append -----------------------------------------------------------------------------------------------------

  append(queueId: number, messages: readonly MessageInput[], attributes: AppendOptions = {}): Promise<AppendResult> {
    try {
      this.assertOpen();
      const queue = this.queues.require(queueId);
      const prepared = prepareBatch(queue.name, queue.settings, messages);
      const storeTimestamp = this.nextStoreTimestamp();
      const target: AppendTarget = { queue, baseOffset: queue.nextOffset, bytesThrough: 0 };
      const operation = new AppendOperation<AppendResult>(this, [target], prepared, storeTimestamp, false, attributes.onWritten);
      const length = batchBytes(prepared);
      this.log.enqueue(
        length,
        (buffer, at, position) => encodeBatch(buffer, at, queue.id, target.baseOffset, storeTimestamp, position, prepared, attributes, length),
        operation,
      );
      queue.nextOffset += prepared.length;
      return operation.promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  appendShared(queueIds: readonly number[], messages: readonly MessageInput[], options: SharedAppendOptions = {}): Promise<AppendResult[]> {
    try {
      this.assertOpen();
      checkSharedQueueIds(queueIds);
      if (queueIds.length === 1) {
        const onWritten = options.onWritten;
        return this.append(queueIds[0]!, messages, { flags: options.flags, onWritten: onWritten && ((result) => onWritten([result])) }).then((result) => [result]);
      }
      const queues = queueIds.map((id) => this.queues.require(id));
      const prepared = prepareSharedBatch(queues, messages);
      const storeTimestamp = this.nextStoreTimestamp();
      const targets: AppendTarget[] = queues.map((queue) => ({ queue, baseOffset: queue.nextOffset, bytesThrough: 0 }));
      const operation = new AppendOperation<AppendResult[]>(this, targets, prepared, storeTimestamp, true, options.onWritten);
      const length = sharedBatchBytes(prepared, targets.length);
      const attributes = { flags: options.flags };
      this.log.enqueue(
        length,
        (buffer, at, position) => encodeSharedBatch(buffer, at, targets.map((target) => ({ queueId: target.queue.id, baseOffset: target.baseOffset })), storeTimestamp, position, prepared, attributes, length),
        operation,
      );
      for (const queue of queues) queue.nextOffset += prepared.length;
      return operation.promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private nextStoreTimestamp(): number {
    this.lastStoreTimestamp = Math.max(this.lastStoreTimestamp, this.clock.now());
    return this.lastStoreTimestamp;
  }

  /**
   * Called by the commit log, in position order, once a batch is in the file: extend the queue's consume queue.
   * Returns the queue's cumulative bytes through this batch.
   */
  addConsumeQueueEntries(queue: QueueState, messages: readonly PreparedMessage[], position: number, size: number, storeTimestamp: number): number {
    if (queue.deleted) return queue.totalBytes;
    const consumeQueue = queue.consumeQueue;
    for (const message of messages) {
      queue.totalBytes += message.encodedBytes;
      consumeQueue.append(position, size, tagHash(message.tag), storeTimestamp, queue.totalBytes);
    }
    if (consumeQueue.unflushedEntries >= this.options.consumeQueueFlushEntries && !this.backgroundFlushes.has(queue)) {
      this.backgroundFlushes.add(queue);
      consumeQueue
        .flush(false)
        .catch((error) => this.logger.warn({ err: error, queue: queue.name }, 'consume queue flush failed; will retry at the next checkpoint'))
        .finally(() => this.backgroundFlushes.delete(queue));
    }
    return queue.totalBytes;
  }

  /** Adds a written batch's client-given ids and keys to the lookup index: once per batch, however many queues share it. */
  indexMessages(messages: readonly PreparedMessage[], position: number): void {
    let index: ReturnType<typeof batchIndexer> | null = null;
    for (const message of messages) {
      // Generated ids carry their position and need no index entry (see findById).
      if (message.id !== null) (index ??= batchIndexer(this.index, position, messages.length))(IndexKind.MessageId, message.id);
      if (message.key !== null) (index ??= batchIndexer(this.index, position, messages.length))(IndexKind.Key, message.key);
    }
  }

  /** Moves the queue's visible end (and the bytes it counts, `bytesThrough` being cumulative) once an append resolves. */
  publishVisible(queue: QueueState, end: number, bytesThrough: number): void {
    if (end <= queue.visibleEnd) return;
    queue.visibleEnd = end;
    queue.visibleBytes = bytesThrough;
    this.queues.appended(queue.id, end);
  }

  onAppend(listener: AppendListener): () => void {
    return this.queues.onAppend(listener);
  }

  // ---- read -------------------------------------------------------------------------------------------------------

  async read(queueId: number, offset: number, options: ReadOptions = {}): Promise<ReadResult> {
    const { maxMessages, maxBytes } = readLimits(options);
    const { queue, batches, positions } = await this.readBatchViews(queueId, offset, maxMessages, maxBytes);
    const result: ReadResult = { messages: [], nextOffset: offset, startOffset: queue.startOffset, endOffset: queue.visibleEnd };
    let next = offset;
    for (let index = 0; index < batches.length && next - offset < maxMessages; index++) {
      next += decodeMessages(batches[index]!, 0, positions[index]!, next, maxMessages - (next - offset), result.messages, queue.id);
    }
    result.nextOffset = next;
    return result;
  }

  async readBatches(queueId: number, offset: number, options: { maxBytes?: number } = {}): Promise<BatchReadResult> {
    const { queue, batches, nextOffset } = await this.readBatchViews(queueId, offset, Infinity, readLimits(options).maxBytes);
    return { batches: batches.map((batch) => batchForQueue(batch, 0, queue.id)), nextOffset, startOffset: queue.startOffset, endOffset: queue.visibleEnd };
  }

  /**
   * Finds the batches holding messages from `offset` on (at most `maxMessages`, stopping once `maxBytes` are read but
   * always at least one batch), reads them with as few positional reads as possible, and checks each one's CRC.
   * Returns one view per whole batch; the first may start before `offset`.
   */
  private async readBatchViews(queueId: number, offset: number, maxMessages: number, maxBytes: number): Promise<{ queue: QueueState; batches: Buffer[]; positions: number[]; nextOffset: number }> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    checkReadOffset(queue.name, offset, queue.startOffset, queue.visibleEnd);
    const end = Math.min(queue.visibleEnd, offset + maxMessages);
    // Plan reads: consecutive entries of one batch share a position; batches adjacent in one segment share a read.
    const ranges: Array<{ position: number; length: number }> = [];
    let bytes = 0;
    let lastBatch = -1;
    let planned = offset;
    let full = false;
    while (planned < end && !full) {
      const entries = await queue.consumeQueue.read(planned, Math.min(end - planned, 4096));
      const count = entries.byteLength / ENTRY_BYTES;
      for (let index = 0; index < count; index++) {
        const position = positionAt(entries, index);
        if (position === DAMAGED_POSITION) {
          if (planned + index === offset) throw this.damage(queue, `message ${offset} of queue "${queue.name}" was lost to damaged data`);
          full = true;
          break;
        }
        if (position === lastBatch) continue;
        const size = batchSizeAt(entries, index);
        if (ranges.length > 0 && bytes + size > maxBytes) {
          full = true;
          break;
        }
        lastBatch = position;
        bytes += size;
        const previous = ranges[ranges.length - 1];
        if (previous && previous.position + previous.length === position && this.log.segmentBaseOf(previous.position) === this.log.segmentBaseOf(position)) {
          previous.length += size;
        } else {
          ranges.push({ position, length: size });
        }
      }
      planned += count;
    }
    // Bytes still in memory were encoded (and checksummed) by this process and never went through the disk: only
    // batches read back from disk need their CRC checked.
    const fromMemory = ranges.map((range) => this.log.readFromMemory(range.position, range.length));
    const buffers = await Promise.all(ranges.map((range, index) => fromMemory[index] ?? this.log.readFromDisk(range.position, range.length)));
    const batches: Buffer[] = [];
    const positions: number[] = [];
    let next = offset;
    for (let rangeIndex = 0; rangeIndex < ranges.length; rangeIndex++) {
      const buffer = buffers[rangeIndex]!;
      const range = ranges[rangeIndex]!;
      for (let at = 0; at < buffer.byteLength; ) {
        const check = fromMemory[rangeIndex] ? checkBatchFrame(buffer, at, buffer.byteLength, this.options.maxBatchBytes) : checkBatch(buffer, at, buffer.byteLength, this.options.maxBatchBytes);
        if (check !== BatchCheck.Valid) {
          if (next === offset) throw this.damage(queue, `the batch at position ${range.position + at} holding message ${next} of queue "${queue.name}" failed its checksum`);
          return { queue, batches, positions, nextOffset: next };
        }
        const header = readBatchHeader(buffer, at);
        const baseOffset = batchBaseOffset(buffer, at, queue.id);
        if (baseOffset < 0 || baseOffset > next || baseOffset + header.count <= next) {
          if (next === offset) throw this.damage(queue, `the consume queue of "${queue.name}" points at a batch that does not hold message ${next}`);
          return { queue, batches, positions, nextOffset: next };
        }
        batches.push(buffer.subarray(at, at + header.length));
        positions.push(range.position + at);
        next = baseOffset + header.count;
        at += header.length;
      }
    }
    return { queue, batches, positions, nextOffset: next };
  }

  private damage(queue: QueueState, message: string): WeirError {
    if (!queue.damaged) this.logger.error({ queue: queue.name }, message);
    queue.damaged = true;
    return new WeirError(ErrorCode.DataDamaged, message);
  }

  async offsetForTimestamp(queueId: number, timestamp: number): Promise<number> {
    this.assertOpen();
    const queue = this.queues.require(queueId);
    let low = queue.startOffset;
    let high = queue.visibleEnd;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const entry = await queue.consumeQueue.entry(middle);
      if (entry.storeTimestamp < timestamp) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  // ---- lookup -----------------------------------------------------------------------------------------------------

  async findById(id: Uint8Array | string): Promise<StoredMessage | null> {
    this.assertOpen();
    const wanted = toBytes(id);
    // A committed transactional message keeps the id of its half copy, which must never be the answer.
    const matches = (message: StoredMessage) => message.id.equals(wanted) && (message.flags & RecordFlag.Transactional) === 0;
    // A generated id is [storeTimestamp:6][position:8][index:2]: try the position it names first.
    const position = positionOfGeneratedId(wanted);
    if (position !== null) {
      const found = await this.findInBatchAt(position, matches);
      if (found.length > 0) return found[0]!;
    }
    for (const position of await this.index.lookup(IndexKind.MessageId, wanted, 64)) {
      const found = await this.findInBatchAt(position, matches);
      if (found.length > 0) return found[0]!;
    }
    return null;
  }

  async findByKey(key: Uint8Array | string, options: { queueIds?: readonly number[]; limit?: number } = {}): Promise<StoredMessage[]> {
    this.assertOpen();
    const wanted = toBytes(key);
    const limit = keyLookupLimit(options);
    const queues = options.queueIds ? new Set(options.queueIds) : null;
    const matches = (message: StoredMessage) => message.key !== null && message.key.equals(wanted) && (queues === null || queues.has(message.queueId));
    const results: StoredMessage[] = [];
    if (limit === 0) return results;
    // Candidates are batch positions, newest first, and many may hold no match (other queues, hash collisions): ask
    // the index for more until `limit` messages are found or it has no more. Batches written meanwhile are left out,
    // so results stay newest first.
    const ceiling = this.log.writtenPosition;
    const visited = new Set<number>();
    for (let wantedCandidates = limit * 4; ; wantedCandidates *= 2) {
      const candidates = await this.index.lookup(IndexKind.Key, wanted, wantedCandidates);
      for (const position of candidates) {
        if (position >= ceiling || visited.has(position)) continue;
        visited.add(position);
        const found = await this.findInBatchAt(position, matches);
        for (let index = found.length - 1; index >= 0 && results.length < limit; index--) results.push(found[index]!);
        if (results.length === limit) return results;
      }
      if (candidates.length < wantedCandidates) return results;
    }
  }

  /** Reads the batch at `position` (if it still exists and is visible) and returns its matching messages. */
  private async findInBatchAt(position: number, matches: (message: StoredMessage) => boolean): Promise<StoredMessage[]> {
    if (position < this.log.startPosition || position + RECORD_HEADER_BYTES > this.log.writtenPosition) return [];
    if (this.log.segmentBaseOf(position) === null) return [];
    let head: Buffer;
    try {
      head = await this.log.read(position, RECORD_HEADER_BYTES);
    } catch {
      return [];
    }
    const length = head.readUInt32LE(0);
    if (length < RECORD_HEADER_BYTES || length > this.options.maxBatchBytes || position + length > this.log.writtenPosition) return [];
    let batch: Buffer;
    try {
      batch = await this.log.read(position, length);
    } catch {
      return [];
    }
    if (checkBatch(batch, 0, batch.byteLength, this.options.maxBatchBytes) !== BatchCheck.Valid) return [];
    const found: StoredMessage[] = [];
    try {
      // A shared batch holds the message once for several queues: each queue that still serves it gives one match.
      for (const { queueId, baseOffset } of batchQueues(batch, 0)) {
        const queue = this.queues.get(queueId);
        if (!queue) continue;
        const messages: StoredMessage[] = [];
        decodeMessages(batch, 0, position, baseOffset, Infinity, messages, queueId);
        for (const message of messages) if (message.offset >= queue.startOffset && message.offset < queue.visibleEnd && matches(message)) found.push(message);
      }
    } catch {
      return []; // malformed though its CRC matched: no candidate to offer (a read of it reports the damage)
    }
    return found;
  }

  // ---- recovery -----------------------------------------------------------------------------------------------------

  /**
   * Re-derives consume-queue and index entries for a batch found past the checkpoint: for every queue it names (one,
   * or each queue of a shared batch's trailer), and its index entries once.
   */
  private recoverBatch(batch: Buffer, position: number): void {
    const header = readBatchHeader(batch, 0);
    this.lastStoreTimestamp = Math.max(this.lastStoreTimestamp, header.storeTimestamp);
    let queues: ReturnType<typeof batchQueues>;
    try {
      queues = batchQueues(batch, 0);
    } catch (error) {
      if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
      // The trailer is unusable, so only the header's queue can be told its offsets are lost.
      this.logger.error({ err: error, position }, 'storage: a batch passed its checksum but is malformed');
      const queue = this.queues.get(header.queueId);
      if (queue) this.fillDamaged(queue, header.baseOffset + header.count);
      return;
    }
    // Per queue, how many of the batch's messages its consume queue already holds.
    const targets: Array<{ queue: QueueState; skip: number }> = [];
    for (const { queueId, baseOffset } of queues) {
      const queue = this.queues.get(queueId);
      if (!queue || baseOffset + header.count <= queue.consumeQueue.endOffset) continue;
      if (baseOffset > queue.consumeQueue.endOffset) this.fillDamaged(queue, baseOffset);
      targets.push({ queue, skip: queue.consumeQueue.endOffset - baseOffset });
    }
    if (targets.length === 0) return;
    const indexFrom = Math.min(...targets.map((target) => target.skip));
    const index = batchIndexer(this.index, position, header.count);
    try {
      forEachMessageSummary(batch, 0, (offset, encodedBytes, id, key, tag) => {
        const hash = tagHash(tag);
        for (const { queue, skip } of targets) {
          if (offset < skip) continue;
          queue.totalBytes += encodedBytes;
          queue.consumeQueue.append(position, header.length, hash, header.storeTimestamp, queue.totalBytes);
        }
        if (offset < indexFrom) return;
        if (positionOfGeneratedId(id) !== position) index(IndexKind.MessageId, id);
        if (key !== null) index(IndexKind.Key, key);
      });
    } catch (error) {
      // A batch that passed its CRC but does not parse (a writer's bug, or a 1-in-2^32 accident) is damage like any
      // other: its offsets are lost, and recovery goes on. forEachMessageSummary visited nothing.
      if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
      this.logger.error({ err: error, position }, 'storage: a batch passed its checksum but is malformed');
      for (const { queue, skip } of targets) this.fillDamaged(queue, queue.consumeQueue.endOffset - skip + header.count);
    }
  }

  /** Marks the queue's offsets up to `end` as lost to damage, so they are never served nor reused. */
  private fillDamaged(queue: QueueState, end: number): void {
    const from = queue.consumeQueue.endOffset;
    if (end <= from) return;
    this.logger.error({ queue: queue.name, from, to: end }, 'storage: messages lost to damaged data');
    queue.damaged = true;
    for (let offset = from; offset < end; offset++) queue.consumeQueue.append(DAMAGED_POSITION, 0, 0, this.lastStoreTimestamp, queue.totalBytes);
  }

  /** Marks every offset a damaged batch held as lost, in each queue, even when nothing followed it in that queue. */
  private markOffsetsHeld(held: NonNullable<DamagedRange['held']>): void {
    for (const { queueId, baseOffset, count } of held) {
      const queue = this.queues.get(queueId);
      if (queue) this.fillDamaged(queue, baseOffset + count);
    }
  }

  /**
   * For a damaged range whose first header still names a queue, reserve that batch's offsets as damaged. A shared
   * batch's trailer is read too when its claimed length fits the range; each entry counts only if it continues its
   * queue exactly (its base offset is the queue's end), which unrelated bytes are most unlikely to do.
   */
  private async markDamagedRange(start: number, end: number): Promise<void> {
    if (end - start < RECORD_HEADER_BYTES) return;
    const segmentBase = this.log.segmentBaseOf(start);
    if (segmentBase === null) return;
    let head: Buffer;
    try {
      head = await this.log.read(start, RECORD_HEADER_BYTES);
    } catch {
      return;
    }
    const header = readBatchHeader(head, 0);
    if (header.count === 0) return;
    const claimed: Array<{ queueId: number; baseOffset: number }> = [{ queueId: header.queueId, baseOffset: header.baseOffset }];
    const trailerBytes = header.queueCount * SHARED_QUEUE_ENTRY_BYTES;
    if (header.version === SHARED_RECORD_VERSION && header.length <= end - start && header.length >= RECORD_HEADER_BYTES + trailerBytes) {
      try {
        const trailer = await this.log.read(start + header.length - trailerBytes, trailerBytes);
        for (let at = 0; at < trailerBytes; at += SHARED_QUEUE_ENTRY_BYTES) claimed.push({ queueId: trailer.readUInt32LE(at), baseOffset: readU64(trailer, at + 4) });
      } catch {
        // The header's queue is still worth marking.
      }
    }
    for (const { queueId, baseOffset } of claimed) {
      const queue = this.queues.get(queueId);
      if (queue && baseOffset === queue.consumeQueue.endOffset) this.fillDamaged(queue, baseOffset + header.count);
    }
  }

  // ---- retention and checkpoints -------------------------------------------------------------------------------------

  async advanceLowWaterMark(queueId: number, offset: number): Promise<void> {
    this.assertOpen();
    checkLowWaterMark(offset);
    const queue = this.queues.require(queueId);
    await this.runMaintenance(() => this.moveLowWaterMark(queue, offset));
  }

  private async moveLowWaterMark(queue: QueueState, offset: number): Promise<void> {
    const target = Math.min(offset, queue.visibleEnd);
    if (target <= queue.startOffset || queue.deleted) return;
    queue.bytesBeforeStart = target > queue.consumeQueue.firstOffset ? (await queue.consumeQueue.entry(target - 1)).queueBytes : queue.bytesBeforeStart;
    queue.startOffset = target;
    await queue.consumeQueue.deleteBelow(Math.min(target, queue.consumeQueue.endOffset));
  }

  async enforceRetention(): Promise<RetentionReport> {
    this.assertOpen();
    return this.runMaintenance(async () => {
      const report: RetentionReport = { queuesTrimmed: 0, segmentsDeleted: 0 };
      const now = this.clock.now();
      for (const queue of [...this.queues.values()]) {
        const before = queue.startOffset;
        let target = before;
        if (queue.settings.retentionMs !== null) {
          target = Math.max(target, await this.offsetForTimestamp(queue.id, now - queue.settings.retentionMs));
        }
        if (queue.settings.retentionBytes !== null && queue.bytes > queue.settings.retentionBytes) {
          target = Math.max(target, (await this.firstOffsetWithQueueBytes(queue, queue.visibleBytes - queue.settings.retentionBytes)) + 1);
        }
        await this.moveLowWaterMark(queue, target);
        if (queue.startOffset > before) report.queuesTrimmed++;
      }
      // A segment may go once no queue needs any batch in it, and recovery will not start inside it.
      let needed = Math.min(this.checkpointPosition, this.log.durablePosition);
      for (const queue of this.queues.values()) {
        if (queue.startOffset >= queue.visibleEnd) continue;
        const position = (await queue.consumeQueue.entry(queue.startOffset)).position;
        if (position !== DAMAGED_POSITION) needed = Math.min(needed, position);
      }
      report.segmentsDeleted = await this.log.deleteSegmentsBelow(needed);
      if (report.segmentsDeleted > 0) {
        await this.index.deleteBelow(this.log.startPosition);
        this.logger.info({ segmentsDeleted: report.segmentsDeleted, startPosition: this.log.startPosition }, 'retention deleted commit-log segments');
      }
      return report;
    });
  }

  /** Smallest offset in [startOffset, visibleEnd) whose cumulative queue bytes reach `bytes`. */
  private async firstOffsetWithQueueBytes(queue: QueueState, bytes: number): Promise<number> {
    let low = queue.startOffset;
    let high = queue.visibleEnd - 1;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if ((await queue.consumeQueue.entry(middle)).queueBytes < bytes) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private checkpointDue(): boolean {
    return (
      this.clock.monotonic() - this.lastCheckpointAt >= this.options.checkpointIntervalMs ||
      this.log.durablePosition - this.checkpointPosition >= this.options.checkpointBytes
    );
  }

  /**
   * Flushes and syncs every consume queue and the indexes, then records the durable commit-log position as the new
   * recovery point. Everything below it never needs to be re-derived.
   */
  private async checkpoint(): Promise<void> {
    if (this.closed) return;
    try {
      await this.checkpointOnce();
    } finally {
      this.lastCheckpointAt = this.clock.monotonic();
    }
  }

  private async checkpointOnce(): Promise<void> {
    const position = this.log.durablePosition;
    if (position === this.checkpointPosition && ![...this.queues.values()].some((queue) => queue.consumeQueue.unflushedEntries > 0)) return;
    const queues: Checkpoint['queues'] = [];
    for (const queue of this.queues.values()) {
      queues.push([queue.id, await queue.consumeQueue.countBelow(position), queue.startOffset, queue.bytesBeforeStart]);
    }
    // Two syncs in flight let the file system share journal commits, and leave libuv's other two threads to the
    // commit log, whose appends are waiting on them.
    const pending = [...this.queues.values()];
    const worker = async (): Promise<void> => {
      for (let queue = pending.pop(); queue !== undefined; queue = pending.pop()) await queue.consumeQueue.flush(true);
    };
    await Promise.all([worker(), worker()]);
    await this.index.flush();
    const checkpoint: Checkpoint = { version: CHECKPOINT_VERSION, position, queues };
    await writeFileAtomic(this.fs, joinPath(this.options.dataDir, 'checkpoint'), Buffer.from(JSON.stringify(checkpoint)));
    this.checkpointPosition = position;
  }

  async flush(): Promise<void> {
    this.assertOpen();
    await this.log.sync();
    await this.runMaintenance(() => this.checkpoint());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const timer of this.timers) clearInterval(timer);
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    await this.log.close();
    await this.runMaintenance(() => this.checkpoint());
    this.closed = true;
    await this.maintenance;
    for (const queue of this.queues.values()) await queue.consumeQueue.close();
    await this.index.close();
    await this.handles.closeAll();
    await this.metadata.close();
    this.logger.info({ dataDir: this.options.dataDir }, 'storage closed');
  }

  /** Stops without flushing anything, as a killed process would (tests only). */
  async abandon(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    await this.log.abandon();
    await this.handles.closeAll();
  }

  /** Positions and counters for tests and metrics. */
  get stats(): { startPosition: number; endPosition: number; durablePosition: number; segmentCount: number; checkpointPosition: number } {
    return {
      startPosition: this.log.startPosition,
      endPosition: this.log.endPosition,
      durablePosition: this.log.durablePosition,
      segmentCount: this.log.segmentCount,
      checkpointPosition: this.checkpointPosition,
    };
  }
}

async function readCheckpoint(fs: FileSystem, path: string): Promise<Checkpoint> {
  const content = await readWholeFile(fs, path);
  if (content === null) return { version: CHECKPOINT_VERSION, position: 0, queues: [] };
  let parsed: Checkpoint;
  try {
    parsed = JSON.parse(content.toString('utf8')) as Checkpoint;
  } catch (error) {
    // The checkpoint is replaced atomically, so a broken one means outside interference: refuse to guess.
    throw new WeirError(ErrorCode.BadFormat, `the checkpoint file ${path} is not valid JSON; restore it or remove it together with the queues/ and index/ directories to rebuild them`, { cause: error });
  }
  if (parsed.version !== CHECKPOINT_VERSION) throw new WeirError(ErrorCode.BadFormat, `checkpoint ${path} has version ${parsed.version}, expected ${CHECKPOINT_VERSION}`);
  return parsed;
}

