import { ErrorCode, WeirError, isWeirError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { crc32c } from './crc.js';
import { joinPath, parentDirectory, readFully, readWholeFile, writeFileAtomic, type FileHandle, type FileSystem } from './io/file-system.js';
import type { MetadataOp } from './message-store.js';

export type { MetadataOp };


export interface MetadataStoreOptions {
  logger?: Logger;
  /** The log is compacted into a snapshot once it is larger than this and than the last snapshot. Default 4 MiB. */
  compactAfterBytes?: number;
}

const FORMAT_VERSION = 1;
const FILE_HEADER_BYTES = 8;
const RECORD_HEADER_BYTES = 8;
const DEFAULT_COMPACT_AFTER_BYTES = 4 * 1024 * 1024;
const LOG_MAGIC = 'WMET';
const SNAPSHOT_MAGIC = 'WSNP';
const LOG_HEADER = fileHeader(LOG_MAGIC);
const SNAPSHOT_HEADER = fileHeader(SNAPSHOT_MAGIC);
const LOG_NAME = /^log-(\d+)$/;
const SNAPSHOT_NAME = /^snapshot-(\d+)$/;
const TEMPORARY_NAME = /^snapshot-\d+\.tmp$/;

/** What one write call changed in memory, so a failed batch can be taken back. */
interface UndoEntry {
  key: string;
  existed: boolean;
  previous: unknown;
}

/** A write call waiting for durability. `record` is null for an empty `apply`, which only waits for earlier calls. */
interface PendingCall {
  record: [Buffer, Buffer] | null;
  undo: UndoEntry[];
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * A small durable key-value store for broker metadata (queue definitions, settings, later offsets, ack state, …).
 * Keys are strings, values anything JSON can represent. The whole map lives in memory; the disk holds a snapshot plus
 * an append-only log of changes since that snapshot.
 *
 * **Values.** A written value is stored as `JSON.parse(JSON.stringify(value))`, deep-frozen: what `get` returns right
 * after a write is exactly what it returns after a restart (`undefined` properties dropped, `Date` as a string, `NaN` as
 * null, `toJSON` honoured). A value JSON cannot represent at all (`undefined`, a function, a BigInt, a cycle) makes the
 * write reject with InvalidArgument. Returned values are frozen: mutating them throws; copy, change, then `put`.
 *
 * **Reads and writes.** `get`, `has`, `entries` and `size` are synchronous and see every write call in the order
 * the calls were made, as soon as they were made, whether or not it is durable yet. `put`, `delete` and `apply` change
 * the map at call time and return a promise that resolves only once the change is on disk (fdatasync'd). So a read
 * may return a value whose write later fails; code that must not act on undurable state awaits the write first.
 * `apply(ops)` is atomic: all of its ops survive a crash or none does. `apply([])` writes nothing and resolves once
 * every earlier write call is durable (a barrier).
 *
 * **Concurrency contract.** Any number of write calls may be in flight together, from any number of callers; no call
 * needs to wait for another. One internal write loop serialises all disk work: it takes every call queued so far as
 * one batch, writes their records with one `write` and makes them durable with one `datasync` (group commit), resolves
 * them, then takes the next batch. Calls made while a batch is on its way to disk form the next batch. Batches, and so
 * promise resolutions, follow call order. Compaction runs inside the same loop between batches, so at most one disk
 * operation of this store is in flight at any time. `close()` may be called at any time; it rejects new calls at once
 * and resolves once everything accepted before it is durable (or failed) and the files are closed. Only one
 * MetadataStore may have a directory open at a time (nothing on disk enforces this).
 *
 * **Write failures.** If the write, or the datasync, of a batch fails, every call of that batch and every call queued
 * behind it reject with StorageIo (retriable), and the map is reverted to exactly what is durable: the later calls are
 * rejected too because their callers may have read the values that are being taken back. Before the next batch the
 * log is truncated back to its last durable length and datasync'd; if that fails too, that batch fails the same way.
 * The outcome of a failed I/O is unknown, though: bytes of a rejected write may have reached the disk before they were
 * truncated away, so a write that rejected may still be present after a crash (never one that was not attempted).
 *
 * **On disk.** All files are in the store's directory and carry a generation number g:
 * - `snapshot-<g>` (g ≥ 1): header `WSNP` + u16 LE version 1 + u16 LE reserved (0), then one record whose payload is
 *   the JSON array of all `[key, value]` pairs of the map at the start of `log-<g>`.
 * - `log-<g>`: header `WMET` + u16 LE version 1 + u16 LE reserved (0), then records. Generation 0 has no snapshot; its
 *   log starts from the empty map.
 * - A record is `[payload length: u32 LE][CRC-32C of the payload: u32 LE][payload]`; a log record's payload is the
 *   UTF-8 JSON array of one write call's ops, `{"key":k,"value":v}` or `{"key":k,"delete":true}`, replayed in order.
 *
 * **Recovery** (`open`). The current generation is the highest g with a `snapshot-<g>` file (0 if none); that
 * snapshot is loaded (if it fails its checksum, open fails with DataDamaged instead of silently falling back to older
 * data: snapshots are written with `writeFileAtomic`, so a damaged one is real damage, not a crash artefact). Then
 * `log-<g>` is replayed record by record; at the first record that is zero-length, runs past the end of the file or
 * fails its CRC — the torn tail of a batch that was being written when the process or machine died — replay stops,
 * the log is truncated there and a warning reports how many bytes were dropped. Only records written after every
 * record that was acknowledged can be lost this way, so everything whose promise resolved survives. A CRC-valid record
 * that is not a valid op list fails open with DataDamaged. A missing or header-torn `log-<g>` is (re)created. Files of
 * older generations, stale `snapshot-*.tmp` files and empty logs of newer generations are deleted.
 * Caveat: a checksum failure in the middle of the log (bit rot rather than a torn write) is indistinguishable from a
 * torn tail, so it also drops every record after it.
 *
 * **Compaction.** After a batch, if the log is larger than both `compactAfterBytes` and the last snapshot (the latter
 * bounds write amplification when the map is large), the loop writes `snapshot-<g+1>` with `writeFileAtomic` holding the
 * durable state (the map with the changes of still-queued calls taken back, so it equals snapshot-g + log-g exactly),
 * then creates `log-<g+1>` with its header, datasyncs it and syncs the directory, switches to it and deletes the files
 * of generation g. Writes arriving meanwhile wait in the queue and become the first batch of the new log. Compaction
 * never changes the durable state, so a crash at any moment is harmless: before `snapshot-<g+1>` exists generation g is
 * current; after, generation g+1 is, with its log (re)created if needed. If compaction fails, the store logs a warning,
 * removes `snapshot-<g+1>` and `log-<g+1>` (and syncs the directory) before appending anything more to `log-<g>`, and
 * retries once the log has grown by another `compactAfterBytes`.
 */
export class MetadataStore {
  private readonly map: Map<string, unknown>;
  private queue: PendingCall[] = [];
  /** The write loop while it runs; null when idle. */
  private working: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  /** Bytes of the current log that are durable and valid; new records are written here. */
  private logSize: number;
  /** Bytes past `logSize` may hold part of a failed batch: truncate before writing again. */
  private needsTruncate = false;
  /** A compaction to this generation failed part way: its files must be removed before the log grows again. */
  private abandonedGeneration: number | null = null;
  private nextCompactionAt: number;

  private constructor(
    private readonly fs: FileSystem,
    private readonly directory: string,
    private readonly logger: Logger,
    private readonly compactAfterBytes: number,
    private generation: number,
    private log: FileHandle,
    state: { map: Map<string, unknown>; logSize: number; snapshotBytes: number },
  ) {
    this.map = state.map;
    this.logSize = state.logSize;
    this.nextCompactionAt = Math.max(compactAfterBytes, state.snapshotBytes);
  }

  /**
   * Opens (creating if needed) the store in `directory`, recovering as described on the class. Fails with BadFormat
   * if a file is not a metadata file of a known version, DataDamaged if the snapshot is damaged, StorageIo on I/O errors.
   */
  static async open(fs: FileSystem, directory: string, options: MetadataStoreOptions = {}): Promise<MetadataStore> {
    const compactAfterBytes = options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES;
    if (!Number.isSafeInteger(compactAfterBytes) || compactAfterBytes <= 0) {
      throw new WeirError(ErrorCode.InvalidArgument, `compactAfterBytes must be a positive integer, got ${compactAfterBytes}`);
    }
    const base = options.logger ?? silentLogger;
    const logger = base.child?.({ component: 'metadata-store' }) ?? base;
    try {
      return await MetadataStore.recover(fs, directory, logger, compactAfterBytes);
    } catch (error) {
      if (isWeirError(error)) throw error;
      throw new WeirError(ErrorCode.StorageIo, `cannot open metadata store in ${directory}: ${describe(error)}`, { retriable: true, cause: error });
    }
  }

  private static async recover(fs: FileSystem, directory: string, logger: Logger, compactAfterBytes: number): Promise<MetadataStore> {
    if (!(await fs.exists(directory))) {
      await fs.mkdirp(directory);
      await fs.syncDirectory(parentDirectory(directory));
    }
    const names = await fs.list(directory);
    const snapshots: number[] = [];
    const logs: number[] = [];
    const temporaries: string[] = [];
    for (const name of names) {
      const snapshot = SNAPSHOT_NAME.exec(name);
      const log = LOG_NAME.exec(name);
      if (snapshot !== null) snapshots.push(Number(snapshot[1]));
      else if (log !== null) logs.push(Number(log[1]));
      else if (TEMPORARY_NAME.test(name)) temporaries.push(name);
    }
    const generation = snapshots.reduce((a, b) => Math.max(a, b), 0);

    const map = new Map<string, unknown>();
    let snapshotBytes = 0;
    if (generation > 0) {
      const path = joinPath(directory, snapshotName(generation));
      const content = await readWholeFile(fs, path);
      if (content === null) throw new WeirError(ErrorCode.StorageIo, `${path} disappeared while opening`, { retriable: true });
      decodeSnapshot(content, path, map);
      snapshotBytes = content.length;
    }

    // A newer log without its snapshot is left over from a failed or interrupted compaction, and such a log never
    // receives records; one that has records means files were lost or removed by hand.
    const staleLogs: number[] = [];
    for (const n of logs) {
      if (n === generation) continue;
      if (n > generation) {
        const content = await readWholeFile(fs, joinPath(directory, logName(n)));
        if (content !== null && content.length > FILE_HEADER_BYTES) {
          throw new WeirError(
            ErrorCode.DataDamaged,
            `${joinPath(directory, logName(n))} holds records but ${snapshotName(n)} is missing; refusing to open with older data`,
          );
        }
      }
      staleLogs.push(n);
    }

    const logPath = joinPath(directory, logName(generation));
    const log = await fs.open(logPath, 'write');
    let logSize: number;
    try {
      const size = await log.size();
      const content = Buffer.allocUnsafe(size);
      const read = await readFully(log, content, 0, size, 0);
      if (read !== size) throw new WeirError(ErrorCode.StorageIo, `short read of ${logPath}`, { retriable: true });
      if (size < FILE_HEADER_BYTES) {
        // Absent, or its creation was interrupted before the header was durable.
        if (!content.equals(LOG_HEADER.subarray(0, size))) throw new WeirError(ErrorCode.BadFormat, `${logPath} is not a metadata log`);
        await log.truncate(0);
        await log.write([LOG_HEADER], 0);
        await log.datasync();
        await fs.syncDirectory(directory);
        logSize = FILE_HEADER_BYTES;
      } else {
        checkHeader(content, LOG_MAGIC, logPath);
        logSize = replayLog(content, logPath, map);
        if (logSize < size) {
          await log.truncate(logSize);
          await log.datasync();
          logger.warn({ file: logPath, droppedBytes: size - logSize, keptBytes: logSize }, 'metadata log had a torn tail; truncated it');
        }
      }
    } catch (error) {
      await log.close().catch(() => undefined);
      throw error;
    }

    const stale = [
      ...snapshots.filter((n) => n < generation).map(snapshotName),
      ...staleLogs.map(logName),
      ...temporaries,
    ];
    try {
      for (const name of stale) await fs.remove(joinPath(directory, name));
    } catch (error) {
      logger.warn({ directory, err: error }, 'could not remove stale metadata files; retrying on the next open');
    }
    return new MetadataStore(fs, directory, logger, compactAfterBytes, generation, log, { map, logSize, snapshotBytes });
  }

  /** The value of `key`, or undefined when absent. Sees every write call made so far, durable or not. */
  get(key: string): unknown {
    this.checkOpen();
    return this.map.get(key);
  }

  has(key: string): boolean {
    this.checkOpen();
    return this.map.has(key);
  }

  /** The `[key, value]` pairs whose key starts with `prefix`, sorted by key (UTF-16 code unit order). */
  entries(prefix = ''): Array<[string, unknown]> {
    this.checkOpen();
    const result: Array<[string, unknown]> = [];
    for (const entry of this.map) if (entry[0].startsWith(prefix)) result.push(entry);
    return result.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  get size(): number {
    this.checkOpen();
    return this.map.size;
  }

  /** Sets `key`; visible at once, resolves once durable (see the class comment). */
  put(key: string, value: unknown): Promise<void> {
    return this.submit([{ key, value }]);
  }

  /** Removes `key` (also logged when absent); visible at once, resolves once durable. */
  delete(key: string): Promise<void> {
    return this.submit([{ key, delete: true }]);
  }

  /** Applies `ops` in order, atomically: after a crash either all of them are present or none is. */
  apply(ops: readonly MetadataOp[]): Promise<void> {
    return this.submit(ops);
  }

  /**
   * Stops accepting calls, waits until every accepted call has resolved or rejected, then closes the log. From the
   * moment it is called, writes reject and reads throw with StoreClosed. Idempotent: returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    while (this.working !== null) await this.working;
    try {
      // Best effort: do not leave bytes of a failed batch behind to be replayed by the next open.
      if (this.needsTruncate) await this.repair().catch(() => undefined);
      await this.log.close();
    } catch (error) {
      throw new WeirError(ErrorCode.StorageIo, `closing the metadata log failed: ${describe(error)}`, { retriable: false, cause: error });
    }
  }

  private checkOpen(): void {
    if (this.closing !== null) throw closedError();
  }

  private submit(ops: readonly MetadataOp[]): Promise<void> {
    if (this.closing !== null) return Promise.reject(closedError());
    let encoded: ReturnType<typeof encodeOps>;
    try {
      encoded = encodeOps(ops);
    } catch (error) {
      return Promise.reject(error);
    }
    const undo: UndoEntry[] = [];
    for (const op of encoded.ops) {
      undo.push({ key: op.key, existed: this.map.has(op.key), previous: this.map.get(op.key) });
      if (op.delete) this.map.delete(op.key);
      else this.map.set(op.key, op.value);
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ record: encoded.record, undo, resolve, reject });
      if (this.working === null) {
        // Start on a microtask, so that calls made in the same synchronous run share the first batch.
        this.working = new Promise<void>((started) => queueMicrotask(started)).then(() => this.drain());
      }
    });
  }

  /** The write loop. Never rejects; sets `working` back to null, synchronously with seeing an empty queue. */
  private async drain(): Promise<void> {
    for (;;) {
      const batch = this.queue;
      if (batch.length === 0) {
        this.working = null;
        return;
      }
      this.queue = [];
      const buffers: Buffer[] = [];
      for (const call of batch) if (call.record !== null) buffers.push(...call.record);
      const bytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
      if (bytes > 0) {
        try {
          await this.repair();
          this.needsTruncate = true;
          await this.log.write(buffers, this.logSize);
          await this.log.datasync();
          this.logSize += bytes;
          this.needsTruncate = false;
        } catch (error) {
          this.fail(batch, error);
          continue;
        }
      }
      for (const call of batch) call.resolve();
      if (this.logSize > this.nextCompactionAt) await this.compact();
    }
  }

  /** Undoes the failed batch and everything queued behind it, newest first, and rejects them all. */
  private fail(batch: PendingCall[], cause: unknown): void {
    const behind = this.queue;
    this.queue = [];
    const all = [...batch, ...behind];
    for (let i = all.length - 1; i >= 0; i--) undo(this.map, all[i]!.undo);
    this.logger.error({ directory: this.directory, calls: all.length, err: cause }, 'metadata write failed; reverted the batch');
    const failed = new WeirError(ErrorCode.StorageIo, `metadata write failed: ${describe(cause)}`, { retriable: true, cause });
    const dropped = new WeirError(ErrorCode.StorageIo, `an earlier metadata write failed: ${describe(cause)}`, { retriable: true, cause });
    for (const call of batch) call.reject(failed);
    for (const call of behind) call.reject(dropped);
  }

  /** Puts the disk back into a state the log may be appended to after a failure. Throws if it cannot. */
  private async repair(): Promise<void> {
    if (this.abandonedGeneration !== null) {
      const g = this.abandonedGeneration;
      await this.fs.remove(joinPath(this.directory, snapshotName(g)));
      await this.fs.remove(joinPath(this.directory, `${snapshotName(g)}.tmp`));
      await this.fs.remove(joinPath(this.directory, logName(g)));
      await this.fs.syncDirectory(this.directory);
      this.abandonedGeneration = null;
    }
    if (this.needsTruncate) {
      await this.log.truncate(this.logSize);
      await this.log.datasync();
      this.needsTruncate = false;
    }
  }

  /** Moves to the next generation; on failure stays on the current one (see the class comment). Never rejects. */
  private async compact(): Promise<void> {
    const from = this.generation;
    const to = from + 1;
    let snapshot: Buffer;
    let handle: FileHandle | null = null;
    try {
      snapshot = encodeSnapshot(this.durableEntries());
      await writeFileAtomic(this.fs, joinPath(this.directory, snapshotName(to)), snapshot);
      handle = await this.fs.open(joinPath(this.directory, logName(to)), 'write');
      await handle.truncate(0);
      await handle.write([LOG_HEADER], 0);
      await handle.datasync();
      await this.fs.syncDirectory(this.directory);
    } catch (error) {
      if (handle !== null) await handle.close().catch(() => undefined);
      this.abandonedGeneration = to;
      this.nextCompactionAt = this.logSize + this.compactAfterBytes;
      this.logger.warn({ directory: this.directory, generation: to, err: error }, 'metadata compaction failed; continuing on the current log');
      return;
    }
    const previous = this.log;
    const previousLogBytes = this.logSize;
    this.log = handle;
    this.generation = to;
    this.logSize = FILE_HEADER_BYTES;
    this.needsTruncate = false;
    this.abandonedGeneration = null;
    this.nextCompactionAt = Math.max(this.compactAfterBytes, snapshot.length);
    this.logger.info(
      { directory: this.directory, generation: to, snapshotBytes: snapshot.length, previousLogBytes },
      'compacted metadata log into a snapshot',
    );
    try {
      await previous.close();
      await this.fs.remove(joinPath(this.directory, logName(from)));
      if (from > 0) await this.fs.remove(joinPath(this.directory, snapshotName(from)));
    } catch (error) {
      this.logger.warn({ directory: this.directory, generation: from, err: error }, 'could not remove old metadata files; the next open removes them');
    }
  }

  /** The map as it is on disk: the current map with the changes of queued (not yet written) calls taken back. */
  private durableEntries(): Array<[string, unknown]> {
    const durable = new Map(this.map);
    for (let i = this.queue.length - 1; i >= 0; i--) undo(durable, this.queue[i]!.undo);
    return [...durable];
  }
}

function undo(map: Map<string, unknown>, entries: UndoEntry[]): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (entry.existed) map.set(entry.key, entry.previous);
    else map.delete(entry.key);
  }
}

interface DecodedOp {
  key: string;
  delete: boolean;
  value: unknown;
}

/** A write call's op as `checkOps` accepted it, with its log form. */
export interface CheckedOp extends DecodedOp {
  /** The op as one element of a log record's JSON array. */
  json: string;
}

/**
 * Validates a write call's ops, turning each value into what JSON gives back, deep-frozen: the values every
 * KeyValueStore keeps (see the class comment). Throws InvalidArgument.
 */
export function checkOps(ops: readonly MetadataOp[]): CheckedOp[] {
  if (!Array.isArray(ops)) throw new WeirError(ErrorCode.InvalidArgument, 'ops must be an array');
  const checked: CheckedOp[] = [];
  for (const op of ops as readonly unknown[]) {
    if (typeof op !== 'object' || op === null) throw new WeirError(ErrorCode.InvalidArgument, 'each op must be an object');
    const { key, value, delete: remove } = op as MetadataOp;
    if (typeof key !== 'string') throw new WeirError(ErrorCode.InvalidArgument, 'an op key must be a string');
    if (remove !== undefined && typeof remove !== 'boolean') throw new WeirError(ErrorCode.InvalidArgument, `op delete flag for ${JSON.stringify(key)} must be a boolean`);
    if (remove === true) {
      if (value !== undefined) throw new WeirError(ErrorCode.InvalidArgument, `op for ${JSON.stringify(key)} has both delete and a value`);
      checked.push({ key, delete: true, value: undefined, json: `{"key":${JSON.stringify(key)},"delete":true}` });
      continue;
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(value) as string | undefined;
    } catch (error) {
      throw new WeirError(ErrorCode.InvalidArgument, `value for ${JSON.stringify(key)} is not JSON-serialisable: ${describe(error)}`, { cause: error });
    }
    if (json === undefined) throw new WeirError(ErrorCode.InvalidArgument, `value for ${JSON.stringify(key)} is not JSON-serialisable (${typeof value})`);
    checked.push({ key, delete: false, value: deepFreeze(JSON.parse(json)), json: `{"key":${JSON.stringify(key)},"value":${json}}` });
  }
  return checked;
}

/** Validates a write call's ops and builds its log record. Throws InvalidArgument. */
function encodeOps(ops: readonly MetadataOp[]): { ops: CheckedOp[]; record: [Buffer, Buffer] | null } {
  const checked = checkOps(ops);
  if (checked.length === 0) return { ops: checked, record: null };
  return { ops: checked, record: encodeRecord(Buffer.from(`[${checked.map((op) => op.json).join(',')}]`, 'utf8')) };
}

function encodeRecord(payload: Buffer): [Buffer, Buffer] {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32c(payload), 4);
  return [header, payload];
}

function encodeSnapshot(entries: Array<[string, unknown]>): Buffer {
  const [header, payload] = encodeRecord(Buffer.from(JSON.stringify(entries), 'utf8'));
  return Buffer.concat([SNAPSHOT_HEADER, header, payload]);
}

/** Replays the records of a log (header already checked) into `map`; returns the length of its valid prefix. */
function replayLog(content: Buffer, path: string, map: Map<string, unknown>): number {
  let position = FILE_HEADER_BYTES;
  while (position + RECORD_HEADER_BYTES <= content.length) {
    const length = content.readUInt32LE(position);
    const end = position + RECORD_HEADER_BYTES + length;
    if (length === 0 || end > content.length) break;
    const payload = content.subarray(position + RECORD_HEADER_BYTES, end);
    if (crc32c(payload) !== content.readUInt32LE(position + 4)) break;
    for (const op of decodeOps(payload, path, position)) {
      if (op.delete) map.delete(op.key);
      else map.set(op.key, op.value);
    }
    position = end;
  }
  return position;
}

function decodeOps(payload: Buffer, path: string, position: number): DecodedOp[] {
  const damaged = (why: string): WeirError =>
    new WeirError(ErrorCode.DataDamaged, `${path}: record at byte ${position} passed its checksum but ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw damaged('is not JSON');
  }
  if (!Array.isArray(parsed)) throw damaged('is not an op list');
  return parsed.map((op: unknown): DecodedOp => {
    if (typeof op !== 'object' || op === null || typeof (op as { key?: unknown }).key !== 'string') throw damaged('has an op without a key');
    const { key, value, delete: remove } = op as { key: string; value?: unknown; delete?: unknown };
    if (remove === true) return { key, delete: true, value: undefined };
    if (value === undefined) throw damaged('has an op with neither value nor delete');
    return { key, delete: false, value: deepFreeze(value) };
  });
}

function decodeSnapshot(content: Buffer, path: string, map: Map<string, unknown>): void {
  checkHeader(content, SNAPSHOT_MAGIC, path);
  const damaged = (why: string): WeirError => new WeirError(ErrorCode.DataDamaged, `snapshot ${path} is damaged: ${why}`);
  if (content.length < FILE_HEADER_BYTES + RECORD_HEADER_BYTES) throw damaged('too short');
  const length = content.readUInt32LE(FILE_HEADER_BYTES);
  const start = FILE_HEADER_BYTES + RECORD_HEADER_BYTES;
  if (start + length !== content.length) throw damaged(`record length ${length} does not match file size ${content.length}`);
  const payload = content.subarray(start);
  if (crc32c(payload) !== content.readUInt32LE(FILE_HEADER_BYTES + 4)) throw damaged('checksum mismatch');
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw damaged('not JSON');
  }
  if (!Array.isArray(parsed)) throw damaged('not an entry list');
  for (const entry of parsed as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') throw damaged('malformed entry');
    map.set(entry[0], deepFreeze(entry[1]));
  }
}

function checkHeader(content: Buffer, magic: string, path: string): void {
  if (content.length < FILE_HEADER_BYTES || content.toString('latin1', 0, 4) !== magic) {
    throw new WeirError(ErrorCode.BadFormat, `${path} does not start with ${magic}`);
  }
  const version = content.readUInt16LE(4);
  if (version !== FORMAT_VERSION) throw new WeirError(ErrorCode.BadFormat, `${path} has format version ${version}, expected ${FORMAT_VERSION}`);
}

function fileHeader(magic: string): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  header.write(magic, 0, 'latin1');
  header.writeUInt16LE(FORMAT_VERSION, 4);
  return header;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function snapshotName(generation: number): string {
  return `snapshot-${generation}`;
}

function logName(generation: number): string {
  return `log-${generation}`;
}

function closedError(): WeirError {
  return new WeirError(ErrorCode.StoreClosed, 'the metadata store is closed');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
