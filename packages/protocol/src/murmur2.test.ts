import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { murmur2, partitionForKey } from './murmur2.js';

describe('protocol: murmur2 partitioner', () => {
  it("protocol: murmur2 reproduces the Java client's test vectors", () => {
    const vectors: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
      ['', 275646681],
    ];
    for (const [key, expected] of vectors) assert.equal(murmur2(Buffer.from(key, 'utf8')), expected, JSON.stringify(key));
  });

  it('protocol: murmur2 reads bytes as unsigned, like Java masking with 0xff', () => {
    // Every tail length (0-3) with bytes >= 0x80, where a signed read would differ.
    const values = [0x80, 0xff, 0x81, 0xfe, 0x90];
    const hashes = new Set<number>();
    for (let length = 0; length <= values.length; length++) {
      const key = Uint8Array.from(values.slice(0, length));
      const hash = murmur2(key);
      assert.ok(Number.isInteger(hash) && hash >= -(2 ** 31) && hash < 2 ** 31);
      hashes.add(hash);
    }
    assert.equal(hashes.size, values.length + 1);
  });

  it('protocol: partitionForKey is toPositive(murmur2) modulo the partition count', () => {
    assert.equal(partitionForKey(Buffer.from('foobar'), 12), (-790332482 & 0x7fffffff) % 12);
    assert.equal(partitionForKey(Buffer.from('21'), 1), 0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 10_000 }), (key, count) => {
        const partition = partitionForKey(key, count);
        assert.ok(Number.isInteger(partition) && partition >= 0 && partition < count);
        assert.equal(partition, (murmur2(key) & 0x7fffffff) % count);
      }),
    );
    assert.throws(() => partitionForKey(Buffer.from('a'), 0), RangeError);
  });
});
