import type { Clock } from '../../core/clock.js';
import { type Scheduler, WakeUp } from '../scheduler.js';

interface Slot<K> {
  key: K;
  /** The current deadline (monotonic ms). */
  due: number;
  /** This slot's one live heap entry; its `due` is at most the slot's (deadlines that move later keep their entry). */
  entry: Entry<K> | null;
}

interface Entry<K> {
  due: number;
  slot: Slot<K>;
}

/** Stale heap entries are swept once they outnumber live keys by this much. */
const COMPACT_SLACK = 1024;

/**
 * Deadlines for many keys behind one scheduler timer, so 100,000 open transactions or leased messages cost one timer
 * rather than 100,000. A binary heap orders the deadlines. Pushing a deadline later, which every transactional send
 * and lease extension does, only rewrites the key's slot: the heap entry stays where it is and, when it comes up early,
 * is pushed again at the real deadline. So a busy key costs O(1) per update instead of one heap entry per update.
 * Deleted keys leave stale entries that are skipped when they come up, and swept when they pile up.
 *
 * `fire(keys)` gets every key whose deadline was reached when the timer went off, each once and never before its
 * deadline (on the clock's monotonic time), in deadline order. The keys are forgotten before it runs: the callback sets
 * a new deadline for any it wants back. One call per firing lets a caller handle a batch in one pass.
 */
export class DeadlineTimer<K> {
  private readonly slots = new Map<K, Slot<K>>();
  private heap: Array<Entry<K>> = [];
  private readonly wakeUp: WakeUp;

  constructor(
    private readonly clock: Clock,
    scheduler: Scheduler,
    private readonly fire: (keys: K[]) => void,
  ) {
    this.wakeUp = new WakeUp(clock, scheduler, () => this.run());
  }

  /** Sets (or moves, earlier or later) the key's deadline, in monotonic milliseconds. */
  set(key: K, due: number): void {
    let slot = this.slots.get(key);
    if (slot === undefined) this.slots.set(key, (slot = { key, due, entry: null }));
    slot.due = due;
    if (slot.entry === null || slot.entry.due > due) this.push(slot);
    this.arm();
  }

  delete(key: K): void {
    const slot = this.slots.get(key);
    if (slot === undefined) return;
    slot.entry = null;
    this.slots.delete(key);
    if (this.heap.length > 2 * this.slots.size + COMPACT_SLACK) this.compact();
  }

  /** The key's deadline, or undefined when it has none. */
  get(key: K): number | undefined {
    return this.slots.get(key)?.due;
  }

  get size(): number {
    return this.slots.size;
  }

  /** Forgets every deadline and cancels the timer. */
  clear(): void {
    this.wakeUp.cancel();
    this.slots.clear();
    this.heap = [];
  }

  private run(): void {
    const now = this.clock.monotonic();
    const due: K[] = [];
    while (this.heap.length > 0 && this.heap[0]!.due <= now) {
      const entry = this.pop();
      const slot = entry.slot;
      if (slot.entry !== entry) continue;
      slot.entry = null;
      if (slot.due > now) this.push(slot);
      else {
        this.slots.delete(slot.key);
        due.push(slot.key);
      }
    }
    // The callback runs after the heap is consistent, so it may set or delete deadlines freely.
    if (due.length > 0) this.fire(due);
    this.arm();
  }

  private arm(): void {
    // The top may be stale or early: firing then only re-pushes, which is cheaper than keeping the top exact.
    if (this.heap.length > 0) this.wakeUp.at(this.heap[0]!.due);
  }

  private push(slot: Slot<K>): void {
    const entry: Entry<K> = { due: slot.due, slot };
    slot.entry = entry;
    const heap = this.heap;
    let at = heap.length;
    heap.push(entry);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (heap[parent]!.due <= entry.due) break;
      heap[at] = heap[parent]!;
      at = parent;
    }
    heap[at] = entry;
  }

  private pop(): Entry<K> {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let at = 0;
      for (;;) {
        const left = 2 * at + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]!.due < heap[left]!.due ? right : left;
        if (heap[child]!.due >= last.due) break;
        heap[at] = heap[child]!;
        at = child;
      }
      heap[at] = last;
    }
    return top;
  }

  private compact(): void {
    this.heap = [];
    for (const slot of this.slots.values()) {
      slot.entry = null;
      this.push(slot);
    }
    // Dropping entries can only make the top later; a timer that fires early re-arms itself.
  }
}
