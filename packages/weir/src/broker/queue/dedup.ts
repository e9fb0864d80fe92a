import type { Clock } from '../../core/clock.js';
import type { AppendResult, MessageStore } from '../../storage/message-store.js';
import { RecordFlag } from '../../storage/record-batch.js';
import { invalidArgument } from '../errors.js';

export const DEFAULT_DEDUP_WINDOW_MS = 10 * 60_000;
export const DEFAULT_DEDUP_MAX_ENTRIES = 1_000_000;

export interface DedupOptions {
  store: MessageStore;
  clock: Clock;
  /** How long after it was stored a message id still makes a resend a duplicate (store time, wall clock). */
  windowMs?: number;
  /** Most ids kept in memory; the oldest go first. */
  maxEntries?: number;
}

/** Where a message was stored: what a duplicate's producer is answered with. */
export interface StoredLocation {
  queueId: number;
  offset: number;
  storeTimestamp: number;
  position: number;
}

/**
 * The ids of one produce, claimed by `begin`. Store the messages at `fresh`, then call `complete` with their locations,
 * or `abort` if the append failed or was never made. Until then a concurrent `begin` or `check` of the same ids waits.
 * `complete` and `abort` are final and make later calls no-ops, so `try { …; complete(…) } finally { abort() }` works.
 * Every reservation must end in one of them: a forgotten one makes later produces of its ids wait forever.
 */
export interface DedupReservation {
  /** Per id: the original's location when it is a duplicate (do not store it), else null. */
  readonly duplicates: ReadonlyArray<StoredLocation | null>;
  /**
   * Per id: the index of an earlier message of the same call with the same id, or -1. A repeat is not stored either;
   * it was stored where that earlier message is (or is a duplicate of the same original).
   */
  readonly repeatOf: readonly number[];
  /** The indexes to store, in order: no original and no earlier repeat (messages without an id are always fresh). */
  readonly fresh: readonly number[];
  /** `locations[j]` is where the message `fresh[j]` was stored. Remembers the ids and wakes waiting duplicates. */
  complete(locations: readonly StoredLocation[]): void;
  /** Releases the ids without remembering them: a waiting duplicate then claims them and is stored. */
  abort(): void;
}

/** An id claimed by a reservation whose append is in flight, and whoever waits for it. */
interface Hold {
  readonly owner: Reservation;
  /** Created only when someone waits, so an uncontended produce allocates no promise per id. */
  released: Promise<void> | null;
  release: (() => void) | null;
}

type Claim = { reservation: Reservation; needDisk: number[] } | { waitFor: Promise<void>[] };

/**
 * Broker-side deduplication by client-chosen message id, for producers that are not idempotent (a client process that
 * restarted and resends with the same message ids). Idempotent producers are deduplicated by sequence number instead
 * (producer-state.ts); this catches what they cannot: a new producer id resending old messages.
 *
 * The guarantee: a message whose id equals that of a message stored less than `windowMs` ago (by the original's store
 * time against the wall clock now) is reported as a duplicate with the original's location, provided that
 * - fewer than `maxEntries` ids were remembered after the original's (memory holds the newest `maxEntries` ids; an id
 *   pushed out by count is forgotten early, and is not looked up on disk once the broker has warmed up), and
 * - when the original was stored before this instance started (a broker restart), it is still readable: the store's
 *   id index (`findById`) answers for ids not in memory while this instance is younger than `windowMs`, by monotonic
 *   uptime or by wall clock since start, whichever is longer. After that, every original still in the window was
 *   stored by this instance and is in memory unless pushed out by count. A message removed by retention or
 *   `advanceLowWaterMark` cannot be found on disk.
 * Messages without an id are never duplicates. Ids are compared byte for byte and across all queues (control
 * records found on disk do not count). Age is wall-clock time: a clock step back keeps ids longer, a step forward
 * forgets them early.
 *
 * Concurrency: `begin` claims the ids of a produce before its append; a concurrent `begin` or `check` of a claimed id
 * waits until the claim completes (then it is a duplicate of that location) or aborts (then the waiter claims it and is
 * stored). So two produces of one id racing are stored once. A claim never waits while it holds ids (it claims all of
 * a call's ids at once or none), so claims cannot deadlock. The disk lookup of the warm-up period happens while the
 * claim is held, so two racing produces do not both miss on disk and both store.
 *
 * Memory: one Map entry per id (its bytes as a latin1 string, four numbers), in insertion order, so eviction by age
 * from the front and by count are O(1) amortized. Age eviction runs on every call that writes.
 */
export class MessageDedup {
  readonly windowMs: number;
  readonly maxEntries: number;
  private readonly store: MessageStore;
  private readonly clock: Clock;
  /** id (latin1 string of its bytes) → where it was stored; insertion order ≈ store order. */
  private readonly remembered = new Map<string, StoredLocation>();
  private readonly holds = new Map<string, Hold>();
  private readonly startedWall: number;
  private readonly startedMonotonic: number;
  private warm = true;
  private lastAgedEviction = Number.NEGATIVE_INFINITY;
  private evictionCursor: IterableIterator<string> = new Map<string, never>().keys();
  private hits = 0;
  private diskLookups = 0;

  constructor(options: DedupOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.windowMs = options.windowMs ?? DEFAULT_DEDUP_WINDOW_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_DEDUP_MAX_ENTRIES;
    if (!Number.isSafeInteger(this.windowMs) || this.windowMs < 1) throw invalidArgument(`dedup windowMs must be a positive integer, not ${this.windowMs}`);
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) throw invalidArgument(`dedup maxEntries must be a positive integer, not ${this.maxEntries}`);
    this.startedWall = this.clock.now();
    // A store with no messages yet cannot hold an original: skip the disk lookups of the warm-up period.
    this.warm = this.store.listQueues().some((queue) => queue.endOffset > 0);
    this.startedMonotonic = this.clock.monotonic();
  }

  /**
   * Per id: the original's location if one was stored within the window, else null. Read-only: claims nothing, so
   * use `begin` on the produce path. Waits for ids in flight; resolves from memory alone when it can.
   */
  check(ids: readonly (Buffer | null)[]): Promise<Array<StoredLocation | null>> {
    const answers = this.checkInMemory(ids);
    if (!answers.includes(undefined)) return Promise.resolve(answers as Array<StoredLocation | null>);
    return this.checkSlowly(ids, answers);
  }

  /**
   * Synchronous `check`: per id the original's location, null when it is certainly not a duplicate, or undefined when
   * memory cannot tell (the id is in flight, or the warm-up period needs the disk).
   */
  checkInMemory(ids: readonly (Buffer | null)[]): Array<StoredLocation | null | undefined> {
    const now = this.clock.now();
    const warming = this.warmingUp(now);
    const answers: Array<StoredLocation | null | undefined> = new Array(ids.length);
    for (let index = 0; index < ids.length; index++) {
      const id = ids[index];
      if (id === null || id === undefined) {
        answers[index] = null;
        continue;
      }
      const key = keyOf(id);
      const found = this.inMemory(key, now);
      if (found !== null) {
        this.hits++;
        answers[index] = found;
      } else answers[index] = this.holds.has(key) || warming ? undefined : null;
    }
    return answers;
  }

  /**
   * Claims the ids of a produce (see DedupReservation). Resolves at once (a resolved promise, no disk) when memory
   * decides every id and none is in flight; `tryBegin` is the synchronous form.
   */
  begin(ids: readonly (Buffer | null)[]): Promise<DedupReservation> {
    const claim = this.claim(ids);
    if ('reservation' in claim && claim.needDisk.length === 0) return Promise.resolve(claim.reservation);
    return this.beginSlowly(ids, claim);
  }

  /** `begin` when it needs neither the disk nor a wait; null otherwise (and nothing is claimed). */
  tryBegin(ids: readonly (Buffer | null)[]): DedupReservation | null {
    const claim = this.claim(ids);
    if (!('reservation' in claim)) return null;
    if (claim.needDisk.length > 0) {
      claim.reservation.abort();
      return null;
    }
    return claim.reservation;
  }

  /** Records ids just stored without a reservation (call after the append resolved). */
  remember(ids: readonly Buffer[], locations: readonly StoredLocation[]): void {
    if (ids.length !== locations.length) throw invalidArgument(`remember got ${ids.length} ids and ${locations.length} locations`);
    for (let index = 0; index < ids.length; index++) this.rememberKey(keyOf(ids[index]!), locations[index]!);
    this.evictAged(this.clock.now());
  }

  stats(): { entries: number; hits: number; inFlight: number; diskLookups: number } {
    return { entries: this.remembered.size, hits: this.hits, inFlight: this.holds.size, diskLookups: this.diskLookups };
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  /**
   * Claims every id of the call that memory does not already know as a duplicate, or nothing when any of them is held
   * by another claim (then the caller waits for those and tries again).
   */
  private claim(ids: readonly (Buffer | null)[]): Claim {
    const now = this.clock.now();
    this.evictAged(now);
    const count = ids.length;
    const keys: Array<string | null> = new Array(count);
    const duplicates: Array<StoredLocation | null> = new Array(count);
    const repeatOf: number[] = new Array(count);
    // Only a batch can repeat an id within itself; a single message needs no map.
    const firstIndex = count > 1 ? new Map<string, number>() : null;
    let waitFor: Promise<void>[] | null = null;
    for (let index = 0; index < count; index++) {
      duplicates[index] = null;
      repeatOf[index] = -1;
      keys[index] = null;
      const id = ids[index];
      if (id === null || id === undefined) continue;
      const key = keyOf(id);
      if (firstIndex !== null) {
        const first = firstIndex.get(key);
        if (first !== undefined) {
          repeatOf[index] = first;
          continue;
        }
        firstIndex.set(key, index);
      }
      const found = this.inMemory(key, now);
      if (found !== null) {
        duplicates[index] = found;
        continue;
      }
      const hold = this.holds.get(key);
      if (hold !== undefined) (waitFor ??= []).push(released(hold));
      else keys[index] = key;
    }
    if (waitFor !== null) return { waitFor };
    const reservation = new Reservation(this, keys, duplicates, repeatOf);
    const warming = this.warmingUp(now);
    const needDisk: number[] = [];
    for (let index = 0; index < count; index++) {
      const key = keys[index];
      if (key === null || key === undefined) continue;
      this.holds.set(key, { owner: reservation, released: null, release: null });
      if (warming) needDisk.push(index);
    }
    if (needDisk.length === 0) this.seal(reservation);
    return { reservation, needDisk };
  }

  private async beginSlowly(ids: readonly (Buffer | null)[], claim: Claim): Promise<DedupReservation> {
    for (;;) {
      if ('waitFor' in claim) {
        await Promise.all(claim.waitFor);
        claim = this.claim(ids);
        continue;
      }
      const { reservation, needDisk } = claim;
      if (needDisk.length > 0) {
        try {
          const found = await Promise.all(needDisk.map((index) => this.findStored(ids[index]!)));
          for (let at = 0; at < needDisk.length; at++) {
            const location = found[at];
            if (location !== null && location !== undefined) reservation.foundOnDisk(needDisk[at]!, location);
          }
        } catch (error) {
          reservation.abort();
          throw error;
        }
        this.seal(reservation);
      }
      return reservation;
    }
  }

  private async checkSlowly(ids: readonly (Buffer | null)[], answers: Array<StoredLocation | null | undefined>): Promise<Array<StoredLocation | null>> {
    await Promise.all(
      answers.map(async (answer, index) => {
        if (answer !== undefined) return;
        const id = ids[index]!;
        const key = keyOf(id);
        for (;;) {
          const hold = this.holds.get(key);
          if (hold !== undefined) {
            await released(hold);
            continue;
          }
          const now = this.clock.now();
          let found = this.inMemory(key, now);
          if (found === null && this.warmingUp(now)) {
            found = await this.findStored(id);
            // A fact about the store, not a claim: keep it so the produce that usually follows needs no lookup.
            if (found !== null) this.rememberKey(key, found);
          }
          if (found !== null) this.hits++;
          answers[index] = found;
          return;
        }
      }),
    );
    return answers as Array<StoredLocation | null>;
  }

  /** The original of an id through the store's id index, if it is within the window. */
  private async findStored(id: Buffer): Promise<StoredLocation | null> {
    this.diskLookups++;
    const message = await this.store.findById(id);
    if (message === null || (message.flags & RecordFlag.Control) !== 0) return null;
    if (!this.young(message.storeTimestamp, this.clock.now())) return null;
    return { queueId: message.queueId, offset: message.offset, storeTimestamp: message.storeTimestamp, position: message.position };
  }

  /**
   * Whether ids not in memory may still have been stored within the window before this instance started. Wall clock
   * is what the window is measured on; monotonic uptime keeps a wall-clock step forward from cutting it short.
   */
  private warmingUp(now: number): boolean {
    if (!this.warm) return false;
    if (now - this.startedWall < this.windowMs || this.clock.monotonic() - this.startedMonotonic < this.windowMs) return true;
    this.warm = false;
    return false;
  }

  private young(storeTimestamp: number, now: number): boolean {
    return now - storeTimestamp < this.windowMs;
  }

  private inMemory(key: string, now: number): StoredLocation | null {
    const found = this.remembered.get(key);
    if (found === undefined) return null;
    if (this.young(found.storeTimestamp, now)) return found;
    this.remembered.delete(key);
    return null;
  }

  /** @internal Called by reservations. */
  rememberKey(key: string, location: StoredLocation): void {
    // Delete first so a re-stored id moves to the back of the insertion order.
    this.remembered.delete(key);
    this.remembered.set(key, { queueId: location.queueId, offset: location.offset, storeTimestamp: location.storeTimestamp, position: location.position });
    while (this.remembered.size > this.maxEntries) this.evictOldest();
  }

  /**
   * Drops the oldest id. A fresh `keys()` iterator would walk every slot deleted at the front since the map last
   * compacted (O(deleted) per eviction); one long-lived iterator moves forward once over them (O(1) amortized). Map
   * iterators are live: ids stored again after it passed them are met again at the back, in their new order.
   */
  private evictOldest(): void {
    let next = this.evictionCursor.next();
    if (next.done) {
      this.evictionCursor = this.remembered.keys();
      next = this.evictionCursor.next();
    }
    if (!next.done) this.remembered.delete(next.value);
  }

  /** @internal Called by reservations: drops `owner`'s hold of `key` and wakes whoever waits for it. */
  releaseKey(key: string, owner: Reservation): void {
    const hold = this.holds.get(key);
    if (hold === undefined || hold.owner !== owner) return;
    this.holds.delete(key);
    hold.release?.();
  }

  /**
   * Drops ids older than the window from the front. Entries are remembered roughly in store-time order (appends
   * resolve in order, callers remember right after); one that is out of order only lives a little longer, and a
   * lookup checks the age itself.
   */
  private evictAged(now: number): void {
    // Walking from the front passes every slot deleted there since the map last compacted: do it once a second, not
    // per produce (lookups check the age themselves, so a stale entry in between is never taken for a duplicate).
    if (now - this.lastAgedEviction < 1000) return;
    this.lastAgedEviction = now;
    for (const [key, location] of this.remembered) {
      if (this.young(location.storeTimestamp, now)) return;
      this.remembered.delete(key);
    }
  }

  private seal(reservation: Reservation): void {
    reservation.seal();
    for (let index = 0; index < reservation.duplicates.length; index++) {
      if (reservation.duplicates[index] !== null || reservation.repeatOf[index]! >= 0) this.hits++;
    }
  }
}

/** The location of each message of an append, for `complete` and `remember`. */
export function storedLocations(result: AppendResult): StoredLocation[] {
  const locations: StoredLocation[] = new Array(result.count);
  for (let index = 0; index < result.count; index++) {
    locations[index] = { queueId: result.queueId, offset: result.baseOffset + index, storeTimestamp: result.storeTimestamp, position: result.position };
  }
  return locations;
}

function keyOf(id: Buffer): string {
  // latin1 maps each byte to one char: a compact, exact Map key (hex would double it).
  return id.toString('latin1');
}

function released(hold: Hold): Promise<void> {
  hold.released ??= new Promise<void>((resolve) => (hold.release = resolve));
  return hold.released;
}

class Reservation implements DedupReservation {
  fresh: number[] = [];
  private done = false;

  constructor(
    private readonly dedup: MessageDedup,
    /** Per id: the key this reservation holds, or null. */
    private readonly keys: Array<string | null>,
    readonly duplicates: Array<StoredLocation | null>,
    readonly repeatOf: number[],
  ) {}

  /** The warm-up lookup found an original: the id is a duplicate, remembered, and released to waiters as such. */
  foundOnDisk(index: number, location: StoredLocation): void {
    const key = this.keys[index]!;
    this.keys[index] = null;
    this.duplicates[index] = location;
    this.dedup.rememberKey(key, location);
    this.dedup.releaseKey(key, this);
  }

  /** Fixes the answer once every id is decided: repeats follow their first message; the rest is fresh. */
  seal(): void {
    for (let index = 0; index < this.repeatOf.length; index++) {
      const first = this.repeatOf[index]!;
      if (first >= 0) this.duplicates[index] = this.duplicates[first]!;
      else if (this.duplicates[index] === null) this.fresh.push(index);
    }
  }

  complete(locations: readonly StoredLocation[]): void {
    if (this.done) return;
    if (locations.length !== this.fresh.length) {
      this.abort();
      throw invalidArgument(`a dedup reservation of ${this.fresh.length} fresh messages was completed with ${locations.length} locations`);
    }
    this.done = true;
    for (let at = 0; at < this.fresh.length; at++) {
      const index = this.fresh[at]!;
      const key = this.keys[index];
      if (key === null || key === undefined) continue;
      this.dedup.rememberKey(key, locations[at]!);
      this.dedup.releaseKey(key, this);
    }
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    for (const key of this.keys) if (key !== null) this.dedup.releaseKey(key, this);
  }
}
