import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode } from '../core/errors.js';
import { MemoryMessageStore } from '../storage/memory-message-store.js';
import { BrokerCore } from './broker-core.js';
import { memoryBroker, openDiskStore, rejectsWith, tempDirectory } from './test-support.js';

describe('broker: topics', () => {
  it('broker: topic lifecycle creates, lists, describes and deletes partitions as storage queues', async () => {
    const { broker, store } = await memoryBroker();
    const created = await broker.createTopic('orders', 3, { retentionMs: 60_000, flushPolicy: 'interval', flushIntervalMs: 50 });
    assert.equal(created.name, 'orders');
    assert.equal(created.partitions.length, 3);
    assert.deepEqual(created.config, { flushPolicy: 'interval', flushIntervalMs: 50, retentionMs: 60_000, retentionBytes: null, maxMessageBytes: 1 << 20 });
    for (let partition = 0; partition < 3; partition++) {
      const queue = store.queue(`orders/${partition}`);
      assert.ok(queue, `queue orders/${partition} exists`);
      assert.equal(queue.settings.retentionMs, 60_000);
      assert.equal(queue.settings.flushPolicy, 'interval');
    }
    await broker.createTopic('audit', 1);
    assert.deepEqual(
      (await broker.listTopics()).map((topic) => topic.name),
      ['audit', 'orders'],
    );

    await broker.produce({ topic: 'orders', partition: 1, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: 'a' }, { body: 'b' }] });
    const described = await broker.describeTopic('orders');
    assert.deepEqual(
      described.partitions.map(({ partition, startOffset, endOffset }) => ({ partition, startOffset, endOffset })),
      [
        { partition: 0, startOffset: 0, endOffset: 0 },
        { partition: 1, startOffset: 0, endOffset: 2 },
        { partition: 2, startOffset: 0, endOffset: 0 },
      ],
    );
    assert.ok(described.partitions[1]!.bytes > 0);

    await broker.deleteTopic('orders');
    assert.equal(store.queue('orders/0'), null);
    await rejectsWith(broker.describeTopic('orders'), ErrorCode.UnknownTopic);
    await rejectsWith(broker.deleteTopic('orders'), ErrorCode.UnknownTopic);
    // The name is free again, with fresh, empty partitions.
    const again = await broker.createTopic('orders', 2);
    assert.deepEqual(
      again.partitions.map((partition) => partition.endOffset),
      [0, 0],
    );
    await broker.close();
  });

  it('broker: topic names, partition counts and settings are validated', async () => {
    const { broker } = await memoryBroker();
    for (const name of ['', 'a'.repeat(250), 'has space', 'slash/name', 'ümlaut', 'tab\t']) {
      await rejectsWith(broker.createTopic(name, 1), ErrorCode.InvalidArgument);
    }
    await broker.createTopic('a'.repeat(249), 1);
    await broker.createTopic('Valid.name_with-chars.09', 1);
    for (const partitions of [0, -1, 10_001, 1.5, Number.NaN]) {
      await rejectsWith(broker.createTopic('p', partitions), ErrorCode.InvalidPartition);
    }
    await broker.createTopic('max', 10_000);
    assert.equal((await broker.describeTopic('max')).partitions.length, 10_000);
    await rejectsWith(broker.createTopic('bad-policy', 1, { flushPolicy: 'sometimes' as never }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.createTopic('bad-retention', 1, { retentionMs: -5 }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.createTopic('max', 1), ErrorCode.TopicExists);
    // Two concurrent creates of one name: exactly one wins.
    const results = await Promise.allSettled([broker.createTopic('race', 2), broker.createTopic('race', 2)]);
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    await broker.close();
  });

  it('broker: alter raises the partition count and changes settings, never shrinks', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('events', 2);
    const altered = await broker.alterTopic('events', { partitions: 5, config: { retentionBytes: 1_000_000, maxMessageBytes: 4096 } });
    assert.equal(altered.partitions.length, 5);
    assert.equal(altered.config.retentionBytes, 1_000_000);
    for (let partition = 0; partition < 5; partition++) {
      assert.equal(store.queue(`events/${partition}`)!.settings.maxMessageBytes, 4096);
    }
    await rejectsWith(broker.alterTopic('events', { partitions: 3 }), ErrorCode.InvalidPartition);
    await rejectsWith(broker.alterTopic('events', { partitions: 10_001 }), ErrorCode.InvalidPartition);
    await rejectsWith(broker.alterTopic('events', { config: { flushIntervalMs: 0 } }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.alterTopic('nope', { partitions: 3 }), ErrorCode.UnknownTopic);
    const kept = await broker.alterTopic('events', { partitions: -1, config: { retentionMs: 5000 } });
    assert.equal(kept.partitions.length, 5);
    assert.equal(kept.config.retentionBytes, 1_000_000);
    assert.equal(kept.config.retentionMs, 5000);
    await broker.close();
  });

  it('broker: topics are durable and reload with a DiskMessageStore', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      let broker = await BrokerCore.open({ store, clock });
      await broker.createTopic('durable', 4, { retentionMs: 1234 });
      await broker.createTopic('gone', 2);
      await broker.deleteTopic('gone');
      await broker.produce({ topic: 'durable', partition: 2, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: 'x' }] });
      await broker.close();
      await store.close();

      store = await openDiskStore(dataDir, clock);
      broker = await BrokerCore.open({ store, clock });
      const topics = await broker.listTopics();
      assert.deepEqual(
        topics.map((topic) => topic.name),
        ['durable'],
      );
      assert.equal(topics[0]!.config.retentionMs, 1234);
      assert.equal(topics[0]!.partitions[2]!.endOffset, 1);
      assert.equal(store.queue('gone/0'), null);
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('broker: open completes a topic change a crash interrupted', async () => {
    const clock = new ManualClock();
    const store = new MemoryMessageStore(clock);
    // A create that crashed after its record but before all queues; a delete that crashed half way.
    await store.metadata.put('topic/half', { name: 'half', partitions: 3, config: { flushPolicy: 'sync', flushIntervalMs: 1000, retentionMs: null, retentionBytes: null, maxMessageBytes: 2048 } });
    await store.createQueue('half/0', { maxMessageBytes: 2048 });
    await store.metadata.put('topic/dying', { name: 'dying', partitions: 2, config: { flushPolicy: 'sync', flushIntervalMs: 1000, retentionMs: null, retentionBytes: null, maxMessageBytes: 1 << 20 }, deleting: true });
    await store.createQueue('dying/1');
    const broker = await BrokerCore.open({ store, clock });
    assert.equal((await broker.describeTopic('half')).partitions.length, 3);
    assert.equal(store.queue('half/2')!.settings.maxMessageBytes, 2048);
    await rejectsWith(broker.describeTopic('dying'), ErrorCode.UnknownTopic);
    assert.equal(store.queue('dying/1'), null);
    assert.equal(store.metadata.has('topic/dying'), false);
    await broker.createTopic('dying', 1);
    await broker.close();
  });
});
