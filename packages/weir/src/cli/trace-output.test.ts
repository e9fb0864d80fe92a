import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TraceEvent } from 'weir-client';
import { formatTraceLine } from './trace-output.js';

const start = 1_700_000_000_000;
const where = { topic: 'orders', partition: 2, offset: 17 };

test('trace events print as one timeline line each', () => {
  const events = [
    { kind: 'delayed', time: start, topic: 'orders', partition: 2, deliverAt: start + 60_000, producer: { clientId: 'shop', address: '10.0.0.5:5123', protocol: 'weir' } },
    { kind: 'delivered', time: start + 3000, ...where, group: 'billing', consumerId: 'c-1', address: '10.0.0.9:4000', deliveryCount: 1 },
    { kind: 'dead-lettered', time: start + 7000, ...where, group: 'billing', reason: 'rejected', deliveryCount: 2, to: { topic: 'orders.billing.dlq', partition: 0, offset: 3 }, error: 'unparseable' },
  ] as unknown as TraceEvent[];
  const lines = events.map(formatTraceLine);
  assert.equal(lines[0], '2023-11-14T22:13:20.000Z  delayed        orders/2 until 2023-11-14T22:14:20.000Z from shop, 10.0.0.5:5123, over weir');
  assert.match(lines[1]!, /delivered +orders\/2@17 to billing\/c-1 \(10\.0\.0\.9:4000\), delivery 1$/);
  assert.match(lines[2]!, /dead-lettered +orders\/2@17 in billing → orders\.billing\.dlq\/0@3 \(rejected after 2 deliveries\): unparseable$/);
});
