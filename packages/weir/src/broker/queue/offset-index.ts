const INITIAL_CAPACITY = 256;
/** Holes left by deleted items are swept once they outnumber the items by this much. */
const COMPACT_SLACK = 1024;

/**
 * Items by offset, added in increasing offset order: a partition's unsettled messages in memory, which a shared group
 * reads in log order and settles in any order. A ring of (offset, item) slots searched by bisection replaces a
 * Map<number, Entry>: adding and deleting cost no allocation and no rehashing (a map that grows and shrinks with every
 * read-ahead batch and every ack reallocates its table). A deleted item leaves a hole; holes at either end are dropped
 * at once, the rest swept when they outnumber the items.
 */
export class OffsetIndex<T> {
  private items: Array<T | undefined> = new Array<T | undefined>(INITIAL_CAPACITY);
  private offsets = new Float64Array(INITIAL_CAPACITY);
  private head = 0;
  private length = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  /** Adds `item` at `offset`, which must be above every offset held (holes included). */
  add(offset: number, item: T): void {
    if (this.length > 0 && offset <= this.offsets[(this.head + this.length - 1) & (this.offsets.length - 1)]!) {
      throw new Error(`offset ${offset} added out of order`);
    }
    if (this.length === this.offsets.length || this.length > 2 * this.live + COMPACT_SLACK) {
      this.rewrite(this.live * 2 > this.offsets.length ? this.offsets.length * 2 : this.offsets.length);
    }
    const at = (this.head + this.length) & (this.offsets.length - 1);
    this.items[at] = item;
    this.offsets[at] = offset;
    this.length++;
    this.live++;
  }

  get(offset: number): T | undefined {
    const index = this.find(offset);
    return index < 0 ? undefined : this.items[(this.head + index) & (this.offsets.length - 1)];
  }

  has(offset: number): boolean {
    return this.get(offset) !== undefined;
  }

  /** Removes the item at `offset`; false when there is none. */
  delete(offset: number): boolean {
    const index = this.find(offset);
    if (index < 0) return false;
    const mask = this.offsets.length - 1;
    const at = (this.head + index) & mask;
    if (this.items[at] === undefined) return false;
    this.items[at] = undefined;
    this.live--;
    while (this.length > 0 && this.items[this.head] === undefined) {
      this.head = (this.head + 1) & mask;
      this.length--;
    }
    while (this.length > 0 && this.items[(this.head + this.length - 1) & mask] === undefined) this.length--;
    return true;
  }

  /** The items in offset order. */
  *values(): IterableIterator<T> {
    const mask = this.offsets.length - 1;
    for (let index = 0; index < this.length; index++) {
      const item = this.items[(this.head + index) & mask];
      if (item !== undefined) yield item;
    }
  }

  /** The position of `offset` among the slots, or -1. */
  private find(offset: number): number {
    if (this.live === 0) return -1;
    const mask = this.offsets.length - 1;
    let low = 0;
    let high = this.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const value = this.offsets[(this.head + middle) & mask]!;
      if (value < offset) low = middle + 1;
      else if (value > offset) high = middle - 1;
      else return middle;
    }
    return -1;
  }

  /** Moves the items (not the holes), in order, into a ring of `capacity`. */
  private rewrite(capacity: number): void {
    const items = new Array<T | undefined>(capacity);
    const offsets = new Float64Array(capacity);
    const mask = this.offsets.length - 1;
    let kept = 0;
    for (let index = 0; index < this.length; index++) {
      const at = (this.head + index) & mask;
      const item = this.items[at];
      if (item === undefined) continue;
      items[kept] = item;
      offsets[kept] = this.offsets[at]!;
      kept++;
    }
    this.items = items;
    this.offsets = offsets;
    this.head = 0;
    this.length = kept;
  }
}
