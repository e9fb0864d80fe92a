/**
 * A message routed to several queues is stored once in the commit log, and every queue delivers it on its own.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type amqp from 'amqplib';
import { type AmqpBroker, confirmChannel, consumeN, startAmqpBroker } from '../support/amqp.js';

let broker: AmqpBroker;
before(async () => {
  broker = await startAmqpBroker();
});
after(async () => broker.close());

const channel = (): Promise<amqp.ConfirmChannel> => confirmChannel(broker);

/** Bytes in the commit-log segments: durable queues confirm only after their batches are in these files. */
async function commitLogBytes(): Promise<number> {
  const directory = join(broker.dataDir, 'commitlog');
  let total = 0;
  for (const name of await readdir(directory)) total += (await stat(join(directory, name))).size;
  return total;
}

/** Publishes and resolves with whether the broker acked (true) or nacked (false) the message. */
function confirmed(ch: amqp.ConfirmChannel, exchange: string, routingKey: string, body: string): Promise<boolean> {
  return new Promise((resolve) => ch.publish(exchange, routingKey, Buffer.from(body), { persistent: true }, (error) => resolve(error === null || error === undefined)));
}

describe('AMQP fanout stores a message once', () => {
  test('a fanout to 4 queues grows the commit log by about one copy, and each queue delivers and acks it on its own', async () => {
    const ch = await channel();
    await ch.assertExchange('fan4', 'fanout', { durable: true });
    const queues = ['fan4-a', 'fan4-b', 'fan4-c', 'fan4-d'];
    for (const queue of queues) {
      await ch.assertQueue(queue, { durable: true });
      await ch.bindQueue(queue, 'fan4', '');
    }
    const count = 50;
    const body = 'x'.repeat(2000);
    const before = await commitLogBytes();
    for (let index = 0; index < count; index++) ch.publish('fan4', '', Buffer.from(`${index}:${body}`), { persistent: true });
    await ch.waitForConfirms();
    const grown = (await commitLogBytes()) - before;
    const oneCopy = count * (body.length + 3);
    assert.ok(grown > oneCopy && grown < oneCopy * 1.25, `the log grew by ${grown} bytes for ${oneCopy} bytes of bodies routed to 4 queues`);

    // Each queue hands out every message in order, with its own delivery tags and acks.
    const first = await consumeN(ch, queues[0]!, count);
    assert.deepEqual(first.map((message) => Number(message.content.toString().split(':')[0])), Array.from({ length: count }, (_, index) => index));
    assert.equal((await ch.checkQueue(queues[1]!)).messageCount, count, 'acks in one queue leave the others untouched');
    for (const queue of queues.slice(1)) {
      const received = await consumeN(ch, queue, count);
      assert.deepEqual(received.map((message) => message.content.toString()), first.map((message) => message.content.toString()), queue);
    }
    for (const queue of queues) {
      for (let turn = 0; turn < 100 && (await ch.checkQueue(queue)).messageCount > 0; turn++) await new Promise((resolve) => setImmediate(resolve));
      assert.equal((await ch.checkQueue(queue)).messageCount, 0, `${queue} is empty once acked`);
    }
  });

  test('publishes routed to different sets of queues keep each queue in publish order', async () => {
    const ch = await channel();
    await ch.assertExchange('mixed', 'topic', { durable: true });
    const bindings: Record<string, string[]> = { 'mixed-x': ['x.#', 'all.#'], 'mixed-y': ['y.#', 'all.#'], 'mixed-z': ['*.z', 'all.#'] };
    for (const [queue, keys] of Object.entries(bindings)) {
      await ch.assertQueue(queue, { durable: true });
      for (const key of keys) await ch.bindQueue(queue, 'mixed', key);
    }
    const keys = ['all.1', 'x.z', 'y.1', 'all.2', 'x.1', 'y.z', 'all.3', 'x.z', 'all.4', 'y.1'];
    const expected: Record<string, string[]> = { 'mixed-x': [], 'mixed-y': [], 'mixed-z': [] };
    keys.forEach((key, index) => {
      const body = `${index}:${key}`;
      if (key.startsWith('x.') || key.startsWith('all.')) expected['mixed-x']!.push(body);
      if (key.startsWith('y.') || key.startsWith('all.')) expected['mixed-y']!.push(body);
      if (key.endsWith('.z') || key.startsWith('all.')) expected['mixed-z']!.push(body);
      ch.publish('mixed', key, Buffer.from(body), { persistent: true });
    });
    await ch.waitForConfirms();
    for (const [queue, bodies] of Object.entries(expected)) {
      const received = await consumeN(ch, queue, bodies.length);
      assert.deepEqual(received.map((message) => message.content.toString()), bodies, queue);
    }
  });

  test('a full reject-publish queue drops out of a fanout: the others get the message, the publisher gets a nack', async () => {
    const ch = await channel();
    await ch.assertExchange('fan-limited', 'fanout', { durable: true });
    await ch.assertQueue('fan-open', { durable: true });
    await ch.assertQueue('fan-full', { durable: true, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    await ch.bindQueue('fan-open', 'fan-limited', '');
    await ch.bindQueue('fan-full', 'fan-limited', '');
    assert.equal(await confirmed(ch, 'fan-limited', '', 'first'), true);
    assert.equal(await confirmed(ch, 'fan-limited', '', 'second'), false, 'one of its queues refused it');
    const open = await consumeN(ch, 'fan-open', 2);
    assert.deepEqual(open.map((message) => message.content.toString()), ['first', 'second']);
    const full = await consumeN(ch, 'fan-full', 1);
    assert.deepEqual(full.map((message) => message.content.toString()), ['first']);
    assert.equal((await ch.checkQueue('fan-full')).messageCount, 0);
  });

  test('queues with different x-max-priority each get the priority their own mapping gives', async () => {
    const ch = await channel();
    await ch.assertExchange('fan-priority', 'fanout', { durable: true });
    await ch.assertQueue('prio-10', { durable: true, arguments: { 'x-max-priority': 10 } });
    await ch.assertQueue('prio-2', { durable: true, arguments: { 'x-max-priority': 2 } });
    await ch.bindQueue('prio-10', 'fan-priority', '');
    await ch.bindQueue('prio-2', 'fan-priority', '');
    for (const [body, priority] of [['low', 1], ['mid', 2], ['high', 9]] as const) ch.publish('fan-priority', '', Buffer.from(body), { persistent: true, priority });
    await ch.waitForConfirms();
    const ten = await consumeN(ch, 'prio-10', 3);
    assert.deepEqual(ten.map((message) => message.content.toString()), ['high', 'mid', 'low']);
    // With x-max-priority 2, priorities 2 and 9 are both the highest: they keep their publish order.
    const two = await consumeN(ch, 'prio-2', 3);
    assert.deepEqual(two.map((message) => message.content.toString()), ['mid', 'high', 'low']);
  });
});
