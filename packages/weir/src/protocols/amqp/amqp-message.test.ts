import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeHeaders, encodeHeaders, type StoredMessage } from '../../storage/record-batch.js';
import { deliveryParts, StoredHeader, storedInput, StoredInputs } from './amqp-message.js';

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

  it('amqp: alike messages share their parts, and a message differing in its last stored byte gets its own', () => {
    const headers = (properties: Buffer) => ({ [StoredHeader.exchange]: 'orders', [StoredHeader.routingKey]: 'eu', [StoredHeader.properties]: properties });
    const first = deliveryParts(storedWith(headers(Buffer.from([0x10, 0, 2])), 0).message, 'topic');
    const again = deliveryParts(storedWith(headers(Buffer.from([0x10, 0, 2])), 5).message, 'topic');
    const other = deliveryParts(storedWith(headers(Buffer.from([0x10, 0, 1])), 5).message, 'topic');
    assert.equal(again, first);
    assert.deepEqual(other.rawProperties, Buffer.from([0x10, 0, 1]));
    assert.deepEqual(first.rawProperties, Buffer.from([0x10, 0, 2]));
  });

  it('amqp: a message without AMQP headers comes from the default exchange with its topic as routing key', () => {
    const { message } = storedWith({ 'x-trace': 'abc' }, 3);
    const parts = deliveryParts(message, 'events');
    assert.equal(parts.exchange, '');
    assert.equal(parts.routingKey, 'events');
    assert.ok(parts.rawProperties.byteLength > 2, 'the Weir header becomes an AMQP headers table');
  });
});

describe('amqp-message: StoredInputs', () => {
  it('stores what storedInput stores, publish after publish, with repeats and changes (property)', () => {
    const published = fc.record({
      exchange: fc.constantFrom('', '', 'orders'),
      routingKey: fc.constantFrom('q', 'q', 'café'),
      rawProperties: fc.constantFrom(Buffer.from([0x10, 0, 2]), Buffer.from([0x10, 0, 1]), Buffer.from([0x08, 0, 5]), Buffer.from([0x30, 0, 0, 0, 0, 0, 2]), Buffer.from([0, 0])),
      // Mostly alike, so runs of publishes share their stored headers.
      ttlMs: fc.oneof(fc.constant(null), fc.constant(null), fc.constant(null), fc.integer({ min: 0, max: 1000 })),
      delayMs: fc.oneof(fc.constant(null), fc.constant(null), fc.constant(null), fc.integer({ min: 0, max: 1000 })),
      priority: fc.constantFrom(0, 0, 9),
    });
    fc.assert(
      fc.property(fc.array(published, { maxLength: 40 }), (publishes) => {
        const inputs = new StoredInputs();
        for (const [index, { priority, ...fields }] of publishes.entries()) {
          const message = { ...fields, body: Buffer.from('body') };
          const expected = storedInput(message, priority);
          const reading = Buffer.from(message.rawProperties);
          const input = inputs.input({ ...message, rawProperties: reading }, priority);
          assert.equal(input.body, message.body);
          assert.deepEqual(Buffer.from(input.encodedHeaders ?? encodeHeaders(input.headers!)), Buffer.from(encodeHeaders(expected.headers!)));
          // TTL and delay stay plain headers: the partition writer rewrites them into absolute times.
          if (message.ttlMs !== null || message.delayMs !== null) assert.deepEqual(input.headers, expected.headers);
          // Published bytes are views of what the caller read; whatever later happens to them must not change what
          // the next publish is compared with (here they become the next publish's properties).
          const next = publishes[index + 1]?.rawProperties;
          if (next !== undefined && next.byteLength === reading.byteLength) next.copy(reading);
          else reading.fill(0xee);
        }
      }),
    );
  });
});
