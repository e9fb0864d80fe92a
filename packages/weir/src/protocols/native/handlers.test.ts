import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeResponse, encodeResponse, type Header } from 'weir-protocol';
import type { BrokerCore } from '../../broker/broker-core.js';
import { decodeHeaders, encodeHeaders, type StoredMessage } from '../../storage/record-batch.js';
import type { ConnectionContext } from './native-connection.js';
import { nativeHandlers } from './handlers.js';

const context: ConnectionContext = { connectionId: 'c1', clientId: 'test', remoteAddress: '127.0.0.1:5000', peerAddress: '127.0.0.1', closed: new AbortController().signal, push: () => true, whenWritable: (resume) => resume() };

function stored(headers: Buffer): StoredMessage {
  return {
    queueId: 1,
    offset: 7,
    position: 0,
    timestamp: 1_700_000_000_000,
    storeTimestamp: 1_700_000_000_001,
    id: Buffer.alloc(16, 1),
    key: null,
    tag: 'created',
    headers,
    body: Buffer.from('body'),
    flags: 0,
    producerId: -1,
    producerEpoch: -1,
    sequence: -1,
  };
}

/** The wire headers as they were built before: decoded to an object, then each string encoded again. */
function viaObject(encoded: Buffer): Header[] {
  return Object.entries(decodeHeaders(encoded)).map(([name, value]) =>
    typeof value === 'string' ? { name, isString: true, value: Buffer.from(value, 'utf8') } : { name, isString: false, value },
  );
}

describe('native: handlers', () => {
  it('native: deliveries carry stored headers as they are: the same wire bytes as decoding and re-encoding them', async () => {
    const cases: Array<Record<string, string | Uint8Array>> = [
      {},
      { a: 'x' },
      { text: 'héllo ✓', raw: Buffer.from([0, 255, 7]), empty: '', none: Buffer.alloc(0) },
      // Integer-like names come first in an object; the stored list is in that order already.
      { b: '1', 10: 'ten', 2: 'two' },
      JSON.parse('{"__proto__": "kept", "y": "z"}') as Record<string, string>,
    ];
    for (const headers of cases) {
      const encoded = Buffer.from(encodeHeaders(headers));
      const message = stored(encoded);
      const broker = { peek: async () => [{ partition: 3, deliveries: 2, message }] } as unknown as BrokerCore;
      const response = await nativeHandlers(broker).Peek({ group: 'g', topic: 't', limit: 1 }, context);
      const delivery = response!.messages[0]!;
      const actual = encodeResponse('Peek', 1, response!);
      const expected = encodeResponse('Peek', 1, { messages: [{ ...delivery, headers: viaObject(encoded) }] });
      assert.ok(actual.equals(expected), JSON.stringify(Object.keys(headers)));
      const decoded = decodeResponse(actual.subarray(4));
      assert.equal(decoded.name === 'Peek' && decoded.body?.messages[0]?.headers.length, Object.keys(headers).length);
    }
  });
});
