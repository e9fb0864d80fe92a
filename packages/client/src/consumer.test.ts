import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WeirClient } from './client.js';
import type { ConsumedMessage, Consumer, RebalanceEvent } from './consumer.js';
import { WeirClientError } from './errors.js';
import { FakeBroker } from './testing/fake-broker.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(partitions = 3): Promise<{ broker: FakeBroker; client: WeirClient; newClient(): WeirClient }> {
  const broker = await FakeBroker.start({ rebalanceWaitMs: 1500 });
  broker.createTopic('t', partitions);
  const newClient = (): WeirClient => {
    const client = new WeirClient({ brokers: [broker.address], retry: { initialMs: 5, maxMs: 50, retries: 20 } });
    cleanups.push(() => client.abort());
    return client;
  };
  cleanups.push(() => broker.close());
  return { broker, client: newClient(), newClient };
}

async function produce(client: WeirClient, count: number, prefix = 'm', keys = 7): Promise<void> {
  const producer = client.producer({ lingerMs: 0 });
  await producer.send(
    't',
    Array.from({ length: count }, (_, index) => ({ key: `k${index % keys}`, body: `${prefix}${index}` })),
  );
}

/** Takes `count` messages from a consumer (fails after `timeoutMs`). */
async function take(consumer: Consumer, count: number, timeoutMs = 5000): Promise<ConsumedMessage[]> {
  const out: ConsumedMessage[] = [];
  if (count === 0) return out;
  const timer = setTimeout(() => void consumer.close(), timeoutMs);
  try {
    for await (const message of consumer) {
      out.push(message);
      if (out.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
  }
  assert.equal(out.length, count, `took ${out.length} of ${count} messages`);
  return out;
}

/** Consumes from several consumers at once until `total` messages arrived, then closes them all. */
async function takeFromAll(consumers: readonly Consumer[], total: number, timeoutMs = 10_000): Promise<ConsumedMessage[]> {
  const out: ConsumedMessage[] = [];
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const timer = setTimeout(finish, timeoutMs);
  const loops = consumers.map(async (consumer) => {
    for await (const message of consumer) {
      out.push(message);
      if (out.length >= total) finish();
    }
  });
  await done;
  clearTimeout(timer);
  await Promise.all(consumers.map((consumer) => consumer.close()));
  await Promise.all(loops);
  assert.equal(out.length, total, `took ${out.length} of ${total} messages`);
  return out;
}

function assertPartitionOrder(messages: readonly ConsumedMessage[]): void {
  const last = new Map<number, number>();
  for (const message of messages) {
    const previous = last.get(message.partition) ?? -1;
    assert.ok(message.offset > previous, `partition ${message.partition}: offset ${message.offset} after ${previous}`);
    last.set(message.partition, message.offset);
  }
}

describe('client: Consumer', () => {
  it('client: consumer without a group reads every partition from the start, in offset order per partition', async () => {
    const { client } = await setup(3);
    await produce(client, 300);
    const consumer = client.consumer();
    const events: RebalanceEvent[] = [];
    consumer.on('rebalance', (event) => events.push(event));
    await consumer.subscribe('t');
    const messages = await take(consumer, 300);
    assertPartitionOrder(messages);
    assert.deepEqual(new Set(messages.map((message) => message.body.toString())).size, 300);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.assigned.length, 3);
    assert.match(messages[0]!.id, /^[0-9a-f]{32}$/);
    assert.equal(messages[0]!.idBytes.toString('hex'), messages[0]!.id);
    await assert.rejects(consumer.commit(), (error: WeirClientError) => error.code === 'INVALID_ARGUMENT' && /no group/.test(error.message));
    await consumer.close();
  });

  it('client: consumer takes partitions in turn a fetched chunk at a time; messages read fields on demand and show them all', async () => {
    const { client } = await setup(2);
    const producer = client.producer({ lingerMs: 0 });
    for (let round = 0; round < 3; round++) {
      await producer.send(
        't',
        Array.from({ length: 20 }, (_, index) => ({ body: `p0-${round}-${index}`, tag: 'x', headers: { n: String(index) } })),
        { partition: 0 },
      );
      await producer.send(
        't',
        Array.from({ length: 20 }, (_, index) => ({ key: 'k', body: `p1-${round}-${index}` })),
        { partition: 1 },
      );
    }
    const consumer = client.consumer();
    await consumer.subscribe('t');
    const messages = await take(consumer, 120);
    assertPartitionOrder(messages);
    // Each partition hands out runs of whole fetched chunks, never single messages alternating.
    let switches = 0;
    for (let index = 1; index < messages.length; index++) if (messages[index]!.partition !== messages[index - 1]!.partition) switches++;
    assert.ok(switches < 20, `${switches} switches between partitions`);
    const first = messages.find((message) => message.partition === 0)!;
    assert.equal(first.body, first.body, 'a field is decoded once');
    assert.equal(first.headers, first.headers);
    assert.equal(first.tag, 'x');
    assert.equal(first.key, null);
    assert.ok(first.timestamp > 0 && first.storeTimestamp > 0);
    const json = JSON.parse(JSON.stringify(first)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ['topic', 'partition', 'offset', 'id', 'idBytes', 'key', 'tag', 'headers', 'timestamp', 'storeTimestamp', 'body']);
    assert.equal(json.id, first.id);
    assert.deepEqual(json.headers, { n: '0' });
    assert.equal(messages.find((message) => message.partition === 1)!.key!.toString(), 'k');
    await consumer.close();
  });

  it('client: a batch that fails its CRC is reported as DATA_DAMAGED, and read anyway with verifyCrc off', async () => {
    const { broker, client } = await setup(1);
    await produce(client, 3);
    const stored = broker.topics.get('t')!.partitions[0]!.batches[0]!.encoded;
    stored[stored.length - 1] = stored[stored.length - 1]! ^ 0x20;
    const checking = client.consumer({ maxWaitMs: 10 });
    const errors: WeirClientError[] = [];
    checking.on('error', (error) => errors.push(error));
    await checking.subscribe('t');
    const reading = take(checking, 1, 1000).catch(() => null);
    while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(errors[0]!.code, 'DATA_DAMAGED');
    await checking.close();
    await reading;
    const trusting = client.consumer({ verifyCrc: false });
    await trusting.subscribe('t');
    const messages = await take(trusting, 3);
    assert.deepEqual(
      messages.map((message) => message.offset),
      [0, 1, 2],
    );
    await trusting.close();
  });

  it('client: consumer from latest skips what is already there', async () => {
    const { client } = await setup(2);
    await produce(client, 20, 'old');
    const consumer = client.consumer({ from: 'latest' });
    await consumer.subscribe('t');
    await produce(client, 4, 'new');
    const messages = await take(consumer, 4);
    assert.ok(messages.every((message) => message.body.toString().startsWith('new')));
    await consumer.close();
  });

  it('client: consumer long poll wakes promptly on a new message', async () => {
    const { client } = await setup(1);
    const consumer = client.consumer({ maxWaitMs: 10_000 });
    await consumer.subscribe('t');
    const next = consumer.next();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sentAt = Date.now();
    await produce(client, 1);
    const result = await next;
    assert.equal(result.done, false);
    assert.ok(Date.now() - sentAt < 500, `took ${Date.now() - sentAt} ms`);
    await consumer.close();
  });

  it('client: consumer group members share the partitions; committed offsets resume', async () => {
    const { client, newClient } = await setup(4);
    await produce(client, 400);
    const first = newClient().consumer({ group: 'g', sessionTimeoutMs: 3000 });
    await first.subscribe('t');
    assert.equal(first.assignment().length, 4);
    const second = newClient().consumer({ group: 'g', sessionTimeoutMs: 3000 });
    const rebalanced = new Promise<RebalanceEvent>((resolve) => first.once('rebalance', resolve));
    await second.subscribe('t');
    const event = await rebalanced;
    assert.equal(event.revoked.length, 2);
    assert.equal(first.assignment().length + second.assignment().length, 4);
    const owned = new Set([...first.assignment(), ...second.assignment()].map((entry) => entry.partition));
    assert.equal(owned.size, 4, 'no partition owned twice');
    const all = await takeFromAll([first, second], 400);
    assert.equal(new Set(all.map((message) => message.body.toString())).size, 400);
    assertPartitionOrder(all.filter((message) => first.assignment().some((entry) => entry.partition === message.partition)));
    // A new member resumes from the committed offsets: nothing left.
    await produce(client, 10, 'late');
    const third = newClient().consumer({ group: 'g' });
    await third.subscribe('t');
    const late = await take(third, 10);
    assert.ok(late.every((message) => message.body.toString().startsWith('late')));
    await third.close();
  });

  it('client: consumer rejoins after its member expired and keeps consuming', async () => {
    const { broker, client } = await setup(2);
    const consumer = client.consumer({ group: 'g', sessionTimeoutMs: 200, heartbeatIntervalMs: 50 });
    await consumer.subscribe('t');
    // The broker forgets the member (as after a session expiry or a restart).
    broker.groups.get('g')!.members.clear();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await produce(client, 10);
    const messages = await take(consumer, 10);
    assert.equal(messages.length, 10);
    assert.ok(broker.received.filter((request) => request.name === 'JoinGroup').length >= 2);
    await consumer.close();
  });

  it('client: consumer seek moves to an offset, to earliest and to a time', async () => {
    const { client } = await setup(1);
    await produce(client, 5, 'a');
    await new Promise((resolve) => setTimeout(resolve, 30));
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await produce(client, 5, 'b');
    const consumer = client.consumer({ group: 'seeker' });
    await consumer.subscribe('t');
    await take(consumer, 10);
    await consumer.seek({ topic: 't', to: between });
    assert.deepEqual(
      (await take(consumer, 5)).map((message) => message.body.toString()),
      ['b0', 'b1', 'b2', 'b3', 'b4'],
    );
    await consumer.seek({ topic: 't', partition: 0, to: 3 });
    assert.equal((await take(consumer, 1))[0]!.offset, 3);
    await consumer.seek({ topic: 't', to: 'earliest' });
    assert.equal((await take(consumer, 1))[0]!.offset, 0);
    await assert.rejects(consumer.seek({ topic: 't', partition: 5, to: 0 }), /does not read partition 5/);
    await consumer.close();
  });

  it('client: consumer pause holds a partition back until resume', async () => {
    const { client } = await setup(2);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('t', [{ body: 'p0-a' }, { body: 'p0-b' }], { partition: 0 });
    await producer.send('t', [{ body: 'p1-a' }], { partition: 1 });
    const consumer = client.consumer();
    consumer.pause('t', [0]);
    await consumer.subscribe('t');
    const first = await take(consumer, 1);
    assert.equal(first[0]!.partition, 1);
    const pending = consumer.next();
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(settled, false, 'a paused partition yields nothing');
    consumer.resume('t');
    assert.equal(((await pending).value as ConsumedMessage).body.toString(), 'p0-a');
    await consumer.close();
  });

  it('client: broadcast consumers each read everything and keep their own offsets', async () => {
    const { broker, client, newClient } = await setup(2);
    await produce(client, 50);
    const one = newClient().consumer({ group: 'b', mode: 'broadcast', instanceId: 'one' });
    const two = newClient().consumer({ group: 'b', mode: 'broadcast', instanceId: 'two' });
    await Promise.all([one.subscribe('t'), two.subscribe('t')]);
    const [a, b] = await Promise.all([take(one, 50), take(two, 50)]);
    assert.equal(new Set(a.map((message) => message.body.toString())).size, 50);
    assert.equal(new Set(b.map((message) => message.body.toString())).size, 50);
    await one.close();
    await two.close();
    assert.equal(broker.offsets.get('b/one|t|0')! + broker.offsets.get('b/one|t|1')!, 50);
    // The same instance id resumes where it stopped.
    await produce(client, 5, 'later');
    const again = newClient().consumer({ group: 'b', mode: 'broadcast', instanceId: 'one' });
    await again.subscribe('t');
    assert.ok((await take(again, 5)).every((message) => message.body.toString().startsWith('later')));
    await again.close();
  });

  it('client: consumer rides out dropped connections without losing or repeating messages', async () => {
    const { broker, client } = await setup(3);
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 5 });
    await producer.send(
      't',
      Array.from({ length: 500 }, (_, index) => ({ key: `k${index % 7}`, body: `m${index}` })),
    );
    const consumer = client.consumer({ maxBytes: 500 });
    await consumer.subscribe('t');
    const messages: ConsumedMessage[] = [];
    for await (const message of consumer) {
      messages.push(message);
      if (messages.length % 60 === 0) broker.dropConnections();
      if (messages.length === 500) break;
    }
    assertPartitionOrder(messages);
    assert.equal(new Set(messages.map((message) => message.body.toString())).size, 500);
    assert.ok(broker.received.filter((request) => request.name === 'Handshake').length >= 5, 'the connection was dropped and reopened');
    await consumer.close();
  });

  it('client: auto-commit commits only what the application finished with', async () => {
    const { broker, client } = await setup(1);
    await produce(client, 3);
    const consumer = client.consumer({ group: 'ac', autoCommitIntervalMs: 20 });
    await consumer.subscribe('t');
    const first = await consumer.next();
    assert.equal(first.done, false);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(broker.offsets.get('ac|t|0'), undefined, 'the message being processed is not committed by the timer');
    await consumer.next(); // done with the first one
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(broker.offsets.get('ac|t|0'), 1);
    await consumer.commit(); // an explicit commit includes the message in hand
    assert.equal(broker.offsets.get('ac|t|0'), 2);
    await consumer.close();
  });
});
