import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { locateFlippedBit, repairSingleBitFlip } from './batch-repair.js';
import { crc32c } from './crc.js';
import { BatchCheck, batchBytes, checkBatch, encodeBatch, encodeSharedBatch, prepareMessage, sharedBatchBytes } from './record-batch.js';

const MAX_BATCH_BYTES = 1 << 20;

const messagesArbitrary = fc.array(
  fc.record({
    key: fc.option(fc.string({ maxLength: 12 }), { nil: null }),
    body: fc.uint8Array({ maxLength: 300 }),
  }),
  { minLength: 1, maxLength: 6 },
);

const batchArbitrary = fc.tuple(messagesArbitrary, fc.boolean(), fc.nat({ max: 1_000_000 })).map(([messages, shared, baseOffset]) => {
  const prepared = messages.map((message) => prepareMessage({ key: message.key, body: message.body }));
  if (!shared) {
    const batch = Buffer.alloc(batchBytes(prepared));
    encodeBatch(batch, 0, 7, baseOffset, 1_700_000_000_000, 4096, prepared);
    return batch;
  }
  const queues = [
    { queueId: 7, baseOffset },
    { queueId: 9, baseOffset: baseOffset + 3 },
  ];
  const batch = Buffer.alloc(sharedBatchBytes(prepared, queues.length));
  encodeSharedBatch(batch, 0, queues, 1_700_000_000_000, 4096, prepared);
  return batch;
});

function flipped(batch: Buffer, ...bits: number[]): Buffer {
  const copy = Buffer.from(batch);
  for (const bit of bits) copy[bit >>> 3]! ^= 1 << (bit & 7);
  return copy;
}

describe('storage: locating a single flipped bit', () => {
  it('property: the syndrome names the flipped bit of any message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.nat(), (data, seed) => {
        const bit = seed % (data.byteLength * 8);
        const original = crc32c(data);
        const damaged = flipped(Buffer.from(data), bit);
        assert.equal(locateFlippedBit(damaged.byteLength, crc32c(damaged) ^ original), bit);
        assert.equal(locateFlippedBit(data.byteLength, crc32c(data) ^ original), -1, 'nothing to find in an intact message');
      }),
    );
  });

  it('property: a batch with any one bit flipped (header, CRC, length, messages or trailer) is restored exactly', () => {
    fc.assert(
      fc.property(batchArbitrary, fc.nat(), (batch, seed) => {
        const bit = seed % (batch.byteLength * 8);
        const damaged = flipped(batch, bit);
        assert.notEqual(checkBatch(damaged, 0, damaged.byteLength, MAX_BATCH_BYTES), BatchCheck.Valid);
        assert.deepEqual(repairSingleBitFlip(damaged, batch.byteLength, MAX_BATCH_BYTES), batch);
      }),
    );
  });

  it('property: two flipped bits under the CRC are never mistaken for one', () => {
    fc.assert(
      fc.property(batchArbitrary, fc.nat(), fc.nat(), (batch, first, second) => {
        // Bytes [0, 4) are the length, outside the CRC: a flip there is confirmed by where the batch must end instead.
        const covered = (batch.byteLength - 4) * 8;
        const a = 32 + (first % covered);
        const b = 32 + (second % covered);
        fc.pre(a !== b);
        assert.equal(repairSingleBitFlip(flipped(batch, a, b), batch.byteLength, MAX_BATCH_BYTES), null);
      }),
    );
  });

  it('a flipped length is undone only when the batch must end where the other value says', () => {
    const prepared = [prepareMessage({ body: 'x'.repeat(100) })];
    const batch = Buffer.alloc(batchBytes(prepared));
    encodeBatch(batch, 0, 1, 0, 1_700_000_000_000, 0, prepared);
    const damaged = flipped(batch, 5); // length + 32
    assert.deepEqual(repairSingleBitFlip(damaged, batch.byteLength, MAX_BATCH_BYTES), batch);
    assert.equal(repairSingleBitFlip(damaged, batch.byteLength + 8, MAX_BATCH_BYTES), null, 'two bits apart from the expected end');
    assert.equal(repairSingleBitFlip(batch, batch.byteLength, MAX_BATCH_BYTES)?.equals(batch), true, 'an intact batch is returned as it is');
  });

  it('zeros and random bytes are not repaired into a batch', () => {
    assert.equal(repairSingleBitFlip(Buffer.alloc(4096), 4096, MAX_BATCH_BYTES), null);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 48, maxLength: 3000 }), (bytes) => {
        assert.equal(repairSingleBitFlip(Buffer.from(bytes), bytes.byteLength, MAX_BATCH_BYTES), null);
      }),
    );
  });
});
