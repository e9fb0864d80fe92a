import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../core/errors.js';
import { partitionForKey as partitionForBytes } from 'weir-protocol';

const partitionForKey = (key: Uint8Array | string, partitions: number) => partitionForBytes(typeof key === 'string' ? Buffer.from(key, 'utf8') : key, partitions);
import { decodeBatches, memoryBroker, rejectsWith } from './test-support.js';

describe('broker: produce and fetch', () => {
  it('broker: produce/fetch round trip across 8 partitions keeps per-key order', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('clicks', 8);
    const keys = Array.from({ length: 20 }, (_, index) => `user-${index}`);
    const sent = new Map<string, string[]>();
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        keys.map(async (key) => {
          const body = `${key}:${round}`;
          const result = await broker.produce({ topic: 'clicks', partition: -1, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ key, body }] });
          assert.equal(result.partition, partitionForKey(key, 8));
          assert.equal(result.duplicate, false);
          sent.set(key, [...(sent.get(key) ?? []), body]);
        }),
      );
    }
    const received = new Map<string, string[]>();
    let total = 0;
    for (let partition = 0; partition < 8; partition++) {
      let offset = 0;
      for (;;) {
        const fetched = await broker.fetch({ topic: 'clicks', partition, offset, maxBytes: 300, minBytes: 1, maxWaitMs: 0 });
        const messages = decodeBatches(fetched.batches, offset);
        if (messages.length === 0) break;
        for (const message of messages) {
          const key = message.key!.toString();
          assert.equal(partitionForKey(key, 8), partition, 'a key always lands on its partition');
          received.set(key, [...(received.get(key) ?? []), message.body.toString()]);
          assert.equal(message.offset, offset++);
          total++;
        }
        assert.equal(fetched.endOffset >= offset, true);
      }
    }
    assert.equal(total, 200);
    for (const key of keys) assert.deepEqual(received.get(key), sent.get(key));
    await broker.close();
  });

  it('broker: keyless produces spread round robin and batches keep their messages together', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('spread', 3);
    const partitions: number[] = [];
    for (let index = 0; index < 6; index++) {
      const result = await broker.produce({ topic: 'spread', partition: -1, acks: 'written', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: `a${index}` }, { body: `b${index}` }] });
      partitions.push(result.partition);
      assert.equal(result.baseOffset % 2, 0);
    }
    assert.deepEqual(partitions, [0, 1, 2, 0, 1, 2]);
    const fetched = await broker.fetch({ topic: 'spread', partition: 1, offset: 1, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
    // The first batch starts before the requested offset; the client skips what it did not ask for.
    assert.deepEqual(
      decodeBatches(fetched.batches, 1).map((message) => message.body.toString()),
      ['b1', 'a4', 'b4'],
    );
    await broker.close();
  });

  it('broker: produce errors are typed', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('small', 2, { maxMessageBytes: 100 });
    const base = { topic: 'small', partition: 0, acks: 'durable' as const, producerId: -1, producerEpoch: -1, baseSequence: -1 };
    await rejectsWith(broker.produce({ ...base, topic: 'missing', messages: [{ body: 'x' }] }), ErrorCode.UnknownTopic);
    await rejectsWith(broker.produce({ ...base, partition: 2, messages: [{ body: 'x' }] }), ErrorCode.InvalidPartition);
    await rejectsWith(broker.produce({ ...base, messages: [] }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.produce({ ...base, acks: 'maybe' as never, messages: [{ body: 'x' }] }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.produce({ ...base, messages: [{ body: 'x'.repeat(200) }] }), ErrorCode.MessageTooLarge);
    await broker.close();
    await rejectsWith(broker.produce({ ...base, messages: [{ body: 'x' }] }), ErrorCode.BrokerShuttingDown);
  });
});
