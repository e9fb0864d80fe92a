/**
 * A double-ended queue on a growable ring buffer: O(1) push and pop at both ends, which a plain array cannot give
 * at the front (`unshift` copies). Ready lists push redeliveries to the front and new messages to the back.
 */
export class Deque<T> {
  private items: Array<T | undefined>;
  private head = 0;
  private count = 0;

  constructor(capacity = 16) {
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  pushBack(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count++;
  }

  pushFront(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = item;
    this.count++;
  }

  peekFront(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  popFront(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count--;
    return item;
  }

  at(index: number): T {
    return this.items[(this.head + index) % this.items.length] as T;
  }

  /** Keeps the items for which `keep` is true, in order; returns how many were removed. */
  retain(keep: (item: T) => boolean): number {
    const kept: T[] = [];
    for (let i = 0; i < this.count; i++) {
      const item = this.at(i);
      if (keep(item)) kept.push(item);
    }
    const removed = this.count - kept.length;
    if (removed > 0) {
      this.items = new Array<T | undefined>(Math.max(16, kept.length * 2));
      for (let i = 0; i < kept.length; i++) this.items[i] = kept[i];
      this.head = 0;
      this.count = kept.length;
    }
    return removed;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }

  private grow(): void {
    const larger = new Array<T | undefined>(Math.max(16, this.items.length * 2));
    for (let i = 0; i < this.count; i++) larger[i] = this.items[(this.head + i) % this.items.length];
    this.items = larger;
    this.head = 0;
  }
}
