import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { prepareMessage } from '../storage/record-batch.js';
import type { SharedProduceOutcome } from './partition-writer.js';
import { decodeBatches, memoryBroker, openDiskStore, settle, tempDirectory } from './test-support.js';

function outcomeCode(outcome: SharedProduceOutcome): string {
  if (outcome.error === null) return 'ok';
  return isWeirError(outcome.error) ? outcome.error.code : String(outcome.error);
}

describe('broker: shared produce (one stored copy for several topics)', () => {
  it('broker: a shared produce writes the messages once and each topic fetches them at its own offsets', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    const store = await openDiskStore(dataDir, clock);
    const { broker } = await memoryBroker({ store, clock });
    try {
      for (const name of ['a', 'b', 'c']) await broker.createTopic(name, 1);
      await broker.produce({ topic: 'b', partition: 0, acks: 'durable', producerId: -1, producerEpoch: 0, baseSequence: 0, messages: [{ body: 'b first' }] });
      // A fetch waiting at the tail of c is woken by the shared batch.
      const waiting = broker.fetch({ topic: 'c', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 60_000 });
      await settle();
      const messages = [{ body: Buffer.alloc(4000, 1) }, { body: Buffer.alloc(4000, 2) }];
      const before = store.stats.endPosition;
      const outcomes = await broker.produceShared({
        targets: ['a', 'b', 'c'].map((topic) => ({ topic, partition: -1 })),
        acks: 'durable',
        messages,
      });
      const written = store.stats.endPosition - before;
      const oneCopy = messages.reduce((sum, message) => sum + prepareMessage(message).encodedBytes, 0);
      assert.ok(written >= oneCopy && written < oneCopy + 100, `one copy of ${oneCopy} bytes, not three: the log grew by ${written}`);
      assert.deepEqual(
        outcomes.map((outcome) => [outcome.topic, outcome.result?.partition, outcome.result?.baseOffset]),
        [
          ['a', 0, 0],
          ['b', 0, 1],
          ['c', 0, 0],
        ],
      );
      assert.equal(new Set(outcomes.map((outcome) => outcome.result!.position)).size, 1, 'one batch');
      const woken = await waiting;
      assert.deepEqual(decodeBatches(woken.batches).map((message) => message.offset), [0, 1]);
      for (const [topic, first] of [['a', 0], ['b', 1], ['c', 0]] as const) {
        const fetched = await broker.fetch({ topic, partition: 0, offset: first, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 0 });
        const decoded = decodeBatches(fetched.batches, first);
        assert.deepEqual(decoded.map((message) => [message.offset, message.body[0]]), [[first, 1], [first + 1, 2]], topic);
      }
    } finally {
      await broker.close();
      await store.close();
      await cleanup();
    }
  });

  it('broker: a target that refuses (unknown topic, full reject-publish group, message too large) does not stop the others', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('open', 1);
    await broker.createTopic('full', 1);
    await broker.createTopic('small', 1, { maxMessageBytes: 64 });
    await broker.createSharedGroup('workers', 'full', { maxLength: 1, overflow: 'reject-publish' });
    await broker.produce({ topic: 'full', partition: 0, acks: 'durable', producerId: -1, producerEpoch: 0, baseSequence: 0, messages: [{ body: 'fills it' }] });
    for (let turn = 0; turn < 50 && broker.sharedGroupStats('workers', 'full')?.ready !== 1; turn++) await settle();
    assert.equal(broker.sharedGroupStats('workers', 'full')?.ready, 1);
    const outcomes = await broker.produceShared({
      targets: [{ topic: 'open', partition: 0 }, { topic: 'missing', partition: 0 }, { topic: 'full', partition: 0 }, { topic: 'small', partition: 0 }],
      acks: 'durable',
      messages: [{ body: 'x'.repeat(100) }],
    });
    assert.deepEqual(outcomes.map(outcomeCode), ['ok', ErrorCode.UnknownTopic, ErrorCode.QueueFull, ErrorCode.MessageTooLarge]);
    assert.equal(store.queue('open/0')!.endOffset, 1);
    assert.equal(store.queue('full/0')!.endOffset, 1, 'nothing more in the full topic');
    assert.equal(store.queue('small/0')!.endOffset, 0);
    const twice = await broker.produceShared({ targets: [{ topic: 'open', partition: 0 }, { topic: 'open', partition: 0 }], acks: 'durable', messages: [{ body: 'y' }] });
    assert.deepEqual(twice.map(outcomeCode), ['ok', ErrorCode.InvalidArgument], 'a partition named twice gets the messages once');
    await assert.rejects(broker.produceShared({ targets: [], acks: 'durable', messages: [{ body: 'z' }] }), (error: unknown) => isWeirError(error, ErrorCode.InvalidArgument));
    await broker.close();
  });

  it('broker: messages with client-chosen ids are stored per topic, through dedup', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('a', 1);
    await broker.createTopic('b', 1);
    const outcomes = await broker.produceShared({ targets: [{ topic: 'a', partition: 0 }, { topic: 'b', partition: 0 }], acks: 'written', messages: [{ id: 'order-1', body: 'once' }] });
    assert.equal(outcomes[0]!.error, null);
    assert.equal(store.queue('a/0')!.endOffset, 1);
    const again = await broker.produce({ topic: 'a', partition: 0, acks: 'durable', producerId: -1, producerEpoch: 0, baseSequence: 0, messages: [{ id: 'order-1', body: 'once' }] });
    assert.equal(again.duplicate, true, 'the dedup window saw the id');
    await broker.close();
  });
});
