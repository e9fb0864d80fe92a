import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { seededRandom } from '../../storage/io/fault-file-system.js';
import { OffsetIndex } from './offset-index.js';

/** `pick` chooses an offset up to the next one to add (held, deleted already, or never added), as a fraction. */
type Op = { kind: 'add'; gap: number } | { kind: 'delete'; pick: number } | { kind: 'get'; pick: number } | { kind: 'deleteOffset'; offset: number };

/** Runs `ops` against an OffsetIndex and a Map, comparing every answer and the contents after each step. */
function check(ops: Iterable<Op>, compareEvery = 1): void {
  const index = new OffsetIndex<string>();
  const model = new Map<number, string>();
  let next = 0;
  let step = 0;
  for (const op of ops) {
    if (op.kind === 'add') {
      next += op.gap;
      index.add(next, `m${next}`);
      model.set(next, `m${next}`);
      next++;
    } else if (op.kind === 'deleteOffset') {
      assert.equal(index.delete(op.offset), model.delete(op.offset), `delete ${op.offset}`);
    } else {
      const offset = Math.floor(op.pick * (next + 1));
      if (op.kind === 'delete') assert.equal(index.delete(offset), model.delete(offset), `delete ${offset}`);
      else assert.equal(index.get(offset), model.get(offset), `get ${offset}`);
      assert.equal(index.has(offset), model.has(offset));
    }
    assert.equal(index.size, model.size);
    if (++step % compareEvery === 0) assert.deepEqual([...index.values()], [...model.values()]);
  }
  assert.deepEqual([...index.values()], [...model.values()]);
}

describe('broker: offset index', () => {
  it('broker: answers get, has, delete, size and values as a map would', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 })) }),
      fc.record({ kind: fc.constant('delete' as const), pick: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
      fc.record({ kind: fc.constant('get' as const), pick: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => check(ops)), { numRuns: 300 });
  });

  it('broker: grows and wraps while settling lags reading', () => {
    const random = seededRandom(3);
    function* ops(): Generator<Op> {
      for (let step = 0; step < 40_000; step++) {
        const roll = random();
        if (roll < 0.5) yield { kind: 'add', gap: random() < 0.1 ? 3 : 0 };
        else if (roll < 0.95) yield { kind: 'delete', pick: 1 - random() * random() * 0.2 };
        else yield { kind: 'get', pick: random() };
      }
    }
    check(ops(), 997);
  });

  it('broker: sweeps the holes behind a few long-held offsets without growing', () => {
    // Offsets 0, 1, 2, …: each settled 20 after it was added, except every 500th, which holds the front.
    function* ops(): Generator<Op> {
      for (let offset = 0; offset < 60_000; offset++) {
        yield { kind: 'add', gap: 0 };
        if (offset >= 20 && (offset - 20) % 500 !== 0) yield { kind: 'deleteOffset', offset: offset - 20 };
      }
    }
    check(ops(), 997);
  });

  it('broker: refuses an offset at or below one it holds', () => {
    const index = new OffsetIndex<string>();
    index.add(5, 'a');
    assert.throws(() => index.add(5, 'b'), /out of order/);
    assert.throws(() => index.add(3, 'b'), /out of order/);
    index.add(6, 'b');
    assert.deepEqual([...index.values()], ['a', 'b']);
  });
});
