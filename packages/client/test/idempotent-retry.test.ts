import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { partitionForKey } from 'weir-protocol';
import type { ProduceResult, WeirClient } from 'weir-client';
import { assertOffsetOrder, ChaosProxy, clientFor, sleep, startBroker, take, type RunningBroker } from './support.js';

const PARTITIONS = 4;
const KEYS = 17;

/** Consumes the whole topic and checks: each body once, the expected order per key, and nothing else stored. */
async function checkStoredExactlyOnce(broker: RunningBroker, client: WeirClient, topic: string, expectedPerKey: Map<string, string[]>): Promise<void> {
  const total = [...expectedPerKey.values()].reduce((sum, bodies) => sum + bodies.length, 0);
  const consumer = clientFor(broker).consumer();
  await consumer.subscribe(topic);
  const messages = await take(consumer, total, 60_000);
  assertOffsetOrder(messages);
  assert.equal(new Set(messages.map((message) => message.body.toString())).size, total, 'no duplicates');
  for (const [key, expected] of expectedPerKey) {
    const partition = partitionForKey(Buffer.from(key), PARTITIONS);
    const stored = messages.filter((message) => message.partition === partition && message.body.toString().startsWith(`${key}|`)).map((message) => message.body.toString());
    assert.deepEqual(stored, expected, `order of ${key}`);
  }
  let end = 0;
  for (let partition = 0; partition < PARTITIONS; partition++) end += await client.admin().listOffsets(topic, partition, 'latest');
  assert.equal(end, total, 'nothing beyond them was stored');
  await consumer.close();
}

function queueRound(sends: Promise<ProduceResult>[], expectedPerKey: Map<string, string[]>, send: (key: string, body: string) => Promise<ProduceResult>, round: number, count: number): void {
  for (let index = 0; index < count; index++) {
    const key = `k${(round * count + index) % KEYS}`;
    const body = `${key}|${round}|${index}`;
    expectedPerKey.set(key, [...(expectedPerKey.get(key) ?? []), body]);
    sends.push(send(key, body));
  }
}

describe('client integration: idempotent producer', () => {
  it('client integration: destroying the client socket right after sending, many times, stores every message once and in order', { timeout: 120_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker, { retry: { initialMs: 5, maxMs: 100, retries: 1000 } });
    await client.admin().createTopic('retried', { partitions: PARTITIONS });
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 25 });
    let disconnects = 0;
    client.on('disconnect', () => disconnects++);
    const ROUNDS = 60;
    const sends: Promise<ProduceResult>[] = [];
    const expectedPerKey = new Map<string, string[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const connection = await client.connection();
      queueRound(sends, expectedPerKey, (key, body) => producer.send('retried', { key, body }), round, 200);
      // The writes of a tick leave on the next one; destroy at varying moments after that.
      if (round % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
      else await sleep(round % 3);
      connection.destroy();
    }
    const results = await Promise.all(sends);
    assert.equal(disconnects, ROUNDS);
    assert.equal(new Set(results.map((result) => `${result.partition}/${result.offset}`)).size, results.length, 'every message got its own offset');
    await checkStoredExactlyOnce(broker, client, 'retried', expectedPerKey);
    await client.close();
  });

  it('client integration: batches stored by the broker whose answers were lost are not stored again', { timeout: 120_000 }, async () => {
    const broker = await startBroker();
    const proxy = await ChaosProxy.start(broker.port);
    const client = clientFor({ port: proxy.port }, { retry: { initialMs: 5, maxMs: 100, retries: 1000 } });
    const admin = clientFor(broker).admin();
    await admin.createTopic('answers-lost', { partitions: PARTITIONS });
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 10, maxInFlightPerPartition: 5 });
    // Metadata and the producer id first: their answers must not be held back.
    await producer.send('answers-lost', { key: 'warm-up', body: 'warm-up|0|0' });
    const ROUNDS = 30;
    const sends: Promise<ProduceResult>[] = [];
    const expectedPerKey = new Map<string, string[]>([['warm-up', ['warm-up|0|0']]]);
    for (let round = 0; round < ROUNDS; round++) {
      await client.connection();
      proxy.holdAnswers = true;
      queueRound(sends, expectedPerKey, (key, body) => producer.send('answers-lost', { key, body }), round, 100);
      await sleep(20); // the broker stores the batches; their answers stay in the proxy
      proxy.dropAll();
      proxy.holdAnswers = false;
    }
    const results = await Promise.all(sends);
    assert.ok(
      results.some((result) => result.duplicate),
      'retries of stored batches were answered as duplicates',
    );
    assert.equal(new Set(results.map((result) => `${result.partition}/${result.offset}`)).size, results.length, 'duplicates report the original offsets');
    await checkStoredExactlyOnce(broker, client, 'answers-lost', expectedPerKey);
    await client.close();
  });
});
