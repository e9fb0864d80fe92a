import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { MessageStore } from '../../storage/message-store.js';
import type { StoredMessage } from '../../storage/record-batch.js';
import type { CompiledFilter } from '../filter/index.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
import { AckSet } from './ack-set.js';
import { DeadlineTimer } from './deadline-timer.js';
import { Deque } from './deque.js';
import { LeaseQueue } from './lease-queue.js';
import { OffsetIndex } from './offset-index.js';
import { MAX_PRIORITY } from './message-attributes.js';
import { Smallest } from './smallest.js';
import { StoredHeaders } from './stored-headers.js';

export type SharedMode = 'shared' | 'key_shared';
export type DeadLetterReason = 'rejected' | 'max-deliveries' | 'expired' | 'overflow';
export type OverflowPolicy = 'drop-head' | 'reject-publish' | 'dead-letter';

/** A shared group's settings (docs/design/work-queues.md). */
export interface SharedGroupSettings {
  /** Visibility timeout: a delivery not acknowledged, nacked or extended within this is redelivered. */
  ackTimeoutMs: number;
  /** A message whose lease ends after this many deliveries is dead-lettered (0: never). */
  maxDeliveries: number;
  /** Default nack delay: min(backoffMaxMs, backoffInitialMs × 2^(deliveries−1)). */
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Where dead letters go; null: `<group>.dlq` (characters a topic name cannot have become `_`). */
  deadLetterTopic: string | null;
  /** Dead-letter expired messages (reason `expired`) instead of dropping them. */
  deadLetterExpired: boolean;
  /** Messages stored longer ago than this expire for the group (AMQP's x-message-ttl); null: only per-message TTLs. */
  messageTtlMs: number | null;
  /** Most ready messages (unsettled and not in flight); null: no limit. */
  maxLength: number | null;
  /** Most body bytes of ready messages (RabbitMQ's x-max-length-bytes); null: no limit. */
  maxBytes: number | null;
  /** What happens beyond maxLength or maxBytes, whichever is reached first. */
  overflow: OverflowPolicy;
  /** Most ready messages held in memory per subscription (read ahead of the consumers). */
  readAhead: number;
  /** Where a new group starts reading: the partitions' start or their end. */
  start: 'earliest' | 'latest';
  /**
   * The group owns its topic (an AMQP queue): once the ack state is written, the partitions' low-water marks move up
   * to the ack floors, so acknowledged messages are removed and retention reclaims their space.
   */
  discardAcked: boolean;
  /** Dead letters go to the broker's dead-letter handler (AMQP dead-letter exchanges) instead of a topic. */
  externalDeadLetters: boolean;
}

export const defaultSharedGroupSettings: Readonly<SharedGroupSettings> = Object.freeze({
  ackTimeoutMs: 30_000,
  maxDeliveries: 16,
  backoffInitialMs: 1000,
  backoffMaxMs: 60_000,
  deadLetterTopic: null,
  deadLetterExpired: false,
  messageTtlMs: null,
  maxLength: null,
  maxBytes: null,
  overflow: 'drop-head',
  readAhead: 10_000,
  start: 'earliest',
  discardAcked: false,
  externalDeadLetters: false,
});

/** One message handed to a consumer. */
export interface Delivery {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** 1 for the first delivery. */
  readonly deliveryCount: number;
  readonly message: StoredMessage;
}

/** Where a consumer's deliveries go: the protocol layer encodes them onto its connection. */
export interface DeliverySink {
  /** Deliveries of one dispatch pass, in order; the array is the sink's to keep. */
  deliver(deliveries: Delivery[]): void;
  /** The consumer is gone (detached, its group or topic deleted, the broker closing): nothing more will come. */
  ended?(): void;
}

export interface ConsumerOptions {
  consumerId: string;
  /** Most unacknowledged deliveries (0: unlimited). */
  prefetch: number;
  /** Higher first among consumers with credit (AMQP consumer priorities); default 0. */
  priority: number;
  clientId: string;
  address: string;
  sink: DeliverySink;
  /** A limit shared with other consumers (AMQP's channel-wide prefetch, `basic.qos` with `global`). */
  pool?: CreditPool;
  /** A pull consumer (pull-consumer.ts): its credit is what a waiting Receive wants, none between Receives. */
  pull?: boolean;
}

/**
 * Unacknowledged deliveries shared by several consumers, possibly of different subscriptions: a consumer's credit is
 * the smaller of its own and the pool's. A pool that frees up wakes every subscription that has a consumer in it.
 */
export class CreditPool {
  inflight = 0;
  private readonly waiting = new Set<() => void>();

  /** `limit` 0: unlimited. */
  constructor(public limit: number) {}

  get available(): number {
    return this.limit === 0 ? Number.POSITIVE_INFINITY : this.limit - this.inflight;
  }

  taken(): void {
    this.inflight++;
  }

  returned(): void {
    this.inflight--;
    // Only a pool that was full held anyone back; an unlimited one never does.
    if (this.limit > 0 && this.inflight === this.limit - 1) this.wake();
  }

  /** A changed limit may let waiting consumers go on. */
  setLimit(limit: number): void {
    this.limit = limit;
    this.wake();
  }

  onAvailable(wake: () => void): () => void {
    this.waiting.add(wake);
    return () => this.waiting.delete(wake);
  }

  private wake(): void {
    for (const wake of this.waiting) wake();
  }
}

/** A message on its way to the dead-letter topic (or the broker's dead-letter handler). */
export interface DeadLetterEntry {
  partition: number;
  message: StoredMessage;
  reason: DeadLetterReason;
  deliveries: number;
  /** The last error text a consumer passed to nack or reject, if any. */
  error: string | null;
}

/** What the subscription tells the rest of the broker (dead letters, the trace, the ack-state writer). */
export interface SubscriptionHooks {
  /** Appends a dead letter durably; the message is settled once this resolves. */
  deadLetter(entry: DeadLetterEntry): Promise<void>;
  /** A trace event; must not throw. Dead-lettering is traced by whoever appends the dead letter. */
  trace?(event: SubscriptionTraceEvent): void;
  /** A cursor changed and should be written with the next ack-state flush. */
  dirty(cursor: PartitionCursor): void;
}

export interface SubscriptionTraceEvent {
  kind: 'delivered' | 'acked' | 'nacked' | 'rejected' | 'expired';
  partition: number;
  message: StoredMessage;
  consumer?: ConsumerState;
  deliveries?: number;
  /** nack: the wait before redelivery. */
  delayMs?: number;
  /** expired: when. */
  expiresAt?: number;
  /** nack / reject: the consumer's error text. */
  error?: string;
}

/** The persisted form of a cursor (docs/design/work-queues.md, "Ack state on disk"). */
export interface StoredCursor {
  floor: number;
  settled: Array<[number, number]>;
  /** [offset, deliveries] of unsettled messages delivered at least once. */
  counts: Array<[number, number]>;
  /** [offset, due time (wall ms)] of nacked messages waiting for their redelivery. */
  waits?: Array<[number, number]>;
}

type EntryState = 'ready' | 'inflight' | 'waiting' | 'settling';

/** One unsettled message read into memory. */
class Entry {
  state: EntryState = 'ready';
  consumer: ConsumerState | null = null;
  /** Monotonic ms: the lease's end while in flight (NaN otherwise; the LeaseQueue keeps it). */
  leaseEnd = Number.NaN;
  /** Monotonic ms: the due time while waiting. */
  deadline = 0;
  lastError: string | null = null;
  /** Neighbours in the holding consumer's list of in-flight entries. */
  heldPrev: Entry | null = null;
  heldNext: Entry | null = null;

  constructor(
    readonly cursor: PartitionCursor,
    readonly message: StoredMessage,
    readonly priority: number,
    readonly expiresAt: number,
    /** key_shared: the key as a latin1 string; null when the message has none (no order to keep). */
    readonly key: string | null,
    public deliveries: number,
  ) {}

  get offset(): number {
    return this.message.offset;
  }
}

/** One partition of the topic as this group consumes it. */
export class PartitionCursor {
  /** Next offset to read from the log. */
  readHead: number;
  /** Unsettled entries in memory, by offset. */
  readonly entries = new OffsetIndex<Entry>();
  /** Delivery counts of unsettled messages not in memory (restored from disk until they are read again). */
  readonly counts: Map<number, number>;
  /** Nack due times (wall ms) of messages not in memory, restored from disk likewise. */
  readonly waits: Map<number, number>;
  reading = false;
  /** Changed since the ack state was last written (the writer clears it): marks it once, not per message. */
  unwritten = false;

  constructor(
    readonly partition: number,
    readonly queueId: number,
    readonly acks: AckSet,
    counts: Map<number, number>,
    waits: Map<number, number>,
  ) {
    this.readHead = acks.floor;
    this.counts = counts;
    this.waits = waits;
  }

  /** The persisted form; `wallOf` turns a monotonic deadline into wall time (a restart resets the monotonic clock). */
  toStored(wallOf: (monotonic: number) => number): StoredCursor {
    const counts = new Map(this.counts);
    const waits = new Map(this.waits);
    for (const entry of this.entries.values()) {
      if (entry.deliveries > 0) counts.set(entry.offset, entry.deliveries);
      if (entry.state === 'waiting') waits.set(entry.offset, Math.round(wallOf(entry.deadline)));
    }
    const { floor, settled } = this.acks.toJSON();
    const live = ([offset]: [number, number]) => !this.acks.has(offset);
    const stored: StoredCursor = { floor, settled, counts: [...counts].filter(live).sort((a, b) => a[0] - b[0]) };
    if (waits.size > 0) stored.waits = [...waits].filter(live).sort((a, b) => a[0] - b[0]);
    return stored;
  }
}

/** A consumer attached to the subscription. */
export class ConsumerState {
  /** In-flight entries leased to this consumer: a list through the entries (`consumer` names their holder). */
  private heldHead: Entry | null = null;
  private heldCount = 0;
  /** Deliveries of the current dispatch pass, handed to the sink in one call. */
  outbox: Delivery[] = [];
  closed = false;
  /** Pull consumers: the deliveries the waiting Receive may still take, 0 while none waits (null for pushed ones). */
  pullCredit: number | null;
  leavePool: (() => void) | null = null;

  constructor(readonly options: ConsumerOptions) {
    this.pullCredit = options.pull === true ? 0 : null;
  }

  get id(): string {
    return this.options.consumerId;
  }

  /** Set by the protocol layer while it cannot take more (a full socket buffer): no credit until cleared. */
  paused = false;

  /** Deliveries leased to this consumer and not settled. */
  get inflight(): number {
    return this.heldCount;
  }

  hold(entry: Entry): void {
    entry.consumer = this;
    entry.heldPrev = null;
    entry.heldNext = this.heldHead;
    if (this.heldHead !== null) this.heldHead.heldPrev = entry;
    this.heldHead = entry;
    this.heldCount++;
  }

  /** Takes `entry` out of this consumer's list; false when this consumer does not hold it. */
  release(entry: Entry): boolean {
    if (entry.consumer !== this) return false;
    if (entry.heldPrev !== null) entry.heldPrev.heldNext = entry.heldNext;
    else this.heldHead = entry.heldNext;
    if (entry.heldNext !== null) entry.heldNext.heldPrev = entry.heldPrev;
    entry.heldPrev = null;
    entry.heldNext = null;
    entry.consumer = null;
    this.heldCount--;
    return true;
  }

  /** The entries this consumer holds, in no particular order. */
  held(): Entry[] {
    const entries: Entry[] = [];
    for (let entry = this.heldHead; entry !== null; entry = entry.heldNext) entries.push(entry);
    return entries;
  }

  /** Forgets every entry held without touching them (the subscription is being disposed of); returns how many. */
  dropAll(): number {
    const count = this.heldCount;
    this.heldHead = null;
    this.heldCount = 0;
    return count;
  }

  get credit(): number {
    if (this.closed || this.paused) return 0;
    if (this.pullCredit !== null) return this.pullCredit;
    const own = this.options.prefetch === 0 ? Number.POSITIVE_INFINITY : this.options.prefetch - this.heldCount;
    const pool = this.options.pool;
    return pool === undefined ? own : Math.min(own, pool.available);
  }
}

/** key_shared: who holds a key and what of it is outstanding. */
interface KeyState {
  owner: ConsumerState | null;
  inflight: number;
  waiting: number;
}

export interface SettleOutcome {
  partition: number;
  offset: number;
  outcome: 'ack' | 'nack' | 'reject';
  /** nack: wait this long before redelivery; absent: the group's backoff. */
  delayMs?: number;
  /** nack / reject: the consumer's error text, kept for the dead-letter headers. */
  error?: string;
}

export interface SubscriptionStats {
  ready: number;
  /** Body bytes of the ready messages read ahead (unread ones are counted once read). */
  readyBytes: number;
  inflight: number;
  waiting: number;
  consumers: number;
  /** Unsettled messages not yet read into memory. */
  unread: number;
  /** Acks for deliveries no longer leased to the acking consumer (expired or reassigned). */
  staleAcks: number;
}

const VIRTUAL_NODES = 64;
const READ_BATCH = 1000;
/** After a read failed for another reason than damage (an I/O error), the partition is read again this much later. */
const READ_RETRY_MS = 1000;
/** How far a group with maxBytes may read ahead past `readAhead` to see whether its ready bodies reach the limit. */
const BYTE_WINDOW_MESSAGES = 100_000;

/** Returned messages are pushed to the front of their lists one by one: newest first, so the oldest ends up in front. */
function newestFirst(a: Entry, b: Entry): number {
  return b.cursor.partition - a.cursor.partition || b.offset - a.offset;
}

/** Oldest first, whatever the priority (RabbitMQ drops from the head the same way). */
function oldestStored(a: Entry, b: Entry): number {
  return a.message.storeTimestamp - b.message.storeTimestamp || a.offset - b.offset;
}

/** What maxBytes counts: the body, as RabbitMQ's x-max-length-bytes does (key, headers and framing are not counted). */
function bodyBytes(entry: Entry): number {
  return entry.message.body.byteLength;
}

function hashString(text: string): number {
  // FNV-1a: cheap and well spread for the consistent-hash ring; not security relevant.
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // murmur3's finaliser: FNV alone leaves similar short strings (`c1#0`, `c1#1`) close together on the ring.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * One shared group consuming one topic: the dispatcher of docs/design/work-queues.md. It reads ahead from each
 * partition's cursor into priority-ordered ready lists, leases messages to consumers with credit, and settles,
 * redelivers or dead-letters them as outcomes, lease expiries and disconnects arrive.
 *
 * Everything runs on the event loop; the only asynchronous steps are log reads (one per partition at a time) and
 * dead-letter appends (the entry is `settling` meanwhile, owned by nobody).
 */
export class SharedSubscription {
  readonly cursors: PartitionCursor[] = [];
  private readonly consumers = new Map<string, ConsumerState>();
  /** The consumers in attach order, for round robin without allocating per pick. */
  private consumerList: ConsumerState[] = [];
  /** Ready entries: one list per priority (shared), or list 0 only (key_shared keeps per-key order instead). */
  private readonly ready: Array<Deque<Entry>> = Array.from({ length: MAX_PRIORITY + 1 }, () => new Deque<Entry>());
  private readyCount = 0;
  /** Body bytes of the entries in the ready lists. */
  private readyBytes = 0;
  private inflightCount = 0;
  private readonly keys = new Map<string, KeyState>();
  private ring: Array<{ point: number; consumer: ConsumerState }> = [];
  private roundRobin = 0;
  private dispatchScheduled = false;
  /** In-flight entries by lease end. */
  private readonly leases: LeaseQueue<Entry>;
  /** Waiting (nacked) entries by due time: the keys are exactly the entries in state `waiting`. */
  private readonly waits: DeadlineTimer<Entry>;
  /** Ready list (by priority) → when its head expires (see armExpiry). */
  private readonly expiries: DeadlineTimer<number>;
  private staleAcks = 0;
  private closed = false;
  private readRetry: TimerHandle | null = null;
  /** The read-ahead's view of each message's headers (one reader, reused). */
  private readonly headers = new StoredHeaders();

  constructor(
    readonly group: string,
    readonly topic: string,
    readonly mode: SharedMode,
    public settings: SharedGroupSettings,
    private readonly filter: CompiledFilter | null,
    private readonly store: MessageStore,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.leases = new LeaseQueue(clock, scheduler, (entries) => this.leasesEnded(entries));
    this.waits = new DeadlineTimer(clock, scheduler, (entries) => this.waitsEnded(entries));
    this.expiries = new DeadlineTimer(clock, scheduler, (priorities) => this.headsDue(priorities));
  }

  /** Adds a partition (on open, and when the topic grows). */
  addPartition(partition: number, queueId: number, stored: StoredCursor | null): void {
    if (this.cursors[partition] !== undefined) return;
    const info = this.store.queueById(queueId);
    let acks: AckSet;
    if (stored !== null) acks = AckSet.fromJSON(stored);
    else acks = new AckSet(this.settings.start === 'latest' ? (info?.endOffset ?? 0) : (info?.startOffset ?? 0));
    if (info !== null && info.startOffset > acks.floor) acks.raiseFloor(info.startOffset);
    const cursor = new PartitionCursor(partition, queueId, acks, new Map(stored?.counts ?? []), new Map(stored?.waits ?? []));
    this.cursors[partition] = cursor;
    if (stored === null) this.hooks.dirty(cursor);
    this.fill();
  }

  // ---- consumers ----------------------------------------------------------------------------------------------------

  attach(options: ConsumerOptions): ConsumerState {
    if (this.consumers.has(options.consumerId)) throw new Error(`consumer ${options.consumerId} is already attached`);
    const consumer = new ConsumerState(options);
    if (options.pool !== undefined) consumer.leavePool = options.pool.onAvailable(() => this.scheduleDispatch());
    this.consumers.set(options.consumerId, consumer);
    this.consumerList = [...this.consumers.values()];
    if (this.mode === 'key_shared') this.rebuildRing();
    this.scheduleDispatch();
    return consumer;
  }

  consumer(consumerId: string): ConsumerState | undefined {
    return this.consumers.get(consumerId);
  }

  get consumerCount(): number {
    return this.consumers.size;
  }

  /** Removes a consumer; everything it had in flight is redelivered to the others. */
  detach(consumerId: string): void {
    const consumer = this.consumers.get(consumerId);
    if (consumer === undefined) return;
    consumer.closed = true;
    consumer.leavePool?.();
    this.consumers.delete(consumerId);
    this.consumerList = [...this.consumers.values()];
    const returned = consumer.held().sort(newestFirst);
    for (const entry of returned) this.endLease(entry, null);
    if (this.mode === 'key_shared') {
      for (const [key, state] of this.keys) if (state.owner === consumer && state.inflight === 0) this.releaseKey(key, state);
      this.rebuildRing();
    }
    consumer.options.sink.ended?.();
    this.scheduleDispatch();
  }

  // ---- outcomes -----------------------------------------------------------------------------------------------------

  /**
   * Applies ack / nack / reject outcomes from one consumer. Outcomes for messages not leased to it (expired leases,
   * reassigned after a disconnect) are ignored and counted; the return value says how many applied.
   */
  settle(consumerId: string, outcomes: readonly SettleOutcome[]): number {
    let applied = 0;
    for (const outcome of outcomes) {
      const entry = this.cursors[outcome.partition]?.entries.get(outcome.offset);
      if (entry === undefined || entry.state !== 'inflight' || entry.consumer?.id !== consumerId) {
        this.staleAcks++;
        continue;
      }
      applied++;
      const consumer = entry.consumer;
      if (outcome.outcome === 'ack') {
        this.releaseLease(entry);
        this.hooks.trace?.({ kind: 'acked', partition: entry.cursor.partition, message: entry.message, consumer });
        this.settleEntry(entry);
      } else if (outcome.outcome === 'reject') {
        entry.lastError = outcome.error ?? null;
        this.releaseLease(entry);
        this.hooks.trace?.({ kind: 'rejected', partition: entry.cursor.partition, message: entry.message, consumer, error: outcome.error });
        this.deadLetter(entry, 'rejected');
      } else {
        entry.lastError = outcome.error ?? entry.lastError;
        const delayMs = outcome.delayMs ?? this.backoff(entry.deliveries);
        this.hooks.trace?.({ kind: 'nacked', partition: entry.cursor.partition, message: entry.message, consumer, delayMs, error: outcome.error });
        this.endLease(entry, delayMs);
      }
    }
    this.scheduleDispatch();
    return applied;
  }

  /** Renews the leases of the given deliveries by `ms` from now ("still working"). */
  extend(consumerId: string, deliveries: ReadonlyArray<{ partition: number; offset: number }>, ms: number): number {
    let applied = 0;
    const deadline = this.clock.monotonic() + ms;
    for (const { partition, offset } of deliveries) {
      const entry = this.cursors[partition]?.entries.get(offset);
      if (entry === undefined || entry.state !== 'inflight' || entry.consumer?.id !== consumerId) continue;
      if (deadline > entry.leaseEnd) this.leases.extend(entry, deadline);
      applied++;
    }
    return applied;
  }

  /** The protocol layer can take deliveries again after a pause (its socket drained). */
  resume(consumer: ConsumerState): void {
    consumer.paused = false;
    this.scheduleDispatch();
  }

  /**
   * Removes every ready message, read or not (AMQP's queue.purge); in-flight and waiting ones stay. Returns how many
   * were removed.
   */
  purge(): number {
    const gone = new Set<Entry>();
    for (const list of this.ready) for (const entry of list) gone.add(entry);
    this.removeReady(gone);
    for (const entry of gone) this.settleEntry(entry);
    let removed = gone.size;
    for (const cursor of this.cursors) {
      if (cursor === undefined) continue;
      const end = this.store.queueById(cursor.queueId)?.endOffset ?? cursor.readHead;
      if (end > cursor.readHead) {
        // Nothing at or past the read head is in memory, so the unread part settles as one range.
        removed += cursor.acks.addRange(cursor.readHead, end);
        for (const offset of cursor.counts.keys()) if (offset >= cursor.readHead) cursor.counts.delete(offset);
        for (const offset of cursor.waits.keys()) if (offset >= cursor.readHead) cursor.waits.delete(offset);
        // A read in flight adds nothing below the new head (readInto skips offsets under it).
        cursor.readHead = end;
      }
      this.hooks.dirty(cursor);
    }
    return removed;
  }

  // ---- reading ------------------------------------------------------------------------------------------------------

  /** The store moved a partition's end: read more if there is room. */
  appended(): void {
    this.fill();
    this.enforceLimits();
  }

  /**
   * Starts reads for partitions with unread messages while the ready lists have room. While messages are ready, it
   * waits until a tenth of `readAhead` (at most READ_BATCH) fits: a read of a few messages costs nearly what a full
   * one does (a round trip through the thread pool, and the stored batch holding its first message read again from
   * its start), and a backlog was otherwise read in slivers as consumers took a few messages at a time.
   */
  fill(): void {
    if (this.closed) return;
    const room = this.readRoom();
    if (room <= 0 || (this.readyCount > 0 && room < Math.min(READ_BATCH, this.settings.readAhead / 10))) return;
    for (const cursor of this.cursors) {
      if (cursor === undefined || cursor.reading) continue;
      const info = this.store.queueById(cursor.queueId);
      if (info === null) continue;
      if (info.startOffset > cursor.readHead) {
        // Retention removed messages nobody settled: they are gone for this group too.
        this.dropBelow(cursor, info.startOffset);
      }
      if (cursor.readHead >= info.endOffset) continue;
      void this.readInto(cursor, Math.min(READ_BATCH, room));
    }
  }

  private async readInto(cursor: PartitionCursor, max: number): Promise<void> {
    cursor.reading = true;
    let added = 0;
    let failed = false;
    let from = cursor.readHead;
    try {
      from = cursor.acks.nextUnsettled(cursor.readHead);
      const result = await this.store.read(cursor.queueId, from, { maxMessages: max, maxBytes: 4 << 20 });
      if (this.closed) return;
      const ttl = this.settings.messageTtlMs;
      const now = this.clock.now();
      for (const message of result.messages) {
        if (message.offset < cursor.readHead || cursor.acks.has(message.offset) || cursor.entries.has(message.offset)) continue;
        // Headers stay encoded: the two attributes are found without decoding the rest, and only a filter that reads
        // headers (SQL; a tag filter does not) has the list decoded, once.
        const headers = this.headers.of(message.headers);
        if (this.filter !== null && !this.filter.matches({ tag: message.tag, header: headers.decodedHeader })) {
          cursor.acks.add(message.offset);
          this.hooks.dirty(cursor);
          continue;
        }
        const attributes = headers.attributes();
        let expiresAt = attributes.expiresAt;
        if (ttl !== null) expiresAt = Math.min(expiresAt, message.storeTimestamp + ttl);
        const deliveries = cursor.counts.get(message.offset) ?? 0;
        const waitUntil = cursor.waits.get(message.offset);
        cursor.counts.delete(message.offset);
        cursor.waits.delete(message.offset);
        const key = this.mode === 'key_shared' && message.key !== null ? message.key.toString('latin1') : null;
        const entry = new Entry(cursor, message, this.mode === 'shared' ? attributes.priority : 0, expiresAt, key, deliveries);
        cursor.entries.add(message.offset, entry);
        if (expiresAt <= now) {
          this.expire(entry);
          continue;
        }
        if (waitUntil !== undefined && waitUntil > now) {
          this.wait(entry, waitUntil - now);
          continue;
        }
        const list = this.ready[entry.priority]!;
        list.pushBack(entry);
        this.becameReady(entry);
        added++;
        if (list.length === 1) this.armExpiry(entry.priority);
      }
      cursor.readHead = Math.max(cursor.readHead, result.nextOffset);
    } catch (error) {
      if (isWeirError(error, ErrorCode.OffsetOutOfRange)) {
        const info = this.store.queueById(cursor.queueId);
        if (info !== null) this.dropBelow(cursor, info.startOffset);
      } else if (isWeirError(error, ErrorCode.DataDamaged)) {
        // A read fails only when its first message is damaged (a read that starts before damage stops short of it,
        // docs/storage.md). Retrying would stall the partition behind it forever: the message is settled for this group
        // (its content is gone, so there is nothing to dead-letter), and reported.
        this.logger.error({ err: error, group: this.group, topic: this.topic, partition: cursor.partition, offset: from }, 'a damaged message cannot be delivered and is skipped');
        cursor.acks.add(from);
        cursor.counts.delete(from);
        cursor.waits.delete(from);
        cursor.readHead = Math.max(cursor.readHead, from + 1);
        this.hooks.dirty(cursor);
      } else if (!isWeirError(error, ErrorCode.UnknownQueue) && !isWeirError(error, ErrorCode.StoreClosed)) {
        this.logger.warn({ err: error, group: this.group, topic: this.topic, partition: cursor.partition }, 'shared subscription read failed');
        failed = true;
      }
    } finally {
      cursor.reading = false;
    }
    if (added > 0) this.scheduleDispatch();
    this.enforceLimits();
    if (!failed) this.fill();
    else if (this.readRetry === null && !this.closed) {
      // Not at once: a failing disk would otherwise be read in a loop as fast as it fails.
      this.readRetry = this.scheduler.setTimeout(() => {
        this.readRetry = null;
        this.fill();
      }, READ_RETRY_MS, { background: true });
    }
  }

  /**
   * How many more messages the read-ahead may take: up to `readAhead` ready ones. Body sizes are known only of messages
   * read, so a group with maxBytes reads on while its ready bodies are within the limit (up to BYTE_WINDOW_MESSAGES):
   * unread messages are then left only once the limit is reached, and a backlog over it is read through and trimmed.
   */
  private readRoom(): number {
    const room = this.settings.readAhead - this.readyCount;
    const maxBytes = this.settings.maxBytes;
    if (maxBytes === null || this.readyBytes > maxBytes) return room;
    return Math.max(room, BYTE_WINDOW_MESSAGES - this.readyCount);
  }

  /** Offsets below `offset` left the log: settle them (nothing can be delivered any more). */
  private dropBelow(cursor: PartitionCursor, offset: number): void {
    if (cursor.acks.floor >= offset) return;
    const gone = new Set<Entry>();
    for (const entry of cursor.entries.values()) if (entry.offset < offset && entry.state === 'ready') gone.add(entry);
    this.removeReady(gone);
    for (const entry of gone) this.forget(entry);
    cursor.acks.raiseFloor(offset);
    for (const pending of cursor.counts.keys()) if (pending < offset) cursor.counts.delete(pending);
    for (const pending of cursor.waits.keys()) if (pending < offset) cursor.waits.delete(pending);
    cursor.readHead = Math.max(cursor.readHead, offset);
    this.hooks.dirty(cursor);
  }

  // ---- dispatch -----------------------------------------------------------------------------------------------------

  /** Runs dispatch in a microtask: once, however many changes asked for it meanwhile. */
  scheduleDispatch(): void {
    if (this.dispatchScheduled || this.closed) return;
    this.dispatchScheduled = true;
    queueMicrotask(this.runScheduledDispatch);
  }

  /** Made once: an arrow written inside scheduleDispatch would allocate its context on every call. */
  private readonly runScheduledDispatch = (): void => {
    this.dispatchScheduled = false;
    this.dispatch();
  };

  /** Hands ready messages to consumers with credit, then flushes each consumer's outbox in one call. */
  dispatch(): void {
    if (this.closed || this.consumers.size === 0 || this.readyCount === 0) {
      this.fill();
      return;
    }
    const now = this.clock.now();
    const touched = new Set<ConsumerState>();
    if (this.mode === 'shared') this.dispatchShared(now, touched);
    else this.dispatchKeyShared(now, touched);
    for (const consumer of touched) {
      const batch = consumer.outbox;
      consumer.outbox = [];
      if (batch.length > 0) consumer.options.sink.deliver(batch);
    }
    this.fill();
  }

  private dispatchShared(now: number, touched: Set<ConsumerState>): void {
    for (let priority = MAX_PRIORITY; priority >= 0 && this.readyCount > 0; priority--) {
      const list = this.ready[priority]!;
      let taken = 0;
      while (list.length > 0) {
        const entry = list.peekFront()!;
        if (entry.expiresAt <= now) {
          list.popFront();
          this.leftReady(entry);
          taken++;
          this.expire(entry);
          continue;
        }
        const consumer = this.pickConsumer();
        if (consumer === null) break;
        list.popFront();
        this.leftReady(entry);
        taken++;
        this.lease(entry, consumer, touched);
      }
      if (taken > 0) this.armExpiry(priority);
      if (list.length > 0) return;
    }
  }

  /**
   * Walks the ready list from the front, leasing each message whose key may go to a consumer with credit and skipping
   * the others. The walk stops as soon as no consumer has credit left (credit changes only by a lease, so that is when
   * it is checked): an ack that frees one slot costs a walk to the first message that slot can take, not the list.
   */
  private dispatchKeyShared(now: number, touched: Set<ConsumerState>): void {
    const list = this.ready[0]!;
    let anyCredit = this.pickConsumer(true) !== null;
    const removed = list.retain(
      (entry) => {
        if (entry.expiresAt <= now) {
          this.leftReady(entry);
          this.expire(entry);
          return false;
        }
        let consumer: ConsumerState | null;
        if (entry.key === null) consumer = this.pickConsumer();
        else {
          const state = this.keys.get(entry.key);
          // An earlier message of this key is waiting for redelivery: nothing of the key may overtake it.
          if (state !== undefined && state.waiting > 0) return true;
          // An owned key stays with its owner; a free key goes to its place on the ring, or past a consumer without
          // credit to the next one that has some (nothing of the key is outstanding, so no order is at stake).
          consumer = state?.owner ?? this.ringOwner(entry.key);
          if (consumer !== null && consumer.credit <= 0) consumer = null;
        }
        if (consumer === null) return true;
        this.leftReady(entry);
        this.lease(entry, consumer, touched);
        anyCredit = this.pickConsumer(true) !== null;
        return false;
      },
      () => !anyCredit,
    );
    if (removed > 0) this.armExpiry(0);
  }

  /** The consumer with credit next in turn among those of the highest priority; null when none has credit. */
  private pickConsumer(peek = false): ConsumerState | null {
    let best: ConsumerState | null = null;
    let bestIndex = -1;
    let bestPriority = Number.NEGATIVE_INFINITY;
    const consumers = this.consumerList;
    const count = consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.roundRobin + i) % count;
      const consumer = consumers[index]!;
      if (consumer.options.priority > bestPriority && consumer.credit > 0) {
        best = consumer;
        bestIndex = index;
        bestPriority = consumer.options.priority;
      }
    }
    if (best !== null && !peek) this.roundRobin = (bestIndex + 1) % count;
    return best;
  }

  /** The first consumer with credit at or after the key's point on the ring; null when none has credit. */
  private ringOwner(key: string): ConsumerState | null {
    const ring = this.ring;
    if (ring.length === 0) return null;
    const point = hashString(key);
    let low = 0;
    let high = ring.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (ring[mid]!.point < point) low = mid + 1;
      else high = mid;
    }
    for (let step = 0; step < ring.length; step++) {
      const consumer = ring[(low + step) % ring.length]!.consumer;
      if (consumer.credit > 0) return consumer;
    }
    return null;
  }

  private rebuildRing(): void {
    const ring: Array<{ point: number; consumer: ConsumerState }> = [];
    for (const consumer of this.consumers.values()) {
      for (let node = 0; node < VIRTUAL_NODES; node++) ring.push({ point: hashString(`${consumer.id}#${node}`), consumer });
    }
    ring.sort((a, b) => a.point - b.point);
    this.ring = ring;
  }

  private lease(entry: Entry, consumer: ConsumerState, touched: Set<ConsumerState>): void {
    entry.state = 'inflight';
    consumer.hold(entry);
    entry.deliveries++;
    this.leases.start(entry, this.clock.monotonic() + this.settings.ackTimeoutMs);
    consumer.options.pool?.taken();
    if (consumer.pullCredit !== null) consumer.pullCredit--;
    this.inflightCount++;
    if (entry.key !== null) {
      let state = this.keys.get(entry.key);
      if (state === undefined) this.keys.set(entry.key, (state = { owner: consumer, inflight: 0, waiting: 0 }));
      state.owner = consumer;
      state.inflight++;
    }
    consumer.outbox.push({ topic: this.topic, partition: entry.cursor.partition, offset: entry.offset, deliveryCount: entry.deliveries, message: entry.message });
    touched.add(consumer);
    this.hooks.dirty(entry.cursor);
    this.hooks.trace?.({ kind: 'delivered', partition: entry.cursor.partition, message: entry.message, consumer, deliveries: entry.deliveries });
  }

  /** Takes an in-flight entry away from its consumer (the outcome decides what happens next). */
  private releaseLease(entry: Entry): void {
    const consumer = entry.consumer;
    if (consumer !== null && consumer.release(entry)) consumer.options.pool?.returned();
    this.leases.end(entry);
    entry.consumer = null;
    this.inflightCount--;
    if (entry.key !== null) {
      const state = this.keys.get(entry.key);
      if (state !== undefined) {
        state.inflight--;
        if (state.inflight === 0 && state.waiting === 0) this.releaseKey(entry.key, state);
      }
    }
  }

  private releaseKey(key: string, state: KeyState): void {
    state.owner = null;
    if (state.inflight === 0 && state.waiting === 0) this.keys.delete(key);
  }

  /**
   * A lease ended without an ack (nack, expiry, disconnect): dead-letter after maxDeliveries, else back to ready —
   * at once (`delayMs` null) or after a delay.
   */
  private endLease(entry: Entry, delayMs: number | null): void {
    this.releaseLease(entry);
    const max = this.settings.maxDeliveries;
    if (max > 0 && entry.deliveries >= max) {
      this.deadLetter(entry, 'max-deliveries');
      return;
    }
    if (delayMs === null || delayMs <= 0) {
      this.requeueFront(entry);
      return;
    }
    this.wait(entry, delayMs);
  }

  private wait(entry: Entry, delayMs: number): void {
    entry.state = 'waiting';
    entry.deadline = this.clock.monotonic() + delayMs;
    if (!this.closed) this.waits.set(entry, entry.deadline);
    this.hooks.dirty(entry.cursor);
    if (entry.key !== null) {
      let state = this.keys.get(entry.key);
      if (state === undefined) this.keys.set(entry.key, (state = { owner: null, inflight: 0, waiting: 0 }));
      state.waiting++;
    }
  }

  private requeueFront(entry: Entry): void {
    entry.state = 'ready';
    entry.consumer = null;
    this.ready[entry.priority]!.pushFront(entry);
    this.becameReady(entry);
    this.armExpiry(entry.priority);
  }

  private becameReady(entry: Entry): void {
    this.readyCount++;
    this.readyBytes += bodyBytes(entry);
  }

  private leftReady(entry: Entry): void {
    this.readyCount--;
    this.readyBytes -= bodyBytes(entry);
  }

  private settleEntry(entry: Entry): void {
    entry.state = 'settling';
    entry.cursor.acks.add(entry.offset);
    this.forget(entry);
    this.hooks.dirty(entry.cursor);
  }

  private forget(entry: Entry): void {
    entry.cursor.entries.delete(entry.offset);
    entry.cursor.counts.delete(entry.offset);
    entry.cursor.waits.delete(entry.offset);
  }

  private expire(entry: Entry): void {
    this.hooks.trace?.({ kind: 'expired', partition: entry.cursor.partition, message: entry.message, deliveries: entry.deliveries, expiresAt: entry.expiresAt });
    if (this.settings.deadLetterExpired) this.deadLetter(entry, 'expired');
    else this.settleEntry(entry);
  }

  /** Copies the message to the dead-letter topic, then settles it; a failed append retries after a backoff. */
  private deadLetter(entry: Entry, reason: DeadLetterReason): void {
    entry.state = 'settling';
    entry.consumer = null;
    this.hooks
      .deadLetter({ partition: entry.cursor.partition, message: entry.message, reason, deliveries: entry.deliveries, error: entry.lastError })
      .then(
        () => {
          // A subscription ended meanwhile keeps nothing: its successor (if any) reads the message again.
          if (!this.closed) this.settleEntry(entry);
        },
        (error: unknown) => {
          if (this.closed) return;
          this.logger.warn({ err: error, group: this.group, topic: this.topic, partition: entry.cursor.partition, offset: entry.offset }, 'dead-lettering failed; retrying');
          // Back to ready after a pause; its next lease end dead-letters it again (the count already says so).
          this.wait(entry, Math.max(100, this.settings.backoffInitialMs));
        },
      );
  }

  private backoff(deliveries: number): number {
    return Math.min(this.settings.backoffMaxMs, this.settings.backoffInitialMs * 2 ** Math.max(0, Math.min(30, deliveries - 1)));
  }

  // ---- timers -------------------------------------------------------------------------------------------------------

  /** Leases that ran out: the messages are redelivered (oldest first at the front of their lists). */
  private leasesEnded(entries: Entry[]): void {
    entries.sort(newestFirst);
    for (const entry of entries) if (entry.state === 'inflight') this.endLease(entry, null);
    this.logger.debug({ group: this.group, topic: this.topic, count: entries.length }, 'leases expired; redelivering');
    this.scheduleDispatch();
  }

  /** Nack delays that ended: the messages are ready again, ahead of the rest (oldest first). */
  private waitsEnded(entries: Entry[]): void {
    entries.sort(newestFirst);
    for (const entry of entries) {
      if (entry.key !== null) {
        const state = this.keys.get(entry.key);
        if (state !== undefined) {
          state.waiting--;
          if (state.inflight === 0 && state.waiting === 0) this.releaseKey(entry.key, state);
        }
      }
      this.requeueFront(entry);
    }
    this.scheduleDispatch();
  }

  /**
   * Ready messages expire without a consumer to offer them to, as in RabbitMQ: when a message at the head of its ready
   * list is due, it and every expired one right behind it are dropped (or dead-lettered). Each list keeps one deadline,
   * its head's. That is exact wherever a list is in expiry order — a group's `messageTtlMs`, or one TTL for all —
   * and costs nothing per message; a per-message TTL shorter than a message ahead of it waits, as in RabbitMQ, until
   * that one leaves the head (dispatch never hands out an expired message either way). Expiry is wall time: the
   * deadline is converted to the monotonic clock when set and checked against the wall clock when it comes.
   */
  private armExpiry(priority: number): void {
    const head = this.ready[priority]!.peekFront();
    if (this.closed || head === undefined || head.expiresAt === Number.POSITIVE_INFINITY) return;
    const due = this.clock.monotonic() + Math.max(0, head.expiresAt - this.clock.now());
    // A later head keeps the earlier deadline: that firing finds its head not due and moves on to the current one.
    const armed = this.expiries.get(priority);
    if (armed === undefined || due < armed) this.expiries.set(priority, due);
  }

  private headsDue(priorities: number[]): void {
    const now = this.clock.now();
    let expired = 0;
    for (const priority of priorities) {
      const list = this.ready[priority]!;
      for (let head = list.peekFront(); head !== undefined && head.expiresAt <= now; head = list.peekFront()) {
        list.popFront();
        this.leftReady(head);
        expired++;
        this.expire(head);
      }
      this.armExpiry(priority);
    }
    // Room in the read-ahead: messages behind these may be expired too.
    if (expired > 0) this.fill();
  }

  // ---- length limits ------------------------------------------------------------------------------------------------

  /** Ready messages: unsettled, not in flight, not waiting. */
  readyLength(): number {
    let unread = 0;
    for (const cursor of this.cursors) {
      if (cursor === undefined) continue;
      const end = this.store.queueById(cursor.queueId)?.endOffset ?? cursor.readHead;
      if (end > cursor.readHead) unread += end - cursor.readHead - cursor.acks.settledIn(cursor.readHead, end);
    }
    return this.readyCount + unread;
  }

  /** The limit a `reject-publish` group is at (produces are refused meanwhile), or null. */
  rejectingLimit(): { setting: 'maxLength' | 'maxBytes'; max: number } | null {
    const { maxLength, maxBytes, overflow } = this.settings;
    if (overflow !== 'reject-publish') return null;
    if (maxLength !== null && this.readyLength() >= maxLength) return { setting: 'maxLength', max: maxLength };
    if (maxBytes !== null && this.readyBytes >= maxBytes) return { setting: 'maxBytes', max: maxBytes };
    return null;
  }

  /**
   * Drops (or dead-letters) the oldest ready messages while the ready ones are over maxLength or maxBytes. Oldest
   * first, whatever their priority (RabbitMQ drops from the head the same way): the ones already read come before
   * everything unread. Each round picks the oldest with a bounded heap in one pass over the ready lists; a round
   * covers the count excess and, for bytes, a guess from the mean body size that doubles when it falls short.
   */
  private enforceLimits(): void {
    const { maxLength, maxBytes, overflow } = this.settings;
    if ((maxLength === null && maxBytes === null) || overflow === 'reject-publish' || this.closed) return;
    let excess = maxLength === null ? 0 : this.readyLength() - maxLength;
    let excessBytes = maxBytes === null ? 0 : this.readyBytes - maxBytes;
    let pick = 0;
    const before = this.readyCount;
    while ((excess > 0 || excessBytes > 0) && this.readyCount > 0) {
      // Over maxBytes means readyBytes > 0: the mean body size is defined.
      const forBytes = excessBytes <= 0 ? 0 : Math.ceil((excessBytes * this.readyCount) / this.readyBytes);
      pick = Math.min(this.readyCount, Math.max(excess, forBytes, pick * 2, 1));
      const oldest = new Smallest<Entry>(pick, oldestStored);
      for (const list of this.ready) for (let i = 0; i < list.length; i++) oldest.offer(list.at(i));
      const dropped = new Set<Entry>();
      for (const entry of oldest.take()) {
        if (excess <= 0 && excessBytes <= 0) break;
        dropped.add(entry);
        excess--;
        excessBytes -= bodyBytes(entry);
      }
      this.removeReady(dropped);
      for (const entry of dropped) this.overflowOne(entry);
    }
    // What was dropped made room in the read-ahead for the messages behind it.
    if (this.readyCount < before) this.fill();
    if (excess > 0 && overflow === 'drop-head') {
      // Unread messages beyond maxLength are settled without reading them.
      for (const cursor of this.cursors) {
        if (cursor === undefined || excess <= 0 || cursor.reading) continue;
        const end = this.store.queueById(cursor.queueId)?.endOffset ?? cursor.readHead;
        let offset = cursor.acks.nextUnsettled(cursor.readHead);
        while (excess > 0 && offset < end) {
          cursor.acks.add(offset);
          excess--;
          offset = cursor.acks.nextUnsettled(offset + 1);
        }
        cursor.readHead = Math.max(cursor.readHead, Math.min(offset, end));
        this.hooks.dirty(cursor);
      }
    }
    // Dead-letter overflow of unread messages, and anything over maxBytes among them, happens as they are read (the
    // read-ahead goes on while the ready bodies are within maxBytes; see readRoom).
  }

  /**
   * Takes ready entries out of their lists: one pass per list, however many go, and no further than the last of them
   * (the oldest, which overflow takes, are near the front).
   */
  private removeReady(entries: ReadonlySet<Entry>): void {
    let left = entries.size;
    for (let priority = 0; priority <= MAX_PRIORITY && left > 0; priority++) {
      const removed = this.ready[priority]!.retain(
        (entry) => {
          if (!entries.has(entry)) return true;
          left--;
          this.readyBytes -= bodyBytes(entry);
          return false;
        },
        () => left === 0,
      );
      this.readyCount -= removed;
      if (removed > 0) this.armExpiry(priority);
    }
  }

  private overflowOne(entry: Entry): void {
    if (this.settings.overflow === 'dead-letter') this.deadLetter(entry, 'overflow');
    else this.settleEntry(entry);
  }

  // ---- inspection ---------------------------------------------------------------------------------------------------

  /** Ready messages in dispatch order, without consuming them (`weir queue peek`). */
  peek(limit: number): Array<{ partition: number; message: StoredMessage; deliveries: number }> {
    const out: Array<{ partition: number; message: StoredMessage; deliveries: number }> = [];
    for (let priority = MAX_PRIORITY; priority >= 0 && out.length < limit; priority--) {
      for (const entry of this.ready[priority]!) {
        if (out.length >= limit) break;
        out.push({ partition: entry.cursor.partition, message: entry.message, deliveries: entry.deliveries });
      }
    }
    return out;
  }

  stats(): SubscriptionStats {
    return {
      ready: this.readyCount,
      readyBytes: this.readyBytes,
      inflight: this.inflightCount,
      waiting: this.waits.size,
      consumers: this.consumers.size,
      unread: this.readyLength() - this.readyCount,
      staleAcks: this.staleAcks,
    };
  }

  describeConsumers(): Array<{ consumerId: string; clientId: string; address: string; prefetch: number; inflight: number }> {
    return [...this.consumers.values()].map((consumer) => ({
      consumerId: consumer.id,
      clientId: consumer.options.clientId,
      address: consumer.options.address,
      prefetch: consumer.options.prefetch,
      inflight: consumer.inflight,
    }));
  }

  /**
   * Stops the timers and ends waiting Receives; in-flight state stays as the last flush persisted it (the caller
   * flushes). For a broker that closes: the subscription resumes from its cursors when the broker opens again.
   */
  close(): void {
    this.closed = true;
    if (this.readRetry !== null) this.scheduler.clearTimeout(this.readRetry);
    this.readRetry = null;
    this.leases.clear();
    this.waits.clear();
    this.expiries.clear();
    for (const consumer of this.consumers.values()) consumer.options.sink.ended?.();
  }

  /**
   * Ends the subscription for good: its group or topic was deleted, or its filter changed (a successor takes over the
   * cursors). Every consumer is closed and leaves its credit pool, and what it held in flight gives that credit back
   * without being redelivered, so a channel-wide prefetch shared with other queues is not used up by a dead one.
   */
  dispose(): void {
    for (const consumer of this.consumers.values()) {
      consumer.closed = true;
      consumer.leavePool?.();
      consumer.leavePool = null;
      const pool = consumer.options.pool;
      const held = consumer.dropAll();
      if (pool !== undefined) for (let count = held; count > 0; count--) pool.returned();
    }
    this.inflightCount = 0;
    this.close();
    this.consumers.clear();
    this.consumerList = [];
    this.ring = [];
  }
}
