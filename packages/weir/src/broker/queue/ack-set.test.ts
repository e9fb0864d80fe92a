import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AckSet } from './ack-set.js';

test('acks in order move the floor and leave no ranges', () => {
  const set = new AckSet(10);
  for (let offset = 10; offset < 20; offset++) assert.equal(set.add(offset), true);
  assert.equal(set.floor, 20);
  assert.equal(set.rangeCount, 0);
  assert.equal(set.add(15), false);
});

test('a gap keeps one range until it is filled', () => {
  const set = new AckSet();
  set.add(1);
  set.add(2);
  set.add(4);
  assert.deepEqual(set.toJSON(), { floor: 0, settled: [[1, 3], [4, 5]] });
  assert.equal(set.nextUnsettled(1), 3);
  set.add(3);
  assert.deepEqual(set.toJSON(), { floor: 0, settled: [[1, 5]] });
  set.add(0);
  assert.deepEqual(set.toJSON(), { floor: 5, settled: [] });
  assert.equal(set.settledAboveFloor, 0);
});

test('raiseFloor swallows the ranges below it', () => {
  const set = AckSet.fromJSON({ floor: 0, settled: [[2, 4], [6, 9]] });
  set.raiseFloor(7);
  assert.deepEqual(set.toJSON(), { floor: 9, settled: [] });
});

test('AckSet agrees with a set of offsets (property)', () => {
  fc.assert(
    fc.property(
      fc.nat(50),
      fc.array(fc.oneof(fc.tuple(fc.constant('add' as const), fc.nat(200)), fc.tuple(fc.constant('range' as const), fc.nat(200), fc.nat(20)), fc.tuple(fc.constant('raise' as const), fc.nat(200)))),
      (start, ops) => {
        const set = new AckSet(start);
        const model = new Set<number>();
        let floor = start;
        const settled = (offset: number) => offset < floor || model.has(offset);
        for (const op of ops) {
          if (op[0] === 'add') {
            assert.equal(set.add(op[1]), !settled(op[1]));
            model.add(op[1]);
          } else if (op[0] === 'range') {
            let fresh = 0;
            for (let offset = op[1]; offset < op[1] + op[2]; offset++) if (!settled(offset)) fresh++, model.add(offset);
            assert.equal(set.addRange(op[1], op[1] + op[2]), fresh);
          } else {
            set.raiseFloor(op[1]);
            floor = Math.max(floor, op[1]);
          }
          while (model.has(floor)) floor++;
          assert.equal(set.floor, floor);
          let above = 0;
          for (const offset of model) if (offset >= floor) above++;
          assert.equal(set.settledAboveFloor, above);
          for (let offset = 0; offset < 230; offset++) assert.equal(set.has(offset), settled(offset), `offset ${offset}`);
          assert.equal(set.settledIn(0, 230), [...Array(230).keys()].filter(settled).length);
          const copy = AckSet.fromJSON(JSON.parse(JSON.stringify(set.toJSON())));
          assert.deepEqual(copy.toJSON(), set.toJSON());
        }
      },
    ),
    { numRuns: 300 },
  );
});
