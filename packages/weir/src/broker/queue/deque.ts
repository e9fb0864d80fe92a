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

  /**
   * Keeps the items for which `keep` is true, in order, compacting in place; returns how many were removed. With
   * `stop`, the walk ends as soon as `stop()` holds and the items not reached stay as they are, unvisited: the cost is
   * the part walked, not the whole deque. `keep` must not change the deque.
   */
  retain(keep: (item: T) => boolean, stop?: () => boolean): number {
    const items = this.items;
    const capacity = items.length;
    let read = 0;
    let write = 0;
    for (; read < this.count; read++) {
      if (stop !== undefined && stop()) break;
      const item = items[(this.head + read) % capacity] as T;
      if (!keep(item)) continue;
      if (write !== read) items[(this.head + write) % capacity] = item;
      write++;
    }
    const removed = read - write;
    if (removed === 0) return 0;
    if (read === this.count) {
      for (let i = write; i < read; i++) items[(this.head + i) % capacity] = undefined;
    } else {
      // Stopped early: slide the kept part of the walk up against the unvisited rest (cheaper than moving the rest).
      for (let i = write - 1; i >= 0; i--) items[(this.head + i + removed) % capacity] = items[(this.head + i) % capacity];
      for (let i = 0; i < removed; i++) items[(this.head + i) % capacity] = undefined;
      this.head = (this.head + removed) % capacity;
    }
    this.count -= removed;
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
