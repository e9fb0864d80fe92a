import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError, WeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { checkQueueName, type MessageStore, type QueueInfo, type QueueSettings } from '../../storage/message-store.js';
import { decodeHeaders, encodedHeader, type HeaderValue, type MessageInput, type StoredMessage } from '../../storage/record-batch.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
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
/** One delivery round reads at most this much before handing it over (bounds the memory of a round). */
const ROUND_MESSAGES = 10_000;
const ROUND_BYTES = 8 << 20;
const APPEND_BATCH_MESSAGES = 1000;
const APPEND_BATCH_BYTES = 4 << 20;
const READ_MESSAGES = 1000;
const READ_BYTES = 4 << 20;
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
}

export interface DelayScheduleStats {
  /** Messages stored and not yet delivered (approximate for buckets not loaded since a restart). */
  pending: number;
  /** Bucket queues. */
  buckets: number;
  /** (deliverAt, offset) entries held in memory. */
  loaded: number;
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

/** A message on its way into a bucket, with the key it sorts by. */
interface Routed {
  message: MessageInput;
  key: number;
  size: number;
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
  /** Fine: the last delivered entry in (deliverAt, offset) order; entries at or before it are never delivered again. */
  lastKey = -Infinity;
  lastOffset = -1;
  /** Largest deliverAt picked by the round in progress: new entries must not sort before it either. */
  pickedKey = -Infinity;
  /**
   * Offsets past the cursor already handed over by a round that then failed at an earlier entry: the retry skips them
   * rather than deliver them again. In memory only (at most one round's worth); a crash delivers them again.
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
  for (const [name, value] of Object.entries(message.headers ?? {})) size += name.length + byteLength(value) + 8;
  return size;
}

function storedSize(message: StoredMessage): number {
  return 64 + message.body.byteLength + message.headers.byteLength + (message.key?.byteLength ?? 0) + message.id.byteLength;
}

/** Waits for every promise; rejects with the first failure once all have settled (none left unhandled). */
async function settleAll(work: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const outcomes = await Promise.allSettled(work);
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

/** Consecutive runs of at most DELIVER_BATCH_MESSAGES messages / about DELIVER_BATCH_BYTES. */
function chunks<T>(items: readonly T[], size: (item: T) => number, maxItems: number, maxBytes: number): T[][] {
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
 * before the loaded ones): its consume queue is read once and each message becomes one (deliverAt, offset, size)
 * entry in typed arrays (`delay-entries.ts`, 20 bytes per message, no object), sorted. 10 million delayed messages
 * an hour ahead therefore cost bucket descriptors and two seconds' worth of entries, not 10 million objects. Entries
 * appended to a loaded bucket are staged and merged before the next delivery round.
 *
 * **Delivery.** One pump, woken by a timer at the earliest due entry (or load or cascade time; never more than 60 s
 * away, so wall-clock steps are noticed), by loads, and by appends that concern loaded buckets. A round takes the due
 * entries of all loaded buckets in (deliverAt, offset) order — stopping before any entry that an unloaded bucket, an
 * uncascaded coarse bucket or an append still in flight could precede — reads them from their bucket queues (in
 * offset order, one pass), and calls `deliver` once per maximal run of the same target (at most 1000 messages or about
 * 1 MiB), all calls issued in order and awaited together so the store can group-commit them. `deliver` is only called
 * once `clock.now()` (wall clock: deliverAt is a calendar time) has reached every deliverAt in the call.
 * - A call rejecting with UNKNOWN_QUEUE, UNKNOWN_TOPIC, INVALID_PARTITION, MESSAGE_TOO_LARGE or INVALID_ARGUMENT can
 *   never succeed: its messages are dropped with a warning. Any other error (STORAGE_IO, …) stops the cursor at that
 *   run, which is retried with backoff (100 ms doubling to 30 s). Later runs of the round that succeeded are remembered
 *   and skipped by the retry, except those to a target that failed: they are delivered again after the failed run, so
 *   a target never sees its messages out of order (it may see a duplicate).
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

  private readonly buckets = new Map<string, Bucket>();
  /** Fine and coarse buckets in start order. */
  private readonly fine: Bucket[] = [];
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
    for (const [name, value] of [
      ['fineBucketMs', this.fineMs],
      ['coarseBucketMs', this.coarseMs],
      ['flushIntervalMs', this.flushIntervalMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new WeirError(ErrorCode.InvalidArgument, `${name} must be a positive integer`);
    }
    if (!Number.isSafeInteger(this.horizonMs) || this.horizonMs < 0) throw new WeirError(ErrorCode.InvalidArgument, 'horizonMs must be a non-negative integer');
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
      else later.push({ message: { ...message, headers: { ...message.headers, [TARGET_HEADER]: targetQueue } }, key, size: inputSize(message) });
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
    return { pending, buckets: this.buckets.size, loaded };
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
   * Which bucket a message due at `key` goes to. A cascade always goes to fine buckets (the coarse one is being
   * emptied). A fine bucket that already delivered past `key` (only after the wall clock stepped back) cannot take it:
   * it would sort before the bucket's cursor and be skipped after a restart; the next bucket that has not does.
   */
  private route(key: number, now: number, cascade: boolean): { level: Level; start: number } {
    const coarseStart = floorTo(key, this.coarseMs);
    if (!cascade && coarseStart > now + this.horizonMs) return { level: 'c', start: coarseStart };
    let start = floorTo(key, this.fineMs);
    for (;;) {
      const bucket = this.buckets.get(bucketName('f', start));
      if (bucket === undefined || key >= Math.max(bucket.lastKey, bucket.pickedKey)) return { level: 'f', start };
      start += this.fineMs;
    }
  }

  /** Appends messages to their buckets (grouped, in batches); resolves once all are durable. */
  private storeRouted(items: readonly Routed[], now: number, cascade: boolean): Promise<void> {
    const groups = new Map<string, { level: Level; start: number; items: Routed[] }>();
    for (const item of items) {
      const { level, start } = this.route(item.key, now, cascade);
      const name = bucketName(level, start);
      let group = groups.get(name);
      if (group === undefined) groups.set(name, (group = { level, start, items: [] }));
      group.items.push(item);
    }
    const appends: Promise<void>[] = [];
    for (const group of groups.values()) {
      for (const chunk of chunks(group.items, (item) => item.size, APPEND_BATCH_MESSAGES, APPEND_BATCH_BYTES)) {
        appends.push(this.appendChunk(group.level, group.start, chunk, now, cascade));
      }
    }
    return settleAll(appends);
  }

  private async appendChunk(level: Level, start: number, items: Routed[], now: number, cascade: boolean): Promise<void> {
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
        const result = await this.store.append(bucket.queueId, items.map((item) => item.message));
        // A load that started before this append resolved may have read it already: loadedUntil tells.
        const loaded = bucket.state === 'loaded';
        const staged = bucket.staged;
        if (staged !== null) {
          for (let index = 0; index < items.length; index++) {
            const offset = result.baseOffset + index;
            if (!loaded || offset >= bucket.loadedUntil) staged.push(items[index]!.key, offset, items[index]!.size);
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
    insertSorted(bucket.level === 'f' ? this.fine : this.coarse, bucket);
  }

  private removeBucket(bucket: Bucket): void {
    if (this.buckets.get(bucket.name) === bucket) this.buckets.delete(bucket.name);
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

  private async round(): Promise<void> {
    this.clearWake();
    this.blocked = false;
    const now = this.clock.now();
    this.startLoads(now);
    this.startCascade(now);
    for (const bucket of this.loadedBuckets) {
      if (bucket.state === 'loaded' && bucket.staged!.length > 0) {
        bucket.entries = bucket.entries!.merged(bucket.staged!);
        bucket.staged!.clear();
      }
    }
    this.deleteFinished(now);
    if (this.clock.monotonic() < this.deliveryRetryAt) {
      this.armWake(now);
      return;
    }
    const picked = this.pick(now);
    if (picked.count === 0) {
      this.armWake(now);
      return;
    }
    try {
      await this.deliverPicked(picked);
    } catch (error) {
      if (this.closed) return;
      this.logger.warn({ err: error }, 'delayed delivery failed; will retry');
      this.delayRetry();
      this.armWake(this.clock.now());
      return;
    } finally {
      for (const bucket of picked.buckets) bucket.pickedKey = -Infinity;
    }
    this.pumpAgain = true;
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
    try {
      await bucket.ready;
      const info = this.store.queueById(bucket.queueId);
      if (info === null) throw new WeirError(ErrorCode.UnknownQueue, `delay bucket ${bucket.name} is gone`);
      const buffer = new EntryBuffer();
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
          const key = this.keyOf(encodedDeliverAt(message.headers), bucket, message.offset);
          if (key > bucket.lastKey || (key === bucket.lastKey && message.offset > bucket.lastOffset)) buffer.push(key, message.offset, storedSize(message));
        }
        offset = read.messages.length > 0 ? read.nextOffset : offset + 1;
        end = read.endOffset;
      }
      bucket.entries = DelayEntries.sorted(buffer);
      bucket.loadedUntil = offset;
      bucket.staged!.dropBelow(offset);
      bucket.pending = bucket.entries.remaining + bucket.staged!.length;
      bucket.state = 'loaded';
      bucket.failures = 0;
    } catch (error) {
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
          const { target, deliverAt, input } = this.toInput(message, true);
          if (target === null) untargeted++;
          if (target === null || this.dropped.has(target)) continue;
          items.push({ message: input, key: this.keyOf(deliverAt, bucket, message.offset), size: storedSize(message) });
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
    const candidates = [...this.loadedBuckets].filter((bucket) => bucket.state === 'loaded' && bucket.deleting === null && bucket.entries!.remaining > 0);
    const positions = candidates.map((bucket) => bucket.entries!.head);
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
      picked.buckets.push(bucket);
      picked.indexes.push(at);
      picked.handedOver.push(handedOver);
      picked.count++;
      if (!handedOver) bytes += bucket.entries!.sizes[at]!;
      positions[best] = at + 1;
    }
    return picked;
  }

  private async deliverPicked(picked: Picked): Promise<void> {
    const inputs: Array<MessageInput | null> = new Array<MessageInput | null>(picked.count).fill(null);
    const targets: Array<string | null> = new Array<string | null>(picked.count).fill(null);
    const byBucket = new Map<Bucket, number[]>();
    for (let index = 0; index < picked.count; index++) {
      if (picked.handedOver[index]) continue;
      const bucket = picked.buckets[index]!;
      let list = byBucket.get(bucket);
      if (list === undefined) byBucket.set(bucket, (list = []));
      list.push(index);
    }
    for (const [bucket, list] of byBucket) await this.readPicked(bucket, list, picked.indexes, inputs, targets);
    let skipped = 0;
    for (let index = 0; index < picked.count; index++) if (picked.handedOver[index]) skipped++;
    if (skipped > 0) this.logger.debug({ messages: skipped }, 'skipping delayed messages handed over before a failure');

    // Maximal runs of one target, in pick order; lost and dropped messages are skipped (and counted as done).
    const runs: Array<{ target: string; picks: number[]; messages: MessageInput[]; bytes: number }> = [];
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
      const last = runs[runs.length - 1];
      if (last !== undefined && last.target === target && last.messages.length < DELIVER_BATCH_MESSAGES && last.bytes + size <= DELIVER_BATCH_BYTES) {
        last.messages.push(input);
        last.picks.push(index);
        last.bytes += size;
      } else {
        runs.push({ target, picks: [index], messages: [input], bytes: size });
      }
    }
    if (droppedCount > 0) this.logger.debug({ messages: droppedCount }, 'dropped due messages of deleted targets');
    if (untargeted > 0) this.logger.warn({ messages: untargeted }, `dropping delayed messages without a ${TARGET_HEADER} header`);

    // Issued in order, awaited together: the store group-commits them.
    const outcomes = await Promise.allSettled(runs.map((run) => this.callDeliver(run.target, run.messages)));
    // The cursor stops at the first run that failed and may succeed later. Runs after it that went through (or can
    // never go through) are remembered so the retry skips them, except runs to a target that failed: those go again
    // after it, so each target still receives its messages in order (with a duplicate).
    let done = picked.count;
    let failure: unknown = null;
    const failedTargets = new Set<string>();
    for (let index = 0; index < runs.length; index++) {
      const outcome = outcomes[index]!;
      const run = runs[index]!;
      let settled = outcome.status === 'fulfilled';
      if (outcome.status === 'rejected') {
        const error = outcome.reason as unknown;
        if (error instanceof WeirError && PERMANENT_ERRORS.has(error.code)) {
          this.logger.warn({ err: error, target: run.target, messages: run.messages.length }, 'dropping delayed messages that cannot be delivered');
          settled = true;
        } else {
          if (failure === null) {
            failure = error;
            done = run.picks[0]!;
          }
          failedTargets.add(run.target);
        }
      }
      if (settled && failure !== null && !failedTargets.has(run.target)) {
        for (const pick of run.picks) picked.buckets[pick]!.handedOver.add(picked.buckets[pick]!.entries!.offsets[picked.indexes[pick]!]!);
      }
    }
    this.advance(picked, done);
    if (failure !== null) throw failure;
    this.deliveryFailures = 0;
  }

  private callDeliver(target: string, messages: MessageInput[]): Promise<void> {
    try {
      return Promise.resolve(this.deliverFn(target, messages));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Reads the picked entries of one bucket in offset order (one pass, jumping over gaps). */
  private async readPicked(bucket: Bucket, list: number[], indexes: number[], inputs: Array<MessageInput | null>, targets: Array<string | null>): Promise<void> {
    const entries = bucket.entries!;
    const count = list.length;
    const offsets = new Float64Array(count);
    for (let index = 0; index < count; index++) offsets[index] = entries.offsets[indexes[list[index]!]!]!;
    const order = sortOrder(offsets, offsets, count);
    const last = offsets[order[count - 1]!]!;
    let next = 0;
    while (next < count) {
      const at = offsets[order[next]!]!;
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
        while (next < count && offsets[order[next]!]! < message.offset) next++;
        if (next < count && offsets[order[next]!]! === message.offset) {
          const pick = list[order[next]!]!;
          const { target, input } = this.toInput(message, false);
          inputs[pick] = input;
          targets[pick] = target;
          next++;
        }
      }
    }
  }

  /**
   * The message as it goes on: copied out of the read buffer (so a round holds only what it delivers), with its id,
   * key, tag, timestamp and headers; `weir.target` removed unless it is going into another bucket.
   */
  private toInput(message: StoredMessage, keepTarget: boolean): { target: string | null; deliverAt: HeaderValue | undefined; input: MessageInput } {
    const headers: Record<string, HeaderValue> = {};
    let target: string | null = null;
    for (const [name, value] of Object.entries(decodeHeaders(message.headers))) {
      if (name === TARGET_HEADER) {
        target = typeof value === 'string' ? value : null;
        if (!keepTarget) continue;
      }
      headers[name] = typeof value === 'string' ? value : Buffer.from(value);
    }
    return {
      target,
      deliverAt: headers[DELIVER_AT_HEADER],
      input: {
        id: Buffer.from(message.id),
        key: message.key === null ? null : Buffer.from(message.key),
        tag: message.tag,
        headers,
        timestamp: message.timestamp,
        body: Buffer.from(message.body),
      },
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
      if (picked.handedOver[index]) bucket.handedOver.delete(bucket.lastOffset);
      entries.head++;
      bucket.pending--;
      this.markDirty(bucket);
    }
    for (const bucket of new Set(picked.buckets.slice(0, done))) {
      bucket.entries = bucket.entries!.remaining === 0 ? DelayEntries.empty() : bucket.entries!.compacted();
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
      if (entries.remaining > 0) later(entries.keys[entries.head]!);
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
  private deliverAll(target: string, messages: readonly MessageInput[]): Promise<void> {
    return settleAll(chunks(messages, inputSize, DELIVER_BATCH_MESSAGES, DELIVER_BATCH_BYTES).map((batch) => this.callDeliver(target, batch)));
  }
}
