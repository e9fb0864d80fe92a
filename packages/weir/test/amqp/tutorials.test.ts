/**
 * RabbitMQ's six tutorials (https://www.rabbitmq.com/tutorials), written as their amqplib versions are, against Weir.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type amqp from 'amqplib';
import { type AmqpBroker, consumeN, startAmqpBroker } from '../support/amqp.js';

let broker: AmqpBroker;
before(async () => {
  broker = await startAmqpBroker();
});
after(async () => broker.close());

describe('RabbitMQ tutorials with amqplib', () => {
  test('1. hello world: a named queue, one producer, one consumer', async () => {
    const connection = await broker.connect();
    const channel = await connection.createChannel();
    await channel.assertQueue('hello', { durable: false });
    channel.sendToQueue('hello', Buffer.from('Hello World!'));
    const [message] = await consumeN(channel, 'hello', 1, { noAck: true });
    assert.equal(message!.content.toString(), 'Hello World!');
    assert.equal(message!.fields.exchange, '');
    assert.equal(message!.fields.routingKey, 'hello');
    assert.equal(message!.fields.redelivered, false);
  });

  test('2. work queues: durable queue, persistent messages, prefetch 1, fair dispatch and manual acks', async () => {
    const connection = await broker.connect();
    const producer = await connection.createChannel();
    await producer.assertQueue('task_queue', { durable: true });
    const workers = await Promise.all([connection.createChannel(), connection.createChannel()]);
    const seen = new Map<number, string[]>();
    let total = 0;
    const done = new Promise<void>((resolve) => {
      workers.forEach((worker, index) => {
        void worker.prefetch(1);
        seen.set(index, []);
        void worker.consume('task_queue', (message) => {
          seen.get(index)!.push(message!.content.toString());
          // A slow worker: the broker must not hand it a second task before this ack (prefetch 1).
          setImmediate(() => {
            worker.ack(message!);
            if (++total === 20) resolve();
          });
        });
      });
    });
    for (let i = 0; i < 20; i++) producer.sendToQueue('task_queue', Buffer.from(`task ${i}`), { persistent: true });
    await done;
    const all = [...seen.values()].flat().sort((a, b) => Number(a.split(' ')[1]) - Number(b.split(' ')[1]));
    assert.deepEqual(all, Array.from({ length: 20 }, (_, i) => `task ${i}`));
    assert.ok(seen.get(0)!.length > 0 && seen.get(1)!.length > 0, `both workers got tasks: ${seen.get(0)!.length} / ${seen.get(1)!.length}`);
  });

  test('3. publish/subscribe: a fanout exchange and server-named exclusive queues', async () => {
    const connection = await broker.connect();
    const channel = await connection.createChannel();
    await channel.assertExchange('logs', 'fanout', { durable: false });
    const subscribers: amqp.Channel[] = [];
    const queues: string[] = [];
    for (let i = 0; i < 3; i++) {
      const subscriber = await connection.createChannel();
      const { queue } = await subscriber.assertQueue('', { exclusive: true });
      assert.match(queue, /^amq\.gen-/);
      await subscriber.bindQueue(queue, 'logs', '');
      subscribers.push(subscriber);
      queues.push(queue);
    }
    channel.publish('logs', '', Buffer.from('info: hello'));
    const received = await Promise.all(subscribers.map((subscriber, i) => consumeN(subscriber, queues[i]!, 1, { noAck: true })));
    for (const [message] of received) {
      assert.equal(message!.content.toString(), 'info: hello');
      assert.equal(message!.fields.exchange, 'logs');
    }
  });

  test('4. routing: a direct exchange with several binding keys per queue', async () => {
    const connection = await broker.connect();
    const channel = await connection.createChannel();
    await channel.assertExchange('direct_logs', 'direct', { durable: false });
    const { queue: errors } = await channel.assertQueue('', { exclusive: true });
    const { queue: all } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(errors, 'direct_logs', 'error');
    for (const severity of ['info', 'warning', 'error']) await channel.bindQueue(all, 'direct_logs', severity);
    for (const severity of ['info', 'warning', 'error', 'debug']) channel.publish('direct_logs', severity, Buffer.from(`${severity} message`));
    const [error] = await consumeN(channel, errors, 1);
    assert.equal(error!.content.toString(), 'error message');
    assert.equal(error!.fields.routingKey, 'error');
    const three = await consumeN(channel, all, 3);
    assert.deepEqual(three.map((message) => message.fields.routingKey), ['info', 'warning', 'error']);
    const check = await channel.checkQueue(errors);
    assert.equal(check.messageCount, 0, 'debug was routed nowhere');
  });

  test('5. topics: * matches one word, # zero or more', async () => {
    const connection = await broker.connect();
    const channel = await connection.createChannel();
    await channel.assertExchange('topic_logs', 'topic', { durable: false });
    const bind = async (...keys: string[]) => {
      const { queue } = await channel.assertQueue('', { exclusive: true });
      for (const key of keys) await channel.bindQueue(queue, 'topic_logs', key);
      return queue;
    };
    const q1 = await bind('*.orange.*');
    const q2 = await bind('*.*.rabbit', 'lazy.#');
    const keys = ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox', 'lazy.brown.fox', 'quick.brown.fox', 'quick.orange.new.rabbit', 'lazy.orange.new.rabbit', 'lazy'];
    const confirm = await connection.createConfirmChannel();
    for (const key of keys) confirm.publish('topic_logs', key, Buffer.from(key));
    await confirm.waitForConfirms();
    const first = await consumeN(channel, q1, 3);
    assert.deepEqual(first.map((message) => message.content.toString()), ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox']);
    const second = await consumeN(channel, q2, 5);
    assert.deepEqual(second.map((message) => message.content.toString()), ['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy.brown.fox', 'lazy.orange.new.rabbit', 'lazy']);
    assert.equal((await channel.checkQueue(q1)).messageCount, 0);
    assert.equal((await channel.checkQueue(q2)).messageCount, 0);
  });

  test('6. RPC: a callback queue, reply_to and correlation_id', async () => {
    const serverConnection = await broker.connect();
    const server = await serverConnection.createChannel();
    await server.assertQueue('rpc_queue', { durable: false });
    await server.prefetch(1);
    const fibonacci = (n: number): number => (n < 2 ? n : fibonacci(n - 1) + fibonacci(n - 2));
    await server.consume('rpc_queue', (message) => {
      const n = Number(message!.content.toString());
      server.sendToQueue(message!.properties.replyTo as string, Buffer.from(String(fibonacci(n))), { correlationId: message!.properties.correlationId as string });
      server.ack(message!);
    });
    const clientConnection = await broker.connect();
    const client = await clientConnection.createChannel();
    const { queue: callback } = await client.assertQueue('', { exclusive: true });
    const answers = new Map<string, string>();
    const all = new Promise<void>((resolve) => {
      void client.consume(
        callback,
        (message) => {
          answers.set(message!.properties.correlationId as string, message!.content.toString());
          if (answers.size === 3) resolve();
        },
        { noAck: true },
      );
    });
    for (const n of [10, 20, 30]) client.sendToQueue('rpc_queue', Buffer.from(String(n)), { correlationId: `call-${n}`, replyTo: callback });
    await all;
    assert.deepEqual(Object.fromEntries(answers), { 'call-10': '55', 'call-20': '6765', 'call-30': '832040' });
  });

  test('7. publisher confirms: one at a time, in batches, and asynchronously', async () => {
    const connection = await broker.connect();
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue('confirms', { durable: true });
    // One at a time.
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => channel.sendToQueue('confirms', Buffer.from(`single ${i}`), { persistent: true }, (error) => (error ? reject(error) : resolve())));
    }
    // A batch, then wait for all.
    for (let i = 0; i < 500; i++) channel.sendToQueue('confirms', Buffer.from(`batch ${i}`), { persistent: true });
    await channel.waitForConfirms();
    // Asynchronously, counting callbacks.
    let confirmed = 0;
    await new Promise<void>((resolve, reject) => {
      for (let i = 0; i < 1000; i++) {
        channel.sendToQueue('confirms', Buffer.from(`async ${i}`), { persistent: true }, (error) => {
          if (error) reject(error);
          else if (++confirmed === 1000) resolve();
        });
      }
    });
    assert.equal((await channel.checkQueue('confirms')).messageCount, 1505);
  });
});
