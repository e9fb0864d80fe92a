import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode } from '../core/errors.js';
import { murmur2 as murmur2OfBytes, partitionForKey as partitionForBytes } from 'weir-protocol';
import { Partitioner } from './partitioner.js';

// The broker partitions with the protocol package's murmur2; strings are hashed as their UTF-8 bytes.
const utf8 = (key: Uint8Array | string) => (typeof key === 'string' ? Buffer.from(key, 'utf8') : key);
const murmur2 = (key: Uint8Array | string) => murmur2OfBytes(utf8(key));
const partitionForKey = (key: Uint8Array | string, partitions: number) => partitionForBytes(utf8(key), partitions);
import { throwsWith } from './test-support.js';

describe('broker: partitioner', () => {
  it('broker: murmur2 matches the Java client test vectors', () => {
    assert.equal(murmur2('21'), -973932308);
    assert.equal(murmur2('foobar'), -790332482);
    assert.equal(murmur2('abc'), 479470107);
    assert.equal(murmur2(''), 275646681);
    assert.equal(murmur2(Buffer.from('foobar')), murmur2('foobar'));
  });

  it('broker: key partitioning is stable, in range, and the same for strings and their UTF-8 bytes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.integer({ min: 1, max: 10_000 }), (key, partitions) => {
        const partition = partitionForKey(key, partitions);
        assert.ok(partition >= 0 && partition < partitions);
        assert.equal(partitionForKey(Buffer.from(key, 'utf8'), partitions), partition);
        assert.equal(partitionForKey(key, partitions), partition);
      }),
    );
    // (murmur2 & 0x7fffffff) % n, as Kafka's default partitioner computes it.
    assert.equal(partitionForKey('21', 7), (-973932308 & 0x7fffffff) % 7);
    assert.equal(partitionForKey('foobar', 8), (-790332482 & 0x7fffffff) % 8);
  });

  it('broker: explicit partitions are checked, keyless batches go round robin per topic', () => {
    const partitioner = new Partitioner();
    assert.equal(partitioner.choose('t', 4, 3, 'key'), 3);
    throwsWith(() => partitioner.choose('t', 4, 4, null), ErrorCode.InvalidPartition);
    throwsWith(() => partitioner.choose('t', 4, -2, null), ErrorCode.InvalidPartition);
    assert.equal(partitioner.choose('t', 4, -1, 'abc'), partitionForKey('abc', 4));
    const spread = Array.from({ length: 8 }, () => partitioner.choose('t', 4, -1, null));
    assert.deepEqual(spread, [0, 1, 2, 3, 0, 1, 2, 3]);
    assert.equal(partitioner.choose('other', 4, -1, undefined), 0);
  });
});
