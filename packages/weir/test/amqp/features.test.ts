/**
 * Queue and exchange features RabbitMQ users rely on, exercised with unmodified amqplib.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type amqp from 'amqplib';
import { type AmqpBroker, confirmChannel, consumeN, startAmqpBroker } from '../support/amqp.js';

let broker: AmqpBroker;
before(async () => {
  broker = await startAmqpBroker();
});
after(async () => broker.close());

const channel = (): Promise<amqp.ConfirmChannel> => confirmChannel(broker);

/** The next message from `queue`; the consumer is cancelled after it (the message stays the channel's to settle). */
async function nextMessage(ch: amqp.Channel, queue: string, options: amqp.Options.Consume = {}): Promise<amqp.ConsumeMessage> {
  let first: amqp.ConsumeMessage | null = null;
  let got: (message: amqp.ConsumeMessage) => void = () => {};
  const received = new Promise<amqp.ConsumeMessage>((resolve) => (got = resolve));
  const { consumerTag } = await ch.consume(
    queue,
    (message) => {
      if (message === null || first !== null) {
        if (message !== null && !options.noAck) ch.nack(message, false, true);
        return;
      }
      first = message;
      got(message);
    },
    options,
  );
  const message = await received;
  await ch.cancel(consumerTag);
  return message;
}

describe('AMQP queue features', () => {
  test('dead-letter exchange with per-queue TTL: expired messages move with x-death', async () => {
    const ch = await channel();
    await ch.assertExchange('dlx', 'direct');
    await ch.assertQueue('dead', { durable: true });
    await ch.bindQueue('dead', 'dlx', 'expired-key');
    await ch.assertQueue('short-lived', { durable: true, arguments: { 'x-message-ttl': 50, 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'expired-key' } });
    ch.sendToQueue('short-lived', Buffer.from('too late'), { persistent: true, headers: { trace: 'a' } });
    await ch.waitForConfirms();
    const message = await nextMessage(ch, 'dead', { noAck: true });
    assert.equal(message.content.toString(), 'too late');
    assert.equal(message.fields.exchange, 'dlx');
    assert.equal(message.fields.routingKey, 'expired-key');
    const headers = message.properties.headers!;
    assert.equal(headers.trace, 'a');
    const [death] = headers['x-death'] as unknown as Array<Record<string, unknown>>;
    assert.equal(death!.reason, 'expired');
    assert.equal(death!.queue, 'short-lived');
    assert.equal(Number(death!.count), 1);
    assert.deepEqual(death!['routing-keys'], ['short-lived']);
    assert.equal(headers['x-first-death-reason'], 'expired');
  });

  test('per-message expiration drops a message nobody consumed in time', async () => {
    const ch = await channel();
    await ch.assertQueue('expiring', { durable: true });
    ch.sendToQueue('expiring', Buffer.from('gone'), { expiration: '20' });
    ch.sendToQueue('expiring', Buffer.from('kept'));
    await ch.waitForConfirms();
    await new Promise((resolve) => setTimeout(resolve, 60));
    const message = await nextMessage(ch, 'expiring', { noAck: true });
    assert.equal(message.content.toString(), 'kept');
  });

  test('rejected without requeue: dead-lettered with reason rejected; nack with requeue comes back redelivered', async () => {
    const ch = await channel();
    await ch.assertExchange('rejects', 'fanout');
    await ch.assertQueue('rejected-letters');
    await ch.bindQueue('rejected-letters', 'rejects', '');
    await ch.assertQueue('work-r', { arguments: { 'x-dead-letter-exchange': 'rejects' } });
    ch.sendToQueue('work-r', Buffer.from('job'));
    await ch.waitForConfirms();
    const first = await nextMessage(ch, 'work-r');
    assert.equal(first.fields.redelivered, false);
    ch.nack(first, false, true);
    const again = await nextMessage(ch, 'work-r');
    assert.equal(again.fields.redelivered, true);
    assert.equal(again.content.toString(), 'job');
    ch.reject(again, false);
    const dead = await nextMessage(ch, 'rejected-letters', { noAck: true });
    assert.equal((dead.properties.headers!['x-death'] as unknown as Array<Record<string, unknown>>)[0]!.reason, 'rejected');
  });

  test('x-delivery-limit dead-letters a message after limit + 1 failed deliveries', async () => {
    const ch = await channel();
    await ch.assertExchange('limit-dlx', 'fanout');
    await ch.assertQueue('poison');
    await ch.bindQueue('poison', 'limit-dlx', '');
    await ch.assertQueue('limited', { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 2, 'x-dead-letter-exchange': 'limit-dlx' } });
    ch.sendToQueue('limited', Buffer.from('bad'));
    await ch.waitForConfirms();
    let deliveries = 0;
    const dead = nextMessage(ch, 'poison', { noAck: true });
    await ch.consume('limited', (message) => {
      deliveries++;
      ch.nack(message!, false, true);
    });
    const letter = await dead;
    assert.equal(deliveries, 3);
    assert.equal((letter.properties.headers!['x-death'] as unknown as Array<Record<string, unknown>>)[0]!.reason, 'delivery_limit');
  });

  test('priority queue: higher priorities first', async () => {
    const ch = await channel();
    await ch.assertQueue('prio', { arguments: { 'x-max-priority': 5 } });
    for (const priority of [1, 5, 3, 0, 5, 2]) ch.sendToQueue('prio', Buffer.from(String(priority)), { priority });
    await ch.waitForConfirms();
    const messages = await consumeN(ch, 'prio', 6);
    assert.deepEqual(messages.map((message) => Number(message.content.toString())), [5, 5, 3, 2, 1, 0]);
  });

  test('prefetch bounds the deliveries in flight; each ack lets one more through', async () => {
    const ch = await channel();
    await ch.assertQueue('bounded');
    for (let i = 0; i < 50; i++) ch.sendToQueue('bounded', Buffer.from(String(i)));
    await ch.waitForConfirms();
    await ch.prefetch(5);
    const held: amqp.ConsumeMessage[] = [];
    let reached: () => void = () => {};
    let wanted = 5;
    const five = new Promise<void>((resolve) => (reached = resolve));
    await ch.consume('bounded', (message) => {
      held.push(message!);
      if (held.length === wanted) reached();
    });
    await five;
    // Give the broker every chance to overshoot before looking.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(held.length, 5);
    wanted = 7;
    const more = new Promise<void>((resolve) => (reached = resolve));
    ch.ack(held[0]!);
    ch.ack(held[1]!);
    await more;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(held.length, 7);
  });

  test('basic.qos with global limits the whole channel, across its consumers and queues', async () => {
    const ch = await channel();
    for (const queue of ['global-a', 'global-b']) {
      await ch.assertQueue(queue);
      for (let i = 0; i < 10; i++) ch.sendToQueue(queue, Buffer.from(`${queue} ${i}`));
    }
    await ch.waitForConfirms();
    await ch.prefetch(3, true);
    const held: amqp.ConsumeMessage[] = [];
    let wanted = 3;
    let reached: () => void = () => {};
    let arrived = new Promise<void>((resolve) => (reached = resolve));
    const onMessage = (message: amqp.ConsumeMessage | null) => {
      held.push(message!);
      if (held.length === wanted) reached();
    };
    await ch.consume('global-a', onMessage);
    await ch.consume('global-b', onMessage);
    await arrived;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(held.length, 3, 'three unacknowledged deliveries for the channel, not three per consumer');
    wanted = 4;
    arrived = new Promise<void>((resolve) => (reached = resolve));
    ch.ack(held[0]!);
    await arrived;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(held.length, 4);
  });

  test('deleting a queue gives back the channel-wide prefetch its unacknowledged deliveries held', async () => {
    const ch = await channel();
    const admin = await channel();
    await ch.assertQueue('pooled-a');
    await ch.assertQueue('pooled-b');
    for (let i = 0; i < 3; i++) ch.sendToQueue('pooled-a', Buffer.from(`a${i}`));
    await ch.waitForConfirms();
    await ch.prefetch(2, true);
    const fromA: string[] = [];
    let reachedA: () => void = () => {};
    const twoFromA = new Promise<void>((resolve) => (reachedA = resolve));
    await ch.consume('pooled-a', (message) => {
      if (message !== null && fromA.push(message.content.toString()) === 2) reachedA();
    });
    await twoFromA;
    await admin.deleteQueue('pooled-a');
    let gotB: (body: string) => void = () => {};
    const fromB = new Promise<string>((resolve) => (gotB = resolve));
    await ch.consume('pooled-b', (message) => message !== null && gotB(message.content.toString()), { noAck: false });
    ch.sendToQueue('pooled-b', Buffer.from('b0'));
    await ch.waitForConfirms();
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('nothing within 2 s'), 2000).unref());
    assert.equal(await Promise.race([fromB, late]), 'b0', 'the deleted queue holds none of the channel\'s prefetch');
    assert.deepEqual(fromA, ['a0', 'a1']);
  });

  test('basic.get: one message at a time, get-empty when none, message count of the rest', async () => {
    const ch = await channel();
    await ch.assertQueue('gettable');
    assert.equal(await ch.get('gettable'), false);
    for (let i = 0; i < 3; i++) ch.sendToQueue('gettable', Buffer.from(`g${i}`));
    await ch.waitForConfirms();
    const first = await ch.get('gettable');
    assert.ok(first);
    assert.equal(first.content.toString(), 'g0');
    assert.equal(first.fields.messageCount, 2);
    ch.ack(first);
    const second = await ch.get('gettable', { noAck: true });
    assert.ok(second);
    assert.equal(second.content.toString(), 'g1');
    const third = await ch.get('gettable');
    assert.ok(third);
    ch.nack(third, false, true);
    const again = await ch.get('gettable');
    assert.ok(again);
    assert.equal(again.content.toString(), 'g2');
    assert.equal(again.fields.redelivered, true);
    ch.ack(again);
  });

  test("a channel's later get, declare, purge and delete see its earlier publishes without waiting for a confirm", async () => {
    // Python's pika and many applications publish and then get or count on the same channel at once; RabbitMQ's
    // channel hands both to the queue in order, so the get finds the message.
    const connection = await broker.connect();
    const ch = await connection.createChannel();
    ch.on('error', () => {});
    await ch.assertQueue('in-order', { durable: true });
    ch.sendToQueue('in-order', Buffer.from('first'), { persistent: true });
    const got = await ch.get('in-order', { noAck: true });
    assert.ok(got, 'the get found the message published just before it');
    assert.equal(got.content.toString(), 'first');
    for (let i = 0; i < 3; i++) ch.sendToQueue('in-order', Buffer.from(`m${i}`), { persistent: true });
    assert.equal((await ch.checkQueue('in-order')).messageCount, 3);
    ch.sendToQueue('in-order', Buffer.from('last'));
    assert.equal((await ch.purgeQueue('in-order')).messageCount, 4, 'the purge takes the publishes before it');
    assert.equal(await ch.get('in-order'), false, 'nothing published before the purge turns up after it');
    ch.sendToQueue('in-order', Buffer.from('keep me'));
    await assert.rejects(
      ch.deleteQueue('in-order', { ifEmpty: true }),
      (error: Error & { code?: number }) => error.code === 406,
      'if-empty sees the messages published just before it',
    );
    await connection.close();
  });

  test('basic.get beside a consumer whose tag is "get" on the same channel', async () => {
    const ch = await channel();
    await ch.assertQueue('get-and-consume');
    ch.sendToQueue('get-and-consume', Buffer.from('one'));
    ch.sendToQueue('get-and-consume', Buffer.from('two'));
    await ch.waitForConfirms();
    await ch.prefetch(1);
    const consumed = new Promise<amqp.ConsumeMessage>((resolve) => void ch.consume('get-and-consume', (message) => resolve(message!), { consumerTag: 'get' }));
    const first = await consumed;
    const got = await ch.get('get-and-consume');
    assert.ok(got, 'the pull is not confused with the consumer tagged "get"');
    assert.deepEqual([first.content.toString(), got.content.toString()].sort(), ['one', 'two']);
    ch.ack(first);
    ch.ack(got);
  });

  test('mandatory publish to nowhere comes back with basic.return, and is still confirmed', async () => {
    const ch = await channel();
    await ch.assertExchange('nowhere', 'direct');
    const returned = once(ch, 'return');
    await new Promise<void>((resolve, reject) => ch.publish('nowhere', 'no-such-key', Buffer.from('lost?'), { mandatory: true }, (error) => (error ? reject(error) : resolve())));
    const [message] = (await returned) as [amqp.Message];
    assert.equal(message.content.toString(), 'lost?');
    assert.equal((message.fields as unknown as { replyCode: number }).replyCode, 312);
    assert.equal(message.fields.routingKey, 'no-such-key');
  });

  test('exclusive queues go with their connection; auto-delete queues with their last consumer', async () => {
    const connection = await broker.connect();
    const ch = await connection.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.assertQueue('auto', { autoDelete: true });
    const { consumerTag } = await ch.consume('auto', () => {});
    const observer = await channel();
    assert.equal((await observer.checkQueue('auto')).consumerCount, 1);
    await ch.cancel(consumerTag);
    await assert.rejects(observer.checkQueue('auto'), /404/);
    const other = await channel();
    await assert.rejects(other.checkQueue(queue), /405/, 'another connection cannot use an exclusive queue');
    const sameConnection = await connection.createChannel();
    assert.equal((await sameConnection.checkQueue(queue)).messageCount, 0);
    await connection.close();
    const third = await channel();
    await assert.rejects(third.checkQueue(queue), /404/);
  });

  test('tx: publishes and acks take effect at commit and vanish at rollback', async () => {
    const connection = await broker.connect();
    const ch = await connection.createChannel();
    await ch.assertQueue('tx-q');
    // amqplib has no tx API; send tx.select / tx.commit through its low-level RPC.
    const rpc = (method: string) =>
      new Promise<void>((resolve, reject) => {
        const raw = ch as unknown as { _rpc(method: number, fields: object, expect: number, cb: (error: Error | null) => void): void };
        const ids: Record<string, [number, number]> = { select: [0x005a000a, 0x005a000b], commit: [0x005a0014, 0x005a0015], rollback: [0x005a001e, 0x005a001f] };
        const [send, expect] = ids[method]!;
        raw._rpc(send, {}, expect, (error) => (error ? reject(error) : resolve()));
      });
    await rpc('select');
    ch.sendToQueue('tx-q', Buffer.from('rolled back'));
    await rpc('rollback');
    ch.sendToQueue('tx-q', Buffer.from('committed'));
    const observer = await channel();
    assert.equal((await observer.checkQueue('tx-q')).messageCount, 0, 'nothing before commit');
    await rpc('commit');
    assert.equal((await observer.checkQueue('tx-q')).messageCount, 1);
    const message = await ch.get('tx-q');
    assert.ok(message);
    assert.equal(message.content.toString(), 'committed');
    ch.ack(message);
    await rpc('rollback');
    assert.equal((await observer.checkQueue('tx-q')).messageCount, 0, 'in flight, not acked');
    ch.ack(message);
    await rpc('commit');
    await ch.close();
    assert.equal((await observer.checkQueue('tx-q')).messageCount, 0, 'acked at commit: not requeued on close');
  });

  test('exchange-to-exchange bindings and alternate exchanges', async () => {
    const ch = await channel();
    await ch.assertExchange('edge', 'topic');
    await ch.assertExchange('inner', 'direct', { internal: true });
    await ch.assertExchange('unrouted', 'fanout');
    await ch.assertExchange('front', 'direct', { alternateExchange: 'unrouted' });
    await ch.bindExchange('inner', 'edge', 'orders.#');
    await ch.assertQueue('orders-q');
    await ch.bindQueue('orders-q', 'inner', 'orders.created');
    await ch.assertQueue('leftovers');
    await ch.bindQueue('leftovers', 'unrouted', '');
    ch.publish('edge', 'orders.created', Buffer.from('via e2e'));
    ch.publish('front', 'unknown', Buffer.from('to the alternate'));
    await ch.waitForConfirms();
    assert.equal((await nextMessage(ch, 'orders-q', { noAck: true })).content.toString(), 'via e2e');
    assert.equal((await nextMessage(ch, 'leftovers', { noAck: true })).content.toString(), 'to the alternate');
    // Publishing to an internal exchange directly is refused.
    const direct = await channel();
    direct.publish('inner', 'orders.created', Buffer.from('x'));
    await assert.rejects(direct.waitForConfirms());
  });

  test('headers exchange: x-match all and any', async () => {
    const ch = await channel();
    await ch.assertExchange('by-headers', 'headers');
    await ch.assertQueue('all-q');
    await ch.assertQueue('any-q');
    await ch.bindQueue('all-q', 'by-headers', '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await ch.bindQueue('any-q', 'by-headers', '', { 'x-match': 'any', format: 'pdf', type: 'report' });
    ch.publish('by-headers', '', Buffer.from('both'), { headers: { format: 'pdf', type: 'report' } });
    ch.publish('by-headers', '', Buffer.from('one'), { headers: { format: 'pdf', type: 'log' } });
    ch.publish('by-headers', '', Buffer.from('none'), { headers: { format: 'zip' } });
    await ch.waitForConfirms();
    assert.deepEqual((await consumeN(ch, 'all-q', 1)).map((m) => m.content.toString()), ['both']);
    assert.deepEqual((await consumeN(ch, 'any-q', 2)).map((m) => m.content.toString()), ['both', 'one']);
    assert.equal((await ch.checkQueue('all-q')).messageCount, 0);
  });

  test('single active consumer: one consumer gets everything; the next takes over when it goes', async () => {
    const ch = await channel();
    await ch.assertQueue('sac', { durable: true, arguments: { 'x-single-active-consumer': true } });
    const a = await channel();
    const b = await channel();
    const gotA: string[] = [];
    const gotB: string[] = [];
    const { consumerTag: tagA } = await a.consume('sac', (message) => {
      gotA.push(message!.content.toString());
      a.ack(message!);
    });
    let bReceived: () => void = () => {};
    const bDone = new Promise<void>((resolve) => (bReceived = resolve));
    await b.consume('sac', (message) => {
      gotB.push(message!.content.toString());
      b.ack(message!);
      if (gotB.length === 3) bReceived();
    });
    for (let i = 0; i < 3; i++) ch.sendToQueue('sac', Buffer.from(`first ${i}`));
    await ch.waitForConfirms();
    while (gotA.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(gotB.length, 0);
    await a.cancel(tagA);
    for (let i = 0; i < 3; i++) ch.sendToQueue('sac', Buffer.from(`second ${i}`));
    await ch.waitForConfirms();
    await bDone;
    assert.deepEqual(gotB, ['second 0', 'second 1', 'second 2']);
  });

  test('deleting a queue cancels its consumers (consumer_cancel_notify)', async () => {
    const ch = await channel();
    await ch.assertQueue('doomed');
    let cancelled = false;
    const notified = new Promise<void>((resolve) => {
      void ch.consume('doomed', (message) => {
        if (message === null) {
          cancelled = true;
          resolve();
        }
      });
    });
    const other = await channel();
    await other.deleteQueue('doomed');
    await notified;
    assert.ok(cancelled);
  });

  test('x-max-length with reject-publish nacks publishes over the limit; drop-head drops the oldest', async () => {
    const ch = await channel();
    await ch.assertQueue('full', { arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      outcomes.push(await new Promise<boolean>((resolve) => ch.sendToQueue('full', Buffer.from(String(i)), {}, (error) => resolve(error === null || error === undefined))));
    }
    assert.deepEqual(outcomes, [true, true, false]);
    await ch.assertExchange('overflow-dlx', 'fanout');
    await ch.assertQueue('overflowed');
    await ch.bindQueue('overflowed', 'overflow-dlx', '');
    await ch.assertQueue('full-dlx', { arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish-dlx', 'x-dead-letter-exchange': 'overflow-dlx' } });
    ch.sendToQueue('full-dlx', Buffer.from('fits'));
    const refused = await new Promise<boolean>((resolve) => ch.sendToQueue('full-dlx', Buffer.from('refused'), {}, (error) => resolve(error !== null && error !== undefined)));
    assert.ok(refused, 'the publish over the limit is nacked');
    const [overflowed] = await consumeN(ch, 'overflowed', 1);
    assert.equal(overflowed!.content.toString(), 'refused');
    assert.equal((overflowed!.properties.headers!['x-death'] as unknown as Array<Record<string, unknown>>)[0]!.reason, 'maxlen');
    await ch.assertQueue('rolling', { arguments: { 'x-max-length': 2 } });
    for (let i = 0; i < 4; i++) ch.sendToQueue('rolling', Buffer.from(String(i)));
    await ch.waitForConfirms();
    const kept = await consumeN(ch, 'rolling', 2);
    assert.deepEqual(kept.map((m) => m.content.toString()), ['2', '3']);
  });

  test('x-max-length-bytes counts bodies: reject-publish nacks each message that would not fit; drop-head drops the oldest', async () => {
    const ch = await channel();
    // Headers and properties are not counted: each message carries more of them than the whole limit.
    const publish = (queue: string, body: string) =>
      new Promise<boolean>((resolve) => ch.sendToQueue(queue, Buffer.from(body), { headers: { padding: 'x'.repeat(100) } }, (error) => resolve(error === null || error === undefined)));
    await ch.assertQueue('bytes-full', { arguments: { 'x-max-length-bytes': 10, 'x-overflow': 'reject-publish' } });
    // 4 + 4 = 8; ccc would make 11 and is nacked; dd still fits (10), as RabbitMQ decides message by message.
    assert.deepEqual(await Promise.all(['aaaa', 'bbbb', 'ccc', 'dd'].map((body) => publish('bytes-full', body))), [true, true, false, true]);
    assert.equal(await publish('bytes-full', 'e'), false);
    assert.equal((await ch.checkQueue('bytes-full')).messageCount, 3);
    const [first] = await consumeN(ch, 'bytes-full', 1);
    assert.equal(first!.content.toString(), 'aaaa');
    assert.equal(await publish('bytes-full', 'eeee'), true, 'consumed and acknowledged bodies no longer count');
    assert.equal(await publish('bytes-full', 'f'), false);

    await ch.assertQueue('bytes-rolling', { arguments: { 'x-max-length-bytes': 6 } });
    for (const body of ['aaa', 'bbb', 'ccc']) assert.equal(await publish('bytes-rolling', body), true);
    await ch.waitForConfirms();
    assert.equal((await ch.checkQueue('bytes-rolling')).messageCount, 2);
    assert.deepEqual((await consumeN(ch, 'bytes-rolling', 2)).map((m) => m.content.toString()), ['bbb', 'ccc']);

    await ch.assertExchange('bytes-dlx', 'fanout');
    await ch.assertQueue('bytes-dropped');
    await ch.bindQueue('bytes-dropped', 'bytes-dlx', '');
    await ch.assertQueue('bytes-dead-lettering', { arguments: { 'x-max-length-bytes': 5, 'x-dead-letter-exchange': 'bytes-dlx' } });
    for (const body of ['old', 'new']) assert.equal(await publish('bytes-dead-lettering', body), true);
    const [dropped] = await consumeN(ch, 'bytes-dropped', 1);
    assert.equal(dropped!.content.toString(), 'old');
    assert.equal((dropped!.properties.headers!['x-death'] as unknown as Array<Record<string, unknown>>)[0]!.reason, 'maxlen');
  });

  test('x-delayed-message exchange holds a message for x-delay ms', async () => {
    const ch = await channel();
    await ch.assertExchange('later', 'x-delayed-message', { arguments: { 'x-delayed-type': 'direct' } });
    await ch.assertQueue('delayed-q');
    await ch.bindQueue('delayed-q', 'later', 'k');
    const sent = Date.now();
    ch.publish('later', 'k', Buffer.from('wait for it'), { headers: { 'x-delay': 300 } });
    await ch.waitForConfirms();
    assert.equal((await ch.checkQueue('delayed-q')).messageCount, 0);
    const message = await nextMessage(ch, 'delayed-q', { noAck: true });
    assert.equal(message.content.toString(), 'wait for it');
    assert.ok(Date.now() - sent >= 280, `delivered after ${Date.now() - sent} ms`);
  });

  test('direct reply-to: RPC without a reply queue', async () => {
    const server = await channel();
    await server.assertQueue('rpc-direct');
    await server.consume('rpc-direct', (message) => {
      server.sendToQueue(message!.properties.replyTo as string, Buffer.from(`re: ${message!.content.toString()}`), { correlationId: message!.properties.correlationId as string });
      server.ack(message!);
    });
    const client = await channel();
    const reply = new Promise<amqp.ConsumeMessage>((resolve) => {
      void client.consume('amq.rabbitmq.reply-to', (message) => resolve(message!), { noAck: true });
    });
    await new Promise((resolve) => setImmediate(resolve));
    client.sendToQueue('rpc-direct', Buffer.from('ping'), { replyTo: 'amq.rabbitmq.reply-to', correlationId: 'c1' });
    const answer = await reply;
    assert.equal(answer.content.toString(), 're: ping');
    assert.equal(answer.properties.correlationId, 'c1');
  });

  test('purge removes ready messages; definitions and messages survive a restart; acked messages are removed from disk', async () => {
    const ch = await channel();
    await ch.assertExchange('durable-x', 'topic', { durable: true });
    await ch.assertQueue('durable-q', { durable: true, arguments: { 'x-max-priority': 3 } });
    await ch.bindQueue('durable-q', 'durable-x', 'a.*');
    await ch.assertQueue('purged');
    await ch.assertQueue('transient-q', { durable: false });
    for (let i = 0; i < 5; i++) ch.sendToQueue('purged', Buffer.from('x'));
    for (let i = 0; i < 3; i++) ch.publish('durable-x', 'a.b', Buffer.from(`keep ${i}`), { persistent: true });
    await ch.waitForConfirms();
    assert.equal((await ch.purgeQueue('purged')).messageCount, 5);
    assert.equal((await ch.checkQueue('purged')).messageCount, 0);
    const acked = await consumeN(ch, 'durable-q', 1);
    assert.equal(acked[0]!.content.toString(), 'keep 0');
    await broker.server.core.internals.workQueues.flush();
    const topic = await broker.server.core.describeTopic('durable-q');
    assert.equal(topic.partitions[0]!.startOffset, 1, 'the acked message is below the low-water mark');
    const dataDir = broker.dataDir;
    await broker.stop();
    broker = await startAmqpBroker({ dataDir });
    const after = await channel();
    assert.equal((await after.checkQueue('durable-q')).messageCount, 2);
    after.publish('durable-x', 'a.c', Buffer.from('after restart'));
    await after.waitForConfirms();
    const rest = await consumeN(after, 'durable-q', 3);
    assert.deepEqual(rest.map((m) => m.content.toString()), ['keep 1', 'keep 2', 'after restart']);
    // The transient queue did not survive.
    await assert.rejects((await channel()).checkQueue('transient-q'), /404/);
  });
});

describe('AMQP message size', () => {
  test('bodies up to the AMQP limit are stored and delivered, mixed with small ones; one byte more is 406; a restart under a higher limit raises old queues', async () => {
    const limit = 6 * 1024 * 1024;
    let sized = await startAmqpBroker({ amqpMaxMessageBytes: 2 * 1024 * 1024 });
    try {
      const ch = await confirmChannel(sized);
      await ch.assertQueue('sized', { durable: true });
      const dataDir = sized.dataDir;
      await sized.stop();
      sized = await startAmqpBroker({ dataDir, amqpMaxMessageBytes: limit });
      const again = await confirmChannel(sized);
      const sizes = [limit, 10, 3 * 1024 * 1024, 1024 * 1024 + 1, 200];
      for (const size of sizes) again.sendToQueue('sized', Buffer.alloc(size, size % 251), { persistent: true, headers: { size } });
      await again.waitForConfirms();
      const received = await consumeN(again, 'sized', sizes.length);
      assert.deepEqual(
        received.map((message) => [message.content.byteLength, message.properties.headers!.size, message.content[message.content.byteLength - 1]]),
        sizes.map((size) => [size, size, size % 251]),
      );
      const closed = new Promise<void>((resolve) => again.once('close', () => resolve()));
      again.sendToQueue('sized', Buffer.alloc(limit + 1), {}, () => {});
      await closed;
      const failed = await confirmChannel(sized);
      assert.equal((await failed.checkQueue('sized')).messageCount, 0, 'the refused message was not stored');
    } finally {
      await sized.close();
    }
  });
});

describe('AMQP definitions', () => {
  test('exchanges, queues and bindings export in RabbitMQ\'s format and import into another broker', async () => {
    const ch = await channel();
    await ch.assertExchange('defs-x', 'topic', { durable: true, alternateExchange: 'amq.fanout' });
    await ch.assertQueue('defs-q', { durable: true, arguments: { 'x-message-ttl': 60000 } });
    await ch.bindQueue('defs-q', 'defs-x', 'a.#');
    const exported = (await broker.server.core.definitions.export()) as Record<string, Array<Record<string, unknown>>>;
    assert.deepEqual(
      exported.exchanges!.find((exchange) => exchange.name === 'defs-x'),
      { name: 'defs-x', vhost: '/', type: 'topic', durable: true, auto_delete: false, internal: false, arguments: { 'alternate-exchange': 'amq.fanout' } },
    );
    assert.deepEqual(exported.queues!.find((queue) => queue.name === 'defs-q'), { name: 'defs-q', vhost: '/', durable: true, auto_delete: false, arguments: { 'x-message-ttl': 60000 } });
    assert.ok(exported.bindings!.some((binding) => binding.source === 'defs-x' && binding.destination === 'defs-q' && binding.routing_key === 'a.#'));
    const other = await startAmqpBroker();
    try {
      await other.server.core.definitions.import(JSON.parse(JSON.stringify(exported)));
      const connection = await other.connect();
      const otherChannel = await connection.createConfirmChannel();
      otherChannel.publish('defs-x', 'a.b.c', Buffer.from('routed'));
      await otherChannel.waitForConfirms();
      assert.equal((await otherChannel.checkQueue('defs-q')).messageCount, 1);
    } finally {
      await other.close();
    }
  });
});

describe('AMQP connection features', () => {
  test('connection.blocked when a watermark is crossed, unblocked when it clears; consumers keep draining', async () => {
    const connection = await broker.connect();
    const ch = await connection.createConfirmChannel();
    await ch.assertQueue('flow');
    ch.sendToQueue('flow', Buffer.from('before'));
    await ch.waitForConfirms();
    const blocked = once(connection, 'blocked');
    await broker.server.resources.setLimits({ memoryHighWatermarkBytes: 1 });
    ch.sendToQueue('flow', Buffer.from('during'));
    const [reason] = (await blocked) as [string];
    assert.match(reason, /memory/);
    const consumer = await (await broker.connect()).createChannel();
    assert.equal((await nextMessage(consumer, 'flow', { noAck: true })).content.toString(), 'before');
    const unblocked = once(connection, 'unblocked');
    await broker.server.resources.setLimits({ memoryHighWatermarkBytes: 0 });
    await unblocked;
    await ch.waitForConfirms();
    assert.equal((await nextMessage(consumer, 'flow', { noAck: true })).content.toString(), 'during');
  });

  test('a client that stops sending heartbeats is disconnected after two intervals', async () => {
    const { connect } = await import('node:net');
    const { encodeMethodFrame, PROTOCOL_HEADER, FrameParser, decodeMethod, Field } = await import('../../src/protocols/amqp/codec/index.js');
    const socket = connect(broker.server.amqpPort, '127.0.0.1');
    await once(socket, 'connect');
    const parser = new FrameParser({ maxFrameSize: 1 << 20 });
    const methods: string[] = [];
    socket.on('data', (chunk: Buffer) => {
      parser.push(chunk);
      for (let frame = parser.next(); frame !== null; frame = parser.next()) if (frame.type === 1) methods.push(decodeMethod(frame.payload).method);
    });
    const closed = once(socket, 'close');
    socket.write(PROTOCOL_HEADER);
    const waitFor = async (name: string) => {
      while (!methods.includes(name)) await new Promise((resolve) => setTimeout(resolve, 2));
    };
    await waitFor('connection.start');
    socket.write(
      encodeMethodFrame(0, {
        method: 'connection.start-ok',
        clientProperties: new Map([['product', Field.string('raw')]]),
        mechanism: 'PLAIN',
        response: Buffer.from('\0guest\0guest'),
        locale: 'en_US',
      }),
    );
    await waitFor('connection.tune');
    socket.write(encodeMethodFrame(0, { method: 'connection.tune-ok', channelMax: 10, frameMax: 131072, heartbeat: 1 }));
    socket.write(encodeMethodFrame(0, { method: 'connection.open', virtualHost: '/' }));
    await waitFor('connection.open-ok');
    const started = Date.now();
    await closed;
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1500 && elapsed < 5000, `closed after ${elapsed} ms`);
  });
});
