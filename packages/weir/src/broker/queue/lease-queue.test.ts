import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { seededRandom } from '../../storage/io/fault-file-system.js';
import { ManualScheduler } from '../scheduler.js';
import { LeaseQueue } from './lease-queue.js';

interface Item {
  id: number;
  leaseEnd: number;
}

type Op = { kind: 'start'; id: number; ms: number } | { kind: 'extend'; id: number; ms: number } | { kind: 'end'; id: number } | { kind: 'advance'; ms: number };

/** Drives a LeaseQueue and a plain map side by side; returns what each fired, as (id, time) pairs sorted per instant. */
function check(ops: Iterable<Op>, items: number): void {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const fired: Array<[number, number]> = [];
  const queue = new LeaseQueue<Item>(clock, scheduler, (due) => {
    for (const item of due) {
      assert.ok(Number.isNaN(item.leaseEnd), 'handed over with its lease ended');
      fired.push([item.id, clock.monotonic()]);
    }
  });
  const pool: Item[] = Array.from({ length: items }, (_, id) => ({ id, leaseEnd: Number.NaN }));
  const model = new Map<number, number>();
  const expected: Array<[number, number]> = [];
  for (const op of ops) {
    const now = clock.monotonic();
    if (op.kind === 'start') {
      queue.start(pool[op.id]!, now + op.ms);
      model.set(op.id, now + op.ms);
    } else if (op.kind === 'extend') {
      queue.extend(pool[op.id]!, now + op.ms);
      if (model.has(op.id)) model.set(op.id, now + op.ms);
    } else if (op.kind === 'end') {
      queue.end(pool[op.id]!);
      model.delete(op.id);
    } else {
      const target = now + op.ms;
      for (const [id, end] of [...model].filter(([, end]) => end <= target)) {
        // Fired at the first whole step of the scheduler at or after the end.
        expected.push([id, end]);
        model.delete(id);
      }
      scheduler.advance(op.ms);
    }
    assert.equal(queue.size, model.size, 'leases held');
    for (const [id, end] of model) assert.equal(pool[id]!.leaseEnd, end);
  }
  const order = (list: Array<[number, number]>) => [...list].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  assert.deepEqual(order(fired), order(expected));
}

describe('broker: lease queue', () => {
  it('broker: every lease fires once at its end, never after it ended, whatever order the ends come in', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      // Mostly the same timeout (the ring), sometimes a shorter or longer one (out of order).
      fc.record({ kind: fc.constant('start' as const), id: fc.integer({ min: 0, max: 9 }), ms: fc.oneof(fc.constant(50), fc.integer({ min: 0, max: 100 })) }),
      fc.record({ kind: fc.constant('extend' as const), id: fc.integer({ min: 0, max: 9 }), ms: fc.integer({ min: 0, max: 200 }) }),
      fc.record({ kind: fc.constant('end' as const), id: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 100 }), (ops) => check(ops, 10)), { numRuns: 500 });
  });

  it('broker: a ring that grows, wraps and sweeps ended leases under a busy group keeps every live lease', () => {
    const random = seededRandom(42);
    function* ops(): Generator<Op> {
      for (let step = 0; step < 60_000; step++) {
        const id = Math.floor(random() * 20_000);
        const roll = random();
        if (roll < 0.45) yield { kind: 'start', id, ms: 1000 };
        else if (roll < 0.9) yield { kind: 'end', id };
        else if (roll < 0.905) yield { kind: 'extend', id, ms: 1500 };
        else if (roll < 0.91) yield { kind: 'start', id, ms: 300 };
        else yield { kind: 'advance', ms: Math.floor(random() * 5) };
      }
      yield { kind: 'advance', ms: 10_000 };
    }
    check(ops(), 20_000);
  });

  it('broker: acks behind a few long leases are swept from the ring; the long leases still fire', () => {
    // Lease in turn, ack 50 leases later, except every 997th message, which holds the front of the ring.
    function* ops(): Generator<Op> {
      for (let step = 0; step < 60_000; step++) {
        yield { kind: 'start', id: step % 20_000, ms: 1000 };
        const old = (step - 50 + 20_000) % 20_000;
        if (step >= 50 && old % 997 !== 0) yield { kind: 'end', id: old };
        if (step % 100 === 0) yield { kind: 'advance', ms: 1 };
      }
      yield { kind: 'advance', ms: 2000 };
    }
    check(ops(), 20_000);
  });

  it('broker: an item ended and leased again at the same instant fires once', () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const fired: number[] = [];
    const queue = new LeaseQueue<Item>(clock, scheduler, (due) => fired.push(...due.map((item) => item.id)));
    const item = { id: 7, leaseEnd: Number.NaN };
    const end = clock.monotonic() + 100;
    queue.start(item, end);
    queue.end(item);
    queue.start(item, end);
    scheduler.advance(100);
    assert.deepEqual(fired, [7]);
    assert.equal(queue.size, 0);
  });

  it('broker: clear forgets every lease and its timers', () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const fired: number[] = [];
    const queue = new LeaseQueue<Item>(clock, scheduler, (due) => fired.push(...due.map((item) => item.id)));
    queue.start({ id: 1, leaseEnd: Number.NaN }, clock.monotonic() + 10);
    const extended = { id: 2, leaseEnd: Number.NaN };
    queue.start(extended, clock.monotonic() + 10);
    queue.extend(extended, clock.monotonic() + 20);
    queue.clear();
    scheduler.advance(100);
    assert.deepEqual(fired, []);
    assert.equal(queue.size, 0);
  });
});
