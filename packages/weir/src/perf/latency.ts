/**
 * Latency measurement shared by `weir perf` and the benchmark suites: an HDR histogram of microseconds and its
 * percentiles in milliseconds, plus the one rule that keeps fixed-rate latencies honest.
 */
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';

export type { Histogram };

/** Monotonic nanoseconds (CLOCK_MONOTONIC): the same clock in every thread of the process, unlike performance.now(). */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Latencies in microseconds, 1 µs to 1 hour, 3 significant digits (0.1% resolution at any magnitude). */
export function newHistogram(): Histogram {
  return buildHistogram({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Percentiles of a histogram of microseconds (newHistogram), in milliseconds. */
export function latencySummary(histogram: Histogram): LatencySummary {
  // Percentiles are the top of their bucket, which can lie above the largest value recorded.
  const ms = (micros: number): number => Math.min(micros, histogram.maxValue) / 1000;
  if (histogram.totalCount === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 };
  return {
    count: histogram.totalCount,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
    meanMs: ms(histogram.mean),
  };
}

/**
 * The latency to record, in whole microseconds (at least 1, the histogram's floor), of an event at `observedNs` for
 * a message whose clock started at `startNs`. Under a fixed rate `startNs` must be the message's *intended* send time
 * (schedule.ts), not when the sender got round to it: a sender held up by a slow broker then counts the hold-up as
 * latency for every message that waited, instead of silently sending fewer (coordinated omission).
 */
export function latencyMicros(observedNs: bigint | number, startNs: bigint | number): number {
  const elapsedNs = typeof observedNs === 'bigint' || typeof startNs === 'bigint' ? Number(BigInt(observedNs) - BigInt(startNs)) : observedNs - startNs;
  return Math.max(1, Math.round(elapsedNs / 1000));
}
