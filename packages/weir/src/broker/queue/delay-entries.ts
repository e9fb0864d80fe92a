/**
 * The in-memory index of a loaded delay bucket: one (deliverAt, offset, size, slot) entry per message, held in typed
 * arrays so a loaded entry costs 28 bytes and no JavaScript object (a bucket of 100,000 messages is 2.8 MB, not a heap
 * of objects for the collector to walk). `offset` is the message's offset in its bucket queue; `size` an estimate of
 * its bytes, so a delivery round can stop at a byte budget before it reads anything; `slot` where its bytes were read
 * ahead into the schedule's arena (`delay-arena.ts`), or -1 when they were not.
 */

/** An unsorted, growable list of entries: what a bucket load collects, and what appends stage for the next merge. */
export class EntryBuffer {
  keys: Float64Array;
  offsets: Float64Array;
  sizes: Int32Array;
  slots: Float64Array;
  length = 0;
  /** The smallest key held (Infinity when empty). */
  minKey = Infinity;

  constructor(capacity = 16) {
    this.keys = new Float64Array(capacity);
    this.offsets = new Float64Array(capacity);
    this.sizes = new Int32Array(capacity);
    this.slots = new Float64Array(capacity);
  }

  push(key: number, offset: number, size: number, slot = -1): void {
    if (this.length === this.keys.length) this.grow();
    this.keys[this.length] = key;
    this.offsets[this.length] = offset;
    this.sizes[this.length] = Math.min(size, 0x7fffffff);
    this.slots[this.length] = slot;
    this.length++;
    if (key < this.minKey) this.minKey = key;
  }

  /**
   * Keeps only the entries at or after `offset` (those a bucket load did not read already); calls `dropped` with the
   * slot of each entry removed that had one.
   */
  dropBelow(offset: number, dropped: (slot: number) => void): void {
    let kept = 0;
    this.minKey = Infinity;
    for (let index = 0; index < this.length; index++) {
      if (this.offsets[index]! < offset) {
        if (this.slots[index]! >= 0) dropped(this.slots[index]!);
        continue;
      }
      if (this.keys[index]! < this.minKey) this.minKey = this.keys[index]!;
      this.keys[kept] = this.keys[index]!;
      this.offsets[kept] = this.offsets[index]!;
      this.sizes[kept] = this.sizes[index]!;
      this.slots[kept] = this.slots[index]!;
      kept++;
    }
    this.length = kept;
  }

  clear(): void {
    this.length = 0;
    this.minKey = Infinity;
    if (this.keys.length > 1024) {
      this.keys = new Float64Array(16);
      this.offsets = new Float64Array(16);
      this.sizes = new Int32Array(16);
      this.slots = new Float64Array(16);
    }
  }

  private grow(): void {
    const capacity = Math.max(16, this.keys.length * 2);
    const keys = new Float64Array(capacity);
    const offsets = new Float64Array(capacity);
    const sizes = new Int32Array(capacity);
    const slots = new Float64Array(capacity);
    keys.set(this.keys);
    offsets.set(this.offsets);
    sizes.set(this.sizes);
    slots.set(this.slots);
    this.keys = keys;
    this.offsets = offsets;
    this.sizes = sizes;
    this.slots = slots;
  }
}

/** (key, offset) order: deliverAt first, then offset, so equal due times keep the order they were stored in. */
export function entryBefore(keyA: number, offsetA: number, keyB: number, offsetB: number): boolean {
  return keyA < keyB || (keyA === keyB && offsetA < offsetB);
}

/**
 * Entries sorted by (deliverAt, offset); `[0, head)` are delivered, `[head, length)` wait. Merging staged entries
 * builds new arrays holding only the waiting part, so delivered entries are not carried along. `slots` may be changed
 * in place (an entry read ahead after the sort).
 */
export class DelayEntries {
  private constructor(
    readonly keys: Float64Array,
    readonly offsets: Float64Array,
    readonly sizes: Int32Array,
    readonly slots: Float64Array,
    readonly length: number,
    public head: number,
  ) {}

  /** Entries already sorted (arrays of equal length). */
  static of(keys: Float64Array, offsets: Float64Array, sizes: Int32Array, slots: Float64Array): DelayEntries {
    return new DelayEntries(keys, offsets, sizes, slots, keys.length, 0);
  }

  static empty(): DelayEntries {
    return new DelayEntries(new Float64Array(0), new Float64Array(0), new Int32Array(0), new Float64Array(0), 0, 0);
  }

  /** Sorts a buffer's entries (the buffer is left as it was). */
  static sorted(buffer: EntryBuffer): DelayEntries {
    return packedSort(buffer) ?? DelayEntries.sortedByOrder(buffer);
  }

  private static sortedByOrder(buffer: EntryBuffer): DelayEntries {
    const count = buffer.length;
    const order = sortOrder(buffer.keys, buffer.offsets, count);
    const keys = new Float64Array(count);
    const offsets = new Float64Array(count);
    const sizes = new Int32Array(count);
    const slots = new Float64Array(count);
    for (let index = 0; index < count; index++) {
      const from = order[index]!;
      keys[index] = buffer.keys[from]!;
      offsets[index] = buffer.offsets[from]!;
      sizes[index] = buffer.sizes[from]!;
      slots[index] = buffer.slots[from]!;
    }
    return new DelayEntries(keys, offsets, sizes, slots, count, 0);
  }

  get remaining(): number {
    return this.length - this.head;
  }

  /** The waiting entries merged with `staged`; the result's head is 0. */
  merged(staged: EntryBuffer): DelayEntries {
    const incoming = DelayEntries.sorted(staged);
    const count = this.remaining + incoming.length;
    const keys = new Float64Array(count);
    const offsets = new Float64Array(count);
    const sizes = new Int32Array(count);
    const slots = new Float64Array(count);
    let a = this.head;
    let b = 0;
    for (let index = 0; index < count; index++) {
      const takeA = b >= incoming.length || (a < this.length && !entryBefore(incoming.keys[b]!, incoming.offsets[b]!, this.keys[a]!, this.offsets[a]!));
      if (takeA) {
        keys[index] = this.keys[a]!;
        offsets[index] = this.offsets[a]!;
        sizes[index] = this.sizes[a]!;
        slots[index] = this.slots[a]!;
        a++;
      } else {
        keys[index] = incoming.keys[b]!;
        offsets[index] = incoming.offsets[b]!;
        sizes[index] = incoming.sizes[b]!;
        slots[index] = incoming.slots[b]!;
        b++;
      }
    }
    return new DelayEntries(keys, offsets, sizes, slots, count, 0);
  }

  /** The waiting entries in arrays of their own size, once the delivered prefix is most of the arrays. */
  compacted(): DelayEntries {
    if (this.head < 4096 || this.head * 2 < this.length) return this;
    const { head, length } = this;
    return new DelayEntries(this.keys.slice(head, length), this.offsets.slice(head, length), this.sizes.slice(head, length), this.slots.slice(head, length), this.remaining, 0);
  }
}

/**
 * Sorts by packing each (key, offset) into one exact double, `(key − minKey) × offsetSpan + (offset − minOffset)`, and
 * using the typed array's native numeric sort: several times faster than a comparator on a bucket of a million. Needs
 * distinct offsets in a span small enough for the packed values to stay below 2^53 and for size and slot tables; null
 * otherwise (the caller falls back to the comparator).
 */
function packedSort(buffer: EntryBuffer): DelayEntries | null {
  const count = buffer.length;
  if (count < 64) return null;
  let minKey = Infinity;
  let maxKey = -Infinity;
  let minOffset = Infinity;
  let maxOffset = -Infinity;
  for (let index = 0; index < count; index++) {
    const key = buffer.keys[index]!;
    const offset = buffer.offsets[index]!;
    if (key < minKey) minKey = key;
    if (key > maxKey) maxKey = key;
    if (offset < minOffset) minOffset = offset;
    if (offset > maxOffset) maxOffset = offset;
  }
  const span = maxOffset - minOffset + 1;
  if (span > count * 4 || (maxKey - minKey + 1) * span > Number.MAX_SAFE_INTEGER) return null;
  const sizeByOffset = new Int32Array(span).fill(-1);
  const slotByOffset = new Float64Array(span);
  const packed = new Float64Array(count);
  for (let index = 0; index < count; index++) {
    const relative = buffer.offsets[index]! - minOffset;
    if (sizeByOffset[relative] !== -1) return null;
    sizeByOffset[relative] = buffer.sizes[index]!;
    slotByOffset[relative] = buffer.slots[index]!;
    packed[index] = (buffer.keys[index]! - minKey) * span + relative;
  }
  packed.sort();
  const keys = new Float64Array(count);
  const offsets = new Float64Array(count);
  const sizes = new Int32Array(count);
  const slots = new Float64Array(count);
  for (let index = 0; index < count; index++) {
    const value = packed[index]!;
    const relative = value % span;
    keys[index] = (value - relative) / span + minKey;
    offsets[index] = relative + minOffset;
    sizes[index] = sizeByOffset[relative]!;
    slots[index] = slotByOffset[relative]!;
  }
  return DelayEntries.of(keys, offsets, sizes, slots);
}

/** Indices of the first `count` entries in (key, offset) order. */
export function sortOrder(keys: Float64Array, offsets: Float64Array, count: number): Uint32Array {
  const order = new Uint32Array(count);
  let sorted = true;
  for (let index = 0; index < count; index++) {
    order[index] = index;
    if (index > 0 && entryBefore(keys[index]!, offsets[index]!, keys[index - 1]!, offsets[index - 1]!)) sorted = false;
  }
  // Appends usually arrive in due order already (a producer's delay is often constant): skip the sort then.
  if (!sorted) order.sort((a, b) => keys[a]! - keys[b]! || offsets[a]! - offsets[b]!);
  return order;
}
