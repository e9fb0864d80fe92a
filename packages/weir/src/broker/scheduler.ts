import type { Clock, ManualClock } from '../core/clock.js';

/** An opaque handle of a scheduled callback. */
export interface TimerHandle {
  readonly scheduled: true;
}

/**
 * One-shot timers, injectable so tests drive time by hand. Every timeout in the broker (long-poll waits, group
 * sessions and rebalance rounds, producer-state snapshots) goes through this; deadlines are measured on the
 * monotonic clock by the callers where it matters.
 */
export interface Scheduler {
  /** `background` timers (periodic housekeeping) do not keep the process alive on their own. */
  setTimeout(callback: () => void, delayMs: number, options?: { background?: boolean }): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * One background timer that runs `wake` at the earliest time asked of it (monotonic ms): an earlier request replaces
 * the pending timer, a later one is left to it. The timer is spent before `wake` runs, so `wake` re-arms for what is
 * left. For structures that keep many deadlines behind one timer and re-check on waking, which makes a timer that
 * fires early harmless.
 */
export class WakeUp {
  private timer: TimerHandle | null = null;
  private due = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly wake: () => void,
  ) {}

  at(due: number): void {
    if (due >= this.due) return;
    if (this.timer !== null) this.scheduler.clearTimeout(this.timer);
    this.due = due;
    this.timer = this.scheduler.setTimeout(() => this.fire(), due - this.clock.monotonic(), { background: true });
  }

  cancel(): void {
    if (this.timer !== null) this.scheduler.clearTimeout(this.timer);
    this.timer = null;
    this.due = Infinity;
  }

  private fire(): void {
    this.timer = null;
    this.due = Infinity;
    this.wake();
  }
}

class SystemTimer implements TimerHandle {
  readonly scheduled = true as const;
  constructor(readonly timer: NodeJS.Timeout) {}
}

/** Real timers. */
export const systemScheduler: Scheduler = {
  setTimeout(callback, delayMs, options) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    if (options?.background) timer.unref();
    return new SystemTimer(timer);
  },
  clearTimeout(handle) {
    if (handle instanceof SystemTimer) clearTimeout(handle.timer);
  },
};

class ManualTimer implements TimerHandle {
  readonly scheduled = true as const;
  constructor(
    readonly due: number,
    readonly order: number,
    readonly callback: () => void,
  ) {}
}

/**
 * Timers that fire only when `advance` moves the ManualClock past them, in due order (ties in the order they were
 * set). Callbacks run synchronously inside `advance`; promise continuations they start run after it returns, so tests
 * `await` a turn of the event loop after advancing.
 */
export class ManualScheduler implements Scheduler {
  private readonly timers = new Set<ManualTimer>();
  private order = 0;

  constructor(readonly clock: ManualClock) {}

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = new ManualTimer(this.clock.monotonic() + Math.max(0, delayMs), this.order++, callback);
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof ManualTimer) this.timers.delete(handle);
  }

  /** Moves the clock forward by `ms`, firing every timer that falls due on the way (including ones set meanwhile). */
  advance(ms: number): void {
    const target = this.clock.monotonic() + ms;
    for (;;) {
      let next: ManualTimer | null = null;
      for (const timer of this.timers) {
        if (timer.due <= target && (next === null || timer.due < next.due || (timer.due === next.due && timer.order < next.order))) next = timer;
      }
      if (next === null) break;
      this.timers.delete(next);
      if (next.due > this.clock.monotonic()) this.clock.advance(next.due - this.clock.monotonic());
      next.callback();
    }
    if (target > this.clock.monotonic()) this.clock.advance(target - this.clock.monotonic());
  }

  /** Timers still waiting (tests assert nothing is left behind). */
  get pending(): number {
    return this.timers.size;
  }
}
