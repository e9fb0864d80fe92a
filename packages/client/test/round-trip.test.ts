import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { partitionForKey } from 'weir-protocol';
import { assertOffsetOrder, clientFor, sleep, startBroker, take, type RunningBroker } from './support.js';

describe('client integration: round trip against the real broker', () => {
  let broker: RunningBroker;
  before(async () => {
    broker = await startBroker();
  });

  it('client integration: produce and consume keep bodies, keys, tags, headers, timestamps and ids', async () => {
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('round-trip', { partitions: 3 });
    const producer = client.producer();
    const sent = await producer.send('round-trip', [
      { key: 'alpha', body: 'one', tag: 'red', headers: { kind: 'text', raw: Buffer.from([0, 255]) }, timestamp: new Date(1_700_000_000_000) },
      { id: 'order-42', key: 'beta', body: Buffer.from([1, 2, 3]) },
      { body: 'no key' },
    ]);
    assert.equal(sent[0]!.partition, partitionForKey(Buffer.from('alpha'), 3));
    assert.equal(sent[1]!.id, Buffer.from('order-42').toString('hex'));
    assert.ok(sent.every((result) => result.offset >= 0 && result.id !== null && !result.duplicate));

    const consumer = client.consumer();
    await consumer.subscribe('round-trip');
    const received = await take(consumer, 3);
    const byId = new Map(received.map((message) => [message.id, message]));
    for (const result of sent) {
      const message = byId.get(result.id!);
      assert.ok(message !== undefined, `message ${result.id} consumed with the id the producer reported`);
      assert.equal(message.partition, result.partition);
      assert.equal(message.offset, result.offset);
      assert.deepEqual(message.idBytes, result.idBytes);
    }
    const first = byId.get(sent[0]!.id!)!;
    assert.equal(first.body.toString(), 'one');
    assert.equal(first.key!.toString(), 'alpha');
    assert.equal(first.tag, 'red');
    assert.equal(first.timestamp, 1_700_000_000_000);
    assert.ok(first.storeTimestamp >= Date.now() - 60_000);
    assert.deepEqual(first.headers, { kind: 'text', raw: Buffer.from([0, 255]) });
    assert.deepEqual(byId.get(sent[1]!.id!)!.body, Buffer.from([1, 2, 3]));
    assert.equal(byId.get(sent[2]!.id!)!.key, null);
    await consumer.close();

    // Lookups by id (hex, as results show it) and by key.
    const [found] = await admin.getMessage({ id: sent[1]!.id! });
    assert.equal(found!.offset, sent[1]!.offset);
    assert.deepEqual(found!.body, Buffer.from([1, 2, 3]));
    const byKey = await admin.getMessage({ key: 'alpha', topic: 'round-trip' });
    assert.equal(byKey[0]!.body.toString(), 'one');
    await client.close();
  });

  it('client integration: admin creates, describes, alters, lists and deletes topics', async () => {
    const client = clientFor(broker);
    const admin = client.admin();
    const created = await admin.createTopic('admin-topic', { partitions: 2, retentionMs: 3_600_000 });
    assert.equal(created.partitions.length, 2);
    assert.equal(created.config.retentionMs, 3_600_000);
    assert.equal(created.config.flushPolicy, 'sync');
    await assert.rejects(admin.createTopic('admin-topic', { partitions: 2 }), (error: Error & { code?: string }) => error.code === 'TOPIC_EXISTS');
    const altered = await admin.alterTopic('admin-topic', { partitions: 4, maxMessageBytes: 2048 });
    assert.equal(altered.partitions.length, 4);
    assert.equal(altered.config.maxMessageBytes, 2048);
    assert.equal(altered.config.retentionMs, 3_600_000, 'settings not given keep their values');
    assert.ok((await admin.listTopics()).some((topic) => topic.name === 'admin-topic'));
    const producer = client.producer();
    await producer.send('admin-topic', { body: 'x' }, { partition: 3 });
    assert.equal(await admin.listOffsets('admin-topic', 3, 'latest'), 1);
    assert.equal(await admin.listOffsets('admin-topic', 3, 'earliest'), 0);
    await assert.rejects(producer.send('admin-topic', { body: 'x'.repeat(5000) }), (error: Error & { code?: string }) => error.code === 'MESSAGE_TOO_LARGE');
    await admin.deleteTopic('admin-topic');
    await assert.rejects(admin.describeTopic('admin-topic'), (error: Error & { code?: string }) => error.code === 'UNKNOWN_TOPIC');
    await client.close();
  });

  it('client integration: replay by timestamp starts at the first message stored at or after the time', async () => {
    const client = clientFor(broker);
    await client.admin().createTopic('replay', { partitions: 2 });
    const producer = client.producer();
    await producer.send(
      'replay',
      Array.from({ length: 20 }, (_, index) => ({ key: `k${index}`, body: `before-${index}` })),
    );
    await sleep(50);
    const cut = new Date();
    await sleep(50);
    await producer.send(
      'replay',
      Array.from({ length: 10 }, (_, index) => ({ key: `k${index}`, body: `after-${index}` })),
    );
    const consumer = client.consumer();
    await consumer.subscribe('replay');
    assert.equal((await take(consumer, 30)).length, 30);
    await consumer.seek({ topic: 'replay', to: cut });
    const replayed = await take(consumer, 10);
    assert.deepEqual(replayed.map((message) => message.body.toString()).sort(), Array.from({ length: 10 }, (_, index) => `after-${index}`).sort());
    assertOffsetOrder(replayed);
    await consumer.close();
    await client.close();
  });

  it('client integration: a long poll wakes promptly on a new message', async () => {
    const client = clientFor(broker);
    await client.admin().createTopic('long-poll', { partitions: 1 });
    const consumer = client.consumer({ maxWaitMs: 10_000 });
    await consumer.subscribe('long-poll');
    const next = consumer.next();
    await sleep(300); // the fetch is now parked at the broker
    const producer = clientFor(broker).producer({ lingerMs: 0, acks: 'written' });
    const sentAt = Date.now();
    await producer.send('long-poll', { body: 'wake up' });
    const result = await next;
    const latency = Date.now() - sentAt;
    assert.equal(result.done, false);
    assert.equal(result.value!.body.toString(), 'wake up');
    assert.ok(latency < 500, `the long poll answered ${latency} ms after the produce`);
    await consumer.close();
    await client.close();
  });

  it('client integration: a consumer group commits and resumes', async () => {
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('resume', { partitions: 2 });
    const producer = client.producer();
    await producer.send(
      'resume',
      Array.from({ length: 10 }, (_, index) => ({ key: `k${index}`, body: `first-${index}` })),
    );
    const consumer = client.consumer({ group: 'resume-group' });
    await consumer.subscribe('resume');
    await take(consumer, 10);
    await consumer.close();
    const described = await admin.describeGroup('resume-group');
    assert.equal(
      described.lag.reduce((sum, entry) => sum + entry.lag, 0),
      0,
    );
    assert.ok((await admin.listGroups()).some((group) => group.group === 'resume-group'));
    await producer.send('resume', { body: 'second' });
    const again = client.consumer({ group: 'resume-group' });
    await again.subscribe('resume');
    assert.equal((await take(again, 1))[0]!.body.toString(), 'second');
    await again.close();
    await client.close();
  });
});
