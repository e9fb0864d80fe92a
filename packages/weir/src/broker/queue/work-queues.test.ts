import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock, systemClock } from '../../core/clock.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import type { MetadataOp } from '../../storage/message-store.js';
import { decodeHeaders } from '../../storage/record-batch.js';
import { decodeBatches, memoryBroker, openDiskStore, rejectsWith, settle, tempDirectory, type TestBroker } from '../test-support.js';
import { BrokerCore } from '../broker-core.js';
import { CreditPool, type Delivery } from './shared-subscription.js';
import type { SharedGroupSettings } from './shared-subscription.js';
import type { DeadLetter } from './work-queues.js';

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

// ---- pull -----------------------------------------------------------------------------------------------------------

const pullCall = { group: 'pullers', topic: 'jobs', mode: 'shared' as const, consumerId: 'pull-1', clientId: 't', address: 'a' };

test('pull: a key_shared Receive whose ready messages are all blocked waits without holding the event loop', async () => {
  // Real timers: a Receive that spun on the microtask queue would starve them (and its own wait) until waitMs.
  const broker = await BrokerCore.open({ store: new MemoryMessageStore(systemClock), traceEnabled: false });
  try {
    await broker.createTopic('jobs', 1);
    await produce(broker, 'jobs', ['a1', 'a2'], { key: 'k' });
    const call = { ...pullCall, mode: 'key_shared' as const };
    const [first] = await broker.receive({ ...call, maxMessages: 1, waitMs: 1000 });
    assert.equal(first?.message.body.toString(), 'a1');
    // a1 waits 50 ms for its redelivery; a2 is ready but may not overtake it.
    broker.settle('pullers', 'jobs', 'pull-1', [{ partition: 0, offset: first!.offset, outcome: 'nack', delayMs: 50 }]);
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    const started = Date.now();
    const second = await broker.receive({ ...call, maxMessages: 1, waitMs: 3000 });
    clearInterval(interval);
    assert.deepEqual(bodies(second), ['a1'], 'the Receive gets a1 once its delay ends');
    assert.equal(second[0]!.deliveryCount, 2);
    assert.ok(Date.now() - started < 2000, 'not at the end of waitMs');
    assert.ok(ticks > 0, 'timers ran while the Receive waited');
  } finally {
    await broker.close();
  }
});

test('pull: Receives of one consumer are answered in order; one that times out leaves the leases held', async () => {
  const { broker, scheduler } = await setup();
  const one = broker.receive({ ...pullCall, maxMessages: 5, waitMs: 1000 });
  const two = broker.receive({ ...pullCall, maxMessages: 5, waitMs: 5000 });
  await settle();
  await produce(broker, 'jobs', ['m1']);
  await settle();
  assert.deepEqual(bodies(await one), ['m1']);
  await produce(broker, 'jobs', ['m2']);
  assert.deepEqual(bodies(await two), ['m2']);
  const three = broker.receive({ ...pullCall, maxMessages: 5, waitMs: 100 });
  scheduler.advance(100);
  assert.deepEqual(await three, []);
  // Between Receives the consumer stays attached with no credit: a new message waits for the next Receive.
  await produce(broker, 'jobs', ['m3']);
  await settle();
  assert.equal(broker.sharedGroupStats('pullers', 'jobs')?.ready, 1);
  assert.deepEqual(bodies(await broker.receive({ ...pullCall, maxMessages: 5, waitMs: 0 })), ['m3']);
  const held = [...(await one), ...(await two)].map((delivery) => ({ partition: 0, offset: delivery.offset, outcome: 'ack' as const }));
  assert.equal(await broker.settle('pullers', 'jobs', 'pull-1', held), 2, 'still leased to the pull consumer');
  await broker.close();
});

test('pull: a Receive whose connection closes ends, and the connection\'s leases go to others', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['m1']);
  await settle();
  const [held] = await broker.receive({ ...pullCall, maxMessages: 1, waitMs: 1000 });
  assert.equal(held?.message.body.toString(), 'm1');
  const connection = new AbortController();
  const waiting = broker.receive({ ...pullCall, maxMessages: 1, waitMs: 10_000, signal: connection.signal });
  await settle();
  connection.abort();
  assert.deepEqual(await waiting, []);
  const other = await subscribe(broker, 'c1', { group: 'pullers' });
  assert.deepEqual(bodies(other.deliveries), ['m1']);
  assert.equal(other.deliveries[0]!.deliveryCount, 2);
  await broker.close();
});

test('pull: a waiting Receive ends with nothing when the broker closes or the group is deleted', async () => {
  const { broker } = await setup();
  const deleted = broker.receive({ ...pullCall, group: 'doomed', maxMessages: 1, waitMs: 60_000 });
  const closing = broker.receive({ ...pullCall, maxMessages: 1, waitMs: 60_000 });
  await settle();
  await broker.deleteSharedGroup('doomed');
  assert.deepEqual(await deleted, []);
  await broker.close();
  assert.deepEqual(await closing, []);
});

test('pull: an id subscribed as a pushed consumer cannot pull', async () => {
  const { broker } = await setup();
  await subscribe(broker, 'pull-1', { group: 'pullers' });
  await rejectsWith(broker.receive({ ...pullCall, maxMessages: 1, waitMs: 0 }), ErrorCode.InvalidArgument);
  await broker.close();
});

// ---- credit -----------------------------------------------------------------------------------------------------------

test('a paused consumer gets nothing until it is resumed', async () => {
  const { broker } = await setup();
  const record = recorder();
  const state = broker.subscribe({ group: 'workers', topic: 'jobs', mode: 'shared', consumerId: 'c1', prefetch: 10, clientId: 't', address: 'a', sink: record.sink });
  state.paused = true;
  await produce(broker, 'jobs', ['m1', 'm2']);
  await settle();
  assert.equal(record.deliveries.length, 0);
  broker.resumeConsumer('workers', 'jobs', state);
  await settle();
  assert.deepEqual(bodies(record.deliveries), ['m1', 'm2']);
  await broker.close();
});

/** Consumer `a` of group ga on `jobs` and `b` of group gb on `other`, both drawing on one CreditPool of 2. */
async function twoGroupsSharingAPool() {
  const { broker } = await setup();
  await broker.createTopic('other', 1);
  const pool = new CreditPool(2);
  const a = recorder();
  const b = recorder();
  const base = { mode: 'shared' as const, prefetch: 0, pool, clientId: 't', address: 'a' };
  broker.subscribe({ ...base, group: 'ga', topic: 'jobs', consumerId: 'a', sink: a.sink });
  broker.subscribe({ ...base, group: 'gb', topic: 'other', consumerId: 'b', sink: b.sink });
  return { broker, pool, a, b };
}

test('a CreditPool limits consumers of several groups together; credit coming back lets the others go on', async () => {
  const { broker, pool, a, b } = await twoGroupsSharingAPool();
  await produce(broker, 'jobs', ['a1', 'a2', 'a3']);
  await produce(broker, 'other', ['b1']);
  await settle();
  assert.deepEqual(bodies(a.deliveries), ['a1', 'a2']);
  assert.equal(b.deliveries.length, 0, 'the pool is full');
  assert.equal(await ack(broker, 'a', a.take(), 'ga'), 2);
  await settle();
  assert.equal(a.deliveries.length + b.deliveries.length, 2, 'two freed, two taken');
  pool.setLimit(10);
  await settle();
  assert.deepEqual([...bodies(a.deliveries), ...bodies(b.deliveries)].sort(), ['a3', 'b1']);
  await broker.close();
});

test('deleting a group gives back the pool credit its consumers held, without redelivering', async () => {
  const { broker, pool, a, b } = await twoGroupsSharingAPool();
  await produce(broker, 'jobs', ['a1', 'a2', 'a3']);
  await settle();
  assert.equal(pool.inflight, 2);
  await broker.deleteSharedGroup('ga');
  assert.equal(pool.inflight, 0);
  await produce(broker, 'other', ['b1']);
  await settle();
  assert.deepEqual(bodies(b.deliveries), ['b1']);
  assert.deepEqual(bodies(a.deliveries), ['a1', 'a2'], 'nothing more for a consumer of a deleted group');
  await broker.close();
});

// ---- groups -----------------------------------------------------------------------------------------------------------

test('createGroup applies its settings before any consumer comes, and leaves an existing group\'s filter alone', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxLength: 2 });
  await produce(broker, 'jobs', ['m1', 'm2', 'm3']);
  await settle();
  assert.deepEqual((await broker.peek('workers', 'jobs', 10)).map((entry) => entry.message.body.toString()), ['m2', 'm3']);
  await broker.createTopic('orders', 1);
  await subscribe(broker, 'c1', { group: 'orders', topic: 'orders', filter: { kind: 'tag', expression: 'paid' } });
  broker.unsubscribe('orders', 'orders', 'c1');
  await broker.createSharedGroup('orders', 'orders', { maxLength: 5 });
  assert.deepEqual((await broker.describeSharedGroup('orders')).filter, { kind: 'tag', expression: 'paid' });
  await rejectsWith(broker.createSharedGroup('orders', 'orders', {}).then(() => subscribe(broker, 'k1', { group: 'orders', topic: 'orders', mode: 'key_shared' })), ErrorCode.InvalidGroup);
  await broker.close();
});

test('a new filter keeps what the old one settled and the delivery counts, even before the ack state is written', async () => {
  const { broker } = await setup();
  await produce(broker, 'jobs', ['m1', 'm2', 'm3']);
  const first = await subscribe(broker, 'c1');
  const [m1] = first.take();
  assert.equal(await ack(broker, 'c1', [m1!]), 1);
  broker.unsubscribe('workers', 'jobs', 'c1'); // m2 and m3 go back, delivered once
  const second = await subscribe(broker, 'c2', { filter: { kind: 'tag', expression: '*' } });
  assert.deepEqual(bodies(second.deliveries), ['m2', 'm3']);
  assert.deepEqual(second.deliveries.map((delivery) => delivery.deliveryCount), [2, 2]);
  assert.deepEqual((await broker.describeSharedGroup('workers')).filter, { kind: 'tag', expression: '*' });
  await broker.close();
});

test('deleting a group drops its consumers without redelivery, deletes its state once per key, and frees the name', async () => {
  const { broker, store } = await setup(2);
  await produce(broker, 'jobs', ['m1', 'm2']);
  const consumer = await subscribe(broker, 'c1');
  assert.equal(consumer.take().length, 2);
  await broker.internals.workQueues.flush();
  const applied: MetadataOp[][] = [];
  const apply = store.metadata.apply.bind(store.metadata);
  store.metadata.apply = (ops) => (applied.push([...ops]), apply(ops));
  await broker.deleteSharedGroup('workers');
  const keys = applied.flat().map((op) => op.key);
  assert.deepEqual(keys.sort(), ['group/workers', 'qcursor/workers/jobs/0', 'qcursor/workers/jobs/1']);
  assert.deepEqual(store.metadata.entries('qcursor/workers/'), []);
  await produce(broker, 'jobs', ['m3']);
  await settle();
  assert.equal(consumer.deliveries.length, 0);
  const again = await subscribe(broker, 'k1', { mode: 'key_shared' });
  assert.deepEqual(bodies(again.deliveries).sort(), ['m1', 'm2', 'm3'], 'a new group of the name starts from the beginning');
  await broker.close();
});

test('purge removes ready messages, read or not, and leaves in-flight and waiting ones', async () => {
  const { broker, scheduler } = await setup();
  await produce(broker, 'jobs', ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  const consumer = await subscribe(broker, 'c1', { prefetch: 2, settings: { readAhead: 2 } });
  const [m0, m1] = consumer.take();
  await broker.settle('workers', 'jobs', 'c1', [{ partition: 0, offset: m1!.offset, outcome: 'nack', delayMs: 1000 }]);
  await settle();
  const [m2] = consumer.take();
  assert.equal(m2?.message.body.toString(), 'm2');
  assert.equal(broker.purgeSharedGroup('workers', 'jobs'), 3, 'm3 read ahead, m4 and m5 unread');
  assert.deepEqual(broker.sharedGroupStats('workers', 'jobs'), { ready: 0, readyBytes: 0, inflight: 2, waiting: 1, consumers: 1, unread: 0, staleAcks: 0 });
  await ack(broker, 'c1', [m0!, m2!]);
  scheduler.advance(1000);
  await settle();
  assert.deepEqual(bodies(consumer.take()), ['m1']);
  await produce(broker, 'jobs', ['m6']);
  await settle();
  assert.deepEqual(bodies(consumer.take()), ['m6']);
  await broker.close();
});

test('a failed ack-state write is retried: after a clean restart nothing acknowledged comes back', async () => {
  const { broker, store, clock, scheduler } = await setup();
  await produce(broker, 'jobs', ['m1', 'm2', 'm3']);
  const consumer = await subscribe(broker, 'c1');
  await broker.internals.workQueues.flush();
  await ack(broker, 'c1', consumer.take().slice(0, 2));
  const apply = store.metadata.apply.bind(store.metadata);
  let failures = 1;
  store.metadata.apply = (ops) => (failures-- > 0 ? Promise.reject(new Error('disk full, once')) : apply(ops));
  await broker.internals.workQueues.flush();
  assert.equal(failures, 0, 'the write was tried');
  await broker.close();
  const reopened = await BrokerCore.open({ store, clock, scheduler });
  const again = await subscribe(reopened, 'c2');
  assert.deepEqual(bodies(again.deliveries), ['m3']);
  await reopened.close();
});

// ---- expiry, overflow, dead letters ----------------------------------------------------------------------------------

test('with no consumer, a group TTL expires messages on time, dead-lettering them in order', async () => {
  const { broker, clock, scheduler } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { messageTtlMs: 1000, deadLetterExpired: true });
  for (let i = 0; i < 300; i++) {
    await produce(broker, 'jobs', [`m${i}`]);
    clock.advance(1);
  }
  await settle();
  scheduler.advance(1000 - 300 - 1);
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 300);
  scheduler.advance(150); // m0 … m149 are due
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 150);
  scheduler.advance(1000);
  await settle(10);
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 0);
  const dead = await broker.fetch({ topic: 'workers.dlq', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
  const letters = decodeBatches(dead.batches);
  assert.deepEqual(letters.map((message) => message.body.toString()), Array.from({ length: 300 }, (_, i) => `m${i}`));
  assert.ok(letters.every((message) => decodeHeaders(message.headers)['weir.dlq.reason'] === 'expired'));
  await broker.close();
});

test('expiry follows the wall clock: a step back delays it', async () => {
  const { broker, clock, scheduler } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { messageTtlMs: 1000 });
  await produce(broker, 'jobs', ['m1']);
  await settle();
  clock.jumpWall(-500);
  scheduler.advance(1000);
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 1, 'the wall clock says 500 ms to go');
  scheduler.advance(500);
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 0);
  await broker.close();
});

test('a per-message TTL behind a longer one expires when it reaches the head (as in RabbitMQ), never delivered', async () => {
  const { broker, scheduler } = await setup();
  await broker.createSharedGroup('workers', 'jobs', {});
  await produce(broker, 'jobs', ['long'], { headers: { 'weir.ttlMs': '100000' } });
  await produce(broker, 'jobs', ['short'], { headers: { 'weir.ttlMs': '100' } });
  await settle();
  scheduler.advance(200);
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 2);
  const consumer = await subscribe(broker, 'c1');
  assert.deepEqual(bodies(consumer.deliveries), ['long']);
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.ready, 0);
  await broker.close();
});

test('overflow takes the oldest ready messages whatever their priority', async () => {
  const { broker, clock } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxLength: 2, overflow: 'dead-letter' });
  await produce(broker, 'jobs', ['old-high'], { headers: { 'weir.priority': '9' } });
  clock.advance(1);
  await produce(broker, 'jobs', ['mid-low'], { headers: { 'weir.priority': '0' } });
  clock.advance(1);
  await produce(broker, 'jobs', ['new-mid'], { headers: { 'weir.priority': '5' } });
  await settle(5);
  assert.deepEqual((await broker.peek('workers', 'jobs', 10)).map((entry) => entry.message.body.toString()), ['new-mid', 'mid-low']);
  const dead = await broker.fetch({ topic: 'workers.dlq', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
  assert.deepEqual(decodeBatches(dead.batches).map((message) => [message.body.toString(), decodeHeaders(message.headers)['weir.dlq.reason']]), [['old-high', 'overflow']]);
  await broker.close();
});

test('externalDeadLetters: dead letters go to the handler, those before it is set wait for it, and settle once stored', async () => {
  const { broker, store } = await setup();
  await broker.createSharedGroup('ext', 'jobs', { externalDeadLetters: true });
  await produce(broker, 'jobs', ['bad', 'good']);
  const consumer = await subscribe(broker, 'c1', { group: 'ext' });
  const [bad, good] = consumer.take();
  await broker.settle('ext', 'jobs', 'c1', [{ partition: 0, offset: bad!.offset, outcome: 'reject', error: 'unparseable' }]);
  await ack(broker, 'c1', [good!], 'ext');
  await settle();
  const received: DeadLetter[] = [];
  let store_!: () => void;
  broker.setDeadLetterHandler((letter) => {
    received.push(letter);
    return new Promise<void>((resolve) => (store_ = resolve));
  });
  await settle();
  assert.deepEqual(
    received.map((letter) => [letter.group, letter.topic, letter.partition, letter.message.body.toString(), letter.reason, letter.deliveries, letter.error]),
    [['ext', 'jobs', 0, 'bad', 'rejected', 1, 'unparseable']],
  );
  await broker.internals.workQueues.flush();
  assert.equal((store.metadata.get('qcursor/ext/jobs/0') as { floor: number }).floor, 0, 'not settled before the handler stored it');
  store_();
  await settle();
  await broker.internals.workQueues.flush();
  assert.equal((store.metadata.get('qcursor/ext/jobs/0') as { floor: number }).floor, 2);
  assert.equal((await broker.listTopics()).some((topic) => topic.name.endsWith('.dlq')), false, 'no dead-letter topic');
  await broker.close();
});

test('discardAcked removes a partition\'s messages only once every group reading it is past them', async () => {
  const { broker, store } = await setup();
  await broker.createSharedGroup('owner', 'jobs', { discardAcked: true });
  await broker.createSharedGroup('audit', 'jobs', {});
  await produce(broker, 'jobs', ['m1', 'm2', 'm3']);
  const owner = await subscribe(broker, 'o1', { group: 'owner' });
  await ack(broker, 'o1', owner.take(), 'owner');
  await broker.internals.workQueues.flush();
  const queue = () => store.queue('jobs/0')!;
  assert.equal(queue().startOffset, 0, 'audit has settled nothing');
  const audit = await subscribe(broker, 'a1', { group: 'audit' });
  assert.deepEqual(bodies(audit.deliveries), ['m1', 'm2', 'm3']);
  await ack(broker, 'a1', audit.take().slice(0, 2), 'audit');
  await broker.internals.workQueues.flush();
  // The mark moves when the owner's cursor is written next.
  await produce(broker, 'jobs', ['m4']);
  await settle();
  await ack(broker, 'o1', owner.take(), 'owner');
  await broker.internals.workQueues.flush();
  assert.equal(queue().startOffset, 2, 'as far as audit got');
  await broker.close();
});

test('priority and TTL headers apply under a tag filter and under an SQL filter that reads them', async () => {
  const { broker, clock } = await setup();
  const send = (body: string, tag: string, headers: Record<string, string>) =>
    broker.produce({ topic: 'jobs', partition: 0, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body, key: null, tag, headers }] });
  await send('low', 'a', { region: 'eu' });
  await send('high', 'a', { region: 'eu', 'weir.priority': '7' });
  await send('gone', 'a', { region: 'eu', 'weir.priority': '9', 'weir.ttlMs': '10' });
  await send('other-tag', 'b', { region: 'eu', 'weir.priority': '9' });
  clock.advance(20);
  const tagged = await subscribe(broker, 't1', { group: 'tagged', prefetch: 0, filter: { kind: 'tag', expression: 'a' } });
  assert.deepEqual(bodies(tagged.deliveries), ['high', 'low']);
  const sql = await subscribe(broker, 's1', { group: 'sql', prefetch: 0, filter: { kind: 'sql', expression: "region = 'eu' AND \"weir.priority\" IS NOT NULL" } });
  assert.deepEqual(bodies(sql.deliveries), ['other-tag', 'high']);
  await broker.close();
});

test('a partition whose read fails with an I/O error is read again a second later, not in a loop', async () => {
  const clock = new ManualClock();
  const store = new MemoryMessageStore(clock);
  let failing = true;
  let reads = 0;
  const read = store.read.bind(store);
  store.read = (queueId, offset, options) => {
    reads++;
    return failing ? Promise.reject(new WeirError(ErrorCode.StorageIo, 'disk gone')) : read(queueId, offset, options);
  };
  const { broker, scheduler } = await memoryBroker({ store, clock });
  await broker.createTopic('jobs', 1);
  await produce(broker, 'jobs', ['a', 'b']);
  const consumer = await subscribe(broker, 'c1');
  await settle(20);
  const failedReads = reads;
  assert.ok(failedReads >= 1 && failedReads <= 2, `reads while failing: ${failedReads}`);
  failing = false;
  scheduler.advance(999);
  await settle();
  assert.equal(reads, failedReads, 'no retry before the delay');
  scheduler.advance(1);
  await settle();
  assert.deepEqual(bodies(consumer.deliveries), ['a', 'b']);
  await broker.close();
});
