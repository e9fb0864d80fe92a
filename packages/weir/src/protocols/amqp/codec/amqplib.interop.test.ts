import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeContentHeader,
  decodeMethod,
  decodeTable,
  encodeContentHeader,
  encodeMethodFrame,
  encodeTable,
  methodKey,
  methods,
  tableFromJs,
  tableToJs,
  type AmqpMethod,
  type BasicProperties,
  type FieldTable,
  type FieldValue,
  type MethodSpec,
} from './index.js';
import { bytesArb, definedProperties, shortstrArb } from './test-support.js';

/**
 * amqplib as an independent implementation of the same wire format: what we encode it must decode to the same
 * values, and what it encodes we must decode to the same values (and, where neither side has a choice to make, to the
 * same bytes). Its codec modules are internal (not in its package exports), so they are loaded by file path.
 */

interface AmqplibArg {
  type: string;
  name: string;
}
interface AmqplibDefs {
  info(id: number): { name: string; args: AmqplibArg[] } | undefined;
  encodeMethod(id: number, channel: number, fields: Record<string, unknown>): Buffer;
  encodeProperties(id: number, channel: number, size: number, fields: Record<string, unknown>): Buffer;
  decode(id: number, buf: Buffer): Record<string, unknown>;
}
interface AmqplibCodec {
  encodeTable(buf: Buffer, value: Record<string, unknown>, offset: number): number;
  decodeFields(buf: Buffer): Record<string, unknown>;
}

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('amqplib'));
const defs = require(join(root, 'lib/defs.js')) as AmqplibDefs;
const codec = require(join(root, 'lib/codec.js')) as AmqplibCodec;

/** amqplib keeps RabbitMQ's older names: `nowait`, and the 0-8 names for what 0-9-1 calls reserved-N. */
function theirName(name: string): string {
  return name === 'noWait' ? 'nowait' : name;
}

/** What amqplib decodes a reserved field to when we wrote it (zero, empty, clear). */
function reservedValue(type: string): unknown {
  switch (type) {
    case 'short':
      return 0;
    case 'bit':
      return false;
    case 'shortstr':
      return '';
    case 'longstr':
      return Buffer.alloc(0);
    default:
      throw new Error(`no reserved ${type} expected`);
  }
}

/**
 * Tables both libraries map to plain JavaScript the same way: strings, int32s, bools, void, nested tables and arrays.
 * Not the name "!": amqplib reads an object with that key as its own explicitly typed value.
 */
const nameArb = (maxLength: number): fc.Arbitrary<string> => fc.string({ minLength: 1, maxLength }).filter((name) => name !== '!');
const simpleValueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 2, depthIdentifier: 'simple' },
    shortstrArb,
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(nameArb(8), tie('value'), { maxKeys: 3, noNullPrototype: true }),
  ),
})).value;
const simpleObjectArb = fc.dictionary(nameArb(12), simpleValueArb, { maxKeys: 5, noNullPrototype: true });
const simpleTableArb: fc.Arbitrary<FieldTable> = simpleObjectArb.map(tableFromJs);

const fieldArbs: Record<string, fc.Arbitrary<unknown>> = {
  octet: fc.integer({ min: 0, max: 0xff }),
  short: fc.integer({ min: 0, max: 0xffff }),
  long: fc.integer({ min: 0, max: 0xffff_ffff }),
  longlong: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat()),
  shortstr: shortstrArb,
  longstr: bytesArb,
  bit: fc.boolean(),
  table: simpleTableArb,
};

function methodArb(spec: MethodSpec): fc.Arbitrary<AmqpMethod> {
  const shape: Record<string, fc.Arbitrary<unknown>> = { method: fc.constant(spec.name) };
  for (const field of spec.fields) if (!field.reserved) shape[field.name] = fieldArbs[field.type]!;
  return fc.record(shape, { noNullPrototype: true }) as unknown as fc.Arbitrary<AmqpMethod>;
}

/** Our method as amqplib's field object: tables as plain objects, reserved fields at their zero values. */
function asTheirFields(spec: MethodSpec, method: AmqpMethod): Record<string, unknown> {
  const theirs = defs.info(methodKey(spec.classId, spec.methodId))!;
  const values = method as unknown as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  spec.fields.forEach((field, index) => {
    const arg = theirs.args[index]!;
    if (field.reserved) fields[arg.name] = reservedValue(field.type);
    else fields[arg.name] = field.type === 'table' ? tableToJs(values[field.name] as FieldTable) : values[field.name];
  });
  return fields;
}

describe('amqp codec: agrees with amqplib', () => {
  it('on every method: field order, wire types and names', () => {
    for (const spec of methods) {
      const theirs = defs.info(methodKey(spec.classId, spec.methodId));
      assert.ok(theirs, `amqplib has no ${spec.name}`);
      assert.deepEqual(
        theirs.args.map((arg) => arg.type),
        spec.fields.map((field) => field.type),
        spec.name,
      );
      spec.fields.forEach((field, index) => {
        if (!field.reserved) assert.equal(theirs.args[index]!.name, theirName(field.name), `${spec.name} ${field.specName}`);
      });
    }
  });

  for (const spec of methods) {
    it(`on ${spec.name}, both ways`, () => {
      const hasTable = spec.fields.some((field) => field.type === 'table');
      fc.assert(
        fc.property(methodArb(spec), (method) => {
          const id = methodKey(spec.classId, spec.methodId);
          const ours = encodeMethodFrame(3, method);
          const expected = asTheirFields(spec, method);
          assert.deepEqual(defs.decode(id, ours.subarray(11, -1)), expected);

          const theirs = defs.encodeMethod(id, 3, expected);
          const decoded = decodeMethod(theirs.subarray(7, -1)) as unknown as Record<string, unknown>;
          if (!hasTable) {
            assert.deepEqual(theirs, ours);
            assert.deepEqual(decoded, method);
            return;
          }
          // amqplib picks its own integer widths in tables, so compare values, not bytes.
          const values = method as unknown as Record<string, unknown>;
          for (const field of spec.fields) {
            if (field.reserved) continue;
            if (field.type === 'table') assert.deepEqual(tableToJs(decoded[field.name] as FieldTable), tableToJs(values[field.name] as FieldTable));
            else assert.deepEqual(decoded[field.name], values[field.name]);
          }
        }),
        { seed: 0xa11 + spec.classId * 1000 + spec.methodId, numRuns: 40 },
      );
    });
  }

  it('on content headers and properties, both ways', () => {
    const propertiesArb = fc.record(
      {
        contentType: shortstrArb,
        contentEncoding: shortstrArb,
        headers: simpleTableArb,
        deliveryMode: fc.integer({ min: 0, max: 0xff }),
        priority: fc.integer({ min: 0, max: 0xff }),
        correlationId: shortstrArb,
        replyTo: shortstrArb,
        expiration: shortstrArb,
        messageId: shortstrArb,
        timestamp: fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) }),
        type: shortstrArb,
        userId: shortstrArb,
        appId: shortstrArb,
        clusterId: shortstrArb,
      },
      { requiredKeys: [], noNullPrototype: true },
    );
    const asTheirs = (properties: BasicProperties): Record<string, unknown> => ({
      ...properties,
      headers: properties.headers === undefined ? undefined : tableToJs(properties.headers),
      timestamp: properties.timestamp === undefined ? undefined : Number(properties.timestamp),
    });
    fc.assert(
      fc.property(propertiesArb, fc.integer({ min: 0, max: 2 ** 40 }), (properties, bodySize) => {
        const payload = encodeContentHeader(60, bodySize, properties);
        const theirs = defs.decode(60, payload.subarray(12));
        assert.deepEqual(definedProperties(theirs as BasicProperties), definedProperties(asTheirs(properties) as BasicProperties));

        const frame = defs.encodeProperties(60, 1, bodySize, asTheirs(properties));
        const decoded = decodeContentHeader(frame.subarray(7, -1));
        assert.equal(decoded.bodySize, bodySize);
        assert.deepEqual(definedProperties(asTheirs(decoded.properties) as BasicProperties), definedProperties(asTheirs(properties) as BasicProperties));
        if (properties.headers === undefined) assert.deepEqual(frame.subarray(7, -1), payload);
      }),
      { seed: 0x9091, numRuns: 300 },
    );
  });

  it('on field tables, both ways', () => {
    fc.assert(
      fc.property(simpleObjectArb, (object) => {
        const buf = Buffer.alloc(64 * 1024);
        const end = codec.encodeTable(buf, object, 0);
        const theirs = buf.subarray(0, end);
        assert.deepEqual(tableToJs(decodeTable(theirs).table), object);
        const ours = encodeTable(tableFromJs(object));
        assert.deepEqual(codec.decodeFields(ours.subarray(4)), object);
      }),
      { seed: 0x7ab1e, numRuns: 300 },
    );
    // The wide types amqplib writes for numbers it cannot fit in 32 bits, and byte arrays.
    const wide = { big: 2 ** 40, negative: -(2 ** 40), fraction: 0.5, bytes: Buffer.from('ab') };
    const buf = Buffer.alloc(256);
    const table = decodeTable(buf.subarray(0, codec.encodeTable(buf, wide, 0))).table;
    assert.deepEqual(
      [...table].map(([name, value]: [string, FieldValue]) => `${name}:${value.type}`),
      ['big:l', 'negative:l', 'fraction:d', 'bytes:x'],
    );
    assert.deepEqual(tableToJs(table), wide);
  });
});
