import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { crc32c } from './crc.js';
import {
  BatchCheck,
  batchBaseOffset,
  batchBytes,
  batchForQueue,
  batchQueues,
  checkBatch,
  decodeHeaderList,
  decodeHeaders,
  decodeMessages,
  encodeBatch,
  encodeSharedBatch,
  encodedHeader,
  encodedHeaderValues,
  encodedHeadersWithout,
  encodeHeaders,
  forEachMessageSummary,
  prepareMessage,
  RECORD_HEADER_BYTES,
  sharedBatchBytes,
  type MessageInput,
  type StoredMessage,
} from './record-batch.js';

function batchOf(messages: readonly MessageInput[]): Buffer {
  const prepared = messages.map(prepareMessage);
  const batch = Buffer.alloc(batchBytes(prepared));
  encodeBatch(batch, 0, 1, 0, 1_700_000_000_000, 0, prepared);
  return batch;
}

/** Fixes the CRC after a change, as a buggy writer (or a 1-in-2^32 accident) would leave it. */
function resealed(batch: Buffer): Buffer {
  batch.writeUInt32LE(crc32c(batch.subarray(8, batch.readUInt32LE(0))), 4);
  return batch;
}

/** What a decoder did with a batch: how many messages it produced, or the code it failed with. */
function outcome(decode: () => number): number | string {
  try {
    return decode();
  } catch (error) {
    if (isWeirError(error)) return error.code;
    throw error;
  }
}

/** One header in stored form; names may repeat, which `encodeHeaders` (taking an object) cannot produce. */
type RawHeader = { name: string; isString: boolean; value: Buffer };

function encodeRawHeaders(headers: readonly RawHeader[]): Buffer {
  const parts: Buffer[] = [Buffer.from([headers.length & 0xff, headers.length >> 8])];
  for (const header of headers) {
    const name = Buffer.from(header.name, 'utf8');
    const fields = Buffer.alloc(2 + name.byteLength + 5);
    fields.writeUInt16LE(name.byteLength, 0);
    name.copy(fields, 2);
    fields[2 + name.byteLength] = header.isString ? 0 : 1;
    fields.writeUInt32LE(header.value.byteLength, 3 + name.byteLength);
    parts.push(fields, header.value);
  }
  return Buffer.concat(parts);
}

const headerName = fc.oneof(fc.constantFrom('a', 'b', 'weir.deliverAt', '__proto__', 'constructor', ''), fc.string({ unit: 'grapheme', maxLength: 12 }));
const rawHeader: fc.Arbitrary<RawHeader> = fc.oneof(
  fc.record({ name: headerName, isString: fc.constant(true), value: fc.string({ unit: 'grapheme', maxLength: 16 }).map((text) => Buffer.from(text, 'utf8')) }),
  fc.record({ name: headerName, isString: fc.constant(false), value: fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)) }),
);
/** Well-formed lists, and damaged ones: cut short, or with bytes changed. */
const encodedList = fc.oneof(
  fc.array(rawHeader, { maxLength: 6 }).map(encodeRawHeaders),
  fc.tuple(fc.array(rawHeader, { minLength: 1, maxLength: 6 }).map(encodeRawHeaders), fc.nat(), fc.nat(255)).map(([encoded, at, value]) => {
    const damaged = Buffer.from(encoded);
    damaged[at % damaged.byteLength] = value;
    return damaged;
  }),
  fc.tuple(fc.array(rawHeader, { minLength: 1, maxLength: 6 }).map(encodeRawHeaders), fc.nat()).map(([encoded, cut]) => encoded.subarray(0, cut % encoded.byteLength)),
);

/** decodeHeaders' answer for one name: an own property, or what it failed with. */
function decodedValue(encoded: Buffer, name: string): string | Buffer | undefined | { failed: string } {
  try {
    const all = decodeHeaders(encoded);
    return Object.hasOwn(all, name) ? all[name] : undefined;
  } catch (error) {
    return { failed: isWeirError(error) ? error.code : String(error) };
  }
}

describe('storage: record batch', () => {
  it('storage: a CRC-valid batch whose id length runs past the message fails with DATA_DAMAGED in every decoder', () => {
    const batch = batchOf([{ id: 'abc', body: 'x' }]);
    batch[RECORD_HEADER_BYTES + 12] = 200;
    resealed(batch);
    assert.equal(outcome(() => decodeMessages(batch, 0, 0, 0, 10, [])), ErrorCode.DataDamaged);
    assert.equal(outcome(() => (forEachMessageSummary(batch, 0, () => {}), 1)), ErrorCode.DataDamaged);
  });

  it('storage: decoders agree on any CRC-valid batch: the same messages, or DATA_DAMAGED having visited nothing (property)', () => {
    const message = fc.record({
      id: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
      key: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
      tag: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
      headers: fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
      body: fc.string({ maxLength: 16 }),
    });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), fc.nat(), fc.nat(255), (messages, at, value) => {
        const batch = batchOf(messages);
        batch[RECORD_HEADER_BYTES + (at % (batch.byteLength - RECORD_HEADER_BYTES))] = value;
        resealed(batch);
        const decoded = outcome(() => decodeMessages(batch, 0, 0, 0, Infinity, []));
        let visited = 0;
        const summarised = outcome(() => {
          forEachMessageSummary(batch, 0, () => visited++);
          return visited;
        });
        assert.equal(summarised, decoded);
        if (decoded === ErrorCode.DataDamaged) assert.equal(visited, 0);
        else assert.equal(decoded, messages.length);
      }),
    );
  });

  it('storage: encodedHeader finds what decodeHeaders finds, on any list, damaged or not (property)', () => {
    fc.assert(
      fc.property(encodedList, headerName, (encoded, name) => {
        const expected = decodedValue(encoded, name);
        let actual: ReturnType<typeof decodedValue>;
        try {
          actual = encodedHeader(encoded, name);
        } catch (error) {
          actual = { failed: isWeirError(error) ? error.code : String(error) };
        }
        assert.deepEqual(actual, expected);
      }),
    );
  });

  it('storage: encodedHeaderValues finds in one walk what encodedHeader finds name by name (property)', () => {
    fc.assert(
      fc.property(encodedList, fc.array(headerName, { maxLength: 4 }), (encoded, names) => {
        const expected = names.map((name) => decodedValue(encoded, name));
        const values: Array<string | Buffer | undefined> = names.map(() => 'stale');
        let failed: string | null = null;
        try {
          encodedHeaderValues(encoded, names.map((name) => Buffer.from(name, 'utf8')), values);
        } catch (error) {
          failed = isWeirError(error) ? error.code : String(error);
        }
        if (failed !== null) {
          assert.equal(failed, ErrorCode.DataDamaged);
          assert.throws(() => decodeHeaders(encoded), (error) => isWeirError(error, ErrorCode.DataDamaged));
        } else {
          assert.deepEqual(values, expected);
        }
      }),
    );
  });

  it('storage: encodedHeadersWithout drops exactly that name, keeps the rest as decodeHeaders reads it, damaged lists throw (property)', () => {
    fc.assert(
      fc.property(encodedList, headerName, (encoded, name) => {
        let expected: Record<string, string | Buffer> | { failed: string };
        try {
          const decoded = decodeHeaders(encoded);
          delete decoded[name];
          expected = decoded;
        } catch (error) {
          expected = { failed: isWeirError(error) ? error.code : String(error) };
        }
        let actual: Record<string, string | Buffer> | { failed: string };
        try {
          // The result must not share bytes with its source, which a read buffer may be.
          const source = Buffer.from(encoded);
          const copy = encodedHeadersWithout(source, name);
          source.fill(0xee);
          actual = decodeHeaders(copy);
        } catch (error) {
          actual = { failed: isWeirError(error) ? error.code : String(error) };
        }
        assert.deepEqual(actual, expected);
      }),
    );
    // A message stored without headers (an empty list) found by the property test.
    assert.deepEqual(decodeHeaders(encodedHeadersWithout(Buffer.alloc(0), 'a')), {});
  });

  it('storage: encodeHeaders writes any text, short or long, ASCII or not, as decodeHeaders reads it back (property)', () => {
    const text = fc.oneof(fc.string({ maxLength: 70 }), fc.string({ unit: 'grapheme', maxLength: 70 }), fc.string({ unit: 'binary', maxLength: 70 }));
    fc.assert(
      fc.property(fc.dictionary(text, fc.oneof(text, fc.uint8Array({ maxLength: 8 })), { maxKeys: 5 }), (headers) => {
        const encoded = Buffer.from(encodeHeaders(headers));
        const expected: Record<string, string | Buffer> = {};
        for (const [name, value] of Object.entries(headers)) {
          // Lone surrogates have no UTF-8 form: they are written as U+FFFD, as Buffer.from would write them.
          const stored = typeof value === 'string' ? Buffer.from(value, 'utf8').toString('utf8') : Buffer.from(value);
          Object.defineProperty(expected, Buffer.from(name, 'utf8').toString('utf8'), { value: stored, enumerable: true, writable: true, configurable: true });
        }
        assert.deepEqual(decodeHeaders(encoded), expected);
      }),
    );
    assert.deepEqual(decodeHeaders(Buffer.from(encodeHeaders({ ['é'.repeat(40)]: 'ü'.repeat(70), ascii: 'x'.repeat(100) }))), { ['é'.repeat(40)]: 'ü'.repeat(70), ascii: 'x'.repeat(100) });
  });

  it('storage: encodedHeader reads objects encodeHeaders wrote, bytes values as views', () => {
    const encoded = Buffer.from(encodeHeaders({ a: 'x', 'weir.deliverAt': '1700000000000', bin: Buffer.from([0, 255]) }));
    assert.equal(encodedHeader(encoded, 'weir.deliverAt'), '1700000000000');
    const bin = encodedHeader(encoded, 'bin') as Buffer;
    assert.deepEqual(bin, Buffer.from([0, 255]));
    assert.equal(bin.buffer, encoded.buffer, 'not a copy');
    assert.equal(encodedHeader(encoded, 'missing'), undefined);
    assert.equal(encodedHeader(Buffer.alloc(0), 'a'), undefined);
  });

  it('storage: decodeHeaderList lists every header in order as views, agreeing with decodeHeaders (property)', () => {
    fc.assert(
      fc.property(encodedList, (encoded) => {
        let list: ReturnType<typeof decodeHeaderList>;
        try {
          list = decodeHeaderList(encoded);
        } catch (error) {
          assert.ok(isWeirError(error, ErrorCode.DataDamaged));
          assert.throws(() => decodeHeaders(encoded), (other) => isWeirError(other, ErrorCode.DataDamaged));
          return;
        }
        const rebuilt: Record<string, string | Buffer> = {};
        for (const header of list) {
          assert.equal(header.value.buffer, encoded.buffer, 'a view into the encoded list');
          Object.defineProperty(rebuilt, header.name, { value: header.isString ? header.value.toString('utf8') : header.value, enumerable: true, writable: true, configurable: true });
        }
        assert.deepEqual(rebuilt, decodeHeaders(encoded));
        if (encoded.byteLength >= 2) assert.equal(list.length, encoded.readUInt16LE(0));
      }),
    );
  });

  it('storage: decodeHeaderList without headers is one shared frozen empty list', () => {
    const none = decodeHeaderList(Buffer.alloc(0));
    assert.equal(decodeHeaderList(Buffer.from(encodeHeaders({}))), none);
    assert.equal(none.length, 0);
    assert.ok(Object.isFrozen(none));
  });

  it('storage: a header named __proto__ decodes as a header, not as the prototype', () => {
    const encoded = encodeRawHeaders([{ name: '__proto__', isString: false, value: Buffer.from([1]) }]);
    const decoded = decodeHeaders(encoded);
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepEqual(Object.keys(decoded), ['__proto__']);
    assert.deepEqual(encodedHeader(encoded, '__proto__'), Buffer.from([1]));
  });
});

describe('storage: shared record batches', () => {
  const message = fc.record({
    id: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
    key: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
    tag: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
    headers: fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }), { nil: undefined }),
    timestamp: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
    body: fc.string({ maxLength: 16 }),
  });
  const queues = fc.uniqueArray(fc.record({ queueId: fc.nat(), baseOffset: fc.integer({ min: 0, max: 2 ** 50 }) }), { minLength: 2, maxLength: 6, selector: (queue) => queue.queueId });

  function sharedOf(messages: readonly MessageInput[], list: ReadonlyArray<{ queueId: number; baseOffset: number }>, position = 4096): Buffer {
    const prepared = messages.map(prepareMessage);
    const batch = Buffer.alloc(sharedBatchBytes(prepared, list.length));
    encodeSharedBatch(batch, 0, list, 1_700_000_000_000, position, prepared, { flags: 1 });
    return batch;
  }

  it('storage: a shared batch, re-framed for one of its queues, is byte for byte the batch that queue alone would store (property)', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), queues, (messages, list) => {
        const shared = sharedOf(messages, list);
        assert.equal(checkBatch(shared, 0, shared.byteLength, 1 << 20), BatchCheck.Valid);
        assert.deepEqual(batchQueues(shared, 0), list.map(({ queueId, baseOffset }) => ({ queueId, baseOffset })));
        const prepared = messages.map(prepareMessage);
        for (const { queueId, baseOffset } of list) {
          assert.equal(batchBaseOffset(shared, 0, queueId), baseOffset);
          const alone = Buffer.alloc(batchBytes(prepared));
          encodeBatch(alone, 0, queueId, baseOffset, 1_700_000_000_000, 4096, prepared, { flags: 1 });
          const single = batchForQueue(shared, 0, queueId);
          assert.ok(single.equals(alone), 'same bytes, CRC included');
          const fromShared: Array<[number, number, string, string]> = [];
          const decoded: StoredMessage[] = [];
          decodeMessages(shared, 0, 4096, 0, Infinity, decoded, queueId);
          for (const stored of decoded) fromShared.push([stored.queueId, stored.offset, stored.id.toString('hex'), stored.body.toString()]);
          const fromSingle: typeof decoded = [];
          decodeMessages(single, 0, 4096, 0, Infinity, fromSingle);
          assert.deepEqual(fromSingle.map((stored) => [stored.queueId, stored.offset, stored.id.toString('hex'), stored.body.toString()]), fromShared);
        }
        assert.equal(batchBaseOffset(shared, 0, -1 >>> 0), -1);
        let summaries = 0;
        forEachMessageSummary(shared, 0, () => summaries++);
        assert.equal(summaries, messages.length, 'the trailer is not taken for a message');
      }),
    );
  });

  it('storage: a shared batch with an impossible queue count or trailer is refused before its CRC is looked at', () => {
    const shared = sharedOf([{ body: 'x' }], [{ queueId: 1, baseOffset: 0 }, { queueId: 2, baseOffset: 5 }]);
    const tampered = (change: (batch: Buffer) => void) => {
      const copy = Buffer.from(shared);
      change(copy);
      return checkBatch(resealed(copy), 0, copy.byteLength, 1 << 20);
    };
    assert.equal(tampered(() => {}), BatchCheck.Valid);
    assert.equal(tampered((batch) => batch.writeUInt16LE(1, 42)), BatchCheck.Invalid, 'one queue is not shared');
    assert.equal(tampered((batch) => batch.writeUInt16LE(0xffff, 42)), BatchCheck.Invalid, 'a trailer longer than the batch');
    assert.equal(tampered((batch) => (batch[8] = 3)), BatchCheck.Invalid, 'an unknown version');
    const renamed = Buffer.from(shared);
    renamed.writeUInt32LE(7, renamed.byteLength - 24);
    assert.throws(() => batchQueues(resealed(renamed), 0), (error: unknown) => isWeirError(error, ErrorCode.DataDamaged), 'trailer disagrees with the header');
    const twice = Buffer.from(shared);
    twice.writeUInt32LE(1, twice.byteLength - 12);
    assert.throws(() => batchQueues(resealed(twice), 0), (error: unknown) => isWeirError(error, ErrorCode.DataDamaged), 'a queue named twice');
    assert.throws(() => decodeMessages(shared, 0, 0, 0, Infinity, [], 3), (error: unknown) => isWeirError(error, ErrorCode.DataDamaged), 'not a queue of the batch');
  });
});
