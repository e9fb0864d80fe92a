/**
 * Paced sending for the latency workloads (the native suite's paced producer, the amqp suite's paced publisher).
 * Message i is due at t0 + i / rate and carries that intended time. A sender or broker that falls behind then shows
 * up as latency instead of quietly lowering the rate (no coordinated omission).
 */
import { newHistogram } from './broker-process.js';
import { monotonicNs } from './client-workers.js';

/**
 * The main thread's `go` to clients of a latency workload. Their schedule starts at t0 (monotonicNs clock), and
 * latencies count for messages due in [windowStart, windowEnd). Throughput clients get it too, with t0 = now.
 */
export interface ScheduledGo {
  type: 'go';
  t0: bigint;
  windowStart: bigint;
  windowEnd: bigint;
}

export function scheduledGo(t0 = monotonicNs(), windowStart = 0n, windowEnd = 0n): ScheduledGo {
  return { type: 'go', t0, windowStart, windowEnd };
}

export interface Schedule {
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

/**
 * Sends every message that has come due, in rounds. Timers resolve only whole milliseconds, so each round sleeps
 * in two steps. A timer covers all but the last millisecond or two before the next due time. Then a setImmediate
 * callback runs after the event loop has done its I/O, and sleeps the rest in Atomics.wait (sub-millisecond).
 */
export function runSchedule(schedule: Schedule): Promise<ScheduleOutcome> {
  const { t0, stopAtNs } = schedule;
  const intervalNs = 1e9 / schedule.rate;
  const lastDue = Math.ceil(stopAtNs / intervalNs);
  /** Messages due by `elapsedNs` after t0. */
  const dueBy = (elapsedNs: number): number => Math.min(Math.floor(elapsedNs / intervalNs) + 1, lastDue);
  const lag = newHistogram();
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let sent = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = Number(monotonicNs() - t0);
      const due = elapsed < 0 ? 0 : dueBy(elapsed);
      while (sent < due) {
        const intendedNs = Math.round(sent * intervalNs);
        schedule.send(sent, intendedNs);
        lag.recordValue(Math.max(1, Math.round((elapsed - intendedNs) / 1000)));
        sent++;
      }
      schedule.progress?.(sent);
      if (sent * intervalNs >= stopAtNs || schedule.stopped?.() === true) {
        resolve({
          sent,
          behind: Math.max(0, dueBy(Number(monotonicNs() - t0)) - sent),
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
