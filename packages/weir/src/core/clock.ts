/**
 * Time, injectable so tests can move it. `now()` is wall-clock milliseconds (what users see in timestamps and what
 * retention and TTL are defined against); `monotonic()` never goes back and drives timeouts and intervals.
 */
export interface Clock {
  now(): number;
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private wall = 1_700_000_000_000, private mono = 0) {}
  now(): number {
    return this.wall;
  }
  monotonic(): number {
    return this.mono;
  }
  advance(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }
  /** Moves only the wall clock, as an NTP step or an operator would. */
  jumpWall(ms: number): void {
    this.wall += ms;
  }
}
