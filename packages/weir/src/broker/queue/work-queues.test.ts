import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode } from '../../core/errors.js';
import { decodeHeaders } from '../../storage/record-batch.js';
import { memoryBroker, openDiskStore, rejectsWith, settle, tempDirectory, type TestBroker } from '../test-support.js';
import { BrokerCore } from '../broker-core.js';
import type { Delivery } from './shared-subscription.js';
import type { SharedGroupSettings } from './shared-subscription.js';

/** A consumer that records its deliveries. */
function recorder(): { deliveries: Delivery[]; sink: { deliver: (batch: Delivery[]) => void }; take: () => Delivery[] } {
  const deliveries: Delivery[] = [];
  return {
    deliveries,
    sink: { deliver: (batch) => deliveries.push(...batch) },
    take: () => deliveries.splice(0),
  };
}

async function produce(broker: BrokerCore, topic: string, bodies: string[], extra: { key?: string; headers?: Record<string, string>; partition?: number } = {}): Promise<void> {
  for (const body of bodies) {
    await broker.produce({
      topic,
      partition: extra.partition ?? 0,
      acks: 'durable',
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      messages: [{ body, key: extra.key ?? null, headers: extra.headers ?? null }],
    });
  }
}

async function subscribe(broker: BrokerCore, consumerId: string, options: { prefetch?: number; mode?: 'shared' | 'key_shared'; settings?: Partial<SharedGroupSettings>; group?: string; topic?: string; filter?: { kind: 'tag' | 'sql'; expression: string } } = {}) {
  const record = recorder();
  await broker.subscribe({
    group: options.group ?? 'workers',
    topic: options.topic ?? 'jobs',
    mode: options.mode ?? 'shared',
    settings: options.settings,
    filter: options.filter,
    consumerId,
    prefetch: options.prefetch ?? 10,
    clientId: 'test',
    address: '127.0.0.1:1',
    sink: record.sink,
  });
  await settle();
  return record;
}

/** Lets the event loop run until `done()` holds (disk reads take a few turns). */
async function until(done: () => boolean): Promise<void> {
  for (let turn = 0; turn < 1000 && !done(); turn++) await new Promise<void>((resolve) => setTimeout(resolve, 1));
}

const bodies = (deliveries: readonly Delivery[]) => deliveries.map((delivery) => delivery.message.body.toString());
const ack = (broker: BrokerCore, consumerId: string, deliveries: readonly Delivery[], group = 'workers') =>
  broker.settle(group, 'jobs', consumerId, deliveries.map((delivery) => ({ partition: delivery.partition, offset: delivery.offset, outcome: 'ack' as const })));

async function setup(partitions = 1): Promise<TestBroker> {
  const context = await memoryBroker();
  await context.broker.createTopic('jobs', partitions);
  return context;
}

test('a shared consumer gets at most prefetch deliveries until it acks', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['a', 'b', 'c', 'd', 'e']);
  const consumer = await subscribe(broker, 'c1', { prefetch: 2 });
  assert.deepEqual(bodies(consumer.deliveries), ['a', 'b']);
  assert.equal(await ack(broker, 'c1', consumer.take()), 2);
  await settle();
  assert.deepEqual(bodies(consumer.deliveries), ['c', 'd']);
  assert.equal(consumer.deliveries[0]!.deliveryCount, 1);
  await broker.close();
});

test('messages spread over consumers; a detached consumer\'s messages go to the others, marked redelivered', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', Array.from({ length: 6 }, (_, i) => `m${i}`));
  const one = await subscribe(broker, 'one', { prefetch: 3 });
  const two = await subscribe(broker, 'two', { prefetch: 3 });
  assert.equal(one.deliveries.length, 3);
  assert.equal(two.deliveries.length, 3);
  const held = bodies(one.take());
  await ack(broker, 'two', two.take());
  broker.unsubscribe('workers', 'jobs', 'one');
  await settle();
  assert.deepEqual(bodies(two.deliveries).sort(), held.sort());
  assert.ok(two.deliveries.every((delivery) => delivery.deliveryCount === 2));
  await broker.close();
});

test('nack waits its delay, then redelivers; reject and max deliveries dead-letter with headers', async () => {
  const { broker, scheduler } = await setup();
  await produce(broker, 'jobs', ['x', 'y']);
  const consumer = await subscribe(broker, 'c1', { settings: { maxDeliveries: 2 } });
  const [x, y] = consumer.take();
  await broker.settle('workers', 'jobs', 'c1', [
    { partition: 0, offset: x!.offset, outcome: 'nack', delayMs: 500, error: 'busy' },
    { partition: 0, offset: y!.offset, outcome: 'reject', error: 'bad payload' },
  ]);
  await settle();
  assert.equal(consumer.deliveries.length, 0);
  scheduler.advance(499);
  await settle();
  assert.equal(consumer.deliveries.length, 0);
  scheduler.advance(1);
  await settle();
  assert.deepEqual(bodies(consumer.deliveries), ['x']);
  assert.equal(consumer.deliveries[0]!.deliveryCount, 2);
  await broker.settle('workers', 'jobs', 'c1', [{ partition: 0, offset: x!.offset, outcome: 'nack', error: 'still busy' }]);
  await settle();
  const dead = await broker.fetch({ topic: 'workers.dlq', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
  const { decodeBatches } = await import('../test-support.js');
  const letters = decodeBatches(dead.batches).map((message) => ({ body: message.body.toString(), headers: decodeHeaders(message.headers) }));
  assert.deepEqual(
    letters.map((letter) => [letter.body, letter.headers['weir.dlq.reason'], letter.headers['weir.dlq.deliveries'], letter.headers['weir.dlq.error']]),
    [
      ['y', 'rejected', '1', 'bad payload'],
      ['x', 'max-deliveries', '2', 'still busy'],
    ],
  );
  assert.equal(letters[0]!.headers['weir.dlq.topic'], 'jobs');
  assert.equal(letters[0]!.headers['weir.dlq.group'], 'workers');
  await broker.close();
});

test('an expired lease is redelivered; extend keeps it', async () => {
  const { broker, scheduler } = await setup();
  await produce(broker, 'jobs', ['slow', 'slower']);
  const consumer = await subscribe(broker, 'c1', { settings: { ackTimeoutMs: 1000 } });
  const [slow, slower] = consumer.take();
  scheduler.advance(600);
  assert.equal(await broker.extend('workers', 'jobs', 'c1', [{ partition: 0, offset: slower!.offset }], 2000), 1);
  scheduler.advance(600);
  await settle();
  assert.deepEqual(bodies(consumer.take()), ['slow']);
  assert.equal(await ack(broker, 'c1', [slow!]), 1, 'the redelivery holds the lease again');
  scheduler.advance(1500);
  await settle();
  assert.deepEqual(bodies(consumer.take()), ['slower']);
  await broker.close();
});

test('a late ack for a redelivered message is ignored', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['m']);
  const one = await subscribe(broker, 'one', { prefetch: 1 });
  const [first] = one.take();
  broker.unsubscribe('workers', 'jobs', 'one');
  const two = await subscribe(broker, 'two', { prefetch: 1 });
  assert.equal(await ack(broker, 'one', [first!]), 0);
  assert.equal(await ack(broker, 'two', two.take()), 1);
  await broker.close();
});

test('higher priority first, FIFO within a priority', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['low1', 'low2']);
  await produce(broker, 'jobs', ['high1', 'high2'], { headers: { 'weir.priority': '9' } });
  await produce(broker, 'jobs', ['mid'], { headers: { 'weir.priority': '5' } });
  const consumer = await subscribe(broker, 'c1', { prefetch: 0 });
  assert.deepEqual(bodies(consumer.deliveries), ['high1', 'high2', 'mid', 'low1', 'low2']);
  await rejectsWith(produce(broker, 'jobs', ['bad'], { headers: { 'weir.priority': '10' } }), ErrorCode.InvalidArgument);
  await rejectsWith(produce(broker, 'jobs', ['bad'], { headers: { 'weir.other': '1' } }), ErrorCode.InvalidArgument);
  await broker.close();
});

test('an expired message is never delivered', async () => {
  const { broker, clock } = await setup();
  await produce(broker, 'jobs', ['short'], { headers: { 'weir.ttlMs': '100' } });
  await produce(broker, 'jobs', ['long'], { headers: { 'weir.ttlMs': '100000' } });
  await rejectsWith(produce(broker, 'jobs', ['zero'], { headers: { 'weir.ttlMs': '0' } }), ErrorCode.InvalidArgument);
  clock.advance(200);
  const consumer = await subscribe(broker, 'c1');
  assert.deepEqual(bodies(consumer.deliveries), ['long']);
  await broker.close();
});

test('a group messageTtlMs expires what was stored longer ago, the earlier expiry winning', async () => {
  const { broker, clock } = await setup();
  await produce(broker, 'jobs', ['old']);
  clock.advance(1000);
  await produce(broker, 'jobs', ['fresh', 'fresh-but-short'].slice(0, 1));
  await produce(broker, 'jobs', ['short'], { headers: { 'weir.ttlMs': '10' } });
  clock.advance(100);
  const consumer = await subscribe(broker, 'c1', { settings: { messageTtlMs: 500 } });
  assert.deepEqual(bodies(consumer.deliveries), ['fresh']);
  await rejectsWith(subscribe(broker, 'c2', { group: 'bad', settings: { messageTtlMs: 0 } }), ErrorCode.InvalidArgument);
  await broker.close();
});

test('key_shared: one key goes to one consumer at a time, in order, across a crash', async () => {
  const { broker } = await setup(2);
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'];
  for (let round = 0; round < 4; round++) {
    for (const key of keys) await produce(broker, 'jobs', [`${key}-${round}`], { key, partition: key.charCodeAt(1) % 2 });
  }
  const one = await subscribe(broker, 'one', { mode: 'key_shared', prefetch: 100 });
  const two = await subscribe(broker, 'two', { mode: 'key_shared', prefetch: 100 });
  // All of it went to `one` (it came first); `two` gets nothing while `one` owns every key.
  assert.equal(one.deliveries.length, 24);
  assert.equal(two.deliveries.length, 0);
  const held = one.take();
  // `one` acks k1's first two messages and crashes with the rest.
  await ack(broker, 'one', held.filter((delivery) => ['k1-0', 'k1-1'].includes(delivery.message.body.toString())));
  broker.unsubscribe('workers', 'jobs', 'one');
  await settle();
  const got = bodies(two.deliveries);
  assert.equal(got.length, 22);
  for (const key of keys) {
    const mine = got.filter((body) => body.startsWith(`${key}-`));
    assert.deepEqual(mine, [...mine].sort(), `order of ${key}`);
  }
  await broker.close();
});

test('key_shared: a busy consumer does not stall keys it does not own', async () => {
  const { broker } = await setup();
  const one = await subscribe(broker, 'one', { mode: 'key_shared', prefetch: 1 });
  const two = await subscribe(broker, 'two', { mode: 'key_shared', prefetch: 100 });
  for (let i = 0; i < 40; i++) await produce(broker, 'jobs', [`m${i}`], { key: `key-${i % 8}` });
  await settle();
  assert.equal(one.deliveries.length, 1, 'prefetch 1');
  const oneKey = one.deliveries[0]!.message.key!.toString();
  const twoKeys = new Set(two.deliveries.map((delivery) => delivery.message.key!.toString()));
  assert.ok(!twoKeys.has(oneKey), 'the key held by one never goes to two');
  assert.ok(two.deliveries.length > 0);
  await broker.close();
});

test('maxLength with drop-head keeps the newest; reject-publish refuses produces', async () => {
  const { broker } = await setup();
  await subscribe(broker, 'idle', { prefetch: 1, settings: { maxLength: 3, overflow: 'drop-head' } });
  await produce(broker, 'jobs', ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  await settle();
  const peeked = await broker.peek('workers', 'jobs', 10);
  assert.deepEqual(peeked.map((entry) => entry.message.body.toString()), ['m3', 'm4', 'm5']);
  await broker.createTopic('bounded', 1);
  await subscribe(broker, 'b', { group: 'strict', topic: 'bounded', prefetch: 1, settings: { maxLength: 2, overflow: 'reject-publish' } });
  await produce(broker, 'bounded', ['a', 'b', 'c']);
  await rejectsWith(produce(broker, 'bounded', ['d']), ErrorCode.QueueFull);
  await broker.close();
});

test('a group filter: non-matching messages are never delivered', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['eu-1'], { headers: { region: 'eu' } });
  await produce(broker, 'jobs', ['us-1'], { headers: { region: 'us' } });
  await produce(broker, 'jobs', ['none']);
  const consumer = await subscribe(broker, 'c1', { filter: { kind: 'sql', expression: "region = 'eu'" } });
  assert.deepEqual(bodies(consumer.deliveries), ['eu-1']);
  await rejectsWith(subscribe(broker, 'c2', { group: 'other', filter: { kind: 'sql', expression: "region = 'eu" } }), ErrorCode.InvalidFilter);
  await rejectsWith(subscribe(broker, 'c3', { filter: { kind: 'tag', expression: 'a' } }), ErrorCode.InvalidGroup);
  await broker.close();
});

test('a group name keeps its mode', async () => {
  const { broker } = await setup();
  await subscribe(broker, 'c1');
  await rejectsWith(subscribe(broker, 'c2', { mode: 'key_shared' }), ErrorCode.InvalidGroup);
  await rejectsWith(broker.joinGroup({ group: 'workers', memberId: '', clientId: 'x', host: 'h', topics: ['jobs'], strategy: 'range', sessionTimeoutMs: 1000, rebalanceTimeoutMs: 1000 }), ErrorCode.InvalidGroup);
  await rejectsWith(broker.commitOffsets({ group: 'workers', generation: -1, memberId: '', offsets: [{ topic: 'jobs', partition: 0, offset: 1 }] }), ErrorCode.InvalidGroup);
  const groups = await broker.listGroups();
  assert.deepEqual(groups.map((group) => [group.group, group.mode, group.members]), [['workers', 'shared', 1]]);
  await broker.close();
});

test('pull: receive waits for a message and leases it to the connection', async () => {
  const { broker } = await setup();
  const pending = broker.receive({ group: 'pullers', topic: 'jobs', mode: 'shared', consumerId: 'pull-1', clientId: 't', address: 'a', maxMessages: 5, waitMs: 10_000 });
  await settle();
  await produce(broker, 'jobs', ['p1', 'p2']);
  const got = await pending;
  assert.ok(got.length >= 1);
  assert.equal(await broker.settle('pullers', 'jobs', 'pull-1', got.map((delivery) => ({ partition: 0, offset: delivery.offset, outcome: 'ack' as const }))), got.length);
  await broker.close();
});

test('ack state survives a clean restart: nothing acknowledged comes back, the rest does', async () => {
  const { dataDir, cleanup } = await tempDirectory();
  const { ManualClock } = await import('../../core/clock.js');
  const { ManualScheduler } = await import('../scheduler.js');
  try {
    const clock = new ManualClock();
    let store = await openDiskStore(dataDir, clock);
    let broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
    await broker.createTopic('jobs', 1);
    await produce(broker, 'jobs', Array.from({ length: 10 }, (_, i) => `m${i}`));
    const consumer = await subscribe(broker, 'c1', { prefetch: 0 });
    await until(() => consumer.deliveries.length >= 10);
    const all = consumer.take();
    // Ack the even ones; the odd ones stay in flight when the broker stops.
    await ack(broker, 'c1', all.filter((_, i) => i % 2 === 0));
    await broker.close();
    await store.close();
    store = await openDiskStore(dataDir, clock);
    broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
    const again = await subscribe(broker, 'c2', { prefetch: 0 });
    await until(() => again.deliveries.length >= 5);
    assert.deepEqual(bodies(again.deliveries), ['m1', 'm3', 'm5', 'm7', 'm9']);
    assert.ok(again.deliveries.every((delivery) => delivery.deliveryCount === 2), 'the delivery before the restart counts');
    await broker.close();
    await store.close();
  } finally {
    await cleanup();
  }
});

test('peek, settle and extend on a topic the group does not consume change nothing', async () => {
  const { broker } = await setup();
  await broker.createTopic('other', 1);
  await subscribe(broker, 'c1');
  assert.deepEqual(await broker.peek('workers', 'other', 5), []);
  assert.equal(await broker.settle('workers', 'other', 'c1', [{ partition: 0, offset: 0, outcome: 'ack' }]), 0);
  assert.deepEqual((await broker.describeSharedGroup('workers')).topics.map((entry) => entry.topic), ['jobs']);
  await broker.close();
});

test('an unsubscribe naming an older consumer leaves a newer one with the same id alone', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['m']);
  const older = await subscribe(broker, 'w1');
  const held = older.take();
  assert.equal(held.length, 1);
  const state = broker.internals.workQueues.subscriptionOf('workers', 'jobs')!.consumer('w1')!;
  broker.unsubscribe('workers', 'jobs', 'w1');
  const newer = await subscribe(broker, 'w1');
  assert.equal(newer.deliveries.length, 1);
  broker.unsubscribe('workers', 'jobs', 'w1', state);
  assert.equal((await broker.describeSharedGroup('workers')).topics[0]!.consumers.length, 1);
  await broker.close();
});
