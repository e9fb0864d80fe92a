import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AmqpSyntaxError,
  ContentHeaderReader,
  basicProperties,
  decodeContentHeader,
  decodeProperties,
  encodeContentHeader,
  encodeContentHeaderRaw,
  encodeProperties,
  Field,
  ReplyCode,
  type BasicProperties,
} from './index.js';
import { definedProperties, propertiesArb } from './test-support.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

function syntaxError(replyCode: number, pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof AmqpSyntaxError, `expected AmqpSyntaxError, got ${String(error)}`);
    assert.equal(error.replyCode, replyCode);
    assert.match(error.message, pattern);
    return true;
  };
}

const header = hex(`
  003c                              # class 60
  0000                              # weight
  0000000000000005                  # body size 5
  b000                              # flags: content-type, headers, delivery-mode
  0a 746578742f706c61696e           # "text/plain"
  0000000d 07 782d636f756e74 49 00000007   # { x-count: I 7 }
  02                                # persistent
`);

describe('amqp codec: content headers', () => {
  it('decodes a header with a headers table, computed by hand', () => {
    const decoded = decodeContentHeader(header);
    assert.equal(decoded.classId, 60);
    assert.equal(decoded.bodySize, 5);
    assert.deepEqual(definedProperties(decoded.properties), {
      contentType: 'text/plain',
      headers: new Map([['x-count', Field.int(7)]]),
      deliveryMode: 2,
    });
    assert.deepEqual(decoded.rawProperties, header.subarray(12));
    // A view, not a copy: the broker stores these bytes and sends them back out as they came.
    assert.equal(decoded.rawProperties.buffer, header.buffer);
    assert.equal(decoded.rawProperties.byteOffset, header.byteOffset + 12);
  });

  it('encodes the same bytes, from properties or from raw properties', () => {
    const properties: BasicProperties = { deliveryMode: 2, headers: new Map([['x-count', Field.int(7)]]), contentType: 'text/plain' };
    assert.equal(encodeContentHeader(60, 5, properties).toString('hex'), header.toString('hex'));
    assert.equal(encodeContentHeaderRaw(60, 5, header.subarray(12)).toString('hex'), header.toString('hex'));
    assert.equal(encodeProperties({}).toString('hex'), '0000');
  });

  it('orders flags as the spec lists the properties', () => {
    const all: Required<BasicProperties> = {
      contentType: 'a',
      contentEncoding: 'b',
      headers: new Map(),
      deliveryMode: 1,
      priority: 2,
      correlationId: 'c',
      replyTo: 'd',
      expiration: 'e',
      messageId: 'f',
      timestamp: 3n,
      type: 'g',
      userId: 'h',
      appId: 'i',
      clusterId: 'j',
    };
    assert.deepEqual(
      Object.keys(all),
      basicProperties.map((field) => field.name),
    );
    const bytes = encodeProperties(all);
    assert.equal(bytes.readUInt16BE(0), 0xfffc);
    assert.equal(
      bytes.subarray(2).toString('hex'),
      '0161' + '0162' + '00000000' + '01' + '02' + '0163' + '0164' + '0165' + '0166' + '0000000000000003' + '0167' + '0168' + '0169' + '016a',
    );
    for (const [index, field] of basicProperties.entries()) {
      const one = encodeProperties({ [field.name]: all[field.name as keyof BasicProperties] });
      assert.equal(one.readUInt16BE(0), 0x8000 >>> index, field.name);
    }
    assert.deepEqual(decodeProperties(bytes), all);
  });

  it('round-trips arbitrary properties byte for byte', () => {
    fc.assert(
      fc.property(propertiesArb, fc.maxSafeNat(), (properties, bodySize) => {
        const payload = encodeContentHeader(60, bodySize, properties);
        const decoded = decodeContentHeader(payload);
        assert.equal(decoded.bodySize, bodySize);
        assert.deepEqual(definedProperties(decoded.properties), properties);
        assert.deepEqual(encodeProperties(decoded.properties), decoded.rawProperties);
        assert.deepEqual(encodeContentHeaderRaw(60, bodySize, decoded.rawProperties), payload);
      }),
      { seed: 31, numRuns: 300 },
    );
  });

  it('ContentHeaderReader reads what decodeContentHeader decodes, header after header, with repeats (property)', () => {
    const header = fc.record({ properties: fc.oneof(propertiesArb, fc.constantFrom<BasicProperties>({ deliveryMode: 2 }, { deliveryMode: 1 }, {})), bodySize: fc.constantFrom(0, 100, 2 ** 40) });
    fc.assert(
      fc.property(fc.array(header, { minLength: 1, maxLength: 20 }), (headers) => {
        const reader = new ContentHeaderReader();
        for (const { properties, bodySize } of headers) {
          const payload = encodeContentHeader(60, bodySize, properties);
          // From a copy: decodeContentHeader's byte strings are views, and the payload is overwritten below.
          const expected = decodeContentHeader(Buffer.from(payload));
          const read = reader.read(payload);
          // The frame's bytes may be reused once it is handled: what was read must not change with them.
          payload.fill(0x5a);
          assert.equal(read.bodySize, bodySize);
          assert.deepEqual(definedProperties(read.properties), definedProperties(expected.properties));
          assert.deepEqual(read.rawProperties, encodeProperties(properties));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('ContentHeaderReader keeps nothing of the frame: byte strings in a headers table are views of its own copy', () => {
    const frame = Buffer.concat([Buffer.alloc(9), encodeContentHeader(60, 5, { headers: new Map([['trace', Field.string('abc')], ['raw', Field.bytes(Buffer.from([1, 2]))]]) })]);
    const header = new ContentHeaderReader().read(frame, 9, frame.length);
    const raw = Buffer.from(header.rawProperties);
    // The frame's bytes are reused once it is handled: nothing read from it may change with them.
    frame.fill(0);
    assert.deepEqual(header.properties.headers!.get('trace')?.value, Buffer.from('abc'));
    assert.deepEqual(header.properties.headers!.get('raw')?.value, Buffer.from([1, 2]));
    assert.deepEqual(header.rawProperties, raw);
  });

  it('ContentHeaderReader refuses what decodeContentHeader refuses, also right after a header it keeps', () => {
    const reader = new ContentHeaderReader();
    reader.read(encodeContentHeader(60, 5, { deliveryMode: 2 }));
    const otherClass = encodeContentHeader(60, 5, { deliveryMode: 2 });
    otherClass.writeUInt16BE(50, 0);
    assert.throws(() => reader.read(otherClass), /class 50 carries no content/);
    const weighted = encodeContentHeader(60, 5, { deliveryMode: 2 });
    weighted.writeUInt16BE(1, 2);
    assert.throws(() => reader.read(weighted), /weight is 1, must be 0/);
    assert.throws(() => reader.read(Buffer.concat([encodeContentHeader(60, 5, { deliveryMode: 2 }), Buffer.from([0])])), /properties/);
    assert.equal(reader.read(encodeContentHeader(60, 7, { deliveryMode: 2 })).bodySize, 7);
  });

  it('decodes every empty headers table to one shared table that refuses changes', () => {
    const first = decodeProperties(encodeProperties({ headers: new Map() })).headers!;
    const second = decodeProperties(encodeProperties({ headers: new Map(), deliveryMode: 2 })).headers!;
    assert.equal(first, second);
    assert.equal(first.size, 0);
    assert.throws(() => first.set('x', Field.string('y')), /read-only/);
    assert.throws(() => first.delete('x'), /read-only/);
    assert.equal(first.size, 0);
    const copy = new Map(first);
    copy.set('x', Field.string('y'));
    assert.equal(copy.size, 1);
    assert.notEqual(decodeProperties(encodeProperties({ headers: new Map([['a', Field.bool(true)]]) })).headers, first);
  });

  it('follows continuation flag words, which may flag nothing more', () => {
    assert.deepEqual(definedProperties(decodeProperties(hex('8001 0001 0000 01 61'))), { contentType: 'a' });
    assert.throws(() => decodeProperties(hex('8001 8000 01 61')), syntaxError(502, /continued property flags 0x8000 name properties the basic class does not have/));
    assert.throws(() => decodeProperties(hex('8001')), syntaxError(502, /continued property flags: short runs past the end of the properties/));
    assert.throws(() => decodeProperties(hex('0002')), syntaxError(502, /property flag bit 1 is set/));
  });

  it('rejects properties that run short or leave bytes over', () => {
    assert.throws(() => decodeProperties(hex('8000 05 6162')), syntaxError(502, /^basic properties content-type: shortstr length 5 runs past the end of the properties/));
    assert.throws(() => decodeProperties(hex('0040 00000000')), syntaxError(502, /timestamp runs past the end/));
    assert.throws(() => decodeProperties(hex('0000 00')), syntaxError(502, /^basic properties: 1 bytes after the last field$/));
    assert.throws(() => decodeProperties(hex('00')), syntaxError(502, /property flags: short runs past the end/));
  });

  it('rejects body sizes past 2^53 - 1, other classes and a non-zero weight', () => {
    assert.equal(decodeContentHeader(hex('003c 0000 001fffffffffffff 0000')).bodySize, Number.MAX_SAFE_INTEGER);
    assert.throws(() => decodeContentHeader(hex('003c 0000 0020000000000000 0000')), syntaxError(502, /body-size: longlong 9007199254740992 is above 2\^53 - 1/));
    assert.throws(() => decodeContentHeader(hex('0014 0000 0000000000000000 0000')), syntaxError(ReplyCode.UNEXPECTED_FRAME, /class 20 carries no content/));
    assert.throws(() => decodeContentHeader(hex('003c 0001 0000000000000000 0000')), syntaxError(502, /weight is 1, must be 0/));
    assert.throws(() => decodeContentHeader(hex('003c 00')), syntaxError(502, /weight: short runs past the end of the frame/));
  });

  it('refuses values that do not fit when encoding', () => {
    assert.throws(() => encodeProperties({ messageId: 'm'.repeat(256) }), /basic properties message-id: shortstr of 256 UTF-8 bytes is longer than 255/);
    assert.throws(() => encodeProperties({ priority: 256 }), /basic properties priority: 256 is not an integer in \[0, 255\]/);
    assert.throws(() => encodeProperties({ timestamp: -1n }), /basic properties timestamp/);
    assert.throws(() => encodeContentHeader(60, 2 ** 53, {}), /content header body-size/);
    assert.throws(() => encodeContentHeaderRaw(60, 1, 'raw' as unknown as Buffer), /expected a Buffer/);
  });
});
