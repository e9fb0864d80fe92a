import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeHeaders, encodeHeaders, type StoredMessage } from '../../storage/record-batch.js';
import { deliveryParts, StoredHeader } from './amqp-message.js';

/** A stored message whose headers sit inside a larger buffer, as views of a read batch do. */
function storedWith(headers: Record<string, string | Buffer>, padding: number): { message: StoredMessage; source: Buffer } {
  const encoded = encodeHeaders(headers);
  const source = Buffer.alloc(padding + encoded.byteLength + 16, 0xaa);
  source.set(encoded, padding);
  return { message: { headers: source.subarray(padding, padding + encoded.byteLength) } as unknown as StoredMessage, source };
}

const text = fc.oneof(fc.constantFrom('', 'orders', 'amq.direct', 'café.é'), fc.string({ maxLength: 30 }), fc.string({ minLength: 500, maxLength: 600 }));
const bytes = fc.oneof(fc.constantFrom(Buffer.from([0x90, 0, 2]), Buffer.alloc(0)), fc.uint8Array({ maxLength: 40 }).map((array) => Buffer.from(array)), fc.uint8Array({ minLength: 513, maxLength: 600 }).map((array) => Buffer.from(array)));

describe('amqp-message: deliveryParts', () => {
  it('amqp: gives what the decoded headers hold, message after message, with repeats and changes (property)', () => {
    const stored = fc.record(
      { exchange: fc.option(text, { nil: undefined }), routingKey: fc.option(text, { nil: undefined }), properties: bytes, extra: fc.boolean(), padding: fc.nat(64) },
      { requiredKeys: ['properties', 'extra', 'padding'] },
    );
    fc.assert(
      fc.property(fc.array(stored, { minLength: 1, maxLength: 12 }), (messages) => {
        for (const entry of messages) {
          const headers: Record<string, string | Buffer> = {};
          if (entry.extra) headers['x-custom'] = 'value';
          if (entry.exchange !== undefined) headers[StoredHeader.exchange] = entry.exchange;
          if (entry.routingKey !== undefined) headers[StoredHeader.routingKey] = entry.routingKey;
          headers[StoredHeader.properties] = entry.properties;
          const { message, source } = storedWith(headers, entry.padding);
          const expected = decodeHeaders(message.headers);
          const parts = deliveryParts(message, 'topic');
          assert.equal(parts.exchange, expected[StoredHeader.exchange] ?? '');
          assert.equal(parts.routingKey, expected[StoredHeader.routingKey] ?? '');
          assert.deepEqual(Buffer.from(parts.rawProperties), entry.properties);
          // What was handed out must not change when the read buffer it came from is reused.
          const kept = Buffer.from(parts.rawProperties);
          source.fill(0x55);
          if (entry.properties.byteLength <= 512) assert.deepEqual(Buffer.from(parts.rawProperties), kept);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('amqp: a message without AMQP headers comes from the default exchange with its topic as routing key', () => {
    const { message } = storedWith({ 'x-trace': 'abc' }, 3);
    const parts = deliveryParts(message, 'events');
    assert.equal(parts.exchange, '');
    assert.equal(parts.routingKey, 'events');
    assert.ok(parts.rawProperties.byteLength > 2, 'the Weir header becomes an AMQP headers table');
  });
});
