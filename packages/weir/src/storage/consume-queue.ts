import { ErrorCode, WeirError } from '../core/errors.js';
import type { HandleCache } from './handle-cache.js';
import { numberedFileName, parseNumberedFileName } from './file-names.js';
import { type FileSystem, joinPath, readFully } from './io/file-system.js';
import { readU64, setU64 } from './u64.js';

/**
 * The index of one queue: entry n describes the queue's n-th message, so any offset is found in O(1).
 *
 * Entry (32 bytes, little-endian): `[position:8][batchSize:4][tagHash:4][storeTimestamp:8][queueBytes:8]`
 * - `position`/`batchSize` locate the commit-log batch holding the message (DAMAGED_POSITION marks a message whose
 *   batch was found damaged by recovery);
 * - `tagHash` lets a tag filter skip messages without reading the log;
 * - `storeTimestamp` is non-decreasing, so a binary search finds the first offset at or after a time (the time index);
 * - `queueBytes` is the cumulative size of the queue's messages up to and including this one (size retention).
 *
 * On disk: a directory of files of `entriesPerFile` entries, named by their first offset (20 digits, `.cq`). Entries
 * are derived data: appended in memory as batches are written, flushed lazily, and rebuilt from the commit log past
 * the store's checkpoint after a crash (the checkpoint records how many entries each queue had flushed and synced).
 *
 * Concurrency: `append` is synchronous; `read`, `countBelow` and `flush` are async. One flush at a time (a second
 * call waits for the first); entries appended meanwhile stay in memory until the next flush. `deleteBelow` must not
 * overlap `countBelow` (the store runs both as serialised maintenance).
 */
export const ENTRY_BYTES = 32;
export const DAMAGED_POSITION = Number.MAX_SAFE_INTEGER;
const SUFFIX = '.cq';
/** The smallest in-memory tail, in entries: a quiet queue keeps 512 bytes. */
const MIN_TAIL_ENTRIES = 16;

export interface ConsumeQueueEntry {
  position: number;
  batchSize: number;
  tagHash: number;
  storeTimestamp: number;
  queueBytes: number;
}

export function entryAt(entries: Buffer, index: number): ConsumeQueueEntry {
  const at = index * ENTRY_BYTES;
  return {
    position: readU64(entries, at),
    batchSize: entries.readUInt32LE(at + 8),
    tagHash: entries.readUInt32LE(at + 12),
    storeTimestamp: readU64(entries, at + 16),
    queueBytes: readU64(entries, at + 24),
  };
}

export function positionAt(entries: Buffer, index: number): number {
  return readU64(entries, index * ENTRY_BYTES);
}

export function batchSizeAt(entries: Buffer, index: number): number {
  return entries.readUInt32LE(index * ENTRY_BYTES + 8);
}

function fileName(baseOffset: number): string {
  return numberedFileName(baseOffset, SUFFIX);
}

/** Whether a checkpoint at commit-log `position` may count the entry at `entryPosition` (see countBelow). */
function countsBelow(entryPosition: number, position: number): boolean {
  return entryPosition < position || entryPosition === DAMAGED_POSITION;
}

export class ConsumeQueue {
  /** Base offsets of the files on disk, ascending. */
  private readonly files: number[];
  /** Entries [flushedEnd, end) live in `tail`. */
  private flushedEnd: number;
  private tail: Buffer;
  /** The same memory as `tail`: appends store whole u32s instead of going through Buffer's checked writers. */
  private tailView: DataView;
  private tailEntries = 0;
  private flushing: Promise<void> | null = null;
  /**
   * Largest batch position among the entries written to the files, or -1 while every written entry lies below the
   * recovery point the queue was opened at (then any later checkpoint counts them all).
   */
  private writtenPosition = -1;
  /** Files written since their last datasync. */
  private readonly unsyncedFiles = new Set<number>();
  private createdFiles = false;

  private constructor(
    private readonly fs: FileSystem,
    private readonly handles: HandleCache,
    readonly directory: string,
    private readonly entriesPerFile: number,
    files: number[],
    flushedEnd: number,
  ) {
    this.files = files;
    this.flushedEnd = flushedEnd;
    this.tail = Buffer.alloc(ENTRY_BYTES * MIN_TAIL_ENTRIES);
    this.tailView = new DataView(this.tail.buffer, this.tail.byteOffset, this.tail.byteLength);
  }

  /** Moves the entries [from, from + count) of the tail to the front of a new tail of `capacity` entries. */
  private reallocateTail(capacity: number, from: number, count: number): void {
    const next = Buffer.alloc(capacity * ENTRY_BYTES);
    this.tail.copy(next, 0, from * ENTRY_BYTES, (from + count) * ENTRY_BYTES);
    this.tail = next;
    this.tailView = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /**
   * Opens the queue's directory and cuts it to `end` entries: entries past the store's checkpoint may describe
   * batches that no longer exist, and are rebuilt from the commit log instead.
   */
  static async open(fs: FileSystem, handles: HandleCache, directory: string, entriesPerFile: number, end: number): Promise<ConsumeQueue> {
    await fs.mkdirp(directory);
    const files = (await fs.list(directory))
      .map((name) => parseNumberedFileName(name, SUFFIX))
      .filter((base) => base !== null)
      .sort((a, b) => a - b);
    const queue = new ConsumeQueue(fs, handles, directory, entriesPerFile, files, 0);
    await queue.cutFilesTo(end);
    queue.flushedEnd = end;
    return queue;
  }

  /** One past the last entry. */
  get endOffset(): number {
    return this.flushedEnd + this.tailEntries;
  }

  get unflushedEntries(): number {
    return this.tailEntries;
  }

  /** Bytes of memory held for entries not yet flushed (the tail buffer, with its spare room). */
  get memoryBytes(): number {
    return this.tail.byteLength;
  }

  /** Offset of the first entry still on disk or in memory. */
  get firstOffset(): number {
    return this.files[0] ?? this.flushedEnd;
  }

  append(position: number, batchSize: number, tagHash: number, storeTimestamp: number, queueBytes: number): void {
    if ((this.tailEntries + 1) * ENTRY_BYTES > this.tail.byteLength) this.reallocateTail(this.tailEntries * 2, 0, this.tailEntries);
    const view = this.tailView;
    const at = this.tailEntries * ENTRY_BYTES;
    setU64(view, at, position);
    view.setUint32(at + 8, batchSize, true);
    view.setUint32(at + 12, tagHash, true);
    setU64(view, at + 16, storeTimestamp);
    setU64(view, at + 24, queueBytes);
    this.tailEntries++;
  }

  /**
   * Reads up to `count` entries from `offset` into a buffer of whole entries (fewer at a file boundary or the end).
   * Entries still in memory are copied, so the result stays valid while appends go on.
   */
  async read(offset: number, count: number): Promise<Buffer> {
    if (offset < this.firstOffset || offset >= this.endOffset) {
      throw new WeirError(ErrorCode.OffsetOutOfRange, `consume queue has entries [${this.firstOffset}, ${this.endOffset}), not ${offset}`);
    }
    if (offset >= this.flushedEnd) {
      const from = (offset - this.flushedEnd) * ENTRY_BYTES;
      const to = Math.min(this.tailEntries, offset - this.flushedEnd + count) * ENTRY_BYTES;
      return Buffer.from(this.tail.subarray(from, to));
    }
    const base = this.fileBaseOf(offset);
    const entries = Math.min(count, base + this.entriesPerFile - offset, this.flushedEnd - offset);
    const buffer = Buffer.allocUnsafe(entries * ENTRY_BYTES);
    const got = await this.handles.use(joinPath(this.directory, fileName(base)), (handle) =>
      readFully(handle, buffer, 0, buffer.byteLength, (offset - base) * ENTRY_BYTES),
    );
    if (got < buffer.byteLength) {
      throw new WeirError(ErrorCode.DataDamaged, `consume queue file ${this.directory}/${fileName(base)} is shorter than its flushed entries`);
    }
    return buffer;
  }

  async entry(offset: number): Promise<ConsumeQueueEntry> {
    return entryAt(await this.read(offset, 1), 0);
  }

  /**
   * Number of entries, from the first, whose batch lies below commit-log `position`: what a checkpoint at `position`
   * may record, since after a power loss the log may end there. Positions only grow along a queue; DAMAGED_POSITION
   * entries count as below, as recovery adds them only below the log's end at open, before any entry a later
   * checkpoint could leave out.
   */
  async countBelow(position: number): Promise<number> {
    if (this.writtenPosition < position) {
      let end = this.tailEntries;
      while (end > 0 && !countsBelow(positionAt(this.tail, end - 1), position)) end--;
      return this.flushedEnd + end;
    }
    // A background flush (or an earlier checkpoint's) wrote entries of batches the log has not synced yet: the first
    // of them is somewhere in the files.
    let low = this.firstOffset;
    let high = this.flushedEnd;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if (countsBelow(positionAt(await this.read(middle, 1), 0), position)) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private fileBaseOf(offset: number): number {
    return offset - (offset % this.entriesPerFile);
  }

  /** Writes the in-memory entries to their files; with `sync`, also makes every written file durable. */
  async flush(sync: boolean): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushOnce(sync);
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  private async flushOnce(sync: boolean): Promise<void> {
    const count = this.tailEntries;
    let written = 0;
    while (written < count) {
      const offset = this.flushedEnd + written;
      const base = this.fileBaseOf(offset);
      const entries = Math.min(count - written, base + this.entriesPerFile - offset);
      if (this.files[this.files.length - 1] !== base) {
        this.files.push(base);
        this.createdFiles = true;
      }
      const bytes = this.tail.subarray(written * ENTRY_BYTES, (written + entries) * ENTRY_BYTES);
      await this.handles.use(joinPath(this.directory, fileName(base)), (handle) => handle.write([bytes], (offset - base) * ENTRY_BYTES));
      this.unsyncedFiles.add(base);
      written += entries;
    }
    for (let index = count - 1; index >= 0; index--) {
      const position = positionAt(this.tail, index);
      if (position === DAMAGED_POSITION) continue;
      this.writtenPosition = Math.max(this.writtenPosition, position);
      break;
    }
    // Drop what was written from memory; entries appended during the writes move to the front. A burst may have
    // grown the tail far past what is left: give that memory back, so thousands of quiet queues stay small.
    const remaining = this.tailEntries - count;
    let capacity = MIN_TAIL_ENTRIES;
    while (capacity <= remaining) capacity *= 2;
    if (capacity * ENTRY_BYTES < this.tail.byteLength) this.reallocateTail(capacity, count, remaining);
    else this.tail.copy(this.tail, 0, count * ENTRY_BYTES, this.tailEntries * ENTRY_BYTES);
    this.tailEntries = remaining;
    this.flushedEnd += count;
    if (!sync) return;
    for (const base of [...this.unsyncedFiles]) {
      this.unsyncedFiles.delete(base);
      await this.handles.use(joinPath(this.directory, fileName(base)), (handle) => handle.datasync());
    }
    if (this.createdFiles) {
      this.createdFiles = false;
      await this.fs.syncDirectory(this.directory);
    }
  }

  private async cutFilesTo(end: number): Promise<void> {
    while (this.files.length > 0 && this.files[this.files.length - 1]! >= end) {
      const base = this.files.pop()!;
      const path = joinPath(this.directory, fileName(base));
      await this.handles.forget(path);
      await this.fs.remove(path);
    }
    const last = this.files[this.files.length - 1];
    if (last !== undefined) {
      const path = joinPath(this.directory, fileName(last));
      await this.handles.use(path, async (handle) => {
        const wanted = Math.min(end - last, this.entriesPerFile) * ENTRY_BYTES;
        if ((await handle.size()) > wanted) await handle.truncate(wanted);
      });
      this.unsyncedFiles.add(last);
    }
  }

  /** Removes files whose entries are all below `offset` (retention); the last file always stays. */
  async deleteBelow(offset: number): Promise<number> {
    let removed = 0;
    while (this.files.length > 1 && this.files[1]! <= offset) {
      const base = this.files.shift()!;
      const path = joinPath(this.directory, fileName(base));
      await this.handles.forget(path);
      await this.fs.remove(path);
      this.unsyncedFiles.delete(base);
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
