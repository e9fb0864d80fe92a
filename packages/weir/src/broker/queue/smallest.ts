/**
 * The `count` smallest of the items offered, smallest first: exactly what a stable sort of all of them followed by
 * `slice(0, count)` gives (ties in the order offered), in one pass, O(n log count) time and O(count) memory. A
 * max-heap of the best so far is kept; its top is the one a newcomer has to beat.
 */
export class Smallest<T> {
  private readonly items: T[] = [];
  /** The offer order of each heap item: the tie-break a stable sort would apply. */
  private readonly order: number[] = [];
  private offered = 0;

  constructor(
    private readonly count: number,
    private readonly compare: (a: T, b: T) => number,
  ) {}

  offer(item: T): void {
    const index = this.offered++;
    if (this.items.length < this.count) {
      this.items.push(item);
      this.order.push(index);
      this.siftUp(this.items.length - 1);
    } else if (this.count > 0 && this.before(item, index, 0)) {
      this.items[0] = item;
      this.order[0] = index;
      this.siftDown(0);
    }
  }

  /** The chosen items, smallest first (empties the selection). */
  take(): T[] {
    const out = new Array<T>(this.items.length);
    for (let at = out.length - 1; at >= 0; at--) {
      out[at] = this.items[0]!;
      const lastItem = this.items.pop()!;
      const lastOrder = this.order.pop()!;
      if (at > 0) {
        this.items[0] = lastItem;
        this.order[0] = lastOrder;
        this.siftDown(0);
      }
    }
    return out;
  }

  /** Whether the item offered `index`-th comes before the heap's item at `at`. */
  private before(item: T, index: number, at: number): boolean {
    const difference = this.compare(item, this.items[at]!);
    return difference < 0 || (difference === 0 && index < this.order[at]!);
  }

  private siftUp(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(this.items[parent]!, this.order[parent]!, at)) break;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    const length = this.items.length;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= length) return;
      const right = left + 1;
      // The larger child: the one the other comes before.
      const child = right < length && this.before(this.items[left]!, this.order[left]!, right) ? right : left;
      if (!this.before(this.items[at]!, this.order[at]!, child)) return;
      this.swap(at, child);
      at = child;
    }
  }

  private swap(a: number, b: number): void {
    [this.items[a], this.items[b]] = [this.items[b]!, this.items[a]!];
    [this.order[a], this.order[b]] = [this.order[b]!, this.order[a]!];
  }
}
