/**
 * Paced sending for fixed-rate runs (`weir perf --rate`, the benchmark suites' paced senders). Message i is due at
 * t0 + i / rate and carries that intended time; a sender or broker that falls behind then shows up as latency instead
 * of quietly lowering the rate (no coordinated omission).
 */
import { monotonicNs, newHistogram } from './latency.js';

export interface Schedule {
  /** Start of the schedule, on the monotonicNs clock. */
  t0: bigint;
  /** Messages per second. */
  rate: number;
  /** Nanoseconds after t0 at which the schedule ends: no message due from then on is sent. */
  stopAtNs: number;
  /** Sends message i, which is due `intendedNs` after t0. */
  send(i: number, intendedNs: number): void;
  /** After each round of sends: how many went out so far (for a progress counter). */
  progress?(sent: number): void;
  /** Polled after each round of sends; true ends the schedule early. */
  stopped?(): boolean;
}

export interface SendLag {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ScheduleOutcome {
  sent: number;
  /** Messages that were due by the end but not sent (the loop could not keep up). */
  behind: number;
  /** How late `send` was called relative to the schedule: the load generator's own lag. */
  sendLag: SendLag;
}

/** Nanoseconds after t0 at which message `index` is due under `rate` messages per second. */
export function intendedOffsetNs(index: number, rate: number): number {
  return Math.round((index * 1e9) / rate);
}

/** How many messages are due `elapsedNs` after t0 (message 0 is due at once), never more than `limit`. */
export function dueCount(elapsedNs: number, rate: number, limit = Infinity): number {
  if (elapsedNs < 0) return 0;
  return Math.min(Math.floor((elapsedNs * rate) / 1e9) + 1, limit);
}

/**
 * Sends every message that has come due, in rounds. Timers resolve only whole milliseconds, so each round sleeps
 * in two steps. A timer covers all but the last millisecond or two before the next due time. Then a setImmediate
 * callback runs after the event loop has done its I/O, and sleeps the rest in Atomics.wait (sub-millisecond).
 */
export function runSchedule(schedule: Schedule): Promise<ScheduleOutcome> {
  const { t0, stopAtNs, rate } = schedule;
  const intervalNs = 1e9 / rate;
  const lastDue = Math.ceil(stopAtNs / intervalNs);
  const lag = newHistogram();
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let sent = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = Number(monotonicNs() - t0);
      const due = dueCount(elapsed, rate, lastDue);
      while (sent < due) {
        const intendedNs = intendedOffsetNs(sent, rate);
        schedule.send(sent, intendedNs);
        lag.recordValue(Math.max(1, Math.round((elapsed - intendedNs) / 1000)));
        sent++;
      }
      schedule.progress?.(sent);
      if (sent >= lastDue || schedule.stopped?.() === true) {
        resolve({
          sent,
          behind: Math.max(0, dueCount(Number(monotonicNs() - t0), rate, lastDue) - sent),
          sendLag: { p50Ms: lag.getValueAtPercentile(50) / 1000, p99Ms: lag.getValueAtPercentile(99) / 1000, maxMs: lag.maxValue / 1000 },
        });
        return;
      }
      const untilNextMs = (sent * intervalNs - Number(monotonicNs() - t0)) / 1e6;
      if (untilNextMs > 2) {
        setTimeout(tick, Math.floor(untilNextMs) - 1);
        return;
      }
      setImmediate(() => {
        const remainingMs = (sent * intervalNs - Number(monotonicNs() - t0)) / 1e6;
        if (remainingMs > 0.02) Atomics.wait(sleeper, 0, 0, Math.min(remainingMs, 0.2));
        tick();
      });
    };
    setTimeout(tick, Math.max(0, Math.floor(Number(t0 - monotonicNs()) / 1e6) - 1));
  });
}
