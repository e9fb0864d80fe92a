import { ErrorCode, WeirError, isWeirError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { numberedFileName, parseNumberedFileName } from './file-names.js';
import { joinPath, readFully, type FileHandle, type FileSystem } from './io/file-system.js';
import { getU64, setU64, TWO_32 } from './u64.js';

/** What an index entry's key is: the message id, or one of the message's keys. Part of the hash and of the entry. */
export const IndexKind = {
  MessageId: 0,
  Key: 1,
} as const;
export type IndexKind = (typeof IndexKind)[keyof typeof IndexKind];

/**
 * Adds the index entries of one batch at `position`: one per distinct (kind, key), since a lookup reads the whole
 * batch and finds every message of it that matches. A batch of 200 messages with one key costs one entry, and leaves
 * room in a lookup's candidates for other batches.
 */
export function batchIndexer(index: MessageIndex, position: number, messages: number): (kind: IndexKind, key: Uint8Array) => void {
  if (messages === 1) return (kind, key) => index.add(kind, key, position);
  const seen = new Set<string>();
  return (kind, key) => {
    const text = kind + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
    if (seen.has(text)) return;
    seen.add(text);
    index.add(kind, key, position);
  };
}

export interface MessageIndexOptions {
  /** Hash slots per new file (default 2^18). Files keep the slot count they were created with. */
  slotCount?: number;
  /** Entries per new file (default 2^20). */
  maxEntries?: number;
  logger?: Logger;
}

const MAGIC = 0x58444957; // 'WIDX' read as a little-endian u32
const VERSION = 1;
const HEADER_SIZE = 64;
const ENTRY_SIZE = 20;
const SUFFIX = '.idx';
const DEFAULT_SLOT_COUNT = 1 << 18;
const DEFAULT_MAX_ENTRIES = 1 << 20;
/** Keeps a file's size well inside what one Buffer and one positional read can address. */
const MAX_FILE_SIZE = 2 ** 31 - 1;

// Header field offsets.
const H_MAGIC = 0;
const H_VERSION = 4;
const H_SLOT_COUNT = 8;
const H_MAX_ENTRIES = 12;
const H_ENTRY_COUNT = 16;
const H_FIRST_POSITION = 20;
const H_LAST_POSITION = 28;

// Entry field offsets.
const E_HASH = 0;
const E_POSITION = 4;
const E_PREVIOUS = 12;
const E_KIND = 16;

/**
 * The 32-bit hash stored in index entries: MurmurHash3 (x86, 32-bit) of the key bytes, seeded with the kind, so an id
 * and a key with equal bytes hash apart. Part of the file format (version 1). About 15 ns for a 16-byte key and 45 ns
 * for a 64-byte key on a current x86 core.
 */
export function hashIndexKey(kind: IndexKind, key: Uint8Array): number {
  let h = kind | 0;
  const length = key.length;
  const end = length & ~3;
  let i = 0;
  for (; i < end; i += 4) {
    let k = (key[i] as number) | ((key[i + 1] as number) << 8) | ((key[i + 2] as number) << 16) | ((key[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail !== 0) {
    let k = 0;
    if (tail === 3) k ^= (key[i + 2] as number) << 16;
    if (tail >= 2) k ^= (key[i + 1] as number) << 8;
    k ^= key[i] as number;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** An open file handle shared by lookups and flushes; closed once retired and no longer in use. */
class SharedHandle {
  users = 0;
  retired = false;
  shutting = false;
  readonly closed: Promise<void>;
  resolveClosed!: () => void;

  constructor(
    readonly handle: Promise<FileHandle>,
    readonly writable: boolean,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }
}

/** One index file: its header fields mirrored in memory, and its content when it is active or not yet written. */
interface IndexFile {
  /** The number in the file name. */
  readonly name: number;
  readonly path: string;
  readonly slotCount: number;
  readonly maxEntries: number;
  /** Byte offset of entry number 1 (= header + slot table). */
  readonly entriesOffset: number;
  readonly size: number;
  readonly firstPosition: number;
  lastPosition: number;
  entryCount: number;
  /** The whole file image; null once a sealed file is fully written (then it is read from disk). */
  buffer: Buffer | null;
  view: DataView | null;
  /** Full, and no longer the active file. */
  sealed: boolean;
  /** The file has been fully written at least once (it exists with a valid header). */
  onDisk: boolean;
  /** Entries 1..durableCount are written and datasynced. */
  durableCount: number;
  /** The slot table or header changed other than by appending (truncation, slot rebuild): rewrite them. */
  metaDirty: boolean;
  removing: boolean;
  removed: boolean;
  io: SharedHandle | null;
}

interface FlushJob {
  file: IndexFile;
  count: number;
  from: number;
  created: boolean;
  header: Buffer;
  slots: Buffer;
  entries: Buffer;
}

function entryOffset(file: IndexFile, entry: number): number {
  return file.entriesOffset + (entry - 1) * ENTRY_SIZE;
}

function fileSize(slotCount: number, maxEntries: number): number {
  return HEADER_SIZE + slotCount * 4 + maxEntries * ENTRY_SIZE;
}

function viewOf(buffer: Buffer): DataView {
  return new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function fileName(name: number): string {
  return numberedFileName(name, SUFFIX);
}

function ioError(message: string, cause: unknown): WeirError {
  if (isWeirError(cause)) return cause;
  return new WeirError(ErrorCode.StorageIo, message, { cause, retriable: true });
}

function checkKind(kind: number): void {
  if (kind !== IndexKind.MessageId && kind !== IndexKind.Key) {
    throw new WeirError(ErrorCode.InvalidArgument, `unknown index kind ${String(kind)}`);
  }
}

function checkPosition(position: number, what: string): void {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new WeirError(ErrorCode.InvalidArgument, `${what}: position must be an integer in [0, 2^53), got ${String(position)}`);
  }
}

/**
 * Hash index from message id or key to commit-log positions, in fixed-size files like RocketMQ's IndexFile. Derived
 * data: it can be rebuilt from the commit log, so it is flushed lazily, entries carry no checksum, and damaged files
 * are deleted on open.
 *
 * File layout (little-endian; u64 as two u32 halves, values < 2^53): header 64 B = ['WIDX'][version:u16=1][reserved:u16][slotCount:u32][maxEntries:u32][entryCount:u32][firstPosition:u64][lastPosition:u64][reserved:28], then slots slotCount × [newest entry:u32, 1-based, 0 = empty], then entries maxEntries × 20 B = [hash:u32][position:u64][previous:u32, 1-based entry of the previous entry in the same slot, 0 = none][kind:u8][reserved:3].
 *
 * Files are named by the commit-log position of their first entry, zero-padded to 20 digits, `.idx`; when a full
 * file's entries all share one position, the next file is named one past its predecessor instead so names stay
 * unique (the true first position is in the header). Positions are non-decreasing within and across files.
 *
 * The newest (active) file lives in memory as one Buffer of the full file size; `add()` writes into it synchronously.
 * A full file is sealed and keeps its Buffer until a flush has written it; after that it is read with positional
 * reads through a handle kept open until `close()`. Memory therefore grows by one file size per roll between flushes:
 * callers should flush regularly.
 *
 * Flush and concurrent adds: a flush snapshots, synchronously when it starts, the 64-byte header and (for the active
 * file) the slot table by copying them (1 MiB at the default slot count); entries are append-only, so the new entries
 * [durable, snapshot count) are written straight from the buffer. It writes the whole slot table and the new entries
 * (plus, for a new file, a header counting no entries), datasyncs, and only then writes the snapshot header whose
 * entryCount makes them visible, and datasyncs again; then it syncs the directory if it created a file. After a
 * crash the on-disk header therefore never counts an entry that was not durable. The slot table on disk may still be
 * newer than its header, so whenever a file is loaded back into memory (open, truncateFrom) its slot table and links
 * are rebuilt from its counted entries. Files on disk hold only the written prefix (no preallocation).
 *
 * flush, truncateFrom and deleteBelow run one at a time, in call order. `add()` is refused while a `truncateFrom()`
 * is pending. Lookups may run alongside anything; they return candidates, which callers verify against the log.
 */
export class MessageIndex {
  private files: IndexFile[] = [];
  private active: IndexFile | null = null;
  /** Newest indexed position (0 when empty): add() refuses anything smaller. */
  private lastPosition = 0;
  private pendingTruncations = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private tail: Promise<void> = Promise.resolve();
  private queuedFlush: Promise<void> | null = null;
  private readonly handles = new Set<SharedHandle>();
  /** Set once close() starts closing handles: a lookup still running then fails instead of opening new ones. */
  private handlesClosed = false;

  private constructor(
    private readonly fs: FileSystem,
    private readonly directory: string,
    private readonly slotCount: number,
    private readonly maxEntries: number,
    private readonly logger: Logger,
  ) {}

  static async open(fs: FileSystem, directory: string, options: MessageIndexOptions = {}): Promise<MessageIndex> {
    const slotCount = options.slotCount ?? DEFAULT_SLOT_COUNT;
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(slotCount) || slotCount < 1 || slotCount > 0xffffffff) {
      throw new WeirError(ErrorCode.InvalidArgument, `slotCount must be a positive u32, got ${slotCount}`);
    }
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 0xffffffff) {
      throw new WeirError(ErrorCode.InvalidArgument, `maxEntries must be a positive u32, got ${maxEntries}`);
    }
    if (fileSize(slotCount, maxEntries) > MAX_FILE_SIZE) {
      throw new WeirError(ErrorCode.InvalidArgument, `index file of ${slotCount} slots and ${maxEntries} entries is too large`);
    }
    const index = new MessageIndex(fs, directory, slotCount, maxEntries, options.logger ?? silentLogger);
    try {
      await index.load();
    } catch (error) {
      await index.closeHandles();
      throw ioError(`cannot open message index in ${directory}`, error);
    }
    return index;
  }

  /** Total entries across all files. */
  get entryCount(): number {
    let total = 0;
    for (const file of this.files) total += file.entryCount;
    return total;
  }

  /** Index files, including ones not yet written. */
  get fileCount(): number {
    return this.files.length;
  }

  /**
   * Indexes `key` of `kind` at commit-log `position`. Synchronous and allocation-free except when a new file starts.
   * Positions must be non-decreasing across calls.
   */
  add(kind: IndexKind, key: Uint8Array, position: number): void {
    if (this.closed || this.pendingTruncations !== 0) this.refuseAdd();
    if (!(position >= this.lastPosition) || !Number.isSafeInteger(position)) {
      throw new WeirError(
        ErrorCode.InvalidArgument,
        `index positions must be non-decreasing integers < 2^53: got ${String(position)} after ${this.lastPosition}`,
      );
    }
    if (kind !== IndexKind.MessageId && kind !== IndexKind.Key) checkKind(kind);
    const file = this.active ?? this.startFile(position);
    const view = file.view as DataView;
    const hash = hashIndexKey(kind, key);
    const entry = file.entryCount + 1;
    const slot = HEADER_SIZE + (hash % file.slotCount) * 4;
    const at = file.entriesOffset + (entry - 1) * ENTRY_SIZE;
    const low = position >>> 0;
    const high = (position - low) / TWO_32;
    view.setUint32(at + E_HASH, hash, true);
    view.setUint32(at + E_POSITION, low, true);
    view.setUint32(at + E_POSITION + 4, high, true);
    view.setUint32(at + E_PREVIOUS, view.getUint32(slot, true), true);
    view.setUint8(at + E_KIND, kind);
    view.setUint32(slot, entry, true);
    view.setUint32(H_ENTRY_COUNT, entry, true);
    view.setUint32(H_LAST_POSITION, low, true);
    view.setUint32(H_LAST_POSITION + 4, high, true);
    file.entryCount = entry;
    file.lastPosition = position;
    this.lastPosition = position;
    if (entry === file.maxEntries) {
      file.sealed = true;
      this.active = null;
    }
  }

  /**
   * Candidate positions for `key` of `kind`, newest first, at most `limit`. Hash collisions make false candidates
   * possible: callers read the message at each position and compare.
   */
  async lookup(kind: IndexKind, key: Uint8Array, limit = 32): Promise<number[]> {
    this.assertOpen();
    checkKind(kind);
    if (!Number.isInteger(limit) || limit < 0) {
      throw new WeirError(ErrorCode.InvalidArgument, `limit must be a non-negative integer, got ${String(limit)}`);
    }
    const result: number[] = [];
    if (limit === 0) return result;
    const hash = hashIndexKey(kind, key);
    const files = this.files.slice();
    for (let i = files.length - 1; i >= 0 && result.length < limit; i--) {
      const file = files[i] as IndexFile;
      if (file.removed || file.entryCount === 0) continue;
      if (file.view !== null) this.walkMemory(file, file.view, hash, kind, result, limit);
      else await this.walkDisk(file, hash, kind, result, limit);
    }
    return result;
  }

  /**
   * Writes every file with unwritten entries (sealed ones and the active one) and makes them durable. One flush runs
   * at a time; a call made while one runs waits for it and then runs again (calls made meanwhile share that run).
   */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.requestFlush();
  }

  /**
   * Drops every entry at `position` or later, deleting files that become empty; the newest remaining file becomes
   * the active one again if it is not full. `add()` throws until this resolves. The result is durable at the next
   * flush (file deletions at once).
   */
  async truncateFrom(position: number): Promise<void> {
    this.assertOpen();
    checkPosition(position, 'truncateFrom');
    this.pendingTruncations++;
    try {
      await this.serialize(async () => {
        let removedFiles = 0;
        for (let last = this.files.at(-1); last !== undefined && last.firstPosition >= position; last = this.files.at(-1)) {
          await this.dropFile(last);
          removedFiles++;
        }
        const last = this.files.at(-1);
        let dropped = 0;
        if (last !== undefined && last.lastPosition >= position) {
          await this.loadIntoMemory(last);
          dropped = this.truncateFile(last, position);
        }
        await this.adoptNewest();
        if (removedFiles > 0) await this.syncDirectory();
        if (removedFiles > 0 || dropped > 0) {
          this.logger.info({ directory: this.directory, position, removedFiles, droppedEntries: dropped }, 'message index truncated');
        }
      });
    } finally {
      this.pendingTruncations--;
    }
  }

  /** Deletes whole files all of whose entries are below `position`. Never deletes the newest (or active) file. */
  async deleteBelow(position: number): Promise<void> {
    this.assertOpen();
    checkPosition(position, 'deleteBelow');
    await this.serialize(async () => {
      let removed = 0;
      for (let first = this.files[0]; first !== undefined && this.files.length > 1; first = this.files[0]) {
        if (first === this.active || !(first.lastPosition < position)) break;
        await this.dropFile(first);
        removed++;
      }
      if (removed > 0) {
        await this.syncDirectory();
        this.logger.debug({ directory: this.directory, position, removedFiles: removed }, 'message index files deleted');
      }
    });
  }

  /** Flushes, then closes every file handle. Further calls throw StoreClosed. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.closing = this.shutDown();
    }
    return this.closing;
  }

  // ---- opening ----

  private async load(): Promise<void> {
    await this.fs.mkdirp(this.directory);
    const names = (await this.fs.list(this.directory)).filter((name) => parseNumberedFileName(name, SUFFIX) !== null).sort();
    let removed = 0;
    for (const name of names) {
      const path = joinPath(this.directory, name);
      const previous = this.files.at(-1);
      const problem = await this.inspect(path, parseNumberedFileName(name, SUFFIX)!, previous);
      if (typeof problem === 'string') {
        if (problem !== 'empty') this.logger.warn({ path, problem }, 'deleting damaged message index file (derived data; re-index from the log)');
        await this.fs.remove(path);
        removed++;
      } else {
        this.files.push(problem);
      }
    }
    if (removed > 0) await this.syncDirectory();
    await this.adoptNewest();
  }

  /** Reads and validates a file's header; returns its record, or why it is unusable. */
  private async inspect(path: string, name: number, previous: IndexFile | undefined): Promise<IndexFile | string> {
    if (!Number.isSafeInteger(name)) return 'file name out of range';
    const handle = await this.fs.open(path, 'read');
    const header = Buffer.alloc(HEADER_SIZE);
    let size: number;
    try {
      size = await handle.size();
      if ((await readFully(handle, header, 0, HEADER_SIZE, 0)) < HEADER_SIZE) return 'shorter than a header';
    } finally {
      await handle.close();
    }
    const view = viewOf(header);
    if (view.getUint32(H_MAGIC, true) !== MAGIC) return 'bad magic';
    if (view.getUint16(H_VERSION, true) !== VERSION) return `unsupported version ${view.getUint16(H_VERSION, true)}`;
    const slotCount = view.getUint32(H_SLOT_COUNT, true);
    const maxEntries = view.getUint32(H_MAX_ENTRIES, true);
    const entryCount = view.getUint32(H_ENTRY_COUNT, true);
    const firstPosition = getU64(view, H_FIRST_POSITION);
    const lastPosition = getU64(view, H_LAST_POSITION);
    if (slotCount === 0 || maxEntries === 0 || fileSize(slotCount, maxEntries) > MAX_FILE_SIZE) return 'bad geometry';
    if (entryCount > maxEntries) return 'entry count above capacity';
    if (entryCount === 0) return 'empty';
    const entriesOffset = HEADER_SIZE + slotCount * 4;
    if (size < entriesOffset + entryCount * ENTRY_SIZE) return 'truncated';
    if (!Number.isSafeInteger(lastPosition) || firstPosition > lastPosition) return 'bad position range';
    if (previous !== undefined && (name <= previous.name || firstPosition < previous.lastPosition)) return 'out of order';
    return {
      name,
      path,
      slotCount,
      maxEntries,
      entriesOffset,
      size: fileSize(slotCount, maxEntries),
      firstPosition,
      lastPosition,
      entryCount,
      buffer: null,
      view: null,
      sealed: entryCount === maxEntries,
      onDisk: true,
      durableCount: entryCount,
      metaDirty: false,
      removing: false,
      removed: false,
      io: null,
    };
  }

  /** Makes the newest file the active one if it has room (loading it into memory), and resets the position floor. */
  private async adoptNewest(): Promise<void> {
    const newest = this.files.at(-1);
    if (newest === undefined) {
      this.active = null;
      this.lastPosition = 0;
      return;
    }
    this.lastPosition = newest.lastPosition;
    if (newest.entryCount < newest.maxEntries) {
      await this.loadIntoMemory(newest);
      newest.sealed = false;
      this.active = newest;
    } else {
      newest.sealed = true;
      this.active = null;
    }
  }

  /** Reads a written file into a full-size buffer and rebuilds its slot table from its entries. */
  private async loadIntoMemory(file: IndexFile): Promise<void> {
    if (file.buffer !== null) return;
    const buffer = Buffer.alloc(file.size);
    const length = entryOffset(file, file.entryCount + 1);
    const io = this.acquire(file, true);
    try {
      const handle = await io.handle;
      if ((await readFully(handle, buffer, 0, length, 0)) < length) {
        throw new WeirError(ErrorCode.DataDamaged, `message index file ${file.path} is shorter than its header says`);
      }
    } finally {
      this.release(io);
    }
    const view = viewOf(buffer);
    // The on-disk slot table may be newer than the header (a crash between the two flush phases): rebuild it, and
    // schedule a rewrite of whatever the rebuild changed.
    const slots = buffer.subarray(HEADER_SIZE, file.entriesOffset);
    const entries = buffer.subarray(file.entriesOffset, length);
    const slotsBefore = Buffer.from(slots);
    const entriesBefore = Buffer.from(entries);
    rebuildSlots(file, view, buffer);
    file.durableCount = entriesBefore.equals(entries) ? file.entryCount : 0;
    if (!slotsBefore.equals(slots)) file.metaDirty = true;
    file.buffer = buffer;
    file.view = view;
  }

  // ---- adding ----

  private refuseAdd(): never {
    if (this.closed) throw this.closedError();
    throw new WeirError(ErrorCode.InvalidArgument, 'message index: add() while truncateFrom() is pending');
  }

  private startFile(position: number): IndexFile {
    const previous = this.files.at(-1);
    const name = previous === undefined ? position : Math.max(position, previous.name + 1);
    const size = fileSize(this.slotCount, this.maxEntries);
    const buffer = Buffer.alloc(size);
    const view = viewOf(buffer);
    view.setUint32(H_MAGIC, MAGIC, true);
    view.setUint16(H_VERSION, VERSION, true);
    view.setUint32(H_SLOT_COUNT, this.slotCount, true);
    view.setUint32(H_MAX_ENTRIES, this.maxEntries, true);
    setU64(view, H_FIRST_POSITION, position);
    setU64(view, H_LAST_POSITION, position);
    const file: IndexFile = {
      name,
      path: joinPath(this.directory, fileName(name)),
      slotCount: this.slotCount,
      maxEntries: this.maxEntries,
      entriesOffset: HEADER_SIZE + this.slotCount * 4,
      size,
      firstPosition: position,
      lastPosition: position,
      entryCount: 0,
      buffer,
      view,
      sealed: false,
      onDisk: false,
      durableCount: 0,
      metaDirty: false,
      removing: false,
      removed: false,
      io: null,
    };
    this.files.push(file);
    this.active = file;
    this.logger.debug({ path: file.path }, 'message index file started');
    return file;
  }

  // ---- looking up ----

  private walkMemory(file: IndexFile, view: DataView, hash: number, kind: number, result: number[], limit: number): void {
    let bound = file.entryCount + 1;
    let entry = view.getUint32(HEADER_SIZE + (hash % file.slotCount) * 4, true);
    // Entry numbers strictly decrease along a chain; the bound also guards against damaged links.
    while (entry !== 0 && entry < bound && result.length < limit) {
      const at = file.entriesOffset + (entry - 1) * ENTRY_SIZE;
      if (view.getUint32(at + E_HASH, true) === hash && view.getUint8(at + E_KIND) === kind) {
        result.push(getU64(view, at + E_POSITION));
      }
      bound = entry;
      entry = view.getUint32(at + E_PREVIOUS, true);
    }
  }

  private async walkDisk(file: IndexFile, hash: number, kind: number, result: number[], limit: number): Promise<void> {
    const io = this.acquire(file, false);
    try {
      const handle = await io.handle;
      const scratch = Buffer.alloc(ENTRY_SIZE);
      const view = viewOf(scratch);
      if ((await readFully(handle, scratch, 0, 4, HEADER_SIZE + (hash % file.slotCount) * 4)) < 4) return;
      let bound = file.entryCount + 1;
      let entry = view.getUint32(0, true);
      while (entry !== 0 && entry < bound && result.length < limit) {
        if ((await readFully(handle, scratch, 0, ENTRY_SIZE, entryOffset(file, entry))) < ENTRY_SIZE) return;
        if (view.getUint32(E_HASH, true) === hash && view.getUint8(E_KIND) === kind) result.push(getU64(view, E_POSITION));
        bound = entry;
        entry = view.getUint32(E_PREVIOUS, true);
      }
    } catch (error) {
      // A file deleted by deleteBelow/truncateFrom while we were reading it simply has no more candidates.
      if (file.removing || file.removed) return;
      throw ioError(`cannot read message index file ${file.path}`, error);
    } finally {
      this.release(io);
    }
  }

  // ---- flushing ----

  private requestFlush(): Promise<void> {
    if (this.queuedFlush !== null) return this.queuedFlush;
    const run = this.serialize(() => {
      this.queuedFlush = null;
      return this.flushNow();
    });
    this.queuedFlush = run;
    return run;
  }

  private async flushNow(): Promise<void> {
    // Snapshot synchronously: adds may continue while the writes below are in flight.
    const jobs: FlushJob[] = [];
    for (const file of this.files) {
      const buffer = file.buffer;
      if (buffer === null) continue;
      if (file.onDisk && !file.metaDirty && file.durableCount === file.entryCount) continue;
      const slots = buffer.subarray(HEADER_SIZE, file.entriesOffset);
      jobs.push({
        file,
        count: file.entryCount,
        from: file.durableCount,
        created: !file.onDisk,
        header: Buffer.from(buffer.subarray(0, HEADER_SIZE)),
        // Only the active file's slot table changes under us; entries are append-only.
        slots: file === this.active ? Buffer.from(slots) : slots,
        entries: buffer.subarray(entryOffset(file, file.durableCount + 1), entryOffset(file, file.entryCount + 1)),
      });
      file.metaDirty = false;
    }
    if (jobs.length === 0) return;
    try {
      // Phase 1: slot tables and new entries (and, for new files, a header counting no entries), durable first.
      for (const job of jobs) {
        await this.withWriteHandle(job.file, async (handle) => {
          const parts: Buffer[] = [];
          if (job.created) {
            const provisional = Buffer.from(job.header);
            const view = viewOf(provisional);
            view.setUint32(H_ENTRY_COUNT, 0, true);
            setU64(view, H_LAST_POSITION, job.file.firstPosition);
            parts.push(provisional);
          }
          parts.push(job.slots);
          if (job.from === 0 && job.entries.length > 0) parts.push(job.entries);
          await handle.write(parts, job.created ? 0 : HEADER_SIZE);
          if (job.from > 0 && job.entries.length > 0) await handle.write([job.entries], entryOffset(job.file, job.from + 1));
          await handle.datasync();
        });
      }
      // Phase 2: the headers, which make the new entries count.
      for (const job of jobs) {
        await this.withWriteHandle(job.file, async (handle) => {
          await handle.write([job.header], 0);
          await handle.datasync();
        });
      }
      if (jobs.some((job) => job.created)) await this.syncDirectory();
    } catch (error) {
      for (const job of jobs) job.file.metaDirty = true;
      throw ioError(`cannot flush message index in ${this.directory}`, error);
    }
    for (const job of jobs) {
      const file = job.file;
      file.onDisk = true;
      file.durableCount = job.count;
      if (file.sealed && file !== this.active && file.entryCount === job.count && !file.metaDirty) {
        file.buffer = null;
        file.view = null;
      }
    }
  }

  private async withWriteHandle(file: IndexFile, work: (handle: FileHandle) => Promise<void>): Promise<void> {
    const io = this.acquire(file, true);
    try {
      await work(await io.handle);
    } finally {
      this.release(io);
    }
  }

  // ---- truncating and deleting ----

  /** Drops the entries at `position` or later from an in-memory file; returns how many. */
  private truncateFile(file: IndexFile, position: number): number {
    const buffer = file.buffer as Buffer;
    const view = file.view as DataView;
    const count = file.entryCount;
    let entry = count;
    let consistent = true;
    // Walking back from the newest entry, each dropped entry is the head of its slot: restore the previous head.
    while (entry > 0) {
      const at = entryOffset(file, entry);
      if (getU64(view, at + E_POSITION) < position) break;
      const slot = HEADER_SIZE + (view.getUint32(at + E_HASH, true) % file.slotCount) * 4;
      if (view.getUint32(slot, true) === entry) view.setUint32(slot, view.getUint32(at + E_PREVIOUS, true), true);
      else consistent = false;
      entry--;
    }
    buffer.fill(0, entryOffset(file, entry + 1), entryOffset(file, count + 1));
    file.entryCount = entry;
    if (!consistent) {
      rebuildSlots(file, view, buffer);
      file.durableCount = 0; // previous links may have changed: rewrite every entry
    }
    file.lastPosition = entry > 0 ? getU64(view, entryOffset(file, entry) + E_POSITION) : file.firstPosition;
    view.setUint32(H_ENTRY_COUNT, entry, true);
    setU64(view, H_LAST_POSITION, file.lastPosition);
    if (consistent) file.durableCount = Math.min(file.durableCount, entry);
    file.metaDirty = true;
    file.sealed = false;
    return count - entry;
  }

  private async dropFile(file: IndexFile): Promise<void> {
    file.removing = true;
    try {
      await this.fs.remove(file.path);
    } catch (error) {
      file.removing = false;
      throw ioError(`cannot delete message index file ${file.path}`, error);
    }
    const i = this.files.indexOf(file);
    if (i >= 0) this.files.splice(i, 1);
    file.removed = true;
    file.buffer = null;
    file.view = null;
    if (this.active === file) this.active = null;
    if (file.io !== null) {
      this.retire(file.io);
      file.io = null;
    }
  }

  private async syncDirectory(): Promise<void> {
    try {
      await this.fs.syncDirectory(this.directory);
    } catch (error) {
      throw ioError(`cannot sync directory ${this.directory}`, error);
    }
  }

  // ---- handles, serialization, closing ----

  private acquire(file: IndexFile, writable: boolean): SharedHandle {
    if (this.handlesClosed) throw this.closedError();
    let io = file.io;
    if (io !== null && writable && !io.writable) {
      file.io = null;
      this.retire(io);
      io = null;
    }
    if (io === null) {
      const opened = new SharedHandle(this.fs.open(file.path, writable ? 'write' : 'read'), writable);
      file.io = opened;
      this.handles.add(opened);
      opened.handle.catch(() => {
        if (file.io === opened) file.io = null;
        this.retire(opened);
      });
      io = opened;
    }
    io.users++;
    return io;
  }

  private release(io: SharedHandle): void {
    io.users--;
    if (io.retired && io.users === 0) this.shut(io);
  }

  private retire(io: SharedHandle): void {
    io.retired = true;
    if (io.users === 0) this.shut(io);
  }

  private shut(io: SharedHandle): void {
    if (io.shutting) return;
    io.shutting = true;
    this.handles.delete(io);
    io.handle
      .then((handle) => handle.close())
      .catch((error: unknown) => {
        this.logger.debug({ directory: this.directory, error: String(error) }, 'message index: closing a file handle failed');
      })
      .finally(() => io.resolveClosed());
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op);
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async shutDown(): Promise<void> {
    let failure: unknown = null;
    try {
      await this.requestFlush();
    } catch (error) {
      failure = error;
    }
    await this.tail;
    await this.closeHandles();
    for (const file of this.files) {
      file.buffer = null;
      file.view = null;
    }
    this.files = [];
    this.active = null;
    if (failure !== null) throw failure;
  }

  private async closeHandles(): Promise<void> {
    this.handlesClosed = true;
    const closing: Promise<void>[] = [];
    for (const file of this.files) file.io = null;
    for (const io of [...this.handles]) {
      this.retire(io);
      closing.push(io.closed);
    }
    await Promise.all(closing);
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): WeirError {
    return new WeirError(ErrorCode.StoreClosed, `message index in ${this.directory} is closed`);
  }
}

/** Rebuilds a file's slot table and previous links from entries 1..entryCount. */
function rebuildSlots(file: IndexFile, view: DataView, buffer: Buffer): void {
  buffer.fill(0, HEADER_SIZE, file.entriesOffset);
  for (let entry = 1; entry <= file.entryCount; entry++) {
    const at = entryOffset(file, entry);
    const slot = HEADER_SIZE + (view.getUint32(at + E_HASH, true) % file.slotCount) * 4;
    view.setUint32(at + E_PREVIOUS, view.getUint32(slot, true), true);
    view.setUint32(slot, entry, true);
  }
}
