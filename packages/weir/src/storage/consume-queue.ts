import { ErrorCode, WeirError } from '../core/errors.js';
import type { HandleCache } from './handle-cache.js';
import { type FileSystem, joinPath, readFully } from './io/file-system.js';

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
 * Concurrency: `append` is synchronous; `read`, `flush` and `truncateTo` are async. One flush at a time (a second
 * call waits for the first); entries appended meanwhile stay in memory until the next flush. `truncateTo` and
 * `deleteBelow` must not overlap a flush (the store calls them only during recovery and retention, serialised).
 */
export const ENTRY_BYTES = 32;
export const DAMAGED_POSITION = Number.MAX_SAFE_INTEGER;
const TWO_32 = 0x1_0000_0000;
const SUFFIX = '.cq';

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
    position: entries.readUInt32LE(at + 4) * TWO_32 + entries.readUInt32LE(at),
    batchSize: entries.readUInt32LE(at + 8),
    tagHash: entries.readUInt32LE(at + 12),
    storeTimestamp: entries.readUInt32LE(at + 20) * TWO_32 + entries.readUInt32LE(at + 16),
    queueBytes: entries.readUInt32LE(at + 28) * TWO_32 + entries.readUInt32LE(at + 24),
  };
}

export function positionAt(entries: Buffer, index: number): number {
  const at = index * ENTRY_BYTES;
  return entries.readUInt32LE(at + 4) * TWO_32 + entries.readUInt32LE(at);
}

export function batchSizeAt(entries: Buffer, index: number): number {
  return entries.readUInt32LE(index * ENTRY_BYTES + 8);
}

function fileName(baseOffset: number): string {
  return `${String(baseOffset).padStart(20, '0')}${SUFFIX}`;
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
    this.tail = Buffer.alloc(ENTRY_BYTES * 16);
    this.tailView = new DataView(this.tail.buffer, this.tail.byteOffset, this.tail.byteLength);
  }

  private growTail(entries: number): void {
    const grown = Buffer.alloc(entries * ENTRY_BYTES);
    this.tail.copy(grown, 0, 0, this.tailEntries * ENTRY_BYTES);
    this.tail = grown;
    this.tailView = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
  }

  /**
   * Opens the queue's directory and cuts it to `end` entries: entries past the store's checkpoint may describe
   * batches that no longer exist, and are rebuilt from the commit log instead.
   */
  static async open(fs: FileSystem, handles: HandleCache, directory: string, entriesPerFile: number, end: number): Promise<ConsumeQueue> {
    await fs.mkdirp(directory);
    const files = (await fs.list(directory))
      .filter((name) => /^\d{20}\.cq$/.test(name))
      .map((name) => Number(name.slice(0, 20)))
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

  /** Offset of the first entry still on disk or in memory. */
  get firstOffset(): number {
    return this.files[0] ?? this.flushedEnd;
  }

  append(position: number, batchSize: number, tagHash: number, storeTimestamp: number, queueBytes: number): void {
    if ((this.tailEntries + 1) * ENTRY_BYTES > this.tail.byteLength) this.growTail(this.tailEntries * 2);
    const view = this.tailView;
    const at = this.tailEntries * ENTRY_BYTES;
    view.setUint32(at, position % TWO_32, true);
    view.setUint32(at + 4, position / TWO_32, true);
    view.setUint32(at + 8, batchSize, true);
    view.setUint32(at + 12, tagHash, true);
    view.setUint32(at + 16, storeTimestamp % TWO_32, true);
    view.setUint32(at + 20, storeTimestamp / TWO_32, true);
    view.setUint32(at + 24, queueBytes % TWO_32, true);
    view.setUint32(at + 28, queueBytes / TWO_32, true);
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

  /** Number of entries whose batch lies below commit-log `position` (positions only grow along the queue). */
  countBelow(position: number): number {
    let end = this.tailEntries;
    while (end > 0 && positionAt(this.tail, end - 1) >= position && positionAt(this.tail, end - 1) !== DAMAGED_POSITION) end--;
    return this.flushedEnd + end;
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
    // Drop what was written from memory; entries appended during the writes move to the front.
    this.tail.copy(this.tail, 0, count * ENTRY_BYTES, this.tailEntries * ENTRY_BYTES);
    this.tailEntries -= count;
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

  /** Drops every entry at or past `end` (recovery, or undoing entries of a failed write). */
  async truncateTo(end: number): Promise<void> {
    while (this.flushing) await this.flushing;
    if (end >= this.flushedEnd) {
      this.tailEntries = Math.min(this.tailEntries, end - this.flushedEnd);
      return;
    }
    this.tailEntries = 0;
    await this.cutFilesTo(end);
    this.flushedEnd = end;
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
