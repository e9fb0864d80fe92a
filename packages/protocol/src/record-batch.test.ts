import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
// The broker's encoder is the real producer of this format; tests decode what it writes. Test-only import.
import {
  batchBytes,
  encodeBatch,
  generatedMessageId as storageGeneratedMessageId,
  prepareMessage,
  type MessageInput,
} from '../../weir/src/storage/record-batch.js';
import { decodeRecordBatches, generatedMessageId, ProtocolError, RecordFlag, type FetchedMessage } from './index.js';

/** A batch built field by field from the layout in docs/storage.md, independent of either implementation. */
function handBuiltBatch(): Buffer {
  const message = Buffer.concat([
    u64(1_700_000_000_000), // timestamp
    Buffer.from([3]), Buffer.from('id1'), // id
    u16(1), Buffer.from('k'), // key
    Buffer.from([4]), Buffer.from('tag!'), // tag
    u32(2 + 2 + 1 + 1 + 4 + 1 + 2 + 3 + 1 + 4 + 2), // headers length
    u16(2), // header count
    u16(1), Buffer.from('a'), Buffer.from([0]), u32(1), Buffer.from('x'), // a = "x"
    u16(3), Buffer.from('bin'), Buffer.from([1]), u32(2), Buffer.from([0, 255]), // bin = <00 ff>
    Buffer.from('body'),
  ]);
  const noKey = Buffer.concat([u64(1_700_000_000_001), Buffer.from([0]), u16(0xffff), Buffer.from([0]), u32(0)]);
  const messages = Buffer.concat([u32(message.length), message, u32(noKey.length), noKey]);
  const header = Buffer.concat([
    u32(48 + messages.length), // length
    u32(0), // crc, filled below
    Buffer.from([1, RecordFlag.Transactional]), // version, flags
    u16(2), // count
    u32(77), // queueId
    u64(1000), // baseOffset
    u64(1_700_000_000_005), // storeTimestamp
    u64(91), // producerId
    u16(3), // producerEpoch
    u16(0), // reserved
    u32(40), // baseSequence
  ]);
  const batch = Buffer.concat([header, messages]);
  batch.writeUInt32LE(nativeCrc32c(batch.subarray(8)) >>> 0, 4);
  return batch;
}

function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16LE(value);
  return out;
}
function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
}
function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(value));
  return out;
}

function brokerBatch(
  baseOffset: number,
  messages: readonly MessageInput[],
  options: { storeTimestamp?: number; position?: number; producerId?: number; baseSequence?: number; flags?: number } = {},
): Buffer {
  const prepared = messages.map(prepareMessage);
  const batch = Buffer.alloc(batchBytes(prepared));
  encodeBatch(batch, 0, 5, baseOffset, options.storeTimestamp ?? 1_700_000_000_000, options.position ?? 4096, prepared, {
    producerId: options.producerId ?? 0,
    producerEpoch: 0,
    baseSequence: options.baseSequence ?? -1,
    flags: options.flags ?? 0,
  });
  return batch;
}

/** Every field of a decoded message as a plain object (decoded messages read their fields lazily, through getters). */
function plain(message: FetchedMessage): FetchedMessage {
  const { offset, timestamp, storeTimestamp, id, key, tag, headers, body, producerId, sequence, flags } = message;
  return { offset, timestamp, storeTimestamp, id, key, tag, headers, body, producerId, sequence, flags };
}

function assertDamaged(run: () => unknown, pattern?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, String(error));
    assert.equal(error.code, 'DATA_DAMAGED');
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('protocol: record batches', () => {
  it('protocol: decodeRecordBatches reads a batch built from the documented layout', () => {
    const messages = decodeRecordBatches(handBuiltBatch(), 0).map(plain);
    assert.deepEqual(messages, [
      {
        offset: 1000,
        timestamp: 1_700_000_000_000,
        storeTimestamp: 1_700_000_000_005,
        id: Buffer.from('id1'),
        key: Buffer.from('k'),
        tag: 'tag!',
        headers: { a: 'x', bin: Buffer.from([0, 255]) },
        body: Buffer.from('body'),
        producerId: 91,
        sequence: 40,
        flags: RecordFlag.Transactional,
      },
      {
        offset: 1001,
        timestamp: 1_700_000_000_001,
        storeTimestamp: 1_700_000_000_005,
        id: Buffer.alloc(0),
        key: null,
        tag: null,
        headers: {},
        body: Buffer.alloc(0),
        producerId: 91,
        sequence: 41,
        flags: RecordFlag.Transactional,
      },
    ] satisfies FetchedMessage[]);
  });

  it("protocol: decodeRecordBatches reads what the broker's encoder writes", () => {
    const message = fc.record({
      id: fc.option(fc.uint8Array({ minLength: 1, maxLength: 40 }), { nil: undefined }),
      key: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }),
      tag: fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: null }),
      headers: fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }).map((bytes) => Buffer.from(bytes))), {
        maxKeys: 3,
      }),
      timestamp: fc.option(fc.integer({ min: 0, max: 2 ** 47 }), { nil: undefined }),
      body: fc.uint8Array({ maxLength: 100 }),
    });
    const batch = fc.record({
      baseOffset: fc.integer({ min: 0, max: 2 ** 50 }),
      storeTimestamp: fc.integer({ min: 0, max: 2 ** 47 }),
      position: fc.integer({ min: 0, max: 2 ** 50 }),
      producerId: fc.integer({ min: 0, max: 2 ** 50 }),
      baseSequence: fc.integer({ min: -1, max: 2 ** 30 }),
      flags: fc.integer({ min: 0, max: 3 }),
      messages: fc.array(message, { minLength: 1, maxLength: 6 }),
    });
    fc.assert(
      fc.property(fc.array(batch, { minLength: 1, maxLength: 3 }), (batches) => {
        const records = Buffer.concat(batches.map((spec) => brokerBatch(spec.baseOffset, spec.messages, spec)));
        const decoded = decodeRecordBatches(records, 0).map(plain);
        const expected = batches.flatMap((spec) =>
          spec.messages.map((input, index) => ({
            offset: spec.baseOffset + index,
            timestamp: input.timestamp ?? spec.storeTimestamp,
            storeTimestamp: spec.storeTimestamp,
            id: input.id === undefined ? storageGeneratedMessageId(spec.storeTimestamp, spec.position, index) : Buffer.from(input.id),
            key: input.key === null ? null : Buffer.from(input.key),
            tag: input.tag,
            headers: { ...input.headers },
            body: Buffer.from(input.body),
            producerId: spec.producerId,
            sequence: spec.baseSequence < 0 ? -1 : spec.baseSequence + index,
            flags: spec.flags,
          })),
        );
        assert.deepEqual(decoded, expected);
      }),
      { numRuns: 300 },
    );
  });

  it('protocol: decodeRecordBatches skips messages below fromOffset', () => {
    const body = (text: string): MessageInput => ({ body: text });
    const records = Buffer.concat([brokerBatch(10, [body('a'), body('b')]), brokerBatch(12, [body('c'), body('d'), body('e')])]);
    const offsets = (from: number): number[] => decodeRecordBatches(records, from).map((message) => message.offset);
    assert.deepEqual(offsets(0), [10, 11, 12, 13, 14]);
    assert.deepEqual(offsets(11), [11, 12, 13, 14]);
    assert.deepEqual(offsets(13), [13, 14]);
    assert.deepEqual(offsets(15), []);
    assert.deepEqual(
      decodeRecordBatches(records, 13).map((message) => message.body.toString()),
      ['d', 'e'],
    );
    // A damaged batch wholly below fromOffset is skipped unchecked.
    const damagedFirst = Buffer.from(records);
    damagedFirst[60] = damagedFirst[60]! ^ 0xff;
    assert.deepEqual(decodeRecordBatches(damagedFirst, 12).length, 3);
    assertDamaged(() => decodeRecordBatches(damagedFirst, 11));
  });

  it('protocol: decodeRecordBatches ignores a trailing partial batch', () => {
    const whole = brokerBatch(0, [{ body: 'one' }]);
    const next = brokerBatch(1, [{ body: 'two' }]);
    for (let cut = 0; cut < next.length; cut++) {
      const messages = decodeRecordBatches(Buffer.concat([whole, next.subarray(0, cut)]), 0);
      assert.deepEqual(messages.map((message) => message.body.toString()), ['one']);
    }
    assert.deepEqual(decodeRecordBatches(Buffer.alloc(0), 0), []);
  });

  it('protocol: decodeRecordBatches reports CRC mismatches and impossible lengths as DATA_DAMAGED', () => {
    const batch = brokerBatch(7, [{ key: 'k', body: 'payload' }]);
    const flipped = Buffer.from(batch);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    assertDamaged(() => decodeRecordBatches(flipped, 0), /^record batch: batch at byte 0 \(offset 7\) fails its CRC: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$/);
    assert.equal(decodeRecordBatches(flipped, 0, { verifyCrc: false })[0]!.body.toString(), 'payloae');
    const shortLength = Buffer.from(batch);
    shortLength.writeUInt32LE(47, 0);
    assertDamaged(() => decodeRecordBatches(shortLength, 0), /below its 48-byte header/);
    const badVersion = Buffer.from(batch);
    badVersion[8] = 2;
    assertDamaged(() => decodeRecordBatches(badVersion, 0, { verifyCrc: false }), /unknown version 2/);
    const longMessage = Buffer.from(batch);
    longMessage.writeUInt32LE(1000, 48);
    assertDamaged(() => decodeRecordBatches(longMessage, 0, { verifyCrc: false }), /impossible length/);
  });

  it('protocol: decodeRecordBatches fuzz: damaged batches only ever fail with ProtocolError', () => {
    const records = Buffer.concat([
      brokerBatch(0, [{ key: 'k', tag: 't', headers: { h: 'v', b: Buffer.from([1]) }, body: 'body' }, { body: '' }]),
      brokerBatch(2, [{ id: 'my-id', body: 'x'.repeat(30) }]),
    ]);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean(), (edits, verifyCrc) => {
        const damaged = Buffer.from(records);
        for (const [at, value] of edits) damaged[at % damaged.length] = value;
        try {
          // Every field is read too: whatever decoding accepted must be readable without errors.
          decodeRecordBatches(damaged, 0, { verifyCrc }).map(plain);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          assert.equal(error.code, 'DATA_DAMAGED');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('protocol: repeated and changing tags and header texts decode correctly', () => {
    const records = Buffer.concat([
      brokerBatch(0, [
        { tag: 'aaaa', headers: { h1: 'v1', h2: 'xx' }, body: '' },
        { tag: 'aaaa', headers: { h1: 'v1', h2: 'yy' }, body: '' },
        { tag: 'aaab', headers: { h2: 'v1', h1: 'yy' }, body: '' },
        { tag: null, headers: { h1: '', h2: Buffer.from('yy') }, body: '' },
      ]),
      brokerBatch(4, [{ tag: 'aaab', headers: { h2: 'v1', h1: 'yy', ['x'.repeat(70)]: 'y'.repeat(70) }, body: '' }]),
    ]);
    assert.deepEqual(
      decodeRecordBatches(records, 0).map((message) => [message.tag, message.headers]),
      [
        ['aaaa', { h1: 'v1', h2: 'xx' }],
        ['aaaa', { h1: 'v1', h2: 'yy' }],
        ['aaab', { h2: 'v1', h1: 'yy' }],
        [null, { h1: '', h2: Buffer.from('yy') }],
        ['aaab', { h2: 'v1', h1: 'yy', ['x'.repeat(70)]: 'y'.repeat(70) }],
      ],
    );
  });

  it('protocol: a header named __proto__ is an ordinary header', () => {
    const records = brokerBatch(0, [{ headers: JSON.parse('{"__proto__": "x", "y": "z"}') as Record<string, string>, body: '' }]);
    const headers = decodeRecordBatches(records, 0)[0]!.headers;
    assert.equal(Object.getPrototypeOf(headers), Object.prototype);
    assert.deepEqual(Object.entries(headers), [
      ['__proto__', 'x'],
      ['y', 'z'],
    ]);
  });

  it('protocol: decoded messages read each field once, on demand, and show every field', () => {
    const records = brokerBatch(5, [{ id: 'abc', key: 'k', tag: 't', headers: { h: 'v', b: Buffer.from([1]) }, timestamp: 1234, body: 'hello' }, { body: 'x' }]);
    const [first, second] = decodeRecordBatches(records, 0);
    assert.equal(first!.body, first!.body, 'the same view on every read');
    assert.equal(first!.id, first!.id);
    assert.equal(first!.key, first!.key);
    assert.equal(first!.headers, first!.headers);
    assert.deepEqual(first!.headers, { h: 'v', b: Buffer.from([1]) });
    assert.equal(first!.timestamp, 1234);
    assert.equal(second!.offset, 6);
    assert.deepEqual(second!.headers, {});
    assert.notEqual(second!.headers, decodeRecordBatches(records, 0)[1]!.headers, 'each message has its own headers object');
    const json = JSON.parse(JSON.stringify(first)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ['offset', 'timestamp', 'storeTimestamp', 'id', 'key', 'tag', 'headers', 'body', 'producerId', 'sequence', 'flags']);
    assert.equal(json.tag, 't');
    assert.match(inspect(first), /offset: 5[\s\S]*body: <Buffer 68 65 6c 6c 6f>/);
  });

  it('protocol: CRC checks agree with crc32c at every alignment and length', () => {
    const sizes = [0, 1, 30, 61, 64, 65, 200, 1000];
    for (const size of sizes) {
      const batch = brokerBatch(0, [{ body: Buffer.alloc(size, 0xa5) }, { key: 'k', body: Buffer.from(Array.from({ length: size }, (_, index) => index & 0xff)) }]);
      for (let shift = 0; shift < 8; shift++) {
        const room = Buffer.alloc(batch.length + 16);
        const placed = room.subarray(shift, shift + batch.length);
        batch.copy(placed);
        assert.equal(decodeRecordBatches(placed, 0).length, 2, `size ${size}, shift ${shift}`);
        for (const at of [9, 12, 48, Math.floor(batch.length / 2), batch.length - 5, batch.length - 1]) {
          placed[at] = placed[at]! ^ 0x10;
          const expected = nativeCrc32c(placed.subarray(8)) >>> 0;
          assertDamaged(() => decodeRecordBatches(placed, 0), new RegExp(`computed 0x${expected.toString(16).padStart(8, '0')}$`));
          placed[at] = placed[at]! ^ 0x10;
        }
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.integer({ min: 0, max: 7 }), (body, shift) => {
        const batch = brokerBatch(3, [{ body }]);
        const room = Buffer.alloc(batch.length + 8);
        batch.copy(room, shift);
        const placed = room.subarray(shift, shift + batch.length);
        assert.deepEqual(decodeRecordBatches(placed, 0)[0]!.body, Buffer.from(body));
      }),
      { numRuns: 300 },
    );
  });

  it("protocol: generatedMessageId matches the storage's generated ids", () => {
    assert.deepEqual(
      generatedMessageId(0x0102_0304_0506, 0x0a0b_0c0d_0e0f, 0x1011),
      Buffer.from([1, 2, 3, 4, 5, 6, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 0xffff }), (time, position, index) => {
        assert.deepEqual(generatedMessageId(time, position, index), storageGeneratedMessageId(time, position, index));
      }),
    );
    assert.throws(() => generatedMessageId(-1, 0, 0), RangeError);
    assert.throws(() => generatedMessageId(0, 0, 65_536), RangeError);
  });
});
