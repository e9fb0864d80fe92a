import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Smallest } from './smallest.js';

describe('broker: smallest', () => {
  it('broker: gives what a stable sort and slice give, ties in the order offered', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ time: fc.nat(5), offset: fc.nat(5), id: fc.nat() }), { maxLength: 60 }), fc.nat(70), (items, count) => {
        const compare = (a: { time: number; offset: number }, b: { time: number; offset: number }) => a.time - b.time || a.offset - b.offset;
        const smallest = new Smallest(count, compare);
        for (const item of items) smallest.offer(item);
        assert.deepEqual(smallest.take(), [...items].sort(compare).slice(0, count));
      }),
    );
  });
});
