import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientFor, startBroker } from './support.js';

const MESSAGES = 100_000;
const PARTITIONS = 8;
const KEYS = 1000;

describe('client integration: volume', () => {
  it('client integration: 100,000 messages over 8 partitions arrive once each, in order per key, in a one-consumer group', { timeout: 240_000 }, async () => {
    const broker = await startBroker();
    const producerClient = clientFor(broker, { clientId: 'volume-producer' });
    const consumerClient = clientFor(broker, { clientId: 'volume-consumer' });
    await producerClient.admin().createTopic('volume', { partitions: PARTITIONS });

    const consumer = consumerClient.consumer({ group: 'volume-group', maxWaitMs: 200 });
    await consumer.subscribe('volume');
    assert.equal(consumer.assignment().length, PARTITIONS);

    // Produce while consuming: the consumer's long polls wake as batches land.
    const producer = producerClient.producer({ lingerMs: 5 });
    const produced = (async () => {
      const nextSequence = new Array<number>(KEYS).fill(0);
      const pending: Promise<unknown>[] = [];
      for (let index = 0; index < MESSAGES; index++) {
        const key = index % KEYS;
        pending.push(producer.send('volume', { key: `key-${key}`, body: `${key}:${nextSequence[key]!++}` }));
        if (pending.length === 5000) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await producer.close();
    })();

    const lastSequence = new Array<number>(KEYS).fill(-1);
    const seen = new Set<string>();
    const partitionOf = new Map<number, number>();
    let count = 0;
    const previousOffset = new Map<number, number>();
    for await (const message of consumer) {
      count++;
      const body = message.body.toString();
      assert.ok(!seen.has(body), `duplicate ${body}`);
      seen.add(body);
      const [keyText, sequenceText] = body.split(':');
      const key = Number(keyText);
      const sequence = Number(sequenceText);
      assert.equal(sequence, lastSequence[key]! + 1, `key ${key}: sequence ${sequence} after ${lastSequence[key]}`);
      lastSequence[key] = sequence;
      // A key stays on one partition.
      const partition = partitionOf.get(key) ?? message.partition;
      assert.equal(message.partition, partition);
      partitionOf.set(key, partition);
      const previous = previousOffset.get(message.partition) ?? -1;
      assert.ok(message.offset > previous);
      previousOffset.set(message.partition, message.offset);
      if (count === MESSAGES) break;
    }
    await produced;
    assert.equal(count, MESSAGES);
    assert.equal(seen.size, MESSAGES);
    assert.equal(new Set(partitionOf.values()).size, PARTITIONS, 'keys spread over every partition');
    await consumer.close();

    // Everything is committed: the group's lag is 0 and nothing more arrives.
    const described = await producerClient.admin().describeGroup('volume-group');
    assert.equal(
      described.lag.reduce((sum, entry) => sum + entry.lag, 0),
      0,
    );
    await producerClient.close();
    await consumerClient.close();
  });
});
