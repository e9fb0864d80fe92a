import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode } from '../../core/errors.js';
import { decodeBatches, memoryBroker, rejectsWith, settle } from '../test-support.js';
import type { BrokerCore } from '../broker-core.js';
import type { TransactionCheck } from './transactions.js';

/** Transactions, dedup, producer statistics and the trace, through BrokerCore. */

async function readAll(broker: BrokerCore, topic: string): Promise<string[]> {
  const fetched = await broker.fetch({ topic, partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
  return decodeBatches(fetched.batches).map((message) => message.body.toString());
}

const plain = { partition: 0, acks: 'durable' as const, producerId: -1, producerEpoch: -1, baseSequence: -1 };

test('a transaction is invisible until commit; rollback discards', async () => {
  const { broker } = await memoryBroker();
  await broker.createTopic('orders', 1);
  const committed = await broker.beginTransaction('shop');
  const { ids } = await broker.transactionProduce(committed, 'orders', 0, [{ body: 'a' }, { body: 'b' }]);
  const dropped = await broker.beginTransaction('shop');
  await broker.transactionProduce(dropped, 'orders', 0, [{ body: 'never' }]);
  assert.deepEqual(await readAll(broker, 'orders'), []);
  await broker.endTransaction(committed, 'commit');
  await broker.endTransaction(dropped, 'rollback');
  assert.deepEqual(await readAll(broker, 'orders'), ['a', 'b']);
  const found = await broker.getMessage({ id: ids[0] });
  assert.equal(found[0]?.body.toString(), 'a', 'the id returned at send time finds the committed message');
  await rejectsWith(broker.endTransaction(committed, 'commit'), ErrorCode.UnknownTransaction);
  await broker.close();
});

test('an abandoned transaction is checked with a live producer of its group', async () => {
  const { broker, scheduler } = await memoryBroker({ transactionCheckAfterMs: 1000 });
  await broker.createTopic('orders', 1);
  const checks: TransactionCheck[] = [];
  broker.joinProducerGroup('shop', { id: 'p1', sendCheck: (check) => checks.push(check) });
  const id = await broker.beginTransaction('shop');
  await broker.transactionProduce(id, 'orders', 0, [{ body: 'paid' }]);
  scheduler.advance(1001);
  await settle();
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.transactionId, id);
  assert.equal(checks[0]!.messages[0]!.body.toString(), 'paid');
  await broker.endTransaction(id, 'commit');
  assert.deepEqual(await readAll(broker, 'orders'), ['paid']);
  await broker.close();
});

test('with nobody to ask, a transaction is rolled back after the last check', async () => {
  const { broker, scheduler } = await memoryBroker({ transactionCheckAfterMs: 100, transactionCheckIntervalMs: 100, transactionMaxChecks: 3 });
  await broker.createTopic('orders', 1);
  const id = await broker.beginTransaction('lost');
  const { ids } = await broker.transactionProduce(id, 'orders', 0, [{ body: 'orphan' }]);
  for (let step = 0; step < 20; step++) {
    scheduler.advance(1000);
    await settle();
  }
  assert.deepEqual(broker.listTransactions(), []);
  assert.deepEqual(await readAll(broker, 'orders'), []);
  const trace = await broker.traceMessage(ids[0]!);
  assert.ok(trace.some((event) => event.kind === 'transaction' && event.outcome === 'rollback' && event.via === 'timeout'), JSON.stringify(trace));
  await broker.close();
});

test('broker-side dedup: a resent client id is not stored twice within the window', async () => {
  const { broker, clock } = await memoryBroker({ dedupWindowMs: 60_000 });
  await broker.createTopic('orders', 1);
  const first = await broker.produce({ ...plain, topic: 'orders', messages: [{ id: 'order-1', body: 'x' }] });
  const again = await broker.produce({ ...plain, topic: 'orders', messages: [{ id: 'order-1', body: 'x' }] });
  assert.equal(again.duplicate, true);
  assert.equal(again.baseOffset, first.baseOffset);
  const mixed = await broker.produce({ ...plain, topic: 'orders', messages: [{ id: 'order-1', body: 'x' }, { id: 'order-2', body: 'y' }] });
  assert.equal(mixed.duplicate, false);
  assert.equal(mixed.baseOffset, -1, 'only part was stored: no single base offset describes it');
  clock.advance(60_001);
  await broker.produce({ ...plain, topic: 'orders', messages: [{ id: 'order-1', body: 'x' }] });
  assert.deepEqual(await readAll(broker, 'orders'), ['x', 'y', 'x']);
  await broker.close();
});

test('producer statistics count duplicates and gaps', async () => {
  const { broker } = await memoryBroker();
  await broker.createTopic('orders', 1);
  const { producerId, producerEpoch } = await broker.initProducer();
  const send = (baseSequence: number) => broker.produce({ topic: 'orders', partition: 0, acks: 'durable', producerId, producerEpoch, baseSequence, messages: [{ body: 'm' }] });
  await send(0);
  await send(1);
  await send(1);
  await rejectsWith(send(5), ErrorCode.OutOfOrderSequence);
  const [stats] = broker.listProducers();
  assert.deepEqual({ batches: stats!.batches, duplicates: stats!.duplicates, gaps: stats!.gaps, partitions: stats!.partitions }, { batches: 2, duplicates: 1, gaps: 1, partitions: 1 });
  await broker.close();
});

test('the trace shows where a message was stored and every delivery and outcome', async () => {
  const { broker } = await memoryBroker();
  await broker.createTopic('jobs', 1);
  await broker.produce({ ...plain, topic: 'jobs', messages: [{ id: 'job-1', body: 'work' }] });
  const deliveries: Array<{ partition: number; offset: number }> = [];
  await broker.subscribe({ group: 'g', topic: 'jobs', mode: 'shared', consumerId: 'c1', prefetch: 5, clientId: 't', address: '10.0.0.1:5', sink: { deliver: (batch) => deliveries.push(...batch) } });
  await settle();
  await broker.settle('g', 'jobs', 'c1', [{ partition: 0, offset: deliveries[0]!.offset, outcome: 'nack', delayMs: 0, error: 'db down' }]);
  await settle();
  await broker.settle('g', 'jobs', 'c1', [{ partition: 0, offset: deliveries[1]!.offset, outcome: 'ack' }]);
  const trace = await broker.traceMessage(Buffer.from('job-1'));
  assert.deepEqual(
    trace.map((event) => event.kind),
    ['stored', 'delivered', 'nacked', 'delivered', 'acked'],
  );
  const delivered = trace[3] as { deliveryCount: number; address: string };
  assert.equal(delivered.deliveryCount, 2);
  assert.equal(delivered.address, '10.0.0.1:5');
  await broker.close();
});

test('a delayed message appears in its partition when due, never before; the trace shows the delay', async () => {
  const { broker, scheduler, clock } = await memoryBroker();
  await broker.createTopic('jobs', 1);
  const result = await broker.produce({ ...plain, topic: 'jobs', messages: [{ id: 'later', body: 'later', headers: { 'weir.delayMs': '1500' } }] });
  assert.equal(result.baseOffset, -1);
  await broker.produce({ ...plain, topic: 'jobs', messages: [{ body: 'past', headers: { 'weir.deliverAt': String(clock.now() - 1000) } }] });
  await rejectsWith(broker.produce({ ...plain, topic: 'jobs', messages: [{ body: 'x', headers: { 'weir.delayMs': '-1' } }] }), ErrorCode.InvalidArgument);
  await rejectsWith(
    broker.produce({ ...plain, topic: 'jobs', messages: [{ body: 'now' }, { body: 'later', headers: { 'weir.delayMs': '10' } }] }),
    ErrorCode.InvalidArgument,
  );
  // A delayed batch whose earliest time passed in transit is not refused as a mix: the due one is delivered at once.
  await broker.produce({ ...plain, topic: 'jobs', messages: [{ body: 'due', headers: { 'weir.deliverAt': String(clock.now() - 1) } }, { body: 'soon', headers: { 'weir.delayMs': '100000' } }] });
  assert.deepEqual(await readAll(broker, 'jobs'), ['past', 'due']);
  for (let step = 0; step < 14; step++) {
    scheduler.advance(100);
    await settle();
  }
  assert.deepEqual(await readAll(broker, 'jobs'), ['past', 'due']);
  for (let step = 0; step < 5; step++) {
    scheduler.advance(100);
    await settle(10);
  }
  assert.deepEqual(await readAll(broker, 'jobs'), ['past', 'due', 'later']);
  const trace = await broker.traceMessage(Buffer.from('later'));
  assert.deepEqual(trace.map((event) => event.kind), ['delayed', 'stored']);
  await broker.close();
});
