import fc from 'fast-check';
import type { FieldTable, FieldValue } from './field-table.js';
import type { AmqpMethod } from './methods.generated.js';
import type { BasicProperties } from './properties.js';
import { methods, type FieldType, type MethodSpec } from './spec.js';

/** fast-check arbitraries for the codec's values, derived from spec.ts where the schema decides their shape. */

/** Text that survives UTF-8 both ways (no lone surrogates) and fits a shortstr. */
export const shortstrArb: fc.Arbitrary<string> = fc
  .oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 80 }))
  .filter((text) => Buffer.from(text, 'utf8').toString('utf8') === text && Buffer.byteLength(text, 'utf8') <= 255);

export const bytesArb: fc.Arbitrary<Buffer> = fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes));

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const scalarFieldArb: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.boolean().map((value): FieldValue => ({ type: 't', value })),
  fc.integer({ min: -0x80, max: 0x7f }).map((value): FieldValue => ({ type: 'b', value })),
  fc.integer({ min: 0, max: 0xff }).map((value): FieldValue => ({ type: 'B', value })),
  fc.integer({ min: -0x8000, max: 0x7fff }).map((value): FieldValue => ({ type: 's', value })),
  fc.integer({ min: 0, max: 0xffff }).map((value): FieldValue => ({ type: 'u', value })),
  fc.integer().map((value): FieldValue => ({ type: 'I', value })),
  fc.integer({ min: 0, max: 0xffff_ffff }).map((value): FieldValue => ({ type: 'i', value })),
  fc.float().map((value): FieldValue => ({ type: 'f', value })),
  fc.double().map((value): FieldValue => ({ type: 'd', value })),
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map((value): FieldValue => ({ type: 'l', value })),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((value): FieldValue => ({ type: 'T', value })),
  fc.record({ scale: fc.integer({ min: 0, max: 0xff }), value: fc.integer({ min: 0, max: 0xffff_ffff }) }, { noNullPrototype: true }).map((value): FieldValue => ({ type: 'D', value })),
  bytesArb.map((value): FieldValue => ({ type: 'S', value })),
  bytesArb.map((value): FieldValue => ({ type: 'x', value })),
  fc.constant<FieldValue>({ type: 'V', value: null }),
);

function tableOf(value: fc.Arbitrary<FieldValue>, maxLength: number): fc.Arbitrary<FieldTable> {
  return fc.uniqueArray(fc.tuple(shortstrArb, value), { maxLength, selector: ([name]) => name }).map((entries) => new Map(entries));
}

const recursive = fc.letrec<{ value: FieldValue }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'field' },
    scalarFieldArb,
    fc.array(tie('value'), { maxLength: 4 }).map((values): FieldValue => ({ type: 'A', value: values })),
    tableOf(tie('value'), 4).map((table): FieldValue => ({ type: 'F', value: table })),
  ),
}));

export const fieldValueArb: fc.Arbitrary<FieldValue> = recursive.value;
export const fieldTableArb: fc.Arbitrary<FieldTable> = tableOf(fieldValueArb, 6);

const fieldArbs: Record<FieldType, fc.Arbitrary<unknown>> = {
  octet: fc.integer({ min: 0, max: 0xff }),
  short: fc.integer({ min: 0, max: 0xffff }),
  long: fc.integer({ min: 0, max: 0xffff_ffff }),
  longlong: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat()),
  timestamp: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  shortstr: shortstrArb,
  longstr: bytesArb,
  bit: fc.boolean(),
  table: fieldTableArb,
};

/** Any valid value of one method, fields from its schema (reserved fields are not part of the value). */
export function methodArb(spec: MethodSpec): fc.Arbitrary<AmqpMethod> {
  const shape: Record<string, fc.Arbitrary<unknown>> = { method: fc.constant(spec.name) };
  for (const field of spec.fields) if (!field.reserved) shape[field.name] = fieldArbs[field.type];
  return fc.record(shape, { noNullPrototype: true }) as unknown as fc.Arbitrary<AmqpMethod>;
}

export const anyMethodArb: fc.Arbitrary<AmqpMethod> = fc.oneof(...methods.map(methodArb));

export const propertiesArb: fc.Arbitrary<BasicProperties> = fc.record(
  {
    contentType: shortstrArb,
    contentEncoding: shortstrArb,
    headers: fieldTableArb,
    deliveryMode: fc.integer({ min: 0, max: 0xff }),
    priority: fc.integer({ min: 0, max: 0xff }),
    correlationId: shortstrArb,
    replyTo: shortstrArb,
    expiration: shortstrArb,
    messageId: shortstrArb,
    timestamp: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    type: shortstrArb,
    userId: shortstrArb,
    appId: shortstrArb,
    clusterId: shortstrArb,
  },
  { requiredKeys: [], noNullPrototype: true },
);

/** Decoded properties name every property (undefined when absent); this drops the absent ones for comparison. */
export function definedProperties(properties: BasicProperties): BasicProperties {
  return Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== undefined)) as BasicProperties;
}
