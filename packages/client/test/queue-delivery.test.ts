import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWeirClientError, type QueueMessage } from 'weir-client';
import { clientFor, startBroker, take, takeQueue, waitForTopic } from './support.js';

/** Work queues against a real broker: sharing, prefetch, redelivery, nack, reject and dead letters. */
describe('client integration: work queues (delivery)', () => {
  it('client integration: three shared consumers split 3,000 messages; each is delivered and acknowledged once', { timeout: 60_000 }, async () => {
    const broker = await startBroker();
    const admin = clientFor(broker).admin();
    await admin.createTopic('work', { partitions: 4 });
    const TOTAL = 3000;
    const consumers = [0, 1, 2].map(() => clientFor(broker).queueConsumer({ group: 'workers', prefetch: 50 }));
    await Promise.all(consumers.map((consumer) => consumer.subscribe('work')));

    const deliveries = new Map<string, number>();
    const perConsumer = [0, 0, 0];
    const acks: Promise<unknown>[] = [];
    let done!: () => void;
    const allAcked = new Promise<void>((resolve) => (done = resolve));
    const loops = consumers.map(async (consumer, who) => {
      for await (const message of consumer) {
        const body = message.body.toString();
        deliveries.set(body, (deliveries.get(body) ?? 0) + 1);
        perConsumer[who]!++;
        assert.equal(message.deliveryCount, 1);
        assert.equal(message.redelivered, false);
        acks.push(message.ack());
        if (acks.length === TOTAL) done();
      }
    });
    const producer = clientFor(broker).producer();
    await producer.send(
      'work',
      Array.from({ length: TOTAL }, (_, index) => ({ key: `k${index % 97}`, body: `m${index}` })),
    );
    await allAcked;
    const applied = await Promise.all(acks);
    assert.ok(
      applied.every((result) => result === true),
      'every ack applied',
    );
    assert.equal(deliveries.size, TOTAL);
    assert.ok(
      [...deliveries.values()].every((count) => count === 1),
      'no message twice',
    );
    assert.ok(
      perConsumer.every((count) => count > 0),
      `every consumer did some of the work: ${perConsumer.join(', ')}`,
    );
    const description = await admin.describeSharedGroup('workers');
    assert.equal(description.mode, 'shared');
    const [state] = description.topics;
    assert.deepEqual([state!.ready, state!.unread, state!.inflight, state!.waiting], [0, 0, 0, 0]);
    assert.equal(state!.consumers.length, 3);
    await Promise.all(consumers.map((consumer) => consumer.close()));
    await Promise.all(loops);
    assert.equal((await admin.describeSharedGroup('workers')).topics[0]!.consumers.length, 0, 'close unsubscribes');
  });

  it('client integration: prefetch bounds the unacknowledged deliveries a consumer holds', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('bounded', { partitions: 2 });
    await client.producer().send(
      'bounded',
      Array.from({ length: 100 }, (_, index) => ({ body: `m${index}` })),
    );
    const consumer = client.queueConsumer({ group: 'slow', prefetch: 10 });
    await consumer.subscribe('bounded');
    const first = await takeQueue(consumer, 10);
    // Same connection: a Deliver pushed before this answer arrives before it.
    let state = (await admin.describeSharedGroup('slow')).topics[0]!;
    assert.equal(consumer.buffered, 0, 'nothing past the prefetch was delivered');
    assert.equal(state.consumers[0]!.inflight, 10);
    assert.equal(state.inflight, 10);
    await Promise.all(first.slice(0, 4).map((message) => message.ack()));
    const more = await takeQueue(consumer, 4);
    state = (await admin.describeSharedGroup('slow')).topics[0]!;
    assert.equal(consumer.buffered, 0, 'four acks make room for exactly four more');
    assert.equal(state.consumers[0]!.inflight, 10);
    assert.equal(new Set([...first, ...more].map((message) => message.body.toString())).size, 14);
    await Promise.all([...first.slice(4), ...more].map((message) => message.ack()));
    await consumer.close();
  });

  it('client integration: a killed consumer holding 100 unacknowledged messages: all 100 are redelivered to the others', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const admin = clientFor(broker).admin();
    await admin.createTopic('fragile', { partitions: 3 });
    const doomedClient = clientFor(broker);
    const doomed = doomedClient.queueConsumer({ group: 'crew', prefetch: 100 });
    await doomed.subscribe('fragile');
    await clientFor(broker).producer().send(
      'fragile',
      Array.from({ length: 100 }, (_, index) => ({ key: `k${index}`, body: `m${index}` })),
    );
    const held = await takeQueue(doomed, 100);
    const survivors = [clientFor(broker).queueConsumer({ group: 'crew', prefetch: 100 }), clientFor(broker).queueConsumer({ group: 'crew', prefetch: 100 })];
    await Promise.all(survivors.map((consumer) => consumer.subscribe('fragile')));
    assert.equal((await admin.describeSharedGroup('crew')).topics[0]!.inflight, 100, 'the doomed consumer holds everything');

    doomedClient.abort(); // killed: no outcome, no Unsubscribe; the broker notices the connection close
    const redelivered: QueueMessage[] = [];
    await Promise.all(
      survivors.map(async (consumer) => {
        for await (const message of consumer) {
          redelivered.push(message);
          void message.ack();
          if (redelivered.length === 100) await Promise.all(survivors.map((each) => each.close()));
        }
      }),
    );
    assert.equal(redelivered.length, 100);
    assert.deepEqual(new Set(redelivered.map((message) => message.body.toString())), new Set(held.map((message) => message.body.toString())));
    assert.ok(
      redelivered.every((message) => message.redelivered && message.deliveryCount === 2),
      'each is marked redelivered',
    );
    await assert.rejects(held[0]!.ack(), (error) => isWeirClientError(error, 'CLIENT_CLOSED'), "the killed consumer's messages cannot be settled");
  });

  it('client integration: nack with a delay redelivers after it; a second outcome is refused', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    await client.admin().createTopic('retry', { partitions: 1 });
    const consumer = client.queueConsumer({ group: 'retriers' });
    await consumer.subscribe('retry');
    await client.producer().send('retry', { body: 'flaky' });
    const [first] = await takeQueue(consumer, 1);
    const nackedAt = Date.now();
    assert.equal(await first!.nack({ delayMs: 300, error: 'try later' }), true);
    await assert.rejects(first!.ack(), (error) => isWeirClientError(error, 'ALREADY_SETTLED') && /settled already/.test(error.message));
    await assert.rejects(first!.extend(1000), (error) => isWeirClientError(error, 'ALREADY_SETTLED'));
    const [again] = await takeQueue(consumer, 1);
    const waited = Date.now() - nackedAt;
    assert.ok(waited >= 290, `redelivered after ${waited} ms, not before the 300 ms delay`);
    assert.equal(again!.offset, first!.offset);
    assert.equal(again!.deliveryCount, 2);
    assert.equal(again!.redelivered, true);
    assert.equal(await again!.extend(60_000), true, 'extend renews a held lease');
    assert.equal(await again!.ack(), true);
    await assert.rejects(again!.nack({ delayMs: -5 }), (error) => isWeirClientError(error, 'ALREADY_SETTLED'));
    await consumer.close();
  });

  it('client integration: reject dead-letters at once; maxDeliveries dead-letters a message that keeps failing', { timeout: 30_000 }, async () => {
    const broker = await startBroker();
    const client = clientFor(broker);
    const admin = client.admin();
    await admin.createTopic('orders', { partitions: 2 });
    const producer = client.producer();
    await producer.send('orders', { key: 'o-1', tag: 'eu', headers: { source: 'web' }, body: 'unparseable' });
    const consumer = client.queueConsumer({ group: 'billing' });
    await consumer.subscribe('orders');
    const [message] = await takeQueue(consumer, 1);
    await assert.rejects(message!.nack({ delayMs: -1 }), (error) => isWeirClientError(error, 'INVALID_ARGUMENT') && /delayMs/.test(error.message));
    assert.equal(await message!.reject({ reason: 'bad input' }), true);
    await waitForTopic(admin, 'billing.dlq');
    const dlq = client.consumer();
    await dlq.subscribe('billing.dlq');
    const [dead] = await take(dlq, 1);
    assert.equal(dead!.body.toString(), 'unparseable');
    assert.equal(dead!.key!.toString(), 'o-1');
    assert.equal(dead!.tag, 'eu');
    assert.equal(dead!.headers.source, 'web');
    assert.equal(dead!.headers['weir.dlq.reason'], 'rejected');
    assert.equal(dead!.headers['weir.dlq.topic'], 'orders');
    assert.equal(dead!.headers['weir.dlq.partition'], String(message!.partition));
    assert.equal(dead!.headers['weir.dlq.offset'], String(message!.offset));
    assert.equal(dead!.headers['weir.dlq.group'], 'billing');
    assert.equal(dead!.headers['weir.dlq.deliveries'], '1');
    assert.equal(dead!.headers['weir.dlq.error'], 'bad input');
    assert.ok(Math.abs(Number(dead!.headers['weir.dlq.time']) - Date.now()) < 10_000);
    await consumer.close();
    await dlq.close();

    // A poison message: nacked on every delivery until maxDeliveries, then dead-lettered (to a topic of the group's choosing).
    const poison = client.queueConsumer({ group: 'careful', settings: { maxDeliveries: 3, deadLetterTopic: 'poison' } });
    await poison.subscribe('orders');
    for (let delivery = 1; delivery <= 3; delivery++) {
      const [attempt] = await takeQueue(poison, 1);
      assert.equal(attempt!.deliveryCount, delivery);
      await attempt!.nack({ delayMs: 0, error: `attempt ${delivery} failed` });
    }
    await waitForTopic(admin, 'poison');
    const poisoned = client.consumer();
    await poisoned.subscribe('poison');
    const [letter] = await take(poisoned, 1);
    assert.equal(letter!.headers['weir.dlq.reason'], 'max-deliveries');
    assert.equal(letter!.headers['weir.dlq.deliveries'], '3');
    assert.equal(letter!.headers['weir.dlq.error'], 'attempt 3 failed');
    assert.equal((await admin.describeSharedGroup('careful')).topics[0]!.ready, 0, 'nothing is delivered again');
    await poison.close();
    await poisoned.close();
  });
});
