import { ErrorCode, isWeirError, WeirError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { numberedFileName, parseNumberedFileName } from './file-names.js';
import { type FileHandle, type FileSystem, joinPath, readFully } from './io/file-system.js';
import { repairSingleBitFlip } from './batch-repair.js';
import { BatchCheck, batchQueues, checkBatch, readBatchHeader, RECORD_HEADER_BYTES } from './record-batch.js';

/**
 * One append-only log of record batches shared by every queue (RocketMQ's CommitLog): a broker with 10,000 queues
 * still writes one sequential file, and one fdatasync makes every queue's new batches durable at once.
 *
 * On disk: a directory of segment files named by the global byte position of their first batch (20 digits, `.log`).
 * Positions are contiguous across segments; a batch never spans two segments: when the next batch would take the
 * active segment past `segmentBytes`, a new segment starts at that position. Batch layout: see record-batch.ts.
 *
 * Group commit: `enqueue` reserves a position and encodes the batch into an in-memory pending buffer at once
 * (synchronously, so positions follow call order). One flush cycle at a time writes everything pending with one
 * writev, then, if any waiter asked for durability or a sync was requested, one fdatasync per touched segment.
 * Appends arriving meanwhile wait for the next cycle. Waiters are told in position order: `written()` right after the
 * write, `done()` once acknowledged under their policy (after the write, or after the fdatasync).
 *
 * Crash behaviour: on open, batches from the recovery point on are checked (length, version, CRC). A bad batch that
 * one flipped bit explains (batch-repair.ts) is bit rot in written data, wherever it lies: the range is reported with
 * the offsets it held, read from the batch as it was written, so the store reserves them; it is never served.
 * Otherwise the log looks for any valid batch after it: if there is none, the bad bytes are a torn tail and are cut
 * off (logged with the byte count); if there is one, this is damage inside written data: the range is reported, kept
 * on disk, never served, and the scan resumes after it. Damage before the recovery point is found by the CRC check
 * on every read.
 *
 * Failure: a failed write cuts the segment back to the last good position and fails every pending append (none of
 * them was acknowledged); appends may be retried at once. A failed fdatasync leaves the page cache in an unknown
 * state, so the log refuses all further appends until it is reopened.
 *
 * Concurrency: `enqueue`, `read`, `requestSync` and `deleteSegmentsBelow` may be called at any time; the flush cycle
 * is the only writer. Reads only ever cover bytes below `writtenPosition`.
 */
export interface CommitLogOptions {
  /** Soft size limit of a segment file. */
  segmentBytes: number;
  /** Largest batch accepted, and the bound on any length read from disk. */
  maxBatchBytes: number;
  /** Most bytes one write cycle takes from the pending appends (a single larger batch still goes whole). */
  maxWriteBytes: number;
  logger: Logger;
}

/** One append handed to the log; the log calls back in position order. */
export interface PendingAppend {
  position: number;
  size: number;
  /** Whether `done` must wait for the fdatasync that covers this batch. */
  sync: boolean;
  /** The bytes are in the file (page cache). Called in position order, before `done`. */
  written(): void;
  /** Acknowledged under the batch's policy, or failed (nothing of it acknowledged). */
  done(error: Error | null): void;
}

/** A range of the log that holds bytes which are not valid batches, found during recovery. */
export interface DamagedRange {
  start: number;
  end: number;
  /**
   * The queue offsets the damaged batch held, per queue, when one flipped bit explained the damage (read from the
   * batch as it was written). Its messages are still never served.
   */
  held?: ReadonlyArray<{ queueId: number; baseOffset: number; count: number }>;
}

/** Called for every valid batch found by recovery, in position order. `batch` is a view valid during the call. */
export type RecoveredBatchVisitor = (batch: Buffer, position: number) => void;

const PENDING_CHUNK_BYTES = 1 << 20;
const MAX_FREE_CHUNKS = 4;
/** Written chunks kept readable in memory (4 MiB). */
const RECENT_CHUNKS = 4;
const MAX_QUEUED_SYNCS = 2;
const RECOVERY_READ_BYTES = 4 << 20;
const SEGMENT_SUFFIX = '.log';

export function segmentFileName(position: number): string {
  return numberedFileName(position, SEGMENT_SUFFIX);
}

class Segment {
  handle: FileHandle | null = null;
  /** Bytes written to the file (its logical size). */
  writtenBytes = 0;
  /** Whether the file's directory entry still has to be made durable. */
  created = false;
  /** Readers holding the handle; a deleted segment closes its handle when the last one leaves. */
  readers = 0;
  deleted = false;

  constructor(
    readonly basePosition: number,
    readonly path: string,
  ) {}

  get endPosition(): number {
    return this.basePosition + this.writtenBytes;
  }
}

interface PendingChunk {
  segment: Segment;
  /** Global position of the chunk's first byte. */
  position: number;
  buffer: Buffer;
  /** Bytes encoded into the buffer. */
  used: number;
  /** Bytes of it already written to the file. */
  flushed: number;
}

export class CommitLog {
  /** Next position to hand out. */
  private appendPosition: number;
  /** Every byte below this is in the files. */
  private writtenPositionValue: number;
  /** Every byte below this has been covered by an fdatasync. */
  private durablePositionValue: number;
  private readonly segments: Segment[];
  /** Segment receiving new reservations (may not be open or written yet). */
  private activeSegment: Segment;
  private pendingChunks: PendingChunk[] = [];
  /** Written chunks kept for reuse, so steady appending allocates nothing per cycle. */
  private readonly freeChunks: Buffer[] = [];
  /**
   * The most recently written chunks, oldest first: consumers tailing the log read what was just appended, and
   * serving that from memory saves a trip through libuv's thread pool (where it could queue behind an fdatasync).
   */
  private readonly recentChunks: PendingChunk[] = [];
  private pendingWaiters: PendingAppend[] = [];
  private syncRequested = false;
  private flushing: Promise<void> | null = null;
  /** Callers of sync(), each waiting for the log to be durable up to its target. */
  private syncWaiters: Array<{ target: number; resolve: () => void }> = [];
  /** Tail of the chain of fdatasync steps (they run one at a time, in order). */
  private syncChain: Promise<void> = Promise.resolve();
  /** Sync steps queued or running, oldest first. */
  private readonly syncSteps: Promise<void>[] = [];
  /** Segments written since their last fdatasync. */
  private readonly unsynced = new Set<Segment>();
  private failure: WeirError | null = null;
  private closed = false;
  /** Called after a failed write rewound the log, with the position appends will continue from. */
  onRewind: ((position: number) => void) | null = null;

  private constructor(
    private readonly fs: FileSystem,
    private readonly directory: string,
    private readonly options: CommitLogOptions,
    segments: Segment[],
    readonly damagedRanges: readonly DamagedRange[],
  ) {
    this.segments = segments;
    this.activeSegment = segments[segments.length - 1]!;
    this.appendPosition = this.activeSegment.endPosition;
    this.writtenPositionValue = this.appendPosition;
    this.durablePositionValue = this.appendPosition;
  }

  /**
   * Opens (or creates) the log, recovering its tail from `recoveryPosition` on: every valid batch from there is passed
   * to `visit` so derived data can be rebuilt.
   */
  static async open(fs: FileSystem, directory: string, options: CommitLogOptions, recoveryPosition: number, visit: RecoveredBatchVisitor): Promise<CommitLog> {
    await fs.mkdirp(directory);
    const names = (await fs.list(directory)).filter((name) => parseNumberedFileName(name, SEGMENT_SUFFIX) !== null).sort();
    const segments: Segment[] = [];
    for (const name of names) {
      const segment = new Segment(parseNumberedFileName(name, SEGMENT_SUFFIX)!, joinPath(directory, name));
      segment.handle = await fs.open(segment.path, 'write');
      segment.writtenBytes = await segment.handle.size();
      segments.push(segment);
    }
    // Stray temporary files from an interrupted roll are not segments.
    const damaged: DamagedRange[] = [];
    if (segments.length === 0) {
      const first = new Segment(0, joinPath(directory, segmentFileName(0)));
      first.handle = await fs.open(first.path, 'write');
      await fs.syncDirectory(directory);
      segments.push(first);
    } else {
      await recoverTail(fs, directory, segments, options, Math.max(recoveryPosition, segments[0]!.basePosition), visit, damaged);
      // What survived a crash may still sit only in the page cache: the log calls everything it opens durable (and
      // a checkpoint may record it as the recovery point), so make it so.
      for (const segment of segments) if (segment.endPosition > recoveryPosition) await segment.handle!.datasync();
    }
    return new CommitLog(fs, directory, options, segments, damaged);
  }

  /** Position of the first byte still on disk. */
  get startPosition(): number {
    return this.segments[0]!.basePosition;
  }
  get endPosition(): number {
    return this.appendPosition;
  }
  get writtenPosition(): number {
    return this.writtenPositionValue;
  }
  get durablePosition(): number {
    return this.durablePositionValue;
  }
  get segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Reserves `size` bytes at the end of the log, lets `encode` fill them (given the buffer, the offset in it and the
   * batch's global position), and queues `waiter` for the next flush cycle; the waiter learns its position.
   */
  enqueue(size: number, encode: (target: Buffer, at: number, position: number) => void, waiter: PendingAppend): void {
    if (this.closed) throw new WeirError(ErrorCode.StoreClosed, 'the commit log is closed');
    if (this.failure) throw this.failure;
    if (size > this.options.maxBatchBytes) {
      throw new WeirError(ErrorCode.MessageTooLarge, `a batch of ${size} bytes exceeds the limit of ${this.options.maxBatchBytes} bytes`);
    }
    const active = this.activeSegment;
    if (this.appendPosition > active.basePosition && this.appendPosition - active.basePosition + size > this.options.segmentBytes) {
      const next = new Segment(this.appendPosition, joinPath(this.directory, segmentFileName(this.appendPosition)));
      next.created = true;
      this.segments.push(next);
      this.activeSegment = next;
    }
    const position = this.appendPosition;
    let chunk = this.pendingChunks[this.pendingChunks.length - 1];
    if (chunk === undefined || chunk.segment !== this.activeSegment || chunk.buffer.byteLength - chunk.used < size) {
      const buffer = size <= PENDING_CHUNK_BYTES ? (this.freeChunks.pop() ?? Buffer.allocUnsafe(PENDING_CHUNK_BYTES)) : Buffer.allocUnsafe(size);
      chunk = { segment: this.activeSegment, position, buffer, used: 0, flushed: 0 };
      this.pendingChunks.push(chunk);
    }
    encode(chunk.buffer, chunk.used, position);
    chunk.used += size;
    this.appendPosition += size;
    waiter.position = position;
    waiter.size = size;
    this.pendingWaiters.push(waiter);
    this.scheduleFlush();
  }

  /** Resolves once every byte enqueued before the call is covered by an fdatasync. */
  sync(): Promise<void> {
    const target = this.appendPosition;
    if (this.durablePositionValue >= target && this.unsynced.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncWaiters.push({ target, resolve });
      this.syncRequested = true;
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushing === null) this.flushing = this.flushLoop();
  }

  /**
   * Writes run back to back; fdatasyncs run one at a time on a chain behind them, so the next write overlaps the
   * previous sync ("one write in flight, a sync may overlap it"). A cycle writes at most `maxWriteBytes`: a burst is
   * split into several writes, and the appenders acknowledged by the first sync append again while the next one runs,
   * so the CPU work of acknowledging overlaps the disk's work instead of alternating with it.
   */
  private async flushLoop(): Promise<void> {
    // Let every append issued in the current tick join the first cycle.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.pendingWaiters.length > 0 || this.syncRequested) {
        // Bound how far writes run ahead of syncs: wait for the oldest queued sync, not the whole chain.
        while (this.syncSteps.length >= MAX_QUEUED_SYNCS) await this.syncSteps[0];
        await this.flushCycle();
      }
    } finally {
      this.flushing = null;
    }
  }

  private takeCycleWaiters(): PendingAppend[] {
    const waiters = this.pendingWaiters;
    let bytes = 0;
    let count = 0;
    while (count < waiters.length && (count === 0 || bytes + waiters[count]!.size <= this.options.maxWriteBytes)) {
      bytes += waiters[count]!.size;
      count++;
    }
    if (count === waiters.length) {
      this.pendingWaiters = [];
      return waiters;
    }
    this.pendingWaiters = waiters.slice(count);
    return waiters.slice(0, count);
  }

  private async flushCycle(): Promise<void> {
    const waiters = this.takeCycleWaiters();
    let needSync = false;
    if (this.pendingWaiters.length === 0) {
      needSync = this.syncRequested;
      this.syncRequested = false;
    }
    for (const waiter of waiters) if (waiter.sync) needSync = true;
    const cycleStart = this.writtenPositionValue;
    const last = waiters[waiters.length - 1];
    const cycleEnd = last === undefined ? cycleStart : last.position + last.size;
    if (cycleEnd > cycleStart) {
      try {
        await this.writeRange(cycleEnd);
      } catch (error) {
        await this.failWrite(cycleStart, waiters, error);
        return;
      }
      this.writtenPositionValue = cycleEnd;
      for (const waiter of waiters) waiter.written();
      for (const waiter of waiters) if (!waiter.sync) waiter.done(null);
    }
    if (!needSync) return;
    const step = this.syncChain.then(() => this.syncStep(cycleEnd, waiters));
    this.syncSteps.push(step);
    this.syncChain = step;
  }

  /** One link of the sync chain: make everything up to `cycleEnd` durable (unless a later sync already did). */
  private async syncStep(cycleEnd: number, waiters: readonly PendingAppend[]): Promise<void> {
    try {
      if (this.failure === null && (this.durablePositionValue < cycleEnd || this.unsynced.size > 0)) {
        try {
          await this.syncSegments();
        } catch (error) {
          this.failure = new WeirError(ErrorCode.StorageIo, `fdatasync of the commit log failed; the store must be reopened: ${(error as Error).message}`, { cause: error });
          this.options.logger.error({ err: error }, 'commit log fdatasync failed; refusing further appends');
          this.failPending(this.failure);
        }
      }
      for (const waiter of waiters) if (waiter.sync) waiter.done(this.failure);
      const durable = this.failure === null ? this.durablePositionValue : Infinity;
      if (this.syncWaiters.some((waiter) => waiter.target <= durable)) {
        const ready = this.syncWaiters.filter((waiter) => waiter.target <= durable);
        this.syncWaiters = this.syncWaiters.filter((waiter) => waiter.target > durable);
        for (const waiter of ready) waiter.resolve();
      }
    } finally {
      this.syncSteps.shift();
    }
  }

  /** Writes every pending byte below `end`, one writev per segment, and recycles chunks that are fully written. */
  private async writeRange(end: number): Promise<void> {
    let index = 0;
    const chunks = this.pendingChunks;
    while (index < chunks.length && chunks[index]!.position + chunks[index]!.flushed < end) {
      const segment = chunks[index]!.segment;
      const start = chunks[index]!.position + chunks[index]!.flushed;
      const buffers: Buffer[] = [];
      const marks: Array<[PendingChunk, number]> = [];
      let bytes = 0;
      while (index < chunks.length && chunks[index]!.segment === segment && chunks[index]!.position + chunks[index]!.flushed < end) {
        const chunk = chunks[index]!;
        const to = Math.min(chunk.used, end - chunk.position);
        buffers.push(chunk.buffer.subarray(chunk.flushed, to));
        marks.push([chunk, to]);
        bytes += to - chunk.flushed;
        index++;
      }
      if (segment.handle === null) segment.handle = await this.fs.open(segment.path, 'write');
      await segment.handle.write(buffers, start - segment.basePosition);
      for (const [chunk, to] of marks) chunk.flushed = to;
      segment.writtenBytes = start - segment.basePosition + bytes;
      this.unsynced.add(segment);
    }
    // Chunks written to their end can go back to the pool, except the newest, which may still take appends.
    while (this.pendingChunks.length > 1 && this.pendingChunks[0]!.flushed === this.pendingChunks[0]!.used) {
      this.recentChunks.push(this.pendingChunks.shift()!);
      if (this.recentChunks.length > RECENT_CHUNKS) {
        const retired = this.recentChunks.shift()!;
        if (retired.buffer.byteLength === PENDING_CHUNK_BYTES && this.freeChunks.length < MAX_FREE_CHUNKS) this.freeChunks.push(retired.buffer);
      }
    }
  }

  private async syncSegments(): Promise<void> {
    const target = this.writtenPositionValue;
    let newSegment = false;
    for (const segment of [...this.unsynced]) {
      this.unsynced.delete(segment);
      await segment.handle!.datasync();
      if (segment.created) {
        newSegment = true;
        segment.created = false;
      }
    }
    if (newSegment) await this.fs.syncDirectory(this.directory);
    this.durablePositionValue = Math.max(this.durablePositionValue, target);
  }

  private async failWrite(cycleStart: number, waiters: readonly PendingAppend[], cause: unknown): Promise<void> {
    const error = new WeirError(ErrorCode.StorageIo, `writing the commit log failed: ${(cause as Error).message}`, { retriable: true, cause });
    this.options.logger.error({ err: cause, position: cycleStart }, 'commit log write failed; rewinding');
    // Rewind every position first, so an append issued from a rejection handler below already lands at the good end.
    const touched = new Set(this.pendingChunks.map((chunk) => chunk.segment));
    const pending = this.pendingWaiters;
    this.pendingWaiters = [];
    this.pendingChunks = [];
    const abandoned = this.segments.filter((segment) => segment.basePosition >= cycleStart && segment !== this.segments[0]);
    for (const segment of abandoned) this.segments.splice(this.segments.indexOf(segment), 1);
    this.activeSegment = this.segments[this.segments.length - 1]!;
    this.appendPosition = cycleStart;
    this.writtenPositionValue = cycleStart;
    this.onRewind?.(cycleStart);
    // Cut back the files before the flush loop writes again (it awaits this method).
    try {
      for (const segment of abandoned) {
        await segment.handle?.close();
        segment.handle = null;
        await this.fs.remove(segment.path);
        this.unsynced.delete(segment);
      }
      for (const segment of touched) {
        if (abandoned.includes(segment) || segment.handle === null) continue;
        segment.writtenBytes = cycleStart - segment.basePosition;
        await segment.handle.truncate(segment.writtenBytes);
      }
    } catch (truncateError) {
      this.failure = new WeirError(ErrorCode.StorageIo, `the commit log could not be cut back after a failed write: ${(truncateError as Error).message}`, { cause: truncateError });
    } finally {
      for (const waiter of waiters) waiter.done(error);
      for (const waiter of pending) waiter.done(error);
    }
  }

  /** Fails every append that is queued but not yet in a cycle. */
  private failPending(error: WeirError): void {
    const waiters = this.pendingWaiters;
    this.pendingWaiters = [];
    this.pendingChunks = [];
    for (const waiter of waiters) waiter.done(error);
  }

  /**
   * Reads `length` bytes at `position` (which must lie in one segment, below `writtenPosition`) into a new buffer.
   */
  async read(position: number, length: number): Promise<Buffer> {
    if (position < this.startPosition || position + length > this.writtenPositionValue) {
      throw new WeirError(ErrorCode.OffsetOutOfRange, `commit log read [${position}, ${position + length}) is outside [${this.startPosition}, ${this.writtenPositionValue})`);
    }
    return this.readFromMemory(position, length) ?? this.readFromDisk(position, length);
  }

  /** `read` without looking in memory first: for callers that already did. */
  async readFromDisk(position: number, length: number): Promise<Buffer> {
    const segment = this.segmentAt(position);
    if (segment === null || segment.handle === null || position + length > segment.endPosition) {
      throw new WeirError(ErrorCode.OffsetOutOfRange, `commit log read at ${position} does not fall within one segment`);
    }
    segment.readers++;
    try {
      const buffer = Buffer.allocUnsafe(length);
      const read = await readFully(segment.handle, buffer, 0, length, position - segment.basePosition);
      if (read !== length) throw new WeirError(ErrorCode.DataDamaged, `commit log segment ${segment.path} is shorter than expected at ${position}`);
      return buffer;
    } finally {
      segment.readers--;
      if (segment.deleted && segment.readers === 0) await this.closeHandle(segment);
    }
  }

  /**
   * Copies `[position, position + length)` out of the recently written chunks, or returns null when any of it is not
   * there. A copy, not a view: the chunk is reused for new appends once it ages out.
   */
  readFromMemory(position: number, length: number): Buffer | null {
    if (position + length > this.writtenPositionValue) return null;
    const first = this.recentChunks[0] ?? this.pendingChunks[0];
    if (first === undefined || position < first.position) return null;
    const result = Buffer.allocUnsafe(length);
    let copied = 0;
    for (const chunks of [this.recentChunks, this.pendingChunks]) {
      for (const chunk of chunks) {
        const at = position + copied;
        const end = chunk.position + chunk.flushed;
        if (at < chunk.position || at >= end) continue;
        const take = Math.min(length - copied, end - at);
        chunk.buffer.copy(result, copied, at - chunk.position, at - chunk.position + take);
        copied += take;
        if (copied === length) return result;
      }
    }
    return null;
  }

  private segmentAt(position: number): Segment | null {
    let low = 0;
    let high = this.segments.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const segment = this.segments[middle]!;
      if (position < segment.basePosition) high = middle - 1;
      else if (middle + 1 < this.segments.length && position >= this.segments[middle + 1]!.basePosition) low = middle + 1;
      else return segment;
    }
    return null;
  }

  /** Base position of the segment holding `position`, or null when it is not on disk. */
  segmentBaseOf(position: number): number | null {
    return this.segmentAt(position)?.basePosition ?? null;
  }

  /**
   * Deletes every whole segment that ends at or below `position`, never the active one. Returns how many were deleted.
   */
  async deleteSegmentsBelow(position: number): Promise<number> {
    let deleted = 0;
    while (this.segments.length > 1) {
      const first = this.segments[0]!;
      const next = this.segments[1]!;
      if (next.basePosition > position || first === this.activeSegment || this.unsynced.has(first)) break;
      this.segments.shift();
      first.deleted = true;
      await this.fs.remove(first.path);
      if (first.readers === 0) await this.closeHandle(first);
      deleted++;
    }
    if (deleted > 0) await this.fs.syncDirectory(this.directory);
    return deleted;
  }

  private async closeHandle(segment: Segment): Promise<void> {
    const handle = segment.handle;
    segment.handle = null;
    await handle?.close();
  }

  /** Waits for pending appends, makes everything durable, and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.failure === null) await this.sync();
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.syncChain;
    for (const segment of this.segments) await this.closeHandle(segment);
  }

  /** Drops every handle without flushing: what a crashed process leaves behind (tests only). */
  async abandon(): Promise<void> {
    this.closed = true;
    for (const segment of this.segments) {
      try {
        await this.closeHandle(segment);
      } catch {
        // A crashed file system may refuse; nothing is left to protect.
      }
    }
  }
}

/**
 * Walks every batch from `from` to the end of the last segment. See the class comment for how a bad batch is judged.
 */
async function recoverTail(
  fs: FileSystem,
  directory: string,
  segments: Segment[],
  options: CommitLogOptions,
  from: number,
  visit: RecoveredBatchVisitor,
  damaged: DamagedRange[],
): Promise<void> {
  let position = from;
  for (let index = 0; index < segments.length; index++) {
    const segment = segments[index]!;
    if (segment.endPosition <= position) continue;
    position = Math.max(position, segment.basePosition);
    while (position < segment.endPosition) {
      position = await scanSegment(segment, position, options, visit);
      if (position >= segment.endPosition) break;
      // A bad batch at `position`: rot, torn tail, or damage with valid data after it?
      const resume = await findNextValidBatch(segments, index, position, options);
      const repaired = await repairBadBatch(segment, position, resume, options);
      if (repaired !== null) {
        const end = position + repaired.byteLength;
        options.logger.error({ start: position, end }, 'commit log: a flipped bit damaged a written batch; its messages will never be served');
        damaged.push({ start: position, end, held: offsetsHeld(repaired) });
        position = end;
        continue;
      }
      if (resume === null) {
        const dropped = segments.slice(index).reduce((sum, s) => sum + s.endPosition - Math.max(position, s.basePosition), 0);
        options.logger.warn({ position, droppedBytes: dropped }, 'commit log: cut a torn tail');
        segment.writtenBytes = position - segment.basePosition;
        await segment.handle!.truncate(segment.writtenBytes);
        await segment.handle!.datasync();
        for (const later of segments.splice(index + 1)) {
          await later.handle?.close();
          await fs.remove(later.path);
        }
        if (segments.length > index + 1) await fs.syncDirectory(directory);
        return;
      }
      options.logger.error({ start: position, end: resume }, 'commit log: damaged bytes inside written data; they will never be served');
      damaged.push({ start: position, end: resume });
      if (resume >= segment.endPosition) {
        position = resume;
        break;
      }
      position = resume;
    }
  }
}

/** The offsets a valid batch holds in each queue it names (the header's queue alone when its trailer is malformed). */
function offsetsHeld(batch: Buffer): NonNullable<DamagedRange['held']> {
  const { queueId, baseOffset, count } = readBatchHeader(batch, 0);
  try {
    return batchQueues(batch, 0).map((queue) => ({ queueId: queue.queueId, baseOffset: queue.baseOffset, count }));
  } catch (error) {
    if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
    return [{ queueId, baseOffset, count }];
  }
}

/**
 * The batch at `position`, with the one flipped bit that broke it undone, or null. It must end at its header's length
 * or, should the flip be in the length, where the next valid batch starts or its segment ends.
 */
async function repairBadBatch(segment: Segment, position: number, resume: number | null, options: CommitLogOptions): Promise<Buffer | null> {
  const available = segment.endPosition - position;
  if (available < RECORD_HEADER_BYTES) return null;
  const head = Buffer.allocUnsafe(4);
  if ((await readFully(segment.handle!, head, 0, 4, position - segment.basePosition)) < 4) return null;
  const ends = [...new Set([head.readUInt32LE(0), resume !== null && resume < segment.endPosition ? resume - position : available])].filter(
    (length) => length >= RECORD_HEADER_BYTES && length <= Math.min(available, options.maxBatchBytes),
  );
  if (ends.length === 0) return null;
  // Only as many bytes as the longest possible end: a damaged range early in a large segment must not read the rest.
  const bytes = Buffer.allocUnsafe(Math.max(...ends));
  const got = await readFully(segment.handle!, bytes, 0, bytes.byteLength, position - segment.basePosition);
  for (const length of ends) {
    if (length > got) continue;
    const batch = repairSingleBitFlip(bytes, length, options.maxBatchBytes);
    if (batch !== null) return batch;
  }
  return null;
}

/** Scans valid batches from `start` within one segment; returns where the first bad one starts (or the segment's end). */
async function scanSegment(segment: Segment, start: number, options: CommitLogOptions, visit: RecoveredBatchVisitor): Promise<number> {
  let position = start;
  let buffer = Buffer.allocUnsafe(Math.min(RECOVERY_READ_BYTES, Math.max(RECORD_HEADER_BYTES, segment.endPosition - start)));
  while (position < segment.endPosition) {
    const want = Math.min(buffer.byteLength, segment.endPosition - position);
    const got = await readFully(segment.handle!, buffer, 0, want, position - segment.basePosition);
    if (got < want) segment.writtenBytes = position - segment.basePosition + got;
    if (got === 0) return position;
    let at = 0;
    let check: BatchCheck;
    while ((check = checkBatch(buffer, at, got, options.maxBatchBytes)) === BatchCheck.Valid) {
      const length = buffer.readUInt32LE(at);
      visit(buffer.subarray(at, at + length), position + at);
      at += length;
    }
    position += at;
    if (check === BatchCheck.Invalid) return position;
    // Short: either the read buffer ended inside the batch (read on from it) or the segment did (a torn batch).
    const remaining = segment.endPosition - position;
    if (remaining < RECORD_HEADER_BYTES) return position;
    if (at + RECORD_HEADER_BYTES <= got) {
      const length = buffer.readUInt32LE(at);
      if (length > remaining) return position;
      // A batch larger than the read buffer: grow it (bounded by maxBatchBytes, which checkBatch enforced).
      if (length > buffer.byteLength) buffer = Buffer.allocUnsafe(length);
    }
  }
  return position;
}

/**
 * Looks for a valid batch anywhere after the bad one at `from`: byte by byte through the rest of its segment, then at
 * the start of each later segment. Returns its position, or null when nothing valid follows.
 */
async function findNextValidBatch(segments: Segment[], index: number, from: number, options: CommitLogOptions): Promise<number | null> {
  const segment = segments[index]!;
  const window = Buffer.allocUnsafe(Math.min(RECOVERY_READ_BYTES + options.maxBatchBytes, Math.max(1, segment.endPosition - from)));
  let start = from + 1;
  while (start < segment.endPosition) {
    const want = Math.min(window.byteLength, segment.endPosition - start);
    const got = await readFully(segment.handle!, window, 0, want, start - segment.basePosition);
    const limit = Math.min(got, RECOVERY_READ_BYTES);
    for (let at = 0; at < limit; at++) {
      if (checkBatch(window, at, got, options.maxBatchBytes) === BatchCheck.Valid) return start + at;
    }
    if (got < window.byteLength) break;
    start += limit;
  }
  for (const later of segments.slice(index + 1)) {
    if (later.writtenBytes === 0) continue;
    const head = Buffer.allocUnsafe(Math.min(later.writtenBytes, options.maxBatchBytes));
    const got = await readFully(later.handle!, head, 0, head.byteLength, 0);
    if (checkBatch(head, 0, got, options.maxBatchBytes) === BatchCheck.Valid) return later.basePosition;
  }
  return null;
}
