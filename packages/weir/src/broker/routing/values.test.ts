import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { argumentValue, refused } from './test-support.js';
import { canonicalValue, checkArguments, describeValue, frozenCopy, textOf, valuesEqual } from './values.js';

describe('broker: routing argument values', () => {
  it('broker: equality is by value: numbers and bigints numerically, bytes by bytes, strings equal to their UTF-8 bytes', () => {
    const equal: [unknown, unknown][] = [
      [1, 1n],
      [2 ** 60, 2n ** 60n],
      [0, -0],
      [-0, 0n],
      [Number.NaN, Number.NaN],
      ['é', Buffer.from('é')],
      [Buffer.from('ab'), new Uint8Array([0x61, 0x62])],
      [null, undefined],
      [new Date(5), new Date(5)],
      [[1, 'a', [2n]], [1n, Buffer.from('a'), [2]]],
      [{ a: 1, b: { c: 'x' } }, { b: { c: Buffer.from('x') }, a: 1n }],
      [{ scale: 2, value: 150 }, { value: 150, scale: 2 }],
    ];
    const unequal: [unknown, unknown][] = [
      [1, 1.5],
      [1, '1'],
      [1, true],
      [1.5, 1n],
      [0, null],
      ['', null],
      ['a', Buffer.from('b')],
      [Buffer.from([0xff]), '\ufffd'],
      [Buffer.from('a'), Buffer.from('ab')],
      [new Date(5), 5],
      [[1], [1, 2]],
      [[1], { 0: 1 }],
      [{ a: 1 }, { a: 1, b: 2 }],
      [{ a: undefined }, { b: undefined }],
      [new Map(), new Map()],
    ];
    for (const [a, b] of equal) {
      assert.ok(valuesEqual(a, b), `${describeValue(a)} = ${describeValue(b)}`);
      assert.ok(valuesEqual(b, a), `${describeValue(b)} = ${describeValue(a)}`);
    }
    for (const [a, b] of unequal) {
      assert.ok(!valuesEqual(a, b), `${describeValue(a)} ≠ ${describeValue(b)}`);
      assert.ok(!valuesEqual(b, a), `${describeValue(b)} ≠ ${describeValue(a)}`);
    }
  });

  it('broker: two values are equal exactly when their canonical forms are', () => {
    fc.assert(
      fc.property(argumentValue, argumentValue, (a, b) => {
        assert.equal(valuesEqual(a, b), canonicalValue(a) === canonicalValue(b), `${describeValue(a)} vs ${describeValue(b)}`);
        assert.ok(valuesEqual(a, a));
        assert.ok(valuesEqual(a, frozenCopy(a)));
      }),
      { numRuns: 2000 },
    );
  });

  it('broker: arguments must be plain objects of plain values', () => {
    checkArguments({ a: 1, b: [null, undefined, 2n, 'x', Buffer.from('y'), new Date(0), { c: true }] }, 'args');
    checkArguments(Object.create(null) as Record<string, unknown>, 'args');
    for (const bad of [null, [], 'x', new Map(), { f: () => 1 }, { s: Symbol('s') }, { m: new Map() }, { n: [new Int16Array(2)] }]) {
      assert.throws(() => checkArguments(bad, 'args'), refused('INVALID_ARGUMENT'));
    }
    let deep: Record<string, unknown> = {};
    for (let level = 0; level < 40; level++) deep = { deep };
    assert.throws(() => checkArguments(deep, 'args'), refused('INVALID_ARGUMENT'));
  });

  it('broker: stored copies are deep and frozen, bytes copied', () => {
    const bytes = Buffer.from('ab');
    const original = { list: [1, { x: bytes }], when: new Date(3) };
    const copy = frozenCopy(original);
    bytes[0] = 0x7a;
    original.list.push(2);
    assert.ok(Object.isFrozen(copy) && Object.isFrozen(copy.list) && Object.isFrozen(copy.list[1]));
    assert.equal(textOf((copy.list[1] as { x: Buffer }).x), 'ab');
    assert.equal(copy.list.length, 2);
    assert.equal(textOf(Buffer.from([0xc3])), null);
    assert.equal(textOf(7), null);
    assert.equal(describeValue({ a: [1n, null, Buffer.from([0xff])] }), '{a: [1, void, bytes ff]}');
  });
});
