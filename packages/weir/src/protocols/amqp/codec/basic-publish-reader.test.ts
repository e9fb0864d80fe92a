import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BASIC_PUBLISH_KEY, BasicPublishReader, decodeMethod, encodeMethodFrame } from './index.js';

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

/** A basic.publish payload, possibly damaged: truncated, extended, or with one byte changed. */
const payload = fc
  .tuple(publish, fc.constantFrom('intact', 'intact', 'cut', 'extra', 'flip'), fc.nat(), fc.integer({ min: 0, max: 255 }))
  .map(([fields, damage, where, value]) => {
    const frame = encodeMethodFrame(1, { method: 'basic.publish', ...fields });
    let bytes = Buffer.from(frame.subarray(7, -1));
    if (damage === 'cut') bytes = bytes.subarray(0, 4 + (where % (bytes.length - 3)));
    if (damage === 'extra') bytes = Buffer.concat([bytes, Buffer.from([value])]);
    if (damage === 'flip') bytes[4 + (where % (bytes.length - 4))] = value;
    return bytes;
  });

describe('amqp codec: BasicPublishReader', () => {
  it('reads what decodeMethod decodes and refuses what it refuses, publish after publish, in place (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(payload, fc.nat(16)), { minLength: 1, maxLength: 20 }), (payloads) => {
        const reader = new BasicPublishReader();
        for (const [index, [bytes, padding]] of payloads.entries()) {
          assert.equal(bytes.readUInt32BE(0), BASIC_PUBLISH_KEY);
          const source = Buffer.concat([Buffer.alloc(padding, 0x77), bytes, Buffer.alloc(3, 0x77)]);
          const expected = outcome(() => decodeMethod(bytes));
          assert.deepEqual(outcome(() => reader.read(source, padding, padding + bytes.length)), expected);
          // The bytes read from may be reused (here they become the next publish's): nothing read may depend on them.
          const next = payloads[index + 1]?.[0];
          if (next !== undefined) next.copy(source, padding);
        }
      }),
      { numRuns: 400 },
    );
  });
});
