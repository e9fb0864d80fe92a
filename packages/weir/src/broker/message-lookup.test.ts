import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode } from '../core/errors.js';
import { generatedMessageId } from '../storage/record-batch.js';
import { BrokerCore } from './broker-core.js';
import { ManualScheduler } from './scheduler.js';
import { memoryBroker, openDiskStore, rejectsWith, tempDirectory } from './test-support.js';

describe('broker: message lookup', () => {
  it('broker: getMessage by id and by key maps storage queues back to topic and partition', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('orders', 4);
    await broker.createTopic('refunds', 2);
    // A queue that is not a topic partition is never reported.
    const plain = await store.createQueue('plain-queue');
    await store.append(plain.id, [{ key: 'customer-7', body: 'hidden' }]);
    await broker.produce({ topic: 'orders', partition: 2, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ id: 'order-1', key: 'customer-7', tag: 'created', headers: { source: 'web' }, body: 'first' }] });
    const second = await broker.produce({ topic: 'orders', partition: -1, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ key: 'customer-7', body: 'second' }] });
    await broker.produce({ topic: 'refunds', partition: 1, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ key: 'customer-7', body: 'refund' }] });

    const [byId] = await broker.getMessage({ id: 'order-1' });
    assert.equal(byId!.topic, 'orders');
    assert.equal(byId!.partition, 2);
    assert.equal(byId!.offset, 0);
    assert.equal(byId!.tag, 'created');
    assert.deepEqual(byId!.headers, { source: 'web' });
    assert.equal(byId!.body.toString(), 'first');
    // A generated id: store time, position and index, as the produce result gives them.
    const generated = generatedMessageId(second.storeTimestamp, second.position, 0);
    const [found] = await broker.getMessage({ id: generated });
    assert.equal(found!.body.toString(), 'second');
    assert.equal(found!.partition, second.partition);
    assert.deepEqual(await broker.getMessage({ id: 'missing' }), []);
    assert.deepEqual(await broker.getMessage({ id: 'order-1', topic: 'refunds' }), []);

    const byKey = await broker.getMessage({ key: 'customer-7' });
    assert.deepEqual(
      byKey.map((message) => [message.topic, message.body.toString()]),
      [
        ['refunds', 'refund'],
        ['orders', 'second'],
        ['orders', 'first'],
      ],
    );
    assert.deepEqual(
      (await broker.getMessage({ key: Buffer.from('customer-7'), topic: 'orders', limit: 1 })).map((message) => message.body.toString()),
      ['second'],
    );
    await rejectsWith(broker.getMessage({}), ErrorCode.InvalidArgument);
    await rejectsWith(broker.getMessage({ id: 'a', key: 'b' }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.getMessage({ key: 'b', limit: 0 }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.getMessage({ key: 'b', topic: 'nope' }), ErrorCode.UnknownTopic);
    await broker.close();
  });

  it('broker: getMessage works through the disk indexes after a restart', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      let broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      await broker.createTopic('events', 3);
      for (let index = 0; index < 30; index++) {
        await broker.produce({ topic: 'events', partition: -1, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ id: `event-${index}`, key: `k${index % 5}`, body: `body-${index}` }] });
      }
      await broker.close();
      await store.close();
      store = await openDiskStore(dataDir, clock);
      broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      const [event] = await broker.getMessage({ id: 'event-17' });
      assert.equal(event!.body.toString(), 'body-17');
      const keyed = await broker.getMessage({ key: 'k3', limit: 10 });
      assert.deepEqual(
        keyed.map((message) => message.body.toString()),
        ['body-28', 'body-23', 'body-18', 'body-13', 'body-8', 'body-3'],
      );
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });
});
