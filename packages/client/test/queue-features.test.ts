import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWeirClientError, type QueueConsumer, type QueueMessage } from 'weir-client';
import { ChaosProxy, clientFor, sleep, startBroker, take, takeQueue, temporaryDirectory, waitForTopic } from './support.js';

/** Work queues against a real broker: key_shared order, filters, priorities, TTL, pull, reconnects and delays. */
describe('client integration: work queues (features)', () => {
  it('client integration: key_shared keeps each key in order while a consumer joins and another is killed', { timeout: 60_000 }, async () => {
    const broker = await startBroker();
    const admin = clientFor(broker).admin();
    await admin.createTopic('ledger', { partitions: 3 });
    const KEYS = 24;
    const PER_KEY = 40;
    const TOTAL = KEYS * PER_KEY;
    await clientFor(broker).producer().send(
      'ledger',
      Array.from({ length: TOTAL }, (_, index) => ({ key: `k${index % KEYS}`, body: `k${index % KEYS}:${Math.floor(index / KEYS)}` })),
    );

    // Per key: the highest sequence delivered and acknowledged so far (all consumers live in this process).
    const delivered = new Map<string, number>();
    const acked = new Map<string, number>();
    const ackedAll = new Set<string>();
    const violations: string[] = [];
    const received = new Map<string, number>();
    let redeliveries = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const observe = (who: string, message: QueueMessage): { key: string; seq: number } => {
      const [key, text] = message.body.toString().split(':') as [string, string];
      const seq = Number(text);
      received.set(who, (received.get(who) ?? 0) + 1);
      if (message.redelivered) redeliveries++;
      const last = delivered.get(key) ?? -1;
      if (seq === last + 1) delivered.set(key, seq);
      // Redelivery after a crash may repeat what was not acknowledged, never what was, and never skip ahead.
      else if (seq > last || !message.redelivered || seq <= (acked.get(key) ?? -1)) violations.push(`${who}: ${key} seq ${seq} after delivered ${last}, acked ${acked.get(key) ?? -1}, count ${message.deliveryCount}`);
      return { key, seq };
    };
    const acknowledge = async (message: QueueMessage, key: string, seq: number): Promise<void> => {
      acked.set(key, Math.max(acked.get(key) ?? -1, seq));
      ackedAll.add(`${key}:${seq}`);
      await message.ack();
      if (ackedAll.size === TOTAL) finish();
    };
    const options = { group: 'accountants', mode: 'key_shared' as const, prefetch: 20 };

    const doomedClient = clientFor(broker);
    const doomed = doomedClient.queueConsumer({ ...options, consumerId: 'doomed' });
    await doomed.subscribe('ledger');
    let joiner: QueueConsumer | null = null;
    let joinerLoop: Promise<void> | null = null;
    const loop = async (who: string, consumer: QueueConsumer): Promise<void> => {
      for await (const message of consumer) {
        const { key, seq } = observe(who, message);
        await acknowledge(message, key, seq);
      }
    };
    let seen = 0;
    let holding = 0;
    let holdingEnough!: () => void;
    const heldEnough = new Promise<void>((resolve) => (holdingEnough = resolve));
    const doomedLoop = (async () => {
      for await (const message of doomed) {
        const { key, seq } = observe('doomed', message);
        seen++;
        if (seen === 100) {
          // A consumer joins mid-stream: keys move to it only once the doomed consumer holds nothing of them.
          joiner = clientFor(broker).queueConsumer({ ...options, consumerId: 'joiner' });
          await joiner.subscribe('ledger');
          joinerLoop = loop('joiner', joiner);
        }
        if (seen <= 300) {
          await acknowledge(message, key, seq);
          continue;
        }
        // From here on it stalls: it holds its deliveries (up to prefetch) without settling them, then dies.
        if (++holding === options.prefetch) holdingEnough();
      }
    })();
    await heldEnough;
    doomedClient.abort();
    await doomedLoop;
    const late = clientFor(broker).queueConsumer({ ...options, consumerId: 'late' });
    await late.subscribe('ledger');
    const lateLoop = loop('late', late);
    await finished;
    assert.deepEqual(violations, [], 'per-key order');
    assert.equal(redeliveries, options.prefetch, 'what the killed consumer held came again');
    assert.ok((received.get('joiner') ?? 0) > 0 && (received.get('late') ?? 0) > 0, `every consumer got keys: ${JSON.stringify([...received])}`);
    assert.equal(ackedAll.size, TOTAL, 'every message acknowledged');
    for (let key = 0; key < KEYS; key++) assert.equal(delivered.get(`k${key}`), PER_KEY - 1);
    await Promise.all([joiner!.close(), late.close()]);
    await Promise.all([joinerLoop, lateLoop]);
  });

  it('client integration: tag and SQL filters deliver only matching messages; a bad filter is INVALID_FILTER with its position', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    await client.admin().createTopic('events', { partitions: 2 });
    await client.producer().send('events', [
      { tag: 'a', headers: { region: 'eu' }, body: 'a-eu' },
      { tag: 'b', headers: { region: 'us' }, body: 'b-us' },
      { tag: 'c', headers: { region: 'eu' }, body: 'c-eu' },
      { headers: { region: 'eu' }, body: 'none-eu' },
      { tag: 'a', headers: { region: 'us' }, body: 'a-us' },
    ]);
    const tagged = client.queueConsumer({ group: 'by-tag', filter: { tag: 'a || b' } });
    const european = client.queueConsumer({ group: 'by-sql', filter: { sql: "region = 'eu'" } });
    await tagged.subscribe('events');
    await european.subscribe('events');
    const bodies = async (consumer: QueueConsumer, count: number): Promise<string[]> => {
      const messages = await takeQueue(consumer, count);
      await Promise.all(messages.map((message) => message.ack()));
      return messages.map((message) => message.body.toString()).sort();
    };
    assert.deepEqual(await bodies(tagged, 3), ['a-eu', 'a-us', 'b-us']);
    assert.deepEqual(await bodies(european, 3), ['a-eu', 'c-eu', 'none-eu']);
    const describeTagged = await client.admin().describeSharedGroup('by-tag');
    assert.deepEqual(describeTagged.filter, { tag: 'a || b' });
    assert.deepEqual([describeTagged.topics[0]!.ready, describeTagged.topics[0]!.unread], [0, 0], 'what does not match is settled for the group');
    assert.equal(tagged.buffered + european.buffered, 0);

    const broken = client.queueConsumer({ group: 'by-bad-sql', filter: { sql: "region = 'eu' AND" } });
    await assert.rejects(broken.subscribe('events'), (error) => isWeirClientError(error, 'INVALID_FILTER') && /position \d+/.test(error.message));
    const badTag = client.queueConsumer({ group: 'by-bad-tag', filter: { tag: 'a | b' } });
    await assert.rejects(badTag.subscribe('events'), (error) => isWeirClientError(error, 'INVALID_FILTER') && /position 2/.test(error.message));
    assert.throws(() => client.queueConsumer({ group: 'x', filter: { tag: 'a', sql: 'b' } as never }), /exactly one of tag and sql/);
    await tagged.close();
    await european.close();
  });

  it('client integration: a prefetch-1 consumer subscribed after publishing gets higher priorities first, FIFO within one', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    await client.admin().createTopic('tasks', { partitions: 1 });
    const priorities = [0, 5, 9, 0, 3, 9, 5, 1, 0, 7, 3, 9];
    await client.producer().send(
      'tasks',
      priorities.map((priority, index) => ({ priority, body: `${priority}:${index}` })),
    );
    const consumer = client.queueConsumer({ group: 'triage', prefetch: 1 });
    await consumer.subscribe('tasks');
    const order: string[] = [];
    for (let index = 0; index < priorities.length; index++) {
      const [message] = await takeQueue(consumer, 1);
      order.push(message!.body.toString());
      await message!.ack();
    }
    const expected = priorities.map((priority, index) => ({ priority, index })).sort((a, b) => b.priority - a.priority || a.index - b.index).map(({ priority, index }) => `${priority}:${index}`);
    assert.deepEqual(order, expected);
    await consumer.close();
  });

  it('client integration: an expired message is never delivered; with deadLetterExpired it goes to the dead-letter topic', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('perishable', { partitions: 1 });
    await client.producer().send('perishable', [
      { body: 'milk', ttlMs: 100 },
      { body: 'salt', ttlMs: 600_000 },
      { body: 'rice' },
    ]);
    await sleep(250); // the TTL must pass: there is no event to wait for
    const consumer = client.queueConsumer({ group: 'kitchen', settings: { deadLetterExpired: true } });
    await consumer.subscribe('perishable');
    const fresh = await takeQueue(consumer, 2);
    assert.deepEqual(
      fresh.map((message) => message.body.toString()),
      ['salt', 'rice'],
    );
    assert.ok(Number(fresh[0]!.headers['weir.expiresAt']) > Date.now(), 'the broker stored the expiry time');
    await Promise.all(fresh.map((message) => message.ack()));
    await waitForTopic(admin, 'kitchen.dlq');
    const dlq = client.consumer();
    await dlq.subscribe('kitchen.dlq');
    const [expired] = await take(dlq, 1);
    assert.equal(expired!.body.toString(), 'milk');
    assert.equal(expired!.headers['weir.dlq.reason'], 'expired');
    assert.equal(expired!.headers['weir.dlq.deliveries'], '0');
    await consumer.close();
    await dlq.close();
  });

  it('client integration: a group\'s maxBytes with reject-publish makes send fail with QUEUE_FULL until a consumer makes room', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('uploads', { partitions: 1 });
    const consumer = client.queueConsumer({ group: 'scanners', prefetch: 1, settings: { maxBytes: 8, overflow: 'reject-publish' } });
    await consumer.subscribe('uploads');
    const description = await admin.describeSharedGroup('scanners');
    assert.equal(description.settings.maxBytes, 8);
    assert.equal(description.settings.maxLength, null);
    // Retried sends would only wait for the consumer: refused at once, the error reaches the caller.
    const producer = client.producer({ retry: { retries: 0 }, idempotent: false });
    await producer.send('uploads', { body: 'scan-0' });
    const [first] = await takeQueue(consumer, 1);
    assert.equal(first!.body.toString(), 'scan-0');
    // In flight, so not counted: the next two fill the 8 bytes.
    for (const body of ['scan', '1234']) await producer.send('uploads', { body });
    await assert.rejects(producer.send('uploads', { body: 'more' }), (error: unknown) => {
      assert.ok(isWeirClientError(error), String(error));
      assert.equal(error.code, 'QUEUE_FULL');
      assert.match(error.message, /8 bytes of ready message bodies/);
      return true;
    });
    await first!.ack();
    const [second] = await takeQueue(consumer, 1);
    assert.equal(second!.body.toString(), 'scan', 'the next one is leased once the first is acknowledged: 4 bytes left ready');
    await producer.send('uploads', { body: 'more' });
    await consumer.close();
  });

  it('client integration: receive pulls with long polling; pulled messages are settled like pushed ones', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('inbox', { partitions: 2 });
    const puller = client.queueConsumer({ group: 'pullers' });
    const startedAt = Date.now();
    assert.deepEqual(await puller.receive({ topic: 'inbox', maxMessages: 5, waitMs: 150 }), []);
    assert.ok(Date.now() - startedAt >= 140, 'an empty queue waits out waitMs');

    // A long poll answers as soon as something arrives, well before its wait ends.
    const polling = puller.receive({ topic: 'inbox', maxMessages: 10, waitMs: 10_000 });
    const sentAt = Date.now();
    await clientFor(broker).producer().send('inbox', [{ key: 'x', body: 'p1' }, { key: 'x', body: 'p2' }, { key: 'x', body: 'p3' }]);
    const pulled = [...(await polling)];
    assert.ok(Date.now() - sentAt < 5000, 'the long poll answered on arrival');
    while (pulled.length < 3) pulled.push(...(await puller.receive({ topic: 'inbox', maxMessages: 10, waitMs: 5000 })));
    assert.deepEqual(
      pulled.map((message) => message.body.toString()),
      ['p1', 'p2', 'p3'],
    );
    assert.match(pulled[0]!.consumerId, /^pull-/);
    assert.equal((await admin.describeSharedGroup('pullers')).topics[0]!.inflight, 3, 'pulled messages are leased');
    await pulled[0]!.nack({ delayMs: 0 });
    await Promise.all(pulled.slice(1).map((message) => message.ack()));
    const [again] = await puller.receive({ topic: 'inbox', maxMessages: 10, waitMs: 5000 });
    assert.equal(again!.body.toString(), 'p1');
    assert.equal(again!.redelivered, true);
    assert.equal(await again!.ack(), true);
    const state = (await admin.describeSharedGroup('pullers')).topics[0]!;
    assert.deepEqual([state.ready, state.inflight, state.waiting], [0, 0, 0]);
    await puller.close();
  });

  it('client integration: a dropped connection: held messages come back redelivered on the next one and consumption goes on', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const proxy = await ChaosProxy.start(broker.port);
    const client = clientFor({ port: proxy.port });
    await client.admin().createTopic('steady', { partitions: 2 });
    const producer = clientFor(broker).producer();
    await producer.send(
      'steady',
      Array.from({ length: 10 }, (_, index) => ({ body: `before-${index}` })),
    );
    const consumer = client.queueConsumer({ group: 'steady-workers', consumerId: 'worker-1' });
    const resubscribed = new Promise<void>((resolve) => consumer.once('resubscribed', () => resolve()));
    await consumer.subscribe('steady');
    const held = await takeQueue(consumer, 10);
    await Promise.all(held.slice(0, 4).map((message) => message.ack()));

    const disconnected = new Promise<void>((resolve) => client.once('disconnect', () => resolve()));
    proxy.dropAll();
    await disconnected;
    await assert.rejects(held[4]!.ack(), (error) => isWeirClientError(error, 'CONNECTION_CLOSED') && /redeliver/.test(error.message));
    await resubscribed;
    const back = await takeQueue(consumer, 6);
    assert.deepEqual(new Set(back.map((message) => message.body.toString())), new Set(held.slice(4).map((message) => message.body.toString())));
    assert.ok(back.every((message) => message.redelivered && message.consumerId === 'worker-1'));
    await producer.send(
      'steady',
      Array.from({ length: 5 }, (_, index) => ({ body: `after-${index}` })),
    );
    const fresh = await takeQueue(consumer, 5);
    assert.ok(fresh.every((message) => message.body.toString().startsWith('after-') && !message.redelivered));
    await Promise.all([...back, ...fresh].map((message) => message.ack()));
    await consumer.close();
  });

  it('client integration: a queue consumer rides out a broker restart and keeps receiving', { timeout: 30_000 }, async () => {
    const dataDir = await temporaryDirectory();
    let broker = await startBroker({ dataDir });
    const port = broker.port;
    const client = clientFor(broker, { retry: { initialMs: 20, maxMs: 200, retries: 100 } });
    await client.admin().createTopic('durable-jobs', { partitions: 2 });
    const producer = client.producer();
    const consumer = client.queueConsumer({ group: 'night-shift' });
    await consumer.subscribe('durable-jobs');
    await producer.send('durable-jobs', [{ body: 'one' }, { body: 'two' }]);
    const before = await takeQueue(consumer, 2);
    assert.deepEqual(await Promise.all(before.map((message) => message.ack())), [true, true]);

    const resubscribed = new Promise<void>((resolve) => consumer.once('resubscribed', () => resolve()));
    await broker.close();
    broker = await startBroker({ dataDir, port });
    await resubscribed;
    await producer.send('durable-jobs', [{ body: 'three' }, { body: 'four' }]);
    const after = await takeQueue(consumer, 2);
    assert.deepEqual(after.map((message) => message.body.toString()).sort(), ['four', 'three'], 'acknowledged messages stay acknowledged across the restart');
    await Promise.all(after.map((message) => message.ack()));
    await client.close();
  });

  it(
    'client integration: a delayed message from the producer is not delivered before its delay; a resent copy is dropped by id',
    { timeout: 30_000 },
    async () => {
      const broker = await startBroker();
      const client = clientFor(broker);
      await client.admin().createTopic('later', { partitions: 1 });
      const consumer = client.queueConsumer({ group: 'patient' });
      await consumer.subscribe('later');
      const producer = client.producer();
      const sentAt = Date.now();
      const [delayed, now] = await Promise.all([producer.send('later', { body: 'delayed', delayMs: 300 }), producer.send('later', { body: 'now' })]);
      assert.equal(delayed.offset, -1, 'a delayed message is not in the partition yet');
      assert.equal(delayed.id!.length, 32, 'it has the 16-byte id the client chose');
      assert.ok(now.offset >= 0);
      // The same delayed message sent again (as a retry after a lost answer would be): the broker's dedup drops it.
      const resent = await client.producer({ idempotent: false }).send('later', { id: delayed.idBytes!, body: 'delayed', delayMs: 300 });
      assert.equal(resent.duplicate, true);
      const [first] = await takeQueue(consumer, 1);
      assert.equal(first!.body.toString(), 'now');
      const [second] = await takeQueue(consumer, 1);
      assert.equal(second!.body.toString(), 'delayed');
      assert.equal(second!.id, delayed.id);
      assert.ok(Date.now() - sentAt >= 290, `delivered ${Date.now() - sentAt} ms after the send`);
      await Promise.all([first!.ack(), second!.ack()]);
      // The group holds nothing more (a describe answers after any delivery pushed before it).
      const state = (await client.admin().describeSharedGroup('patient')).topics[0]!;
      assert.deepEqual([state.ready, state.unread, state.inflight, consumer.buffered], [0, 0, 0, 0]);
      await consumer.close();
    },
  );
});
