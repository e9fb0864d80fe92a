import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BASIC_ACK_KEY, BASIC_PUBLISH_KEY, BasicAckReader, BasicPublishReader, decodeMethod, encodeMethodFrame, type AmqpMethod } from './index.js';

/** What decoding gave: the method's fields, or the error's code, text and method ids. */
function outcome(decode: () => unknown): unknown {
  try {
    return { ...(decode() as object) };
  } catch (error) {
    const failed = error as { replyCode?: number; message: string; classId?: number; methodId?: number };
    return { replyCode: failed.replyCode, message: failed.message, classId: failed.classId, methodId: failed.methodId };
  }
}

const text = fc.oneof(fc.constantFrom('', 'orders', 'q', 'amq.direct', 'café'), fc.string({ maxLength: 20 }));
const publish = fc.record({ exchange: text, routingKey: text, mandatory: fc.boolean(), immediate: fc.boolean() });

const ack = fc.record({ deliveryTag: fc.oneof(fc.nat(1000), fc.maxSafeNat()), multiple: fc.boolean() });

/** A method's payload, possibly damaged: truncated, extended, or with one byte changed. */
const damaged = (method: fc.Arbitrary<AmqpMethod>) =>
  fc.tuple(method, fc.constantFrom('intact', 'intact', 'cut', 'extra', 'flip'), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([fields, damage, where, value]) => {
    const frame = encodeMethodFrame(1, fields);
    let bytes = Buffer.from(frame.subarray(7, -1));
    if (damage === 'cut') bytes = bytes.subarray(0, 4 + (where % (bytes.length - 3)));
    if (damage === 'extra') bytes = Buffer.concat([bytes, Buffer.from([value])]);
    if (damage === 'flip') bytes[4 + (where % (bytes.length - 4))] = value;
    return bytes;
  });

const readers = [
  { name: 'BasicPublishReader', key: BASIC_PUBLISH_KEY, reader: () => new BasicPublishReader(), payload: damaged(publish.map((fields): AmqpMethod => ({ method: 'basic.publish', ...fields }))) },
  { name: 'BasicAckReader', key: BASIC_ACK_KEY, reader: () => new BasicAckReader(), payload: damaged(ack.map((fields): AmqpMethod => ({ method: 'basic.ack', ...fields }))) },
];

for (const { name, key, reader: newReader, payload } of readers) {
  describe(`amqp codec: ${name}`, () => {
    it('reads what decodeMethod decodes and refuses what it refuses, one after another, in place (property)', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(payload, fc.nat(16)), { minLength: 1, maxLength: 20 }), (payloads) => {
          const reader = newReader();
          for (const [index, [bytes, padding]] of payloads.entries()) {
            assert.equal(bytes.readUInt32BE(0), key);
            const source = Buffer.concat([Buffer.alloc(padding, 0x77), bytes, Buffer.alloc(3, 0x77)]);
            const expected = outcome(() => decodeMethod(bytes));
            assert.deepEqual(outcome(() => reader.read(source, padding, padding + bytes.length)), expected);
            // The bytes read from may be reused (here they become the next payload's): nothing read may depend on them.
            const next = payloads[index + 1]?.[0];
            if (next !== undefined) next.copy(source, padding);
          }
        }),
        { numRuns: 400 },
      );
    });
  });
}
