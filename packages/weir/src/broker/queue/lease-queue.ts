import type { Clock } from '../../core/clock.js';
import { type Scheduler, WakeUp } from '../scheduler.js';
import { DeadlineTimer } from './deadline-timer.js';

/** Something that can be leased: `leaseEnd` is its lease's end (monotonic ms), NaN while it holds none. */
export interface Leasable {
  leaseEnd: number;
}

const INITIAL_CAPACITY = 1024;
/** Records of ended leases are swept once they outnumber live leases by this much. */
const COMPACT_SLACK = 4096;

/**
 * The lease ends of in-flight messages, behind at most two timers. A lease runs for the group's ack timeout from when
 * it is granted, so lease ends come in nondecreasing order: a ring of (item, end) records in grant order holds them at
 * O(1) per lease and no allocation per lease, where a heap needs a slot, an entry and a map update each. Ending a lease
 * (an ack: nearly every lease) only marks the item (`leaseEnd = NaN`); its record no longer matches and is dropped
 * when it reaches the front, or swept when stale records pile up. A lease end out of order (a lease extended, or one
 * granted under a shorter ack timeout after a settings change) goes to a DeadlineTimer instead.
 *
 * `fire(items)` gets every item whose lease end was reached when a timer went off, each once and never early, with
 * its lease already ended (`leaseEnd` NaN): the callback grants a new lease to any it wants to keep leased.
 */
export class LeaseQueue<T extends Leasable> {
  private items: Array<T | undefined> = new Array<T | undefined>(INITIAL_CAPACITY);
  private ends = new Float64Array(INITIAL_CAPACITY);
  private head = 0;
  private length = 0;
  private live = 0;
  private readonly outOfOrder: DeadlineTimer<T>;
  private readonly wakeUp: WakeUp;

  constructor(
    private readonly clock: Clock,
    scheduler: Scheduler,
    private readonly fire: (items: T[]) => void,
  ) {
    // An earlier timer stays when a later lease is added: when it fires early it only re-arms for the front.
    this.wakeUp = new WakeUp(clock, scheduler, () => this.run());
    this.outOfOrder = new DeadlineTimer(clock, scheduler, (items) => this.firedOutOfOrder(items));
  }

  /** Leases currently held. */
  get size(): number {
    return this.live;
  }

  /** Grants `item` a lease ending at `end` (monotonic ms), replacing any it holds. */
  start(item: T, end: number): void {
    if (!Number.isNaN(item.leaseEnd)) this.end(item);
    item.leaseEnd = end;
    this.live++;
    this.dropStaleFront();
    if (this.length > 0 && end < this.ends[(this.head + this.length - 1) & (this.ends.length - 1)]!) {
      this.outOfOrder.set(item, end);
      return;
    }
    // Stale records hold acked messages in memory: sweep them before they pile up, and before growing.
    if (this.length === this.ends.length || this.length > 2 * this.live + COMPACT_SLACK) {
      this.rewrite(this.live * 2 > this.ends.length ? this.ends.length * 2 : this.ends.length);
      // Still full: an item ended and leased again at the same instant has two matching records.
      if (this.length === this.ends.length) this.rewrite(this.ends.length * 2);
    }
    const at = (this.head + this.length) & (this.ends.length - 1);
    this.items[at] = item;
    this.ends[at] = end;
    this.length++;
    if (this.length === 1) this.wakeUp.at(end);
  }

  /** Moves a held lease's end to `end` (later or earlier). */
  extend(item: T, end: number): void {
    if (Number.isNaN(item.leaseEnd)) return;
    // Its ring record (if any) stops matching and is skipped.
    item.leaseEnd = end;
    this.outOfOrder.set(item, end);
  }

  /** Ends a held lease early (an outcome arrived); nothing fires for it. */
  end(item: T): void {
    if (Number.isNaN(item.leaseEnd)) return;
    item.leaseEnd = Number.NaN;
    this.live--;
    if (this.outOfOrder.size > 0) this.outOfOrder.delete(item);
  }

  /** Forgets every lease (the items keep their `leaseEnd`) and cancels the timers. */
  clear(): void {
    this.wakeUp.cancel();
    this.outOfOrder.clear();
    this.items = new Array<T | undefined>(INITIAL_CAPACITY);
    this.ends = new Float64Array(INITIAL_CAPACITY);
    this.head = 0;
    this.length = 0;
    this.live = 0;
  }

  /** Drops ended leases' records from the front, so the front (and the timer) is usually a live lease. */
  private dropStaleFront(): void {
    const mask = this.ends.length - 1;
    while (this.length > 0) {
      const item = this.items[this.head]!;
      if (item.leaseEnd === this.ends[this.head]) return;
      this.items[this.head] = undefined;
      this.head = (this.head + 1) & mask;
      this.length--;
    }
  }

  private run(): void {
    const now = this.clock.monotonic();
    const due: T[] = [];
    const mask = this.ends.length - 1;
    while (this.length > 0 && this.ends[this.head]! <= now) {
      const item = this.items[this.head]!;
      // Ending each lease as it is taken also keeps an item whose ring holds two matching records from firing twice.
      if (item.leaseEnd === this.ends[this.head]) {
        item.leaseEnd = Number.NaN;
        this.live--;
        due.push(item);
      }
      this.items[this.head] = undefined;
      this.head = (this.head + 1) & mask;
      this.length--;
    }
    this.dropStaleFront();
    if (this.length > 0) this.wakeUp.at(this.ends[this.head]!);
    if (due.length > 0) this.fire(due);
  }

  private firedOutOfOrder(items: T[]): void {
    const due: T[] = [];
    for (const item of items) {
      if (Number.isNaN(item.leaseEnd)) continue;
      item.leaseEnd = Number.NaN;
      this.live--;
      due.push(item);
    }
    if (due.length > 0) this.fire(due);
  }

  /** Moves the records that still match their item's lease, in order, into a ring of `capacity`. */
  private rewrite(capacity: number): void {
    const items = new Array<T | undefined>(capacity);
    const ends = new Float64Array(capacity);
    const mask = this.ends.length - 1;
    let kept = 0;
    for (let index = 0; index < this.length; index++) {
      const at = (this.head + index) & mask;
      const item = this.items[at]!;
      if (item.leaseEnd !== this.ends[at]) continue;
      items[kept] = item;
      ends[kept] = this.ends[at]!;
      kept++;
    }
    this.items = items;
    this.ends = ends;
    this.head = 0;
    this.length = kept;
  }
}
