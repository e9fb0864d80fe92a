import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { latencyMicros, latencySummary, monotonicNs, newHistogram } from './latency.js';
import { dueCount, intendedOffsetNs, runSchedule } from './schedule.js';

describe('perf latency', () => {
  it('summarises a histogram in milliseconds, within its 3-digit precision', () => {
    const histogram = newHistogram();
    for (let micros = 1; micros <= 10_000; micros++) histogram.recordValue(micros);
    const summary = latencySummary(histogram);
    assert.equal(summary.count, 10_000);
    const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) <= expected * 0.001 + 0.001, `${actual} ≈ ${expected}`);
    close(summary.p50Ms, 5);
    close(summary.p90Ms, 9);
    close(summary.p99Ms, 9.9);
    close(summary.p999Ms, 9.99);
    assert.equal(summary.maxMs, 10);
    close(summary.meanMs, 5.0005);
    assert.ok(summary.p999Ms <= summary.maxMs, 'no percentile above the largest value recorded');
  });

  it('reports zeros for an empty histogram', () => {
    assert.deepEqual(latencySummary(newHistogram()), { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 });
  });

  it('measures from the start it is given, in whole microseconds, never below 1', () => {
    assert.equal(latencyMicros(5_000_000n, 1_000_000n), 4000);
    assert.equal(latencyMicros(2_500, 1_000), 2);
    assert.equal(latencyMicros(1_000n, 1_000n), 1);
  });

  it('spaces a schedule evenly: message i is due at i / rate', () => {
    assert.equal(intendedOffsetNs(0, 1000), 0);
    assert.equal(intendedOffsetNs(1, 1000), 1_000_000);
    assert.equal(intendedOffsetNs(3, 3), 1e9);
    assert.equal(dueCount(-1, 1000), 0);
    assert.equal(dueCount(0, 1000), 1);
    assert.equal(dueCount(999_999, 1000), 1);
    assert.equal(dueCount(1_000_000, 1000), 2);
    assert.equal(dueCount(1e9, 1000, 50), 50);
  });

  it('counts a stalled sender as latency of every message that waited (no coordinated omission)', async () => {
    const rate = 2000;
    const stallMs = 60;
    const t0 = monotonicNs() + 5_000_000n;
    const fromIntended = newHistogram();
    const fromActual = newHistogram();
    const outcome = await runSchedule({
      t0,
      rate,
      stopAtNs: 200e6,
      send(i, intendedNs) {
        const now = monotonicNs();
        fromIntended.recordValue(latencyMicros(now, t0 + BigInt(intendedNs)));
        fromActual.recordValue(latencyMicros(now, now));
        // One long pause, as a full socket buffer or a GC pause would cause.
        if (i === 100) while (monotonicNs() - now < BigInt(stallMs * 1e6));
      },
    });
    assert.equal(outcome.sent, 400, 'every message of the 200 ms schedule was sent, the late ones in a burst');
    const corrected = latencySummary(fromIntended);
    const naive = latencySummary(fromActual);
    // About stallMs × rate = 120 messages were due during the stall; each waited up to the whole stall.
    assert.ok(corrected.maxMs >= stallMs * 0.9, `max ${corrected.maxMs} ms reflects the ${stallMs} ms stall`);
    assert.ok(corrected.p90Ms >= 5, `p90 ${corrected.p90Ms} ms: the messages held up by the stall are counted`);
    assert.ok(naive.maxMs < 1, 'measured from the actual send, the stall would not show at all');
    assert.ok(outcome.sendLag.maxMs >= stallMs * 0.9);
  });
});
