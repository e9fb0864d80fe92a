import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode, WeirError } from '../core/errors.js';
import { MemoryMessageStore } from '../storage/memory-message-store.js';
import type { AppendOptions, AppendResult, MessageStore } from '../storage/message-store.js';
import type { BatchAttributes, MessageInput } from '../storage/record-batch.js';
import { BrokerCore } from './broker-core.js';
import type { ProduceRequest } from './partition-writer.js';
import { ManualScheduler } from './scheduler.js';
import { decodeBatches, isSettled, memoryBroker, openDiskStore, rejectsWith, tempDirectory } from './test-support.js';

function batch(producerId: number, producerEpoch: number, baseSequence: number, bodies: string[], partition = 0): ProduceRequest {
  return { topic: 'idem', partition, acks: 'durable', producerId, producerEpoch, baseSequence, messages: bodies.map((body) => ({ body })) };
}

async function bodies(broker: BrokerCore, partition = 0): Promise<string[]> {
  const fetched = await broker.fetch({ topic: 'idem', partition, offset: 0, maxBytes: 1 << 24, minBytes: 0, maxWaitMs: 0 });
  return decodeBatches(fetched.batches).map((message) => message.body.toString());
}

/** Delegates to a MemoryMessageStore, failing chosen appends the way the commit log does (nothing of them stored). */
function flakyStore(inner: MessageStore, fail: (call: number) => boolean): MessageStore {
  let calls = 0;
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'append') {
        return (queueId: number, messages: readonly MessageInput[], attributes?: BatchAttributes) => {
          if (fail(calls++)) return Promise.reject(new WeirError(ErrorCode.StorageIo, 'injected write failure', { retriable: true }));
          return target.append(queueId, messages, attributes);
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('broker: idempotent producers', () => {
  it('broker: the same batch twice is stored once and the retry gets the original offsets', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('idem', 2);
    const { producerId, producerEpoch } = await broker.initProducer();
    assert.equal(producerId, 1);
    assert.equal(producerEpoch, 0);
    const first = await broker.produce(batch(producerId, producerEpoch, 0, ['a', 'b']));
    const retry = await broker.produce(batch(producerId, producerEpoch, 0, ['a', 'b']));
    assert.equal(first.duplicate, false);
    assert.deepEqual(retry, { ...first, duplicate: true });
    const next = await broker.produce(batch(producerId, producerEpoch, 2, ['c']));
    assert.equal(next.baseOffset, 2);
    assert.deepEqual(await bodies(broker), ['a', 'b', 'c']);
    // Sequences are per partition: partition 1 starts at 0 on its own.
    assert.equal((await broker.produce(batch(producerId, producerEpoch, 0, ['p1'], 1))).baseOffset, 0);
    await broker.close();
  });

  it('broker: the last 5 batches are recognised; older retries are duplicates without offsets; gaps and overlaps are out of order', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('idem', 1);
    const { producerId, producerEpoch } = await broker.initProducer();
    const results = [];
    for (let index = 0; index < 8; index++) results.push(await broker.produce(batch(producerId, producerEpoch, index * 2, [`m${index}a`, `m${index}b`])));
    for (let index = 3; index < 8; index++) {
      assert.deepEqual(await broker.produce(batch(producerId, producerEpoch, index * 2, [`m${index}a`, `m${index}b`])), { ...results[index], duplicate: true });
    }
    assert.deepEqual(await broker.produce(batch(producerId, producerEpoch, 2, ['m1a', 'm1b'])), { partition: 0, baseOffset: -1, storeTimestamp: -1, position: -1, duplicate: true });
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, 18, ['gap'])), ErrorCode.OutOfOrderSequence);
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, 15, ['overlap', 'overlap'])), ErrorCode.OutOfOrderSequence);
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, 14, ['m7a'])), ErrorCode.OutOfOrderSequence);
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, -1, ['x'])), ErrorCode.InvalidArgument);
    assert.equal((await bodies(broker)).length, 16);
    await broker.close();
  });

  it('broker: a new epoch fences the old one, and unknown producers are refused', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('idem', 1);
    const old = await broker.initProducer();
    await broker.produce(batch(old.producerId, old.producerEpoch, 0, ['old-0']));
    const bumped = await broker.initProducer(old.producerId);
    assert.deepEqual(bumped, { producerId: old.producerId, producerEpoch: 1 });
    await rejectsWith(broker.produce(batch(old.producerId, old.producerEpoch, 1, ['zombie'])), ErrorCode.InvalidProducerEpoch);
    await rejectsWith(broker.produce(batch(old.producerId, 7, 0, ['future'])), ErrorCode.InvalidProducerEpoch);
    // The new epoch starts its sequences again at 0.
    await rejectsWith(broker.produce(batch(bumped.producerId, bumped.producerEpoch, 1, ['new-1'])), ErrorCode.UnknownProducer);
    await broker.produce(batch(bumped.producerId, bumped.producerEpoch, 0, ['new-0']));
    await rejectsWith(broker.produce(batch(99, 0, 0, ['who'])), ErrorCode.UnknownProducer);
    await rejectsWith(broker.initProducer(99), ErrorCode.UnknownProducer);
    const other = await broker.initProducer(-1);
    assert.equal(other.producerId, old.producerId + 1);
    // Without a partition or key, a retry could land elsewhere: refused.
    await rejectsWith(broker.produce({ ...batch(other.producerId, 0, 0, ['x']), partition: -1 }), ErrorCode.InvalidArgument);
    assert.deepEqual(await bodies(broker), ['old-0', 'new-0']);
    await broker.close();
  });

  it('broker: pipelined batches are stored in sequence order and an in-flight retry waits for the original', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('idem', 1);
    const { producerId, producerEpoch } = await broker.initProducer();
    const sends = Array.from({ length: 5 }, (_, index) => broker.produce(batch(producerId, producerEpoch, index, [`s${index}`])));
    const retry = broker.produce(batch(producerId, producerEpoch, 2, ['s2']));
    const results = await Promise.all(sends);
    assert.deepEqual(await retry, { ...results[2], duplicate: true });
    assert.deepEqual(
      results.map((result) => result.baseOffset),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(await bodies(broker), ['s0', 's1', 's2', 's3', 's4']);
    await broker.close();
  });

  it('broker: a failed append takes its sequences back, so the producer resends from there', async () => {
    const clock = new ManualClock();
    // Call 0 is the first batch; calls 1 and 2 fail together, as a failed commit-log write fails every pending append.
    const store = flakyStore(new MemoryMessageStore(clock), (call) => call === 1 || call === 2);
    const { broker } = await memoryBroker({ store, clock });
    await broker.createTopic('idem', 1);
    const { producerId, producerEpoch } = await broker.initProducer();
    await broker.produce(batch(producerId, producerEpoch, 0, ['a']));
    const failing = [broker.produce(batch(producerId, producerEpoch, 1, ['b'])), broker.produce(batch(producerId, producerEpoch, 2, ['c']))];
    for (const result of failing) await rejectsWith(result, ErrorCode.StorageIo);
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, 3, ['d'])), ErrorCode.OutOfOrderSequence);
    assert.equal((await broker.produce(batch(producerId, producerEpoch, 1, ['b']))).baseOffset, 1);
    assert.equal((await broker.produce(batch(producerId, producerEpoch, 2, ['c']))).baseOffset, 2);
    assert.deepEqual(await bodies(broker), ['a', 'b', 'c']);
    await broker.close();
  });

  it('broker: written acks answer on the proposed onWritten signal, durable acks on the append promise', async () => {
    const clock = new ManualClock();
    const inner = new MemoryMessageStore(clock);
    const releases: Array<() => void> = [];
    // A store that implements the proposed signal: written at once, durable when the test says so.
    const store = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'append') {
          return (queueId: number, messages: readonly MessageInput[], attributes: AppendOptions = {}) => {
            const appended = target.append(queueId, messages, attributes);
            return appended.then((result) => {
              attributes.onWritten?.(result);
              return new Promise<AppendResult>((resolve) => releases.push(() => resolve(result)));
            });
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { broker } = await memoryBroker({ store, clock });
    await broker.createTopic('idem', 1);
    const written = broker.produce({ ...batch(-1, -1, -1, ['w']), acks: 'written' });
    const none = broker.produce({ ...batch(-1, -1, -1, ['n']), acks: 'none' });
    const durable = broker.produce(batch(-1, -1, -1, ['d']));
    assert.equal((await written).baseOffset, 0);
    assert.equal((await none).baseOffset, 1);
    assert.equal(await isSettled(durable), false);
    for (const release of releases) release();
    assert.equal((await durable).baseOffset, 2);
    await broker.close();
  });

  it('broker: duplicates are still recognised after a clean restart (DiskMessageStore)', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      let broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      await broker.createTopic('idem', 2);
      const { producerId, producerEpoch } = await broker.initProducer();
      const originals = [];
      for (let index = 0; index < 3; index++) originals.push(await broker.produce(batch(producerId, producerEpoch, index * 2, [`a${index}`, `b${index}`], 1)));
      await broker.close();
      await store.close();

      store = await openDiskStore(dataDir, clock);
      broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      for (let index = 0; index < 3; index++) {
        assert.deepEqual(await broker.produce(batch(producerId, producerEpoch, index * 2, [`a${index}`, `b${index}`], 1)), { ...originals[index], duplicate: true });
      }
      await rejectsWith(broker.produce(batch(producerId, producerEpoch, 7, ['gap'], 1)), ErrorCode.OutOfOrderSequence);
      assert.equal((await broker.produce(batch(producerId, producerEpoch, 6, ['next'], 1))).baseOffset, 6);
      // The id counter and epochs are durable too.
      assert.equal((await broker.initProducer()).producerId, producerId + 1);
      assert.deepEqual(await broker.initProducer(producerId), { producerId, producerEpoch: 1 });
      assert.equal((await bodies(broker, 1)).length, 7);
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('broker: after a crash the state is rebuilt from the log after the last snapshot (DiskMessageStore)', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      const scheduler = new ManualScheduler(clock);
      const crashed = await BrokerCore.open({ store, clock, scheduler, producerSnapshotIntervalMs: 1000 });
      await crashed.createTopic('idem', 1);
      const first = await crashed.initProducer();
      const second = await crashed.initProducer();
      const before = await crashed.produce(batch(first.producerId, first.producerEpoch, 0, ['before']));
      scheduler.advance(1000);
      await crashed.internals.producerState.snapshot();
      const after = await crashed.produce(batch(first.producerId, first.producerEpoch, 1, ['after']));
      const other = await crashed.produce(batch(second.producerId, second.producerEpoch, 0, ['other-0', 'other-1']));
      // No broker close, no store checkpoint: as if the process was killed.
      await store.abandon();
      await store.metadata.close();

      store = await openDiskStore(dataDir, clock);
      const broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      assert.deepEqual(await broker.produce(batch(first.producerId, first.producerEpoch, 0, ['before'])), { ...before, duplicate: true });
      assert.deepEqual(await broker.produce(batch(first.producerId, first.producerEpoch, 1, ['after'])), { ...after, duplicate: true });
      assert.deepEqual(await broker.produce(batch(second.producerId, second.producerEpoch, 0, ['other-0', 'other-1'])), { ...other, duplicate: true });
      assert.equal((await broker.produce(batch(second.producerId, second.producerEpoch, 2, ['other-2']))).baseOffset, 4);
      assert.deepEqual(await bodies(broker), ['before', 'after', 'other-0', 'other-1', 'other-2']);
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('broker: producers silent for longer than the retention are forgotten at the next snapshot', async () => {
    const { broker, scheduler, store } = await memoryBroker({ producerSnapshotIntervalMs: 1000, producerStateRetentionMs: 60_000 });
    await broker.createTopic('idem', 1);
    const queueId = store.queue('idem/0')!.id;
    const { producerId, producerEpoch } = await broker.initProducer();
    await broker.produce(batch(producerId, producerEpoch, 0, ['a']));
    scheduler.advance(1000);
    await broker.internals.producerState.snapshot();
    assert.equal(broker.internals.producerState.producerCount(queueId), 1);
    assert.ok(store.metadata.has(`producer/state/${queueId}`));
    assert.equal(broker.listProducers().length, 1);
    scheduler.advance(61_000);
    await broker.internals.producerState.snapshot();
    assert.equal(broker.internals.producerState.producerCount(queueId), 0);
    assert.equal(broker.listProducers().length, 0, 'its sequence statistics go too');
    assert.equal(store.metadata.has(`producer/state/${queueId}`), false);
    await rejectsWith(broker.produce(batch(producerId, producerEpoch, 1, ['b'])), ErrorCode.UnknownProducer);
    await broker.close();
  });

  it('broker: deleting a topic deletes its producer state', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('idem', 1);
    const queueId = store.queue('idem/0')!.id;
    const { producerId, producerEpoch } = await broker.initProducer();
    await broker.produce(batch(producerId, producerEpoch, 0, ['a']));
    assert.ok(store.metadata.has(`producer/state/${queueId}`));
    await broker.deleteTopic('idem');
    assert.equal(store.metadata.has(`producer/state/${queueId}`), false);
    assert.equal(broker.listProducers()[0]!.partitions, 0, 'its statistics no longer count the deleted partition');
    await broker.createTopic('idem', 1);
    assert.equal((await broker.produce(batch(producerId, producerEpoch, 0, ['fresh']))).duplicate, false);
    await broker.close();
  });
});
