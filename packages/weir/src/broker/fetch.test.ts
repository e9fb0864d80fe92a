import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode } from '../core/errors.js';
import { MemoryMessageStore } from '../storage/memory-message-store.js';
import { BrokerCore } from './broker-core.js';
import { decodeBatches, isSettled, memoryBroker, openDiskStore, rejectsWith, settle, tempDirectory } from './test-support.js';

const produce = (broker: BrokerCore, topic: string, partition: number, ...bodies: string[]) =>
  broker.produce({ topic, partition, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: bodies.map((body) => ({ body })) });

describe('broker: fetch and long polling', () => {
  it('broker: a long poll at the end is answered by the append, not by its timeout', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('live', 2);
    const timersBefore = scheduler.pending;
    // The manual scheduler never fires the 10-minute timer here: only the append can answer.
    const waiting = broker.fetch({ topic: 'live', partition: 1, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 600_000 });
    assert.equal(await isSettled(waiting), false);
    assert.equal(broker.internals.fetcher.waiting, 1);
    await produce(broker, 'live', 0, 'other partition');
    assert.equal(await isSettled(waiting), false, 'an append to another partition does not wake it');
    await produce(broker, 'live', 1, 'hello');
    const result = await waiting;
    assert.deepEqual(
      decodeBatches(result.batches).map((message) => message.body.toString()),
      ['hello'],
    );
    assert.equal(result.endOffset, 1);
    assert.equal(broker.internals.fetcher.waiting, 0);
    assert.equal(scheduler.pending, timersBefore, 'the wait timer was cleared');
    await broker.close();
  });

  it('broker: a long poll over a real DiskMessageStore and real timers wakes promptly', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    const store = await openDiskStore(dataDir, clock);
    const broker = await BrokerCore.open({ store });
    try {
      await broker.createTopic('disk', 1);
      const started = performance.now();
      const waiting = broker.fetch({ topic: 'disk', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 60_000 });
      setTimeout(() => void produce(broker, 'disk', 0, 'late'), 20);
      const result = await waiting;
      const elapsed = performance.now() - started;
      assert.equal(decodeBatches(result.batches).length, 1);
      assert.ok(elapsed < 5_000, `answered after ${elapsed} ms`);
    } finally {
      await broker.close();
      await store.close();
      await cleanup();
    }
  });

  it('broker: a long poll times out with nothing, and answers at once with maxWaitMs 0', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('quiet', 1);
    const immediate = await broker.fetch({ topic: 'quiet', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 });
    assert.deepEqual(immediate, { startOffset: 0, endOffset: 0, batches: [] });
    const waiting = broker.fetch({ topic: 'quiet', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 500 });
    scheduler.advance(499);
    assert.equal(await isSettled(waiting), false);
    scheduler.advance(1);
    assert.deepEqual(await waiting, { startOffset: 0, endOffset: 0, batches: [] });
    assert.equal(broker.internals.fetcher.waiting, 0);
    await broker.close();
  });

  it('broker: minBytes waits for enough data, and the timeout returns what there is', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('bulk', 1);
    const first = await produce(broker, 'bulk', 0, 'x'.repeat(100));
    assert.equal(first.baseOffset, 0);
    const waiting = broker.fetch({ topic: 'bulk', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 1000, maxWaitMs: 1000 });
    assert.equal(await isSettled(waiting), false);
    await produce(broker, 'bulk', 0, 'y'.repeat(100));
    assert.equal(await isSettled(waiting), false, '~300 bytes are not 1000');
    await produce(broker, 'bulk', 0, 'z'.repeat(900));
    const result = await waiting;
    assert.equal(decodeBatches(result.batches).length, 3);

    const partial = broker.fetch({ topic: 'bulk', partition: 0, offset: 2, maxBytes: 1 << 20, minBytes: 100_000, maxWaitMs: 1000 });
    await settle();
    scheduler.advance(1000);
    assert.equal(decodeBatches((await partial).batches, 2).length, 1);
    await broker.close();
  });

  it('broker: on disk, a minBytes fetch that starts between the write and the fsync wakes when the batch becomes visible', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const store = await openDiskStore(dataDir, new ManualClock());
    const broker = await BrokerCore.open({ store });
    try {
      await broker.createTopic('t', 1);
      const queue = store.queue('t/0')!;
      let fetched: Promise<unknown> | null = null;
      let answered = false;
      // The fetch starts in onWritten: the batch is in the file but not yet visible (its fsync is pending).
      await store.append(queue.id, [{ body: 'x'.repeat(2000) }], {
        onWritten: () => {
          fetched = broker.fetch({ topic: 't', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 100, maxWaitMs: 600_000 }).then(() => (answered = true));
        },
      });
      // The manual clock never fires the 10-minute timeout: only the batch becoming visible can answer.
      await settle();
      assert.equal(answered, true);
      await fetched;
    } finally {
      await broker.close();
      await store.close();
      await cleanup();
    }
  });

  it('broker: aborting a waiting fetch rejects it with the reason and removes its waiter', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('abort', 1);
    const controller = new AbortController();
    const timersBefore = scheduler.pending;
    const waiting = broker.fetch({ topic: 'abort', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 60_000, signal: controller.signal });
    await settle();
    controller.abort(new Error('connection closed'));
    await assert.rejects(waiting, /connection closed/);
    assert.equal(broker.internals.fetcher.waiting, 0);
    assert.equal(scheduler.pending, timersBefore);
    await assert.rejects(broker.fetch({ topic: 'abort', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 60_000, signal: controller.signal }), /connection closed/);
    await broker.close();
  });

  it('broker: fetch offsets outside [start, end] are OFFSET_OUT_OF_RANGE; listOffsets finds earliest, latest and by time', async () => {
    const { broker, clock, store } = await memoryBroker();
    await broker.createTopic('range', 1);
    await produce(broker, 'range', 0, 'a', 'b');
    clock.advance(10_000);
    const at = clock.now();
    await produce(broker, 'range', 0, 'c');
    await rejectsWith(broker.fetch({ topic: 'range', partition: 0, offset: 4, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.OffsetOutOfRange);
    await rejectsWith(broker.fetch({ topic: 'range', partition: 0, offset: -1, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.OffsetOutOfRange);
    await rejectsWith(broker.fetch({ topic: 'range', partition: 1, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.InvalidPartition);
    await rejectsWith(broker.fetch({ topic: 'none', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.UnknownTopic);
    await rejectsWith(broker.fetch({ topic: 'range', partition: 0, offset: 0, maxBytes: 0, minBytes: 1, maxWaitMs: 0 }), ErrorCode.InvalidArgument);
    assert.equal(await broker.listOffsets('range', 0, -2), 0);
    assert.equal(await broker.listOffsets('range', 0, -1), 3);
    assert.equal(await broker.listOffsets('range', 0, at), 2);
    assert.equal(await broker.listOffsets('range', 0, at + 1), 3);
    await store.advanceLowWaterMark(store.queue('range/0')!.id, 2);
    assert.equal(await broker.listOffsets('range', 0, -2), 2);
    await rejectsWith(broker.fetch({ topic: 'range', partition: 0, offset: 1, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.OffsetOutOfRange);
    await rejectsWith(broker.listOffsets('range', 0, -3), ErrorCode.InvalidArgument);
    await broker.close();
  });

  it('broker: close and topic deletion wake waiting fetches with typed errors', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('doomed', 1);
    await broker.createTopic('kept', 1);
    const onDeleted = broker.fetch({ topic: 'doomed', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 60_000 });
    const onClosed = broker.fetch({ topic: 'kept', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 60_000 });
    await settle();
    await broker.deleteTopic('doomed');
    await rejectsWith(onDeleted, ErrorCode.UnknownTopic);
    await broker.close();
    await rejectsWith(onClosed, ErrorCode.BrokerShuttingDown);
    assert.equal(scheduler.pending, 0, 'close leaves no timer behind');
    await rejectsWith(broker.fetch({ topic: 'kept', partition: 0, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 0 }), ErrorCode.BrokerShuttingDown);
  });

  it('broker: many waiting fetches on many partitions are each woken by their own partition only', async () => {
    const store = new MemoryMessageStore();
    const { broker } = await memoryBroker({ store });
    await broker.createTopic('fan', 16);
    const waits = Array.from({ length: 16 }, (_, partition) => Array.from({ length: 5 }, () => broker.fetch({ topic: 'fan', partition, offset: 0, maxBytes: 1000, minBytes: 1, maxWaitMs: 600_000 }))).flat();
    await settle();
    assert.equal(broker.internals.fetcher.waiting, 80);
    await produce(broker, 'fan', 7, 'seven');
    await settle();
    assert.equal(broker.internals.fetcher.waiting, 75);
    for (let partition = 0; partition < 16; partition++) if (partition !== 7) await produce(broker, 'fan', partition, `p${partition}`);
    const results = await Promise.all(waits);
    results.forEach((result, index) => assert.equal(decodeBatches(result.batches)[0]!.body.toString(), Math.floor(index / 5) === 7 ? 'seven' : `p${Math.floor(index / 5)}`));
    await broker.close();
  });
});
