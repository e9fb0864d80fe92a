import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Deque } from './deque.js';

/** A deque whose ring has wrapped: some items pushed at the front, some at the back. */
function filled(front: number[], back: number[]): Deque<number> {
  const deque = new Deque<number>(4);
  for (const item of back) deque.pushBack(item);
  for (const item of front) deque.pushFront(item);
  return deque;
}

describe('broker: deque', () => {
  it('broker: retain keeps what it should in order, in place, and stops where told, leaving the rest unvisited', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { maxLength: 40 }), fc.array(fc.nat(50), { maxLength: 40 }), fc.nat(3), fc.nat(60), (front, back, modulus, stopAfter) => {
        const deque = filled(front, back);
        const model = [...front].reverse().concat(back);
        assert.deepEqual([...deque], model);
        const keep = (item: number) => modulus === 0 || item % (modulus + 1) !== 0;
        let visited = 0;
        const removed = deque.retain(
          (item) => {
            visited++;
            return keep(item);
          },
          () => visited >= stopAfter,
        );
        const walked = Math.min(stopAfter, model.length);
        const expected = model.slice(0, walked).filter(keep).concat(model.slice(walked));
        assert.equal(visited, walked, 'items past the stop are not visited');
        assert.equal(removed, model.length - expected.length);
        assert.deepEqual([...deque], expected);
        assert.equal(deque.length, expected.length);
        // Still a working deque at both ends.
        deque.pushFront(-1);
        deque.pushBack(-2);
        assert.deepEqual([...deque], [-1, ...expected, -2]);
        assert.equal(deque.popFront(), -1);
      }),
    );
  });

  it('broker: retain without a stop walks everything and clears the slots it vacated', () => {
    const deque = filled([3, 2, 1], [4, 5, 6, 7]);
    assert.equal(deque.retain((item) => item % 2 === 0), 4);
    assert.deepEqual([...deque], [2, 4, 6]);
    const slots = (deque as unknown as { items: Array<number | undefined> }).items;
    assert.equal(slots.filter((slot) => slot !== undefined).length, 3, 'no stale references kept alive');
  });
});
