import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AmqpSyntaxError,
  decodeTable,
  encodeTable,
  Field,
  fieldToJs,
  MAX_FIELD_NESTING,
  tableBoolean,
  tableFromJs,
  tableNumber,
  tableString,
  tableToJs,
  type FieldTable,
  type FieldValue,
} from './index.js';
import { fieldTableArb } from './test-support.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

/** `[size][entries]` around raw entry bytes. */
function framed(entries: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(entries.length);
  return Buffer.concat([size, entries]);
}

function syntaxError(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof AmqpSyntaxError, `expected AmqpSyntaxError, got ${String(error)}`);
    assert.equal(error.replyCode, 502);
    assert.match(error.message, pattern);
    return true;
  };
}

describe('amqp codec: field tables', () => {
  it('encodes every type with the errata tags, computed by hand', () => {
    const table: FieldTable = new Map<string, FieldValue>([
      ['t', Field.bool(true)],
      ['b', { type: 'b', value: -2 }],
      ['B', { type: 'B', value: 254 }],
      ['s', { type: 's', value: -3 }],
      ['u', { type: 'u', value: 65535 }],
      ['I', Field.int(-1)],
      ['i', { type: 'i', value: 0xffff_fffe }],
      ['l', Field.long(-2n)],
      ['f', { type: 'f', value: 1.5 }],
      ['d', Field.double(-0.25)],
      ['D', Field.decimal(2, 314)],
      ['S', Field.string('hé')],
      ['A', Field.array([Field.int(1), Field.void()])],
      ['T', Field.timestamp(1_700_000_000)],
      ['F', Field.table({ k: Field.bool(false) })],
      ['V', Field.void()],
      ['x', Field.bytes(Buffer.from([0, 0xff]))],
    ]);
    const expected = framed(
      hex(`
        01 74 74 01                         # t: true
        01 62 62 fe                         # b: -2
        01 42 42 fe                         # B: 254
        01 73 73 fffd                       # s: -3
        01 75 75 ffff                       # u: 65535
        01 49 49 ffffffff                   # I: -1
        01 69 69 fffffffe                   # i
        01 6c 6c fffffffffffffffe           # l: -2
        01 66 66 3fc00000                   # f: 1.5
        01 64 64 bfd0000000000000           # d: -0.25
        01 44 44 02 0000013a                # D: 3.14
        01 53 53 00000003 68c3a9            # S: "hé"
        01 41 41 00000006 49 00000001 56    # A: [I 1, V]
        01 54 54 000000006553f100           # T
        01 46 46 00000004 01 6b 74 00       # F: { k: false }
        01 56 56                            # V
        01 78 78 00000002 00ff              # x
      `),
    );
    assert.equal(encodeTable(table).toString('hex'), expected.toString('hex'));
    const { table: decoded, next } = decodeTable(expected);
    assert.equal(next, expected.length);
    assert.deepEqual(decoded, table);
  });

  it('round-trips arbitrary tables byte for byte', () => {
    fc.assert(
      fc.property(fieldTableArb, (table) => {
        const bytes = encodeTable(table);
        const { table: decoded, next } = decodeTable(bytes);
        assert.equal(next, bytes.length);
        assert.deepEqual(decoded, table);
        assert.deepEqual(encodeTable(decoded), bytes);
      }),
      { seed: 7, numRuns: 400 },
    );
  });

  it('decodes at an offset and reports where the table ends', () => {
    const table = encodeTable(new Map([['a', Field.int(1)]]));
    const buf = Buffer.concat([Buffer.from([9, 9, 9]), table, Buffer.from([7])]);
    const { table: decoded, next } = decodeTable(buf, 3);
    assert.equal(tableNumber(decoded, 'a'), 1);
    assert.equal(next, 3 + table.length);
  });

  it('keeps the first of repeated names, as RabbitMQ lookups do', () => {
    const bytes = framed(hex('01 61 49 00000001 01 61 49 00000002 01 62 56'));
    assert.deepEqual([...decodeTable(bytes).table], [
      ['a', { type: 'I', value: 1 }],
      ['b', { type: 'V', value: null }],
    ]);
  });

  it('reads any non-zero bool octet as true', () => {
    assert.deepEqual(decodeTable(framed(hex('01 61 74 02'))).table.get('a'), { type: 't', value: true });
  });

  it('checks every declared length against the bytes present, before slicing', () => {
    assert.throws(() => decodeTable(hex('00000010 01 61')), syntaxError(/^table: table of 16 bytes runs past the end of the frame \(2 bytes left\)$/));
    assert.throws(() => decodeTable(framed(hex('01 61 53 7fffffff 00'))), syntaxError(/longstr of 2147483647 bytes in field "a" runs past the end of the table \(1 bytes left\)/));
    assert.throws(() => decodeTable(framed(hex('01 61 78 00000005 00'))), syntaxError(/byte array of 5 bytes/));
    assert.throws(() => decodeTable(framed(hex('01 61 41 00000009 56'))), syntaxError(/array of 9 bytes in field "a" runs past the end of the table/));
    // A nested table may not claim bytes beyond its parent's end, even when the frame has them.
    const nestedOverrun = Buffer.concat([framed(hex('01 61 46 00000005 01 62 56')), hex('00 00 00')]);
    assert.throws(() => decodeTable(nestedOverrun), syntaxError(/table of 5 bytes runs past the end of the table \(3 bytes left\)/));
    assert.throws(() => decodeTable(framed(hex('05 61'))), syntaxError(/shortstr length 5 runs past the end of the table/));
    assert.throws(() => decodeTable(framed(hex('01 61 49 0000'))), syntaxError(/int32 in field "a" runs past the end of the table/));
  });

  it('rejects unknown value types, naming the field', () => {
    assert.throws(() => decodeTable(framed(hex('03 616263 51 00'))), syntaxError(/^table: field "abc" has unknown type 'Q' \(0x51\)$/));
    assert.throws(() => decodeTable(framed(hex('01 61 00'))), syntaxError(/unknown type 0x00/));
  });

  it('accepts nesting to 32 levels and rejects 33, decoding and encoding', () => {
    const nest = (levels: number): FieldTable => {
      let table: FieldTable = new Map();
      for (let level = 1; level < levels; level++) table = new Map([['n', Field.table(table)]]);
      return table;
    };
    const deepest = nest(MAX_FIELD_NESTING);
    const bytes = encodeTable(deepest);
    assert.deepEqual(decodeTable(bytes).table, deepest);
    assert.throws(() => encodeTable(nest(MAX_FIELD_NESTING + 1)), /nests tables and arrays deeper than 32 levels/);
    // Arrays nested by hand, which the encoder would refuse past the limit: the table is level 1, each array one more.
    const nestedArrays = (count: number): Buffer => {
      let value = hex('41 00000000');
      for (let level = 1; level < count; level++) {
        const size = Buffer.alloc(4);
        size.writeUInt32BE(value.length);
        value = Buffer.concat([Buffer.from('A'), size, value]);
      }
      return framed(Buffer.concat([hex('01 61'), value]));
    };
    assert.equal(decodeTable(nestedArrays(MAX_FIELD_NESTING - 1)).table.size, 1);
    assert.throws(() => decodeTable(nestedArrays(MAX_FIELD_NESTING)), syntaxError(/field "a" nests tables and arrays deeper than 32 levels/));
  });

  it('validates values when encoding', () => {
    assert.throws(() => encodeTable(new Map([['a', { type: 'b', value: 128 }]])), /field "a": b value 128 is not an int8/);
    assert.throws(() => encodeTable(new Map([['a', { type: 'l', value: 2n ** 63n }]])), /signed 64-bit range/);
    assert.throws(() => encodeTable(new Map([['a', { type: 'S', value: 'text' as unknown as Buffer }]])), /is not a Buffer/);
    assert.throws(() => encodeTable(new Map([['x'.repeat(256), Field.void()]])), /field name "x+…" is not a string of at most 255 UTF-8 bytes/);
    assert.throws(() => encodeTable(new Map([['a', { type: 'Q', value: 1 } as unknown as FieldValue]])), /unknown type "Q"/);
    assert.throws(() => Field.int(2 ** 31), /Field\.int: 2147483648 is not an integer/);
    assert.throws(() => Field.long(2 ** 53), /Field\.long/);
  });
});

describe('amqp codec: field tables as plain JavaScript', () => {
  it('fieldToJs and tableToJs', () => {
    const table: FieldTable = new Map<string, FieldValue>([
      ['s', Field.string('text')],
      ['n', Field.int(5)],
      ['big', Field.long(2n ** 60n)],
      ['small', Field.long(7)],
      ['at', Field.timestamp(10)],
      ['raw', Field.bytes(Buffer.from('ab'))],
      ['list', Field.array([Field.string('x'), Field.bool(true)])],
      ['nested', Field.table({ deep: Field.double(0.5) })],
      ['none', Field.void()],
      ['__proto__', Field.int(1)],
    ]);
    const js = tableToJs(table);
    assert.equal(js['s'], 'text');
    assert.equal(js['n'], 5);
    assert.equal(js['big'], 2n ** 60n);
    assert.equal(js['small'], 7);
    assert.equal(js['at'], 10);
    assert.deepEqual(js['raw'], Buffer.from('ab'));
    assert.deepEqual(js['list'], ['x', true]);
    assert.deepEqual(js['nested'], { deep: 0.5 });
    assert.equal(js['none'], null);
    assert.equal(Object.getPrototypeOf(js), Object.prototype);
    assert.ok(Object.keys(js).includes('__proto__'));
    assert.deepEqual(fieldToJs(Field.decimal(2, 314)), { scale: 2, value: 314 });
  });

  it('tableFromJs infers types', () => {
    const table = tableFromJs({
      s: 'x',
      t: true,
      i: -5,
      wide: 2 ** 40,
      big: 5n,
      d: 1.25,
      n: null,
      skipped: undefined,
      b: Buffer.from([1]),
      at: new Date(10_500),
      a: [1, 'y'],
      o: { k: 'v' },
    });
    assert.deepEqual(
      [...table].map(([name, value]) => `${name}:${value.type}`),
      ['s:S', 't:t', 'i:I', 'wide:l', 'big:l', 'd:d', 'n:V', 'b:x', 'at:T', 'a:A', 'o:F'],
    );
    assert.deepEqual(table.get('at'), { type: 'T', value: 10n });
    assert.deepEqual(tableToJs(decodeTable(encodeTable(table)).table), {
      s: 'x',
      t: true,
      i: -5,
      wide: 2 ** 40,
      big: 5,
      d: 1.25,
      n: null,
      b: Buffer.from([1]),
      at: 10,
      a: [1, 'y'],
      o: { k: 'v' },
    });
    assert.throws(() => tableFromJs({ f: () => 1 }), /field "f" is a function/);
  });

  it('tableNumber, tableString and tableBoolean read any numeric type and nothing else', () => {
    const table = tableFromJs({ count: 5, text: '12', flag: true });
    table.set('byte', { type: 'b', value: -1 });
    table.set('short', { type: 'u', value: 600 });
    table.set('long', Field.long(1234n));
    table.set('float', { type: 'f', value: 0.5 });
    table.set('money', Field.decimal(2, 150));
    assert.equal(tableNumber(table, 'count'), 5);
    assert.equal(tableNumber(table, 'byte'), -1);
    assert.equal(tableNumber(table, 'short'), 600);
    assert.equal(tableNumber(table, 'long'), 1234);
    assert.equal(tableNumber(table, 'float'), 0.5);
    assert.equal(tableNumber(table, 'money'), 1.5);
    assert.equal(tableNumber(table, 'text'), undefined);
    assert.equal(tableNumber(table, 'missing'), undefined);
    assert.equal(tableNumber(undefined, 'count'), undefined);
    assert.equal(tableString(table, 'text'), '12');
    assert.equal(tableString(table, 'count'), undefined);
    assert.equal(tableBoolean(table, 'flag'), true);
    assert.equal(tableBoolean(table, 'count'), undefined);
  });
});
