import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError, WeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { checkQueueName, type MessageStore, type QueueInfo, type QueueSettings } from '../../storage/message-store.js';
import { encodedHeader, encodedHeadersWithout, encodeHeaders, type HeaderValue, type MessageInput, type StoredMessage, toBytes } from '../../storage/record-batch.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
import { type ArenaInput, MessageArena } from './delay-arena.js';
import { DelayEntries, EntryBuffer, sortOrder } from './delay-entries.js';
import { Attribute } from './message-attributes.js';

/** When the message is due (ms since the epoch, decimal): set by the producer side, kept on the delivered message. */
export const DELIVER_AT_HEADER = Attribute.deliverAt;
/** The storage queue a bucketed message goes to when due; only inside bucket queues, removed on delivery. */
export const TARGET_HEADER = Attribute.target;
/** Bucket queues are `__delay.f.<startMs>` (fine) and `__delay.c.<startMs>` (coarse): no '/', unlike `<topic>/<n>`. */
export const BUCKET_QUEUE_PREFIX = '__delay.';
const CURSOR_KEY_PREFIX = 'delay/';
const BUCKET_NAME = /^__delay\.([fc])\.(\d{1,16})$/;

/** Bucket appends resolve only once fsynced: schedule() promises durability. Room above a target's 1 MiB for headers. */
const BUCKET_SETTINGS: Partial<QueueSettings> = { flushPolicy: 'sync', retentionMs: null, retentionBytes: null, maxMessageBytes: 8 << 20 };

/** Fine buckets holding undelivered entries kept in memory at once (the one being delivered and the next). */
const LOADED_BUCKETS = 2;
/** A timer never waits longer than this, so a wall-clock step forward is noticed within a minute. */
const MAX_TIMER_MS = 60_000;
const DELIVER_BATCH_MESSAGES = 1000;
const DELIVER_BATCH_BYTES = 1 << 20;
/**
 * One delivery round takes at most this much (bounds the memory of a round and how long it holds the event loop:
 * the pump yields between rounds).
 */
const ROUND_MESSAGES = 2000;
const ROUND_BYTES = 2 << 20;
/** Rounds handed to `deliver` and not yet resolved: a round does not wait for the fsync of the one before. */
const ROUNDS_IN_FLIGHT = 8;
const APPEND_BATCH_MESSAGES = 1000;
const APPEND_BATCH_BYTES = 4 << 20;
const READ_MESSAGES = 1000;
const READ_BYTES = 4 << 20;
/** One read-ahead pass copies at most this many messages, so it finishes (and frees a slot) soon after it starts. */
const READ_AHEAD_MESSAGES = 50_000;
/** An entry's arena slot before read-ahead tried it; slots >= 0 hold its bytes. */
const NOT_READ_AHEAD = -1;
/**
 * Read-ahead asked for it and got nothing (a read error, a damaged or missing message, no room): it is read when due,
 * where errors are retried with a backoff, and never asked for again, so a failing read cannot make passes spin.
 */
const READ_WHEN_DUE = -2;
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 30_000;

/** Delivery errors that no retry can fix: the messages are dropped (with a warning) so the schedule moves on. */
const PERMANENT_ERRORS = new Set<string>([ErrorCode.UnknownQueue, ErrorCode.UnknownTopic, ErrorCode.InvalidPartition, ErrorCode.MessageTooLarge, ErrorCode.InvalidArgument]);

export interface DelayScheduleOptions {
  store: MessageStore;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** Appends due messages to the target storage queue; resolves when durable. */
  deliver: (targetQueue: string, messages: MessageInput[]) => Promise<void>;
  /** Width of a fine bucket (default 1 s). */
  fineBucketMs?: number;
  /** Width of a coarse bucket (default 1 h). */
  coarseBucketMs?: number;
  /** Messages due within this of now go to fine buckets, later ones to coarse buckets (default 1 h). */
  horizonMs?: number;
  /** How often delivery progress is written to metadata (default 1 s): what a crash may deliver twice. */
  flushIntervalMs?: number;
  /** Most bytes of loaded messages read ahead of their due time and held in memory (default 32 MiB). */
  readAheadBytes?: number;
}

export interface DelayScheduleStats {
  /** Messages stored and not yet delivered (approximate for buckets not loaded since a restart). */
  pending: number;
  /** Bucket queues. */
  buckets: number;
  /** (deliverAt, offset) entries held in memory. */
  loaded: number;
  /** Bytes of messages read ahead of their due time, held in memory. */
  readAheadBytes: number;
}

type Level = 'f' | 'c';

/** One round's due entries, in delivery order: bucket and entry index of each. */
interface Picked {
  buckets: Bucket[];
  indexes: number[];
  /** Handed over by an earlier, failed round: counted, not delivered again. */
  handedOver: boolean[];
  count: number;
}

/** A run of one round: consecutive picks to one target, delivered with one call. */
interface Run {
  target: string;
  picks: number[];
  messages: MessageInput[];
  bytes: number;
}

/** A round whose deliver calls are issued, waiting to be settled (in issue order). */
interface IssuedRound {
  picked: Picked;
  runs: Run[];
  /** The calls' outcomes; null when the round failed before calling deliver (`error`). */
  outcomes: Promise<Array<PromiseSettledResult<void>>> | null;
  error: unknown;
  /** Resolves once settled. */
  settled: Promise<void>;
  markSettled: () => void;
}

/**
 * A round failed: no later round is issued, the rounds already issued settle without moving any cursor (what they
 * handed over is remembered, except runs to a target that failed), and once none is left delivery picks up again from
 * the cursors after a backoff.
 */
interface Stall {
  error: unknown;
  failedTargets: Set<string>;
}

/**
 * A message on its way into a bucket, with its target and the key it sorts by. The stored form (with `weir.target`) is
 * built only for the append call, so nothing per message but this survives while the append waits for its fsync.
 */
interface Routed {
  message: MessageInput;
  target: string;
  key: number;
  size: number;
  /** The headers as the bucket stores them (with `weir.target`), once encoded for the append. */
  encodedHeaders: Uint8Array | null;
}

function routed(message: MessageInput, target: string, key: number, size: number, encodedHeaders: Uint8Array | null = null): Routed {
  return { message, target, key, size, encodedHeaders };
}

/** The stored form of the item's headers: the message's with `weir.target` set, encoded once. */
function bucketHeaders(item: Routed): Uint8Array {
  return (item.encodedHeaders ??= encodeHeaders(item.message.headers ?? null, [TARGET_HEADER, item.target]));
}

/** The message as a bucket stores it: with the `weir.target` header. */
function bucketMessage(item: Routed): MessageInput {
  const { id, key, tag, timestamp, body } = item.message;
  return { id, key, tag, timestamp, body, encodedHeaders: bucketHeaders(item) };
}

/** What metadata holds per bucket: fine buckets the last delivered entry, coarse ones the next offset to cascade. */
interface SavedCursor {
  deliverAt?: number;
  offset?: number;
}

class Bucket {
  queueId = -1;
  /** Resolves once the bucket queue exists. */
  ready: Promise<void> = Promise.resolve();
  state: 'unloaded' | 'loading' | 'loaded' = 'unloaded';
  /** Fine buckets while loading or loaded: the entries read, sorted (null while loading). */
  entries: DelayEntries | null = null;
  /** Entries appended since the load started, merged by the next delivery round. */
  staged: EntryBuffer | null = null;
  /** The offset a load read up to: appended entries below it were read by the load itself. */
  loadedUntil = 0;
  /** Entries from `head` up to this index all have their bytes read ahead (a hint; reset when entries change). */
  readAheadFrom = 0;
  /** Fine: the last delivered entry in (deliverAt, offset) order; entries at or before it are never delivered again. */
  lastKey = -Infinity;
  lastOffset = -1;
  /** Largest deliverAt picked by the rounds in flight: new entries must not sort before it either. */
  pickedKey = -Infinity;
  /** Index in `entries` of the next entry to pick: past `head` by the picks of rounds in flight. */
  pickHead = 0;
  /**
   * Picks of rounds not settled yet. Rounds refer to entries by index, so while any are in flight the entries are
   * neither merged with staged ones nor compacted.
   */
  picksInFlight = 0;
  /**
   * Offsets past the cursor already handed over by a round that then failed at an earlier entry: the retry skips them
   * rather than deliver them again. In memory only (at most what the rounds in flight hold, ROUNDS_IN_FLIGHT ×
   * ROUND_MESSAGES); a crash delivers them again.
   */
  readonly handedOver = new Set<number>();
  /** Coarse: every message below this offset has been copied into fine buckets. */
  cascadeOffset = 0;
  cascading = false;
  /** Appends in flight: the bucket may not be deleted while any is. */
  appending = 0;
  pending = 0;
  /** Set while the bucket queue is being deleted; appends wait for it and then go to a new bucket. */
  deleting: Promise<void> | null = null;
  failures = 0;
  /** Monotonic time before which a failed load or cascade is not retried. */
  retryAt = -Infinity;

  constructor(
    readonly level: Level,
    readonly start: number,
    readonly name: string,
  ) {}

  /** Holds (or is about to hold) undelivered entries in memory. */
  get busy(): boolean {
    return this.state === 'loading' || (this.state === 'loaded' && (this.entries!.remaining > 0 || this.staged!.length > 0));
  }
}

export function bucketName(level: Level, start: number): string {
  return `${BUCKET_QUEUE_PREFIX}${level}.${start}`;
}

export function parseBucketName(name: string): { level: Level; start: number } | null {
  const match = BUCKET_NAME.exec(name);
  if (match === null) return null;
  const start = Number(match[2]);
  return Number.isSafeInteger(start) ? { level: match[1] as Level, start } : null;
}

/** The due time a header holds, or null when it is missing or not a non-negative decimal integer. */
export function parseDeliverAt(value: HeaderValue | undefined): number | null {
  if (value === undefined) return null;
  const text = typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  if (!/^\d{1,16}$/.test(text)) return null;
  const ms = Number(text);
  return Number.isSafeInteger(ms) ? ms : null;
}

/**
 * `weir.deliverAt` straight from encoded headers, without building the headers object: a bucket load looks at nothing
 * else. Undefined when absent, and when the list is malformed (the message is then due with its bucket, see keyOf).
 */
export function encodedDeliverAt(encoded: Buffer): HeaderValue | undefined {
  try {
    return encodedHeader(encoded, DELIVER_AT_HEADER);
  } catch (error) {
    if (isWeirError(error, ErrorCode.DataDamaged)) return undefined;
    throw error;
  }
}

function cursorKey(bucket: string): string {
  return CURSOR_KEY_PREFIX + bucket;
}

function floorTo(value: number, step: number): number {
  return Math.floor(value / step) * step;
}

function byteLength(value: Uint8Array | string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? value.length * 3 : value.byteLength;
}

/** A cheap upper-bound-ish size of a message (strings counted at 3 bytes a character): for batching only. */
function inputSize(message: MessageInput): number {
  let size = 64 + byteLength(message.body) + byteLength(message.key) + byteLength(message.id) + byteLength(message.tag);
  const headers = message.headers;
  if (headers !== null && headers !== undefined) {
    for (const name in headers) size += name.length + byteLength(headers[name]) + 8;
  }
  return size;
}

function storedSize(message: StoredMessage): number {
  return 64 + message.body.byteLength + message.headers.byteLength + (message.key?.byteLength ?? 0) + message.id.byteLength;
}

/**
 * The fields of a stored message as the arena takes them. Each byte field of a StoredMessage is a new view per access,
 * so a load (which looks at every message of a bucket) takes each once.
 */
function storedFields(message: StoredMessage): ArenaInput & { headers: Buffer } {
  const tag = message.tag;
  return { timestamp: message.timestamp, id: message.id, key: message.key, tag: tag === null ? null : Buffer.from(tag, 'utf8'), headers: message.headers, body: message.body };
}

/** storedSize() of the fields. */
function fieldsSize(fields: ArenaInput): number {
  return 64 + fields.body.byteLength + fields.headers.byteLength + (fields.key?.byteLength ?? 0) + fields.id.byteLength;
}

/** Waits for every promise; rejects with the first failure once all have settled (none left unhandled). */
async function settleAll(work: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const outcomes = await Promise.allSettled(work);
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

/** Consecutive runs of at most `maxItems` items and about `maxBytes` (`items` itself when it fits in one). */
function chunks<T>(items: T[], size: (item: T) => number, maxItems: number, maxBytes: number): T[][] {
  if (items.length <= maxItems) {
    let total = 0;
    for (const item of items) total += size(item);
    if (total <= maxBytes) return [items];
  }
  const result: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const itemBytes = size(item);
    if (current.length > 0 && (current.length >= maxItems || bytes + itemBytes > maxBytes)) {
      result.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += itemBytes;
  }
  if (current.length > 0) result.push(current);
  return result;
}

function insertSorted(list: Bucket[], bucket: Bucket): void {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (list[middle]!.start < bucket.start) low = middle + 1;
    else high = middle;
  }
  list.splice(low, 0, bucket);
}

function removeSorted(list: Bucket[], bucket: Bucket): void {
  const index = list.indexOf(bucket);
  if (index >= 0) list.splice(index, 1);
}

/** Where `value` is in an ascending array, or -1. */
function indexOfSorted(sorted: Float64Array, value: number): number {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const at = sorted[middle]!;
    if (at === value) return middle;
    if (at < value) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

/** The target storage queue named by encoded bucket headers (null when absent or not text). */
function targetOf(encoded: Buffer): string | null {
  const value = encodedHeader(encoded, TARGET_HEADER);
  return typeof value === 'string' ? value : null;
}

/**
 * The delay schedule: holds delayed messages until they are due, durably, then hands them to `deliver` (which appends
 * them to their target storage queue), in (deliverAt, offset) order.
 *
 * **On disk.** Time is cut into buckets, each an ordinary storage queue of the MessageStore (disk or memory) with the
 * `sync` flush policy. A message due within `horizonMs` (1 h) of now goes to the fine bucket `__delay.f.<start>`
 * (`fineBucketMs` wide, 1 s); one due later goes to the coarse bucket `__delay.c.<start>` (`coarseBucketMs`, 1 h).
 * The message is stored whole with two headers: `weir.deliverAt` (decimal ms, set by the producer side) and
 * `weir.target` (the target queue's name). When a coarse bucket's start comes within the horizon it is **cascaded**:
 * read in offset order and copied into fine buckets, then deleted. So a message is written once, or twice when it was
 * scheduled more than the horizon ahead; messages already due when scheduled go straight to `deliver`.
 * A bucket is created on first use and deleted once delivered (or cascaded) and its time has passed.
 *
 * **In memory.** For every bucket only a small descriptor. A fine bucket is **loaded** one fine bucket before its
 * start, and at most two that still hold undelivered entries are loaded at a time (more only for a bucket that appears
 * before the loaded ones): its consume queue is read once and each message becomes one (deliverAt, offset, size, slot)
 * entry in typed arrays (`delay-entries.ts`, 28 bytes per message, no object), sorted. 10 million delayed messages
 * an hour ahead therefore cost bucket descriptors and two seconds' worth of entries, not 10 million objects. Entries
 * appended to a loaded bucket are staged and merged before the next delivery round.
 *
 * **Read-ahead.** Due messages are delivered from memory, not read back when due: a round wants the few messages due
 * since the last one, scattered over the whole bucket queue (it is in arrival order), so reading them then costs a
 * read across the bucket per round. Their bytes are copied into an arena of large chunks (`delay-arena.ts`; the entry's
 * slot says where), within `readAheadBytes` (32 MiB): a load whose bucket fits the room left keeps them as it reads
 * them; otherwise, and for staged entries that came without them, `startReadAhead` reads the earliest entries lacking
 * them in due order, one pass at a time, as room frees up. Messages appended to a loaded bucket are copied as they are
 * appended. A chunk is dropped once all of its messages are delivered. What is not read ahead (over the budget, a
 * message larger than a quarter of it) is read when due, as before.
 *
 * **Delivery.** One pump, woken by a timer at the earliest due entry (or load or cascade time; never more than 60 s
 * away, so wall-clock steps are noticed), by loads, and by appends that concern loaded buckets. A round takes the due
 * entries of all loaded buckets in (deliverAt, offset) order, at most 2000 messages or 2 MiB — stopping before any
 * entry that an unloaded bucket, an uncascaded coarse bucket, an append still in flight or a staged entry not merged
 * yet could precede — and calls `deliver` once per target with that target's entries in due order (split at 1000
 * messages or about 1 MiB), all calls issued at once so the store can group-commit them; each target receives its
 * messages in due order, targets relative to one another in no promised order. Rounds are pipelined: up to 8 are
 * issued without waiting for the previous one's calls to resolve (an append to a `sync` target waits for its fsync), the pump
 * yielding to the event loop between rounds; they are settled in issue order, and only settling moves the cursors.
 * `deliver` is only called once `clock.now()` (wall clock: deliverAt is a calendar time) has reached every deliverAt
 * in the call.
 * - A call rejecting with UNKNOWN_QUEUE, UNKNOWN_TOPIC, INVALID_PARTITION, MESSAGE_TOO_LARGE or INVALID_ARGUMENT can
 *   never succeed: its messages are dropped with a warning. Any other error (STORAGE_IO, …) stops the cursor at that
 *   run and stalls the pipeline: no round is issued until those in flight are settled, then picking resumes at the
 *   cursors after a backoff (100 ms doubling to 30 s). Later runs (of that round and of rounds issued after it) that
 *   succeeded are remembered and skipped by the retry, except those to a target that failed: they are delivered again
 *   after the failed run, so a target never sees its messages out of order (it may see a duplicate).
 * - `dropTarget(name)` makes due messages of a deleted target be discarded instead of delivered (lazy; in memory only:
 *   after a restart they fail with UNKNOWN_QUEUE and are dropped anyway).
 *
 * **Progress and crashes.** Per bucket, metadata key `delay/<bucket queue>` holds `{ deliverAt, offset }` of the last
 * delivered entry (fine) or `{ offset }` cascaded up to (coarse), written for all changed buckets in one `apply` at most
 * every `flushIntervalMs` (1 s) and on close. A reload skips entries at or before the cursor. A bucket's queue is
 * deleted before its key, and a key whose queue is gone is removed on open. After a clean close nothing is delivered
 * twice. After kill -9, deliveries (and cascade copies) made since the last completed flush, i.e. at most
 * `flushIntervalMs` plus one metadata write of them, are made again: duplicates, never loss, because the cursor only
 * moves past entries whose `deliver` resolved and never past an entry still being appended (rounds wait for in-flight
 * appends that could sort before what they deliver).
 *
 * **Wall clock stepping back.** An entry that would sort before a bucket's cursor (the bucket already delivered past
 * its deliverAt) goes to the next fine bucket that has not, so it is delivered late rather than skipped after a restart.
 */
export class DelaySchedule {
  private readonly store: MessageStore;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly logger: Logger;
  private readonly deliverFn: DelayScheduleOptions['deliver'];
  private readonly fineMs: number;
  private readonly coarseMs: number;
  private readonly horizonMs: number;
  private readonly flushIntervalMs: number;
  private readonly readAheadBytes: number;
  /** Bytes of loaded messages read ahead of their due time (see `startReadAhead`). */
  private readonly arena: MessageArena;
  private readAheadRunning = false;

  private readonly buckets = new Map<string, Bucket>();
  /** Fine and coarse buckets in start order. */
  private readonly fine: Bucket[] = [];
  /** Fine buckets by start, for routing without building a name per message. */
  private readonly fineByStart = new Map<number, Bucket>();
  private readonly coarse: Bucket[] = [];
  /** Fine buckets loading or loaded. */
  private readonly loadedBuckets = new Set<Bucket>();
  /** Smallest deliverAt of each append in flight: no round delivers past one. */
  private readonly inflight = new Map<number, number>();
  private nextInflightId = 0;
  private readonly dropped = new Set<string>();
  /** Buckets whose progress is not written to metadata yet. */
  private readonly dirty = new Set<Bucket>();
  /** Buckets waiting to retry a failed load, cascade or deletion. */
  private readonly retrying = new Set<Bucket>();
  /** Everything still running, for `settled()` and `close()`. */
  private readonly work = new Set<Promise<unknown>>();

  private pumpRunning = false;
  private pumpAgain = false;
  /** Rounds issued and not settled, oldest first. */
  private readonly issued: IssuedRound[] = [];
  private settleChain: Promise<void> = Promise.resolve();
  private stall: Stall | null = null;
  /** A round failed before calling deliver: none is issued after it until the pipeline has drained. */
  private issueBlocked = false;
  /** The last round stopped at a due entry that something in flight may precede: appends wake the pump. */
  private blocked = false;
  private wakeTimer: TimerHandle | null = null;
  private wakeAt = Infinity;
  private flushTimer: TimerHandle | null = null;
  private flushChain: Promise<void> = Promise.resolve();
  private cascadeRunning = false;
  private deliveryFailures = 0;
  private deliveryRetryAt = -Infinity;
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(options: DelayScheduleOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.scheduler = options.scheduler;
    this.logger = options.logger;
    this.deliverFn = options.deliver;
    this.fineMs = options.fineBucketMs ?? 1000;
    this.coarseMs = options.coarseBucketMs ?? 3_600_000;
    this.horizonMs = options.horizonMs ?? 3_600_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.readAheadBytes = options.readAheadBytes ?? 32 << 20;
    for (const [name, value] of [
      ['fineBucketMs', this.fineMs],
      ['coarseBucketMs', this.coarseMs],
      ['flushIntervalMs', this.flushIntervalMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new WeirError(ErrorCode.InvalidArgument, `${name} must be a positive integer`);
    }
    if (!Number.isSafeInteger(this.horizonMs) || this.horizonMs < 0) throw new WeirError(ErrorCode.InvalidArgument, 'horizonMs must be a non-negative integer');
    if (!Number.isSafeInteger(this.readAheadBytes) || this.readAheadBytes < 0) throw new WeirError(ErrorCode.InvalidArgument, 'readAheadBytes must be a non-negative integer');
    // Chunks small against the budget, so the budget is not mostly chunk slack.
    this.arena = new MessageArena(Math.min(1 << 20, Math.max(256, Math.floor(this.readAheadBytes / 8))));
  }

  /** Finds the bucket queues left by earlier runs (with their cursors) and starts delivering. */
  static async open(options: DelayScheduleOptions): Promise<DelaySchedule> {
    const schedule = new DelaySchedule(options);
    await schedule.recover();
    schedule.kick();
    return schedule;
  }

  private async recover(): Promise<void> {
    for (const info of this.store.listQueues()) {
      // Partition queues (`<topic>/<n>`) of a topic that happens to start with the prefix are not ours.
      if (!info.name.startsWith(BUCKET_QUEUE_PREFIX) || info.name.includes('/')) continue;
      const parsed = parseBucketName(info.name);
      if (parsed === null) {
        this.logger.warn({ queue: info.name }, 'ignoring a queue named like a delay bucket that is not one');
        continue;
      }
      const bucket = new Bucket(parsed.level, parsed.start, info.name);
      this.adopt(bucket, info);
      if (info.settings.flushPolicy !== 'sync') await this.store.updateQueue(info.name, { flushPolicy: 'sync' });
      this.addBucket(bucket);
    }
    // Keys whose queue is gone: the process stopped between deleting a bucket queue and its key.
    const orphans = this.store.metadata
      .entries(CURSOR_KEY_PREFIX)
      .filter(([key]) => !this.buckets.has(key.slice(CURSOR_KEY_PREFIX.length)))
      .map(([key]) => ({ key, delete: true }));
    if (orphans.length > 0) await this.store.metadata.apply(orphans);
    this.logger.info({ buckets: this.buckets.size }, 'delay schedule opened');
  }

  /** Takes over an existing bucket queue with its saved progress. */
  private adopt(bucket: Bucket, info: QueueInfo): void {
    bucket.queueId = info.id;
    const saved = this.store.metadata.get(cursorKey(bucket.name)) as SavedCursor | undefined;
    if (bucket.level === 'f') {
      if (saved !== undefined && typeof saved.deliverAt === 'number' && typeof saved.offset === 'number') {
        bucket.lastKey = saved.deliverAt;
        bucket.lastOffset = saved.offset;
      }
      bucket.pending = info.endOffset - info.startOffset;
    } else {
      bucket.cascadeOffset = Math.max(info.startOffset, typeof saved?.offset === 'number' ? saved.offset : 0);
      bucket.pending = Math.max(0, info.endOffset - bucket.cascadeOffset);
    }
  }

  // ---- scheduling --------------------------------------------------------------------------------------------------

  /**
   * Durably schedules messages for `targetQueue`; each must carry `weir.deliverAt` (decimal ms since the epoch).
   * Resolves once every message is either in its bucket (fsynced) or, when already due, delivered.
   */
  async schedule(targetQueue: string, messages: readonly MessageInput[]): Promise<void> {
    this.assertOpen();
    checkQueueName(targetQueue);
    if (targetQueue.startsWith(BUCKET_QUEUE_PREFIX)) throw new WeirError(ErrorCode.InvalidArgument, `"${targetQueue}" is a delay bucket, not a target`);
    const now = this.clock.now();
    const due: MessageInput[] = [];
    const later: Routed[] = [];
    for (const message of messages) {
      const key = parseDeliverAt(message.headers?.[DELIVER_AT_HEADER]);
      if (key === null) throw new WeirError(ErrorCode.InvalidArgument, `a delayed message needs a ${DELIVER_AT_HEADER} header holding milliseconds since the epoch`);
      if (key <= now) due.push(message);
      else later.push(routed(message, targetQueue, key, inputSize(message)));
    }
    // A target scheduled to again exists again.
    this.dropped.delete(targetQueue);
    const work: Promise<void>[] = [];
    if (due.length > 0) work.push(this.deliverAll(targetQueue, due));
    if (later.length > 0) work.push(this.storeRouted(later, now, false));
    await this.track(settleAll(work));
  }

  /** Due messages of this target are discarded from now on instead of delivered (its topic was deleted). */
  dropTarget(targetQueue: string): void {
    this.dropped.add(targetQueue);
  }

  stats(): DelayScheduleStats {
    let pending = 0;
    let loaded = 0;
    for (const bucket of this.buckets.values()) pending += Math.max(0, bucket.pending);
    for (const bucket of this.loadedBuckets) loaded += (bucket.entries?.length ?? 0) + (bucket.staged?.length ?? 0);
    return { pending, buckets: this.buckets.size, loaded, readAheadBytes: this.arena.bytes };
  }

  /** Resolves once nothing is running (rounds, loads, cascades, appends, deletions, flushes): for tests and shutdown. */
  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  /** Stops timers, lets running work finish and writes every cursor. The store stays open (it is not ours). */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.clearWake();
    if (this.flushTimer !== null) this.scheduler.clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.closing = (async () => {
      await this.settled();
      await this.flushCursors();
      this.logger.info({ buckets: this.buckets.size }, 'delay schedule closed');
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closed) throw new WeirError(ErrorCode.StoreClosed, 'the delay schedule is closed');
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.work.add(promise);
    const done = (): void => {
      this.work.delete(promise);
    };
    promise.then(done, done);
    return promise;
  }

  /**
   * The start of the fine bucket a message due at `key` goes to. A fine bucket that already delivered past `key` (only
   * after the wall clock stepped back) cannot take it: it would sort before the bucket's cursor and be skipped after a
   * restart; the next bucket that has not does.
   */
  private fineStart(key: number): number {
    let start = floorTo(key, this.fineMs);
    for (;;) {
      const bucket = this.fineByStart.get(start);
      if (bucket === undefined || key >= Math.max(bucket.lastKey, bucket.pickedKey)) return start;
      start += this.fineMs;
    }
  }

  /**
   * Appends messages to their buckets (grouped, in batches); resolves once all are durable. Messages due beyond the
   * horizon go to coarse buckets, except in a cascade (the coarse one is being emptied into fine ones).
   */
  private storeRouted(items: readonly Routed[], now: number, cascade: boolean): Promise<void> {
    // Grouped by bucket start, without a name or an object per message: a burst of delayed publishes routes each one.
    const fine = new Map<number, Routed[]>();
    const coarse = new Map<number, Routed[]>();
    for (const item of items) {
      const coarseStart = floorTo(item.key, this.coarseMs);
      const toCoarse = !cascade && coarseStart > now + this.horizonMs;
      const groups = toCoarse ? coarse : fine;
      const start = toCoarse ? coarseStart : this.fineStart(item.key);
      const group = groups.get(start);
      if (group === undefined) groups.set(start, [item]);
      else group.push(item);
    }
    const appends: Promise<void>[] = [];
    for (const [level, groups] of [['f', fine], ['c', coarse]] as const) {
      for (const [start, group] of groups) {
        for (const chunk of chunks(group, (item) => item.size, APPEND_BATCH_MESSAGES, APPEND_BATCH_BYTES)) {
          appends.push(this.appendChunk(level, start, chunk, now, cascade));
        }
      }
    }
    return settleAll(appends);
  }

  private async appendChunk(level: Level, start: number, items: readonly Routed[], now: number, cascade: boolean): Promise<void> {
    // Registered before the first await, so a round running meanwhile cannot deliver past these messages.
    const id = this.nextInflightId++;
    let minKey = Infinity;
    for (const item of items) minKey = Math.min(minKey, item.key);
    this.inflight.set(id, minKey);
    let bucket: Bucket | null = null;
    try {
      const candidate = this.bucketFor(level, start);
      if (candidate.deleting !== null) {
        // The bucket is going away: once it has, route again (to a new bucket of the same name, usually).
        await candidate.deleting;
        await this.storeRouted(items, now, cascade);
        return;
      }
      bucket = candidate;
      bucket.appending++;
      try {
        await bucket.ready;
        const result = await this.store.append(bucket.queueId, items.map(bucketMessage));
        // A load that started before this append resolved may have read it already: loadedUntil tells.
        const loaded = bucket.state === 'loaded';
        const staged = bucket.staged;
        if (staged !== null) {
          for (let index = 0; index < items.length; index++) {
            const offset = result.baseOffset + index;
            if (loaded && offset < bucket.loadedUntil) continue;
            // Due within two buckets: its bytes are at hand now, so they are kept rather than read back when due.
            const item = items[index]!;
            staged.push(item.key, offset, item.size, this.readAheadInput(item, result.storeTimestamp));
          }
        }
        bucket.pending += loaded ? Math.max(0, result.baseOffset + items.length - Math.max(result.baseOffset, bucket.loadedUntil)) : items.length;
      } finally {
        bucket.appending--;
      }
    } finally {
      this.inflight.delete(id);
      if (bucket !== null) this.appended(bucket);
      else if (this.blocked) this.kick();
    }
  }

  /** Wakes the pump if an append changed anything it is waiting for or will soon act on. */
  private appended(bucket: Bucket): void {
    const actAt = bucket.level === 'f' ? bucket.start - this.fineMs : bucket.start - this.horizonMs;
    if (this.blocked || bucket.state !== 'unloaded' || bucket.cascading || actAt < this.wakeAt) this.kick();
  }

  private bucketFor(level: Level, start: number): Bucket {
    const name = bucketName(level, start);
    const existing = this.buckets.get(name);
    if (existing !== undefined) return existing;
    const bucket = new Bucket(level, start, name);
    const info = this.store.queue(name);
    if (info !== null) {
      // Left by an earlier run this one did not see (or a deletion that failed): keep its saved progress.
      this.adopt(bucket, info);
    } else {
      bucket.ready = this.createBucketQueue(bucket);
      // Forgotten on failure, so the next append tries to create it again.
      bucket.ready.catch((error: unknown) => {
        this.logger.warn({ err: error, bucket: name }, 'could not create a delay bucket queue');
        this.removeBucket(bucket);
      });
    }
    this.addBucket(bucket);
    return bucket;
  }

  private async createBucketQueue(bucket: Bucket): Promise<void> {
    // A cursor left by an earlier bucket of this name (its key delete failed) must not apply to the new one.
    const key = cursorKey(bucket.name);
    if (this.store.metadata.has(key)) await this.store.metadata.delete(key);
    try {
      bucket.queueId = (await this.store.createQueue(bucket.name, BUCKET_SETTINGS)).id;
    } catch (error) {
      const info = this.store.queue(bucket.name);
      if (!isWeirError(error, ErrorCode.QueueExists) || info === null) throw error;
      bucket.queueId = info.id;
    }
  }

  private addBucket(bucket: Bucket): void {
    this.buckets.set(bucket.name, bucket);
    if (bucket.level === 'f') this.fineByStart.set(bucket.start, bucket);
    insertSorted(bucket.level === 'f' ? this.fine : this.coarse, bucket);
  }

  private removeBucket(bucket: Bucket): void {
    if (this.buckets.get(bucket.name) === bucket) this.buckets.delete(bucket.name);
    if (this.fineByStart.get(bucket.start) === bucket) this.fineByStart.delete(bucket.start);
    removeSorted(bucket.level === 'f' ? this.fine : this.coarse, bucket);
    this.loadedBuckets.delete(bucket);
    this.dirty.delete(bucket);
    this.retrying.delete(bucket);
  }

  // ---- the pump ----------------------------------------------------------------------------------------------------

  private kick(): void {
    if (this.closed) return;
    if (this.pumpRunning) {
      this.pumpAgain = true;
      return;
    }
    this.pumpRunning = true;
    void this.track(this.pump());
  }

  private async pump(): Promise<void> {
    try {
      do {
        this.pumpAgain = false;
        try {
          await this.round();
        } catch (error) {
          // Rounds handle their own I/O errors; this is a bug, kept from stopping the schedule.
          this.logger.error({ err: error }, 'delay schedule round failed');
          this.delayRetry();
          this.armWake(this.clock.now());
        }
      } while (this.pumpAgain && !this.closed);
    } finally {
      this.pumpRunning = false;
    }
  }

  /**
   * One step of the pump: housekeeping, then one round of due entries issued to `deliver`. Rounds are pipelined: the
   * next is picked (after the picks of those in flight) without waiting for the previous one's append to resolve, up
   * to ROUNDS_IN_FLIGHT; settle() then moves the cursors in issue order.
   */
  private async round(): Promise<void> {
    this.clearWake();
    this.blocked = false;
    const now = this.clock.now();
    this.startLoads(now);
    this.startCascade(now);
    for (const bucket of this.loadedBuckets) {
      if (bucket.state === 'loaded' && bucket.staged!.length > 0 && bucket.picksInFlight === 0) {
        this.replaceEntries(bucket, bucket.entries!.merged(bucket.staged!));
        bucket.staged!.clear();
      }
    }
    this.startReadAhead();
    this.deleteFinished(now);
    // settle() wakes the pump once the rounds in flight are settled.
    if (this.stall !== null || this.issueBlocked) return;
    if (this.clock.monotonic() < this.deliveryRetryAt) {
      this.armWake(now);
      return;
    }
    if (this.issued.length >= ROUNDS_IN_FLIGHT) {
      await this.issued[0]!.settled;
      this.pumpAgain = true;
      return;
    }
    const picked = this.pick(now);
    if (picked.count === 0) {
      this.armWake(now);
      return;
    }
    await this.issue(picked);
    // Lets sockets, fsync completions and consumers in before the next round.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.pumpAgain = true;
  }

  /** New entries for a bucket with no picks in flight (the picks of a round are indexes into its entries). */
  private replaceEntries(bucket: Bucket, entries: DelayEntries): void {
    if (bucket.picksInFlight > 0) throw new Error(`delay bucket ${bucket.name}: entries replaced under ${bucket.picksInFlight} picks in flight`);
    bucket.entries = entries;
    bucket.pickHead = entries.head;
    bucket.readAheadFrom = 0;
  }

  /** Loads the first LOADED_BUCKETS fine buckets (by start) that hold or may hold undelivered entries, once near. */
  private startLoads(now: number): void {
    const monotonic = this.clock.monotonic();
    let slots = 0;
    for (const bucket of this.fine) {
      if (bucket.deleting !== null || (bucket.state === 'loaded' && !bucket.busy)) continue;
      if (slots++ >= LOADED_BUCKETS) break;
      if (bucket.state === 'unloaded' && bucket.start - this.fineMs <= now && bucket.retryAt <= monotonic) this.startLoad(bucket);
    }
  }

  private startLoad(bucket: Bucket): void {
    bucket.state = 'loading';
    bucket.staged = new EntryBuffer();
    this.loadedBuckets.add(bucket);
    void this.track(this.load(bucket));
  }

  /** Reads the bucket's messages into sorted entries, skipping those at or before its cursor. */
  private async load(bucket: Bucket): Promise<void> {
    const buffer = new EntryBuffer();
    let copying = false;
    try {
      await bucket.ready;
      const info = this.store.queueById(bucket.queueId);
      if (info === null) throw new WeirError(ErrorCode.UnknownQueue, `delay bucket ${bucket.name} is gone`);
      // A bucket that fits the room left in the budget keeps its bytes as the load reads them (offset order); a larger
      // one is read ahead in due order afterwards, as room frees up (startReadAhead).
      copying = info.bytes <= this.readAheadBytes - this.arena.bytes;
      let offset = info.startOffset;
      let end = info.endOffset;
      while (offset < end && !this.closed) {
        let read;
        try {
          read = await this.store.read(bucket.queueId, offset, { maxMessages: READ_MESSAGES, maxBytes: READ_BYTES });
        } catch (error) {
          if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
          this.logger.error({ err: error, bucket: bucket.name, offset }, 'a delayed message is damaged and lost');
          offset++;
          continue;
        }
        for (const message of read.messages) {
          const fields = storedFields(message);
          const key = this.keyOf(encodedDeliverAt(fields.headers), bucket, message.offset);
          if (key < bucket.lastKey || (key === bucket.lastKey && message.offset <= bucket.lastOffset)) continue;
          const size = fieldsSize(fields);
          let slot = NOT_READ_AHEAD;
          if (copying && this.arena.bytes + size > this.readAheadBytes) {
            // It does not fit: startReadAhead() copies its earliest entries instead, which offset order would not give.
            copying = false;
            for (let index = 0; index < buffer.length; index++) this.releaseSlot(buffer.slots[index]!);
            buffer.slots.fill(NOT_READ_AHEAD);
          }
          if (copying) slot = this.arena.put(fields);
          buffer.push(key, message.offset, size, slot);
        }
        offset = read.messages.length > 0 ? read.nextOffset : offset + 1;
        end = read.endOffset;
      }
      this.replaceEntries(bucket, DelayEntries.sorted(buffer));
      bucket.loadedUntil = offset;
      bucket.staged!.dropBelow(offset, (slot) => this.releaseSlot(slot));
      bucket.pending = bucket.entries!.remaining + bucket.staged!.length;
      bucket.state = 'loaded';
      bucket.failures = 0;
    } catch (error) {
      for (let index = 0; index < buffer.length; index++) this.releaseSlot(buffer.slots[index]!);
      const staged = bucket.staged!;
      for (let index = 0; index < staged.length; index++) this.releaseSlot(staged.slots[index]!);
      bucket.state = 'unloaded';
      bucket.staged = null;
      this.loadedBuckets.delete(bucket);
      if (!this.closed) {
        this.logger.warn({ err: error, bucket: bucket.name }, 'could not load a delay bucket; will retry');
        this.bucketRetry(bucket);
      }
    }
    this.kick();
  }

  /**
   * Copies a message just appended to a bucket into the arena if the budget allows: its slot, or -1. A message without
   * an id is left to be read back (the store generated its id).
   */
  private readAheadInput(item: Routed, storeTimestamp: number): number {
    const message = item.message;
    if (message.id === undefined || message.id === null) return -1;
    const fields: ArenaInput = {
      timestamp: message.timestamp === undefined || message.timestamp < 0 ? storeTimestamp : message.timestamp,
      id: toBytes(message.id),
      key: message.key === undefined || message.key === null ? null : toBytes(message.key),
      tag: message.tag === undefined || message.tag === null ? null : Buffer.from(message.tag, 'utf8'),
      headers: bucketHeaders(item),
      body: toBytes(message.body),
    };
    if (this.arena.bytes + MessageArena.recordBytes(fields) > this.readAheadBytes) return -1;
    return this.arena.put(fields);
  }

  private releaseSlot(slot: number): void {
    if (slot >= 0) this.arena.release(slot);
  }

  private keyOf(header: HeaderValue | undefined, bucket: Bucket, offset: number): number {
    const key = parseDeliverAt(header);
    if (key !== null) return key;
    this.logger.warn({ bucket: bucket.name, offset }, `a delayed message has no valid ${DELIVER_AT_HEADER}; it is due with its bucket`);
    return bucket.start;
  }

  /**
   * Deletes fine buckets that are delivered and whose time has passed. Every message of a loaded bucket is in its
   * entries or staged (the load read what was visible, appends resolving later were staged), so with no append in
   * flight and nothing waiting the queue holds nothing undelivered.
   */
  private deleteFinished(now: number): void {
    for (const bucket of [...this.loadedBuckets]) {
      if (bucket.state !== 'loaded' || bucket.busy || bucket.appending > 0 || bucket.deleting !== null) continue;
      if (bucket.start + this.fineMs <= now) this.startDeletion(bucket);
    }
  }

  /** Deletes the bucket queue, then its cursor key (a crash in between leaves an orphan key, removed on open). */
  private startDeletion(bucket: Bucket): void {
    bucket.deleting = this.track(
      (async () => {
        try {
          await this.store.deleteQueue(bucket.name);
        } catch (error) {
          if (!isWeirError(error, ErrorCode.UnknownQueue)) {
            if (!this.closed) this.logger.warn({ err: error, bucket: bucket.name }, 'could not delete a delay bucket; will retry');
            bucket.deleting = null;
            this.bucketRetry(bucket);
            this.kick();
            return;
          }
        }
        const key = cursorKey(bucket.name);
        try {
          if (this.store.metadata.has(key)) await this.store.metadata.delete(key);
        } catch (error) {
          // createBucketQueue removes it before the name is used again; open() removes it otherwise.
          this.logger.warn({ err: error, bucket: bucket.name }, 'could not remove a delay bucket cursor');
        }
        this.removeBucket(bucket);
        this.kick();
      })(),
    );
  }

  /** Starts cascading the earliest coarse bucket whose start is within the horizon (one at a time, in order). */
  private startCascade(now: number): void {
    if (this.cascadeRunning || this.closed) return;
    const bucket = this.coarse.find((candidate) => candidate.deleting === null);
    if (bucket === undefined || bucket.start - this.horizonMs > now || bucket.retryAt > this.clock.monotonic()) return;
    // Copied to its end with an append still in flight: that append's completion wakes the pump; restarting now would
    // only spin.
    if (bucket.appending > 0 && bucket.cascadeOffset >= (this.store.queueById(bucket.queueId)?.endOffset ?? 0)) return;
    this.cascadeRunning = true;
    bucket.cascading = true;
    void this.track(
      this.cascade(bucket).finally(() => {
        bucket.cascading = false;
        this.cascadeRunning = false;
        this.kick();
      }),
    );
  }

  /** Copies a coarse bucket into fine buckets in offset order, then deletes it. */
  private async cascade(bucket: Bucket): Promise<void> {
    try {
      await bucket.ready;
      while (!this.closed) {
        const info = this.store.queueById(bucket.queueId);
        if (info === null) throw new WeirError(ErrorCode.UnknownQueue, `delay bucket ${bucket.name} is gone`);
        bucket.cascadeOffset = Math.max(bucket.cascadeOffset, info.startOffset);
        if (bucket.cascadeOffset >= info.endOffset) {
          // Appends still in flight wake the pump when done, which cascades them in turn.
          if (bucket.appending === 0) this.startDeletion(bucket);
          return;
        }
        let read;
        try {
          read = await this.store.read(bucket.queueId, bucket.cascadeOffset, { maxMessages: READ_MESSAGES, maxBytes: READ_BYTES });
        } catch (error) {
          if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
          this.logger.error({ err: error, bucket: bucket.name, offset: bucket.cascadeOffset }, 'a delayed message is damaged and lost');
          this.cascaded(bucket, bucket.cascadeOffset + 1);
          continue;
        }
        const items: Routed[] = [];
        let untargeted = 0;
        for (const message of read.messages) {
          const { target, deliverAt, input, stored } = this.toInput(message);
          if (target === null) untargeted++;
          if (target === null || this.dropped.has(target)) continue;
          // Its stored headers already name its target: the fine bucket stores them as they are.
          items.push(routed(input, target, this.keyOf(deliverAt, bucket, message.offset), storedSize(message), stored));
        }
        if (untargeted > 0) this.logger.warn({ bucket: bucket.name, messages: untargeted }, `dropping delayed messages without a ${TARGET_HEADER} header`);
        if (items.length > 0) await this.storeRouted(items, this.clock.now(), true);
        this.cascaded(bucket, read.messages.length > 0 ? read.nextOffset : bucket.cascadeOffset + 1);
      }
    } catch (error) {
      if (!this.closed) {
        this.logger.warn({ err: error, bucket: bucket.name }, 'could not cascade a delay bucket; will retry');
        this.bucketRetry(bucket);
      }
    }
  }

  private cascaded(bucket: Bucket, offset: number): void {
    bucket.pending = Math.max(0, bucket.pending - (offset - bucket.cascadeOffset));
    bucket.cascadeOffset = offset;
    bucket.failures = 0;
    this.markDirty(bucket);
  }

  // ---- picking and delivering --------------------------------------------------------------------------------------

  /**
   * The due entries of the loaded buckets in (deliverAt, offset) order, up to the round's limits. Stops at the first
   * entry that something not in memory yet could precede: an unloaded or loading fine bucket starting at or before it,
   * a coarse bucket not cascaded yet starting at or before it, or an append in flight due at or before it.
   */
  private pick(now: number): Picked {
    let barrier = Infinity;
    for (const deliverAt of this.inflight.values()) barrier = Math.min(barrier, deliverAt);
    const notLoaded = this.fine.find((bucket) => bucket.deleting === null && bucket.state !== 'loaded');
    if (notLoaded !== undefined) barrier = Math.min(barrier, notLoaded.start);
    for (const bucket of this.coarse) {
      if (bucket.deleting === null) {
        barrier = Math.min(barrier, bucket.start);
        break;
      }
    }
    // Staged entries wait to be merged until the bucket's picks in flight are settled; nothing after them goes first.
    for (const bucket of this.loadedBuckets) {
      if (bucket.state === 'loaded' && bucket.staged !== null) barrier = Math.min(barrier, bucket.staged.minKey);
    }
    const candidates = [...this.loadedBuckets].filter((bucket) => bucket.state === 'loaded' && bucket.deleting === null && bucket.pickHead < bucket.entries!.length);
    const positions = candidates.map((bucket) => bucket.pickHead);
    const picked: Picked = { buckets: [], indexes: [], handedOver: [], count: 0 };
    let bytes = 0;
    while (picked.count < ROUND_MESSAGES && bytes < ROUND_BYTES) {
      let best = -1;
      let bestKey = Infinity;
      for (let index = 0; index < candidates.length; index++) {
        const entries = candidates[index]!.entries!;
        const at = positions[index]!;
        if (at >= entries.length) continue;
        const key = entries.keys[at]!;
        if (best < 0 || key < bestKey) {
          best = index;
          bestKey = key;
        }
      }
      if (best < 0 || bestKey > now) break;
      if (bestKey > barrier) {
        this.blocked = true;
        // Behind a bucket the load limit keeps out: load it anyway, or nothing would move.
        if (notLoaded !== undefined && notLoaded.state === 'unloaded' && notLoaded.start <= bestKey && notLoaded.retryAt <= this.clock.monotonic()) this.startLoad(notLoaded);
        break;
      }
      const bucket = candidates[best]!;
      const at = positions[best]!;
      const handedOver = bucket.handedOver.size > 0 && bucket.handedOver.has(bucket.entries!.offsets[at]!);
      bucket.pickedKey = bestKey;
      bucket.pickHead = at + 1;
      bucket.picksInFlight++;
      picked.buckets.push(bucket);
      picked.indexes.push(at);
      picked.handedOver.push(handedOver);
      picked.count++;
      if (!handedOver) bytes += bucket.entries!.sizes[at]!;
      positions[best] = at + 1;
    }
    return picked;
  }

  /**
   * Issues a round: builds its messages (from the read-ahead arena, or read from the bucket queues), calls `deliver`
   * once per target (in due order within the target), and queues the round to be settled. Calls of successive rounds
   * are issued in order too, so the store appends each target's messages in order and group-commits them.
   */
  private async issue(picked: Picked): Promise<void> {
    let markSettled!: () => void;
    const round: IssuedRound = { picked, runs: [], outcomes: null, error: null, settled: new Promise<void>((resolve) => (markSettled = resolve)), markSettled };
    this.issued.push(round);
    try {
      round.runs = await this.prepareRuns(picked);
      round.outcomes = Promise.allSettled(round.runs.map((run) => this.callDeliver(run.target, run.messages)));
    } catch (error) {
      round.error = error;
      this.issueBlocked = true;
    }
    const settling = this.settleChain.then(() => this.settle(round));
    this.settleChain = settling;
    void this.track(settling);
  }

  /** The round's messages in runs of one target each (pick order within a run); lost and dropped ones are left out. */
  private async prepareRuns(picked: Picked): Promise<Run[]> {
    const inputs: Array<MessageInput | null> = new Array<MessageInput | null>(picked.count).fill(null);
    const targets: Array<string | null> = new Array<string | null>(picked.count).fill(null);
    const byBucket = new Map<Bucket, number[]>();
    for (let index = 0; index < picked.count; index++) {
      if (picked.handedOver[index]) continue;
      const bucket = picked.buckets[index]!;
      const slot = bucket.entries!.slots[picked.indexes[index]!]!;
      if (slot >= 0) {
        const { target, input } = this.arenaInput(slot);
        inputs[index] = input;
        targets[index] = target;
        continue;
      }
      let list = byBucket.get(bucket);
      if (list === undefined) byBucket.set(bucket, (list = []));
      list.push(index);
    }
    for (const [bucket, list] of byBucket) await this.readPicked(bucket, list, picked.indexes, inputs, targets);
    let skipped = 0;
    for (let index = 0; index < picked.count; index++) if (picked.handedOver[index]) skipped++;
    if (skipped > 0) this.logger.debug({ messages: skipped }, 'skipping delayed messages handed over before a failure');

    // One run per target (split at the batch limits): consecutive due messages rarely share a target when a topic has
    // several partitions, and a deliver call per message would cost an append, a flush wait and a promise each. Each
    // target still receives its messages in due order; order across targets is not promised.
    const runs: Run[] = [];
    const openRuns = new Map<string, Run>();
    let droppedCount = 0;
    let untargeted = 0;
    for (let index = 0; index < picked.count; index++) {
      const input = inputs[index];
      const target = targets[index];
      if (input === null || input === undefined) continue;
      if (target === null || target === undefined) {
        untargeted++;
        continue;
      }
      if (this.dropped.has(target)) {
        droppedCount++;
        continue;
      }
      const size = picked.buckets[index]!.entries!.sizes[picked.indexes[index]!]!;
      const run = openRuns.get(target);
      if (run !== undefined && run.messages.length < DELIVER_BATCH_MESSAGES && run.bytes + size <= DELIVER_BATCH_BYTES) {
        run.messages.push(input);
        run.picks.push(index);
        run.bytes += size;
      } else {
        const next: Run = { target, picks: [index], messages: [input], bytes: size };
        runs.push(next);
        openRuns.set(target, next);
      }
    }
    if (droppedCount > 0) this.logger.debug({ messages: droppedCount }, 'dropped due messages of deleted targets');
    if (untargeted > 0) this.logger.warn({ messages: untargeted }, `dropping delayed messages without a ${TARGET_HEADER} header`);
    return runs;
  }

  /**
   * Settles the oldest issued round once its calls are done. The cursor stops at the earliest pick of a run that
   * failed and may succeed later; that stalls the pipeline (see Stall). Picks beyond it, in this round and in rounds
   * issued after it, that went through (or can never go through) are remembered so the retry skips them, except those
   * to a target that failed: they go again after it, so each target still receives its messages in order.
   */
  private async settle(round: IssuedRound): Promise<void> {
    const { picked, runs } = round;
    try {
      if (round.outcomes === null) {
        this.stall ??= { error: round.error, failedTargets: new Set() };
        return;
      }
      const outcomes = await round.outcomes;
      // A round settled after the stall began moves no cursor: its picks are picked again from the cursor.
      const stalledBefore = this.stall !== null;
      // Runs are per target, not in pick order: the cursor stops at the earliest pick of any run that failed.
      let done = picked.count;
      const settledRuns: Run[] = [];
      for (let index = 0; index < runs.length; index++) {
        const outcome = outcomes[index]!;
        const run = runs[index]!;
        if (outcome.status === 'fulfilled') {
          settledRuns.push(run);
          continue;
        }
        const error = outcome.reason as unknown;
        if (error instanceof WeirError && PERMANENT_ERRORS.has(error.code)) {
          this.logger.warn({ err: error, target: run.target, messages: run.messages.length }, 'dropping delayed messages that cannot be delivered');
          settledRuns.push(run);
          continue;
        }
        this.stall ??= { error, failedTargets: new Set() };
        this.stall.failedTargets.add(run.target);
        if (!stalledBefore) done = Math.min(done, run.picks[0]!);
      }
      if (this.stall !== null) {
        // What went through beyond the cursor is remembered so the retry skips it.
        const from = stalledBefore ? 0 : done;
        for (const run of settledRuns) {
          if (this.stall.failedTargets.has(run.target)) continue;
          for (const pick of run.picks) if (pick >= from) picked.buckets[pick]!.handedOver.add(picked.buckets[pick]!.entries!.offsets[picked.indexes[pick]!]!);
        }
      }
      if (!stalledBefore) this.advance(picked, done);
      if (this.stall === null) this.deliveryFailures = 0;
    } catch (error) {
      // A bug: kept from stopping the schedule, which picks up again from its cursors.
      this.logger.error({ err: error }, 'delay schedule could not settle a round');
      this.stall ??= { error, failedTargets: new Set() };
    } finally {
      for (const bucket of picked.buckets) bucket.picksInFlight--;
      for (const bucket of new Set(picked.buckets)) {
        if (bucket.picksInFlight > 0) continue;
        bucket.pickedKey = -Infinity;
        // Compacted only with no picks in flight (they are indexes) and none left over from a stall.
        const entries = bucket.entries;
        if (entries === null || bucket.pickHead !== entries.head) continue;
        const next = entries.remaining === 0 ? DelayEntries.empty() : entries.compacted();
        if (next !== entries) this.replaceEntries(bucket, next);
      }
      this.issued.shift();
      round.markSettled();
      if (this.issued.length === 0 && this.stall !== null) this.recoverFromStall();
      this.kick();
    }
  }

  /** Every round of a stalled pipeline is settled: picking starts again at the cursors, after a backoff. */
  private recoverFromStall(): void {
    const { error } = this.stall!;
    this.stall = null;
    this.issueBlocked = false;
    for (const bucket of this.loadedBuckets) {
      if (bucket.entries !== null) bucket.pickHead = bucket.entries.head;
      bucket.pickedKey = -Infinity;
    }
    if (this.closed) return;
    this.logger.warn({ err: error }, 'delayed delivery failed; will retry');
    this.delayRetry();
  }

  private callDeliver(target: string, messages: MessageInput[]): Promise<void> {
    try {
      return Promise.resolve(this.deliverFn(target, messages));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Reads the picked entries of one bucket that were not read ahead. */
  private async readPicked(bucket: Bucket, list: number[], indexes: number[], inputs: Array<MessageInput | null>, targets: Array<string | null>): Promise<void> {
    const entries = bucket.entries!;
    const count = list.length;
    const unsorted = new Float64Array(count);
    for (let index = 0; index < count; index++) unsorted[index] = entries.offsets[indexes[list[index]!]!]!;
    const order = sortOrder(unsorted, unsorted, count);
    const offsets = new Float64Array(count);
    for (let index = 0; index < count; index++) offsets[index] = unsorted[order[index]!]!;
    await this.readOffsets(bucket, offsets, (index, message) => {
      const pick = list[order[index]!]!;
      const { target, input } = this.toInput(message);
      inputs[pick] = input;
      targets[pick] = target;
    });
  }

  /**
   * Reads the messages at `offsets` (ascending) of a bucket queue in one pass, jumping over gaps; calls `found` with the
   * index of each offset read. A damaged or vanished message is logged and skipped.
   */
  private async readOffsets(bucket: Bucket, offsets: Float64Array, found: (index: number, message: StoredMessage) => void): Promise<void> {
    const count = offsets.length;
    if (count === 0) return;
    const last = offsets[count - 1]!;
    let next = 0;
    while (next < count) {
      const at = offsets[next]!;
      let read;
      try {
        read = await this.store.read(bucket.queueId, at, { maxMessages: Math.min(READ_MESSAGES, last - at + 1), maxBytes: READ_BYTES });
      } catch (error) {
        if (!isWeirError(error, ErrorCode.DataDamaged) && !isWeirError(error, ErrorCode.OffsetOutOfRange)) throw error;
        this.logger.error({ err: error, bucket: bucket.name, offset: at }, 'a delayed message is damaged and lost');
        next++;
        continue;
      }
      if (read.messages.length === 0) {
        next++;
        continue;
      }
      for (const message of read.messages) {
        while (next < count && offsets[next]! < message.offset) next++;
        if (next < count && offsets[next]! === message.offset) {
          found(next, message);
          next++;
        }
      }
    }
  }

  /**
   * Reads ahead the bytes of the earliest loaded entries that have none yet, as many as the budget has room for: one
   * pass at a time, over the bucket whose first such entry is due soonest. Loads keep the bytes of buckets that fit
   * whole; this serves the others (and entries staged without their bytes), so a round finds its messages in memory
   * instead of reading across the bucket for a few due ones.
   */
  private startReadAhead(): void {
    if (this.readAheadRunning || this.closed || this.readAheadBytes === 0) return;
    let best: Bucket | null = null;
    let bestIndex = -1;
    for (const bucket of this.loadedBuckets) {
      if (bucket.state !== 'loaded' || bucket.deleting !== null) continue;
      const entries = bucket.entries!;
      // Entries before pickHead are being read by rounds in flight already.
      let index = Math.max(bucket.readAheadFrom, bucket.pickHead);
      while (index < entries.length && entries.slots[index]! !== NOT_READ_AHEAD) index++;
      bucket.readAheadFrom = index;
      if (index < entries.length && (best === null || entries.keys[index]! < best.entries!.keys[bestIndex]!)) {
        best = bucket;
        bestIndex = index;
      }
    }
    if (best === null) return;
    const entries = best.entries!;
    const free = this.readAheadBytes - this.arena.bytes;
    // A message too large for a quarter of the budget is read when due rather than hold up the others.
    const largest = this.readAheadBytes / 4;
    const wanted: number[] = [];
    let bytes = 0;
    let more = false;
    let wantedUntil = bestIndex;
    for (let index = bestIndex; index < entries.length; index++) {
      const size = entries.sizes[index]!;
      if (entries.slots[index]! !== NOT_READ_AHEAD || size > largest) continue;
      if (bytes + size > free || wanted.length >= READ_AHEAD_MESSAGES) {
        more = true;
        break;
      }
      wanted.push(entries.offsets[index]!);
      wantedUntil = index + 1;
      bytes += size;
    }
    // Each pass reads across the bucket: wait until it can take a good share of the budget.
    if (wanted.length === 0 || (more && bytes < largest)) return;
    this.readAheadRunning = true;
    const bucket = best;
    const lastKey = entries.keys[wantedUntil - 1]!;
    void this.track(
      this.readAhead(bucket, Float64Array.from(wanted).sort(), lastKey).finally(() => {
        this.readAheadRunning = false;
        this.startReadAhead();
      }),
    );
  }

  /** Reads the entries at `offsets` (ascending; all due at or before `lastKey`) into the arena. */
  private async readAhead(bucket: Bucket, offsets: Float64Array, lastKey: number): Promise<void> {
    const slots = new Float64Array(offsets.length).fill(READ_WHEN_DUE);
    try {
      await this.readOffsets(bucket, offsets, (index, message) => {
        const slot = this.arena.put(storedFields(message));
        if (slot >= 0) slots[index] = slot;
      });
    } catch (error) {
      // What was not read ahead is read when due.
      this.logger.debug({ err: error, bucket: bucket.name }, 'could not read delayed messages ahead');
    }
    // The entries may have been merged, compacted or delivered meanwhile: match them by offset (those read are due at
    // or before lastKey, so the scan stops there).
    const entries = bucket.entries;
    if (bucket.state === 'loaded' && bucket.deleting === null && entries !== null) {
      for (let index = entries.head; index < entries.length && entries.keys[index]! <= lastKey; index++) {
        if (entries.slots[index]! !== NOT_READ_AHEAD) continue;
        const at = indexOfSorted(offsets, entries.offsets[index]!);
        if (at < 0) continue;
        entries.slots[index] = slots[at]!;
        slots[at] = READ_WHEN_DUE;
      }
    }
    for (const slot of slots) this.releaseSlot(slot);
  }

  /** The message in an arena slot as it goes on, without `weir.target`. */
  private arenaInput(slot: number): { target: string | null; input: MessageInput } {
    const message = this.arena.read(slot);
    return {
      target: targetOf(message.headers),
      input: { id: message.id, key: message.key, tag: message.tag, encodedHeaders: encodedHeadersWithout(message.headers, TARGET_HEADER), timestamp: message.timestamp, body: message.body },
    };
  }

  /**
   * The message as it goes on: copied out of the read buffer (so a round holds only what it delivers), with its id,
   * key, tag, timestamp and headers; without `weir.target` (named apart), and `stored` keeps the headers as stored,
   * target included, for a cascade to store again as they are.
   */
  private toInput(message: StoredMessage): { target: string | null; deliverAt: HeaderValue | undefined; input: MessageInput; stored: Buffer } {
    const stored = Buffer.from(message.headers);
    return {
      target: targetOf(stored),
      deliverAt: encodedDeliverAt(stored),
      input: {
        id: Buffer.from(message.id),
        key: message.key === null ? null : Buffer.from(message.key),
        tag: message.tag,
        encodedHeaders: encodedHeadersWithout(stored, TARGET_HEADER),
        timestamp: message.timestamp,
        body: Buffer.from(message.body),
      },
      stored,
    };
  }

  /** Marks the first `done` picks delivered: they are each bucket's next entries, in order. */
  private advance(picked: Picked, done: number): void {
    for (let index = 0; index < done; index++) {
      const bucket = picked.buckets[index]!;
      const entries = bucket.entries!;
      const at = picked.indexes[index]!;
      if (at !== entries.head) throw new Error(`delay bucket ${bucket.name}: delivered entry ${at} is not the next (${entries.head})`);
      bucket.lastKey = entries.keys[at]!;
      bucket.lastOffset = entries.offsets[at]!;
      this.releaseSlot(entries.slots[at]!);
      entries.slots[at] = NOT_READ_AHEAD;
      if (picked.handedOver[index]) bucket.handedOver.delete(bucket.lastOffset);
      entries.head++;
      bucket.pending--;
      this.markDirty(bucket);
    }
  }

  // ---- timers, retries, cursors ------------------------------------------------------------------------------------

  /** Arms the wake timer at the next thing due after `now` (due entry, bucket load, deletion, cascade, retry). */
  private armWake(now: number): void {
    if (this.closed) return;
    let wake = Infinity;
    const later = (at: number): void => {
      if (at > now && at < wake) wake = at;
    };
    for (const bucket of this.loadedBuckets) {
      if (bucket.state !== 'loaded' || bucket.deleting !== null) continue;
      const entries = bucket.entries!;
      // Entries before pickHead are in rounds in flight; their settling wakes the pump.
      if (bucket.pickHead < entries.length) later(entries.keys[bucket.pickHead]!);
      else if (entries.remaining > 0) continue;
      else later(bucket.start + this.fineMs);
    }
    for (const bucket of this.fine) {
      if (bucket.state === 'unloaded' && bucket.deleting === null && bucket.start - this.fineMs > now) {
        later(bucket.start - this.fineMs);
        break;
      }
    }
    const coarse = this.coarse.find((bucket) => bucket.deleting === null && !bucket.cascading);
    if (coarse !== undefined) later(coarse.start - this.horizonMs);
    // Retries are measured on the monotonic clock; express them as wall-clock offsets from now.
    const monotonic = this.clock.monotonic();
    const retry = (at: number): void => {
      if (at > monotonic) later(now + (at - monotonic));
    };
    retry(this.deliveryRetryAt);
    for (const bucket of this.retrying) {
      if (bucket.retryAt > monotonic) retry(bucket.retryAt);
      else this.retrying.delete(bucket);
    }
    if (wake === Infinity) return;
    this.wakeAt = wake;
    this.wakeTimer = this.scheduler.setTimeout(
      () => {
        this.wakeTimer = null;
        this.wakeAt = Infinity;
        this.kick();
      },
      Math.min(MAX_TIMER_MS, wake - now),
      { background: true },
    );
  }

  private clearWake(): void {
    if (this.wakeTimer !== null) this.scheduler.clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.wakeAt = Infinity;
  }

  private delayRetry(): void {
    this.deliveryFailures++;
    this.deliveryRetryAt = this.clock.monotonic() + Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (this.deliveryFailures - 1));
  }

  private bucketRetry(bucket: Bucket): void {
    this.retrying.add(bucket);
    bucket.failures++;
    bucket.retryAt = this.clock.monotonic() + Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (bucket.failures - 1));
  }

  private markDirty(bucket: Bucket): void {
    this.dirty.add(bucket);
    if (this.flushTimer !== null || this.closed) return;
    this.flushTimer = this.scheduler.setTimeout(
      () => {
        this.flushTimer = null;
        void this.flushCursors();
      },
      this.flushIntervalMs,
      { background: true },
    );
  }

  /** Writes the cursors of every changed bucket in one atomic apply (chained, so writes never overtake each other). */
  private flushCursors(): Promise<void> {
    const run = this.flushChain.then(() => this.writeCursors());
    this.flushChain = run;
    return this.track(run);
  }

  private async writeCursors(): Promise<void> {
    const ops: Array<{ key: string; value: SavedCursor }> = [];
    const written: Bucket[] = [];
    for (const bucket of this.dirty) {
      // A bucket being deleted needs no cursor; a deletion that fails leaves it dirty for the next flush.
      if (bucket.deleting !== null) continue;
      this.dirty.delete(bucket);
      written.push(bucket);
      ops.push({ key: cursorKey(bucket.name), value: bucket.level === 'f' ? { deliverAt: bucket.lastKey, offset: bucket.lastOffset } : { offset: bucket.cascadeOffset } });
    }
    if (ops.length === 0) return;
    try {
      await this.store.metadata.apply(ops);
    } catch (error) {
      for (const bucket of written) if (this.buckets.get(bucket.name) === bucket) this.dirty.add(bucket);
      if (!this.closed) {
        this.logger.warn({ err: error, buckets: ops.length }, 'could not save delay schedule progress; will retry');
        this.markDirty(written[0]!);
      }
    }
  }

  // ---- immediate delivery ------------------------------------------------------------------------------------------

  /** Delivers messages that are already due, in batches issued in order; rejects if any batch failed. */
  private deliverAll(target: string, messages: MessageInput[]): Promise<void> {
    return settleAll(chunks(messages, inputSize, DELIVER_BATCH_MESSAGES, DELIVER_BATCH_BYTES).map((batch) => this.callDeliver(target, batch)));
  }
}
