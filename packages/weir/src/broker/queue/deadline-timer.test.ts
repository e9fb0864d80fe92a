import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { ManualScheduler } from '../scheduler.js';
import { DeadlineTimer } from './deadline-timer.js';

function setup() {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const fired: Array<{ key: number; at: number }> = [];
  const timer = new DeadlineTimer<number>(clock, scheduler, (keys) => fired.push(...keys.map((key) => ({ key, at: clock.monotonic() }))));
  return { clock, scheduler, fired, timer };
}

type Op = { kind: 'set'; key: number; delay: number } | { kind: 'delete'; key: number } | { kind: 'advance'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 7 }), delay: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }),
);

describe('broker: deadline timer', () => {
  it('broker: every key fires exactly at its latest deadline, once, and never after it was deleted', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const { clock, scheduler, fired, timer } = setup();
        const model = new Map<number, number>();
        const expected: Array<{ key: number; at: number }> = [];
        for (const step of ops) {
          if (step.kind === 'set') {
            model.set(step.key, clock.monotonic() + step.delay);
            timer.set(step.key, clock.monotonic() + step.delay);
          } else if (step.kind === 'delete') {
            model.delete(step.key);
            timer.delete(step.key);
          } else {
            const target = clock.monotonic() + step.ms;
            const due = [...model].filter(([, at]) => at <= target).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
            for (const [key, at] of due) {
              expected.push({ key, at });
              model.delete(key);
            }
            scheduler.advance(step.ms);
          }
          assert.equal(timer.size, model.size);
        }
        // Keys due at the same time may fire in either order; compare per instant.
        const byTime = (list: Array<{ key: number; at: number }>) => [...list].sort((a, b) => a.at - b.at || a.key - b.key);
        assert.deepEqual(byTime(fired), byTime(expected));
      }),
    );
  });

  it('broker: the keys due at one firing come in one call, in deadline order', () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const calls: number[][] = [];
    const timer = new DeadlineTimer<number>(clock, scheduler, (keys) => calls.push(keys));
    timer.set(3, 30);
    timer.set(1, 10);
    timer.set(2, 20);
    timer.set(4, 50);
    clock.advance(40); // the clock passed three deadlines before the timer ran (a busy event loop)
    scheduler.advance(0);
    assert.deepEqual(calls, [[1, 2, 3]]);
    scheduler.advance(10);
    assert.deepEqual(calls, [[1, 2, 3], [4]]);
    assert.equal(scheduler.pending, 0);
  });

  it('broker: pushing a deadline later keeps one scheduler timer, and stale entries are swept', () => {
    const { clock, scheduler, fired, timer } = setup();
    for (let step = 1; step <= 1000; step++) timer.set(1, step * 10);
    assert.equal(scheduler.pending, 1);
    scheduler.advance(9_999);
    assert.deepEqual(fired, []);
    scheduler.advance(1);
    assert.deepEqual(fired, [{ key: 1, at: 10_000 }]);
    // Many keys set and deleted: the survivors still fire on time.
    for (let key = 0; key < 3000; key++) timer.set(key, clock.monotonic() + 100 + key);
    for (let key = 0; key < 2500; key++) timer.delete(key);
    fired.length = 0;
    scheduler.advance(100 + 3000);
    assert.equal(fired.length, 500);
    assert.ok(fired.every(({ key, at }) => key >= 2500 && at === 10_000 + 100 + key));
    timer.set(7, clock.monotonic() + 5);
    timer.clear();
    assert.equal(scheduler.pending, 0);
  });
});
