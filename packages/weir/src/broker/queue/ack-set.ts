/**
 * Which offsets of one partition a shared group has settled (acknowledged, dead-lettered, expired or filtered out).
 *
 * Everything below `floor` is settled. Settled offsets above it are sorted, disjoint, non-adjacent half-open ranges;
 * a range that reaches the floor is absorbed into it. Acks mostly arrive close to in order, so the list stays short
 * (one range per gap left by a message still in flight) and its size — not the number of acks — is what the ack
 * state on disk costs.
 */
export class AckSet {
  /** Flattened [from0, to0, from1, to1, …], each `from` > the previous `to` (ranges never touch). */
  private ranges: number[] = [];
  private settledAbove = 0;

  constructor(private floorOffset = 0) {}

  get floor(): number {
    return this.floorOffset;
  }

  /** Settled offsets above the floor. */
  get settledAboveFloor(): number {
    return this.settledAbove;
  }

  get rangeCount(): number {
    return this.ranges.length / 2;
  }

  has(offset: number): boolean {
    if (offset < this.floorOffset) return true;
    const index = this.rangeAtOrBefore(offset);
    return index >= 0 && offset < this.ranges[index * 2 + 1]!;
  }

  /** Settles one offset; returns false when it already was. */
  add(offset: number): boolean {
    return this.addRange(offset, offset + 1) > 0;
  }

  /** Settles [from, to); returns how many offsets were newly settled. */
  addRange(from: number, to: number): number {
    if (to <= this.floorOffset || from >= to) return 0;
    if (from < this.floorOffset) from = this.floorOffset;
    const ranges = this.ranges;
    if (from === this.floorOffset && (ranges.length === 0 || ranges[0]! > to)) {
      // The common case, acks in order: the floor moves and nothing else changes.
      this.floorOffset = to;
      return to - from;
    }
    // First range that ends at or after `from` (it may touch or overlap the new one).
    let first = 0;
    let high = ranges.length / 2;
    while (first < high) {
      const mid = (first + high) >>> 1;
      if (ranges[mid * 2 + 1]! < from) first = mid + 1;
      else high = mid;
    }
    let last = first;
    let mergedFrom = from;
    let mergedTo = to;
    let covered = 0;
    while (last < ranges.length / 2 && ranges[last * 2]! <= to) {
      const rangeFrom = ranges[last * 2]!;
      const rangeTo = ranges[last * 2 + 1]!;
      covered += rangeTo - rangeFrom;
      if (rangeFrom < mergedFrom) mergedFrom = rangeFrom;
      if (rangeTo > mergedTo) mergedTo = rangeTo;
      last++;
    }
    const added = mergedTo - mergedFrom - covered;
    if (added === 0) return 0;
    ranges.splice(first * 2, (last - first) * 2, mergedFrom, mergedTo);
    this.settledAbove += added;
    if (ranges[0] === this.floorOffset) {
      this.settledAbove -= ranges[1]! - ranges[0]!;
      this.floorOffset = ranges[1]!;
      ranges.splice(0, 2);
    }
    return added;
  }

  /** Moves the floor up to `offset` (e.g. retention removed the messages below it). */
  raiseFloor(offset: number): void {
    if (offset <= this.floorOffset) return;
    this.addRange(this.floorOffset, offset);
  }

  /** The first unsettled offset at or after `offset`. */
  nextUnsettled(offset: number): number {
    if (offset < this.floorOffset) offset = this.floorOffset;
    const index = this.rangeAtOrBefore(offset);
    if (index >= 0 && offset < this.ranges[index * 2 + 1]!) return this.ranges[index * 2 + 1]!;
    return offset;
  }

  /** Settled offsets in [from, to). */
  settledIn(from: number, to: number): number {
    if (to <= from) return 0;
    let count = Math.max(0, Math.min(to, this.floorOffset) - from);
    for (let i = 0; i < this.ranges.length; i += 2) {
      const lo = Math.max(from, this.ranges[i]!);
      const hi = Math.min(to, this.ranges[i + 1]!);
      if (hi > lo) count += hi - lo;
      if (this.ranges[i]! >= to) break;
    }
    return count;
  }

  /** The persisted form: the floor and the ranges as [from, to) pairs. */
  toJSON(): { floor: number; settled: Array<[number, number]> } {
    const settled: Array<[number, number]> = [];
    for (let i = 0; i < this.ranges.length; i += 2) settled.push([this.ranges[i]!, this.ranges[i + 1]!]);
    return { floor: this.floorOffset, settled };
  }

  static fromJSON(value: { floor: number; settled?: ReadonlyArray<readonly [number, number]> }): AckSet {
    const set = new AckSet(value.floor);
    for (const [from, to] of value.settled ?? []) set.addRange(from, to);
    return set;
  }

  /** Index of the last range starting at or before `offset`, or -1. */
  private rangeAtOrBefore(offset: number): number {
    const ranges = this.ranges;
    let low = 0;
    let high = ranges.length / 2;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (ranges[mid * 2]! <= offset) low = mid + 1;
      else high = mid;
    }
    return low - 1;
  }
}
