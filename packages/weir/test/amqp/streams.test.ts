/**
 * Stream queues (`x-queue-type: stream`) over AMQP 0-9-1 with unmodified amqplib, as RabbitMQ defines them: declare
 * rules, non-destructive consumers starting at each kind of x-stream-offset, prefetch, the x-stream-offset header,
 * fanout to a stream and a classic queue, retention, refusals with RabbitMQ's reply codes, and restarts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { type AmqpBroker, confirmChannel, startAmqpBroker } from '../support/amqp.js';
import { startBrokerProcess } from '../support/broker-process.js';
import { within } from '../support/within.js';

const WAIT_MS = 5000;
const HOUR_MS = 3_600_000;
const STREAM = { durable: true, arguments: { 'x-queue-type': 'stream' } };

let broker: AmqpBroker;
before(async () => {
  broker = await startAmqpBroker();
});
after(async () => broker.close());

async function publish(channel: amqp.ConfirmChannel, queue: string, bodies: string[]): Promise<void> {
  for (const body of bodies) channel.sendToQueue(queue, Buffer.from(body), { persistent: true });
  await channel.waitForConfirms();
}

/** A consumer that records its deliveries and lets a test wait for the n-th. */
class Recorder {
  readonly messages: amqp.ConsumeMessage[] = [];
  cancelledByBroker = false;
  tag = '';
  private waiters: Array<() => void> = [];

  constructor(
    private readonly channel: amqp.Channel,
    /** Ack each delivery as it arrives. */
    public ack: boolean,
  ) {}

  static async start(channel: amqp.Channel, queue: string, options: { offset?: unknown; ack?: boolean } = {}): Promise<Recorder> {
    const recorder = new Recorder(channel, options.ack ?? true);
    const args = options.offset === undefined ? {} : { 'x-stream-offset': options.offset };
    const { consumerTag } = await channel.consume(queue, (message) => recorder.received(message), { noAck: false, arguments: args });
    recorder.tag = consumerTag;
    return recorder;
  }

  private received(message: amqp.ConsumeMessage | null): void {
    if (message === null) this.cancelledByBroker = true;
    else {
      this.messages.push(message);
      if (this.ack) this.channel.ack(message);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  async until(done: () => boolean, what: string): Promise<void> {
    const reached = async () => {
      while (!done()) await new Promise<void>((resolve) => this.waiters.push(resolve));
    };
    await within(reached(), what, WAIT_MS);
  }

  async count(n: number): Promise<string[]> {
    await this.until(() => this.messages.length >= n, `${n} deliveries (got ${this.messages.length})`);
    return this.bodies();
  }

  bodies(): string[] {
    return this.messages.map((message) => message.content.toString());
  }

  offsets(): number[] {
    return this.messages.map((message) => Number(message.properties.headers!['x-stream-offset']));
  }
}

interface AmqpFailure extends Error {
  code: number;
}

/** `provoke` on a fresh channel fails with `code` and a reply text matching `text`. */
async function refused(code: number, text: RegExp, provoke: (channel: amqp.Channel) => Promise<unknown>, prefetch = 0): Promise<void> {
  const connection = await broker.connect();
  const channel = await connection.createChannel();
  channel.on('error', () => {});
  const closed = new Promise<AmqpFailure>((resolve) => (code >= 500 ? connection : channel).once('error', (error: AmqpFailure) => resolve(error)));
  if (prefetch > 0) await channel.prefetch(prefetch);
  await within(
    assert.rejects(provoke(channel)),
    `the operation to be refused with ${code}`,
    WAIT_MS,
  );
  const error = await within(closed, `a close with ${code}`, WAIT_MS);
  assert.equal(error.code, code, error.message);
  assert.match(error.message, text);
}

describe('declaring a stream queue', () => {
  test('needs durable, not exclusive, not auto-delete (406, in RabbitMQ order and words)', async () => {
    await refused(406, /invalid property 'auto-delete' for queue 'dq-1'/, (ch) => ch.assertQueue('dq-1', { ...STREAM, autoDelete: true, exclusive: true }));
    await refused(406, /invalid property 'exclusive-owner' for queue 'dq-1'/, (ch) => ch.assertQueue('dq-1', { ...STREAM, exclusive: true }));
    await refused(406, /invalid property 'non-durable' for queue 'dq-1'/, (ch) => ch.assertQueue('dq-1', { ...STREAM, durable: false }));
  });

  test('refuses the arguments of classic and quorum queues', async () => {
    const refusedArgs: Record<string, unknown> = {
      'x-message-ttl': 1000,
      'x-max-length': 10,
      'x-overflow': 'reject-publish',
      'x-dead-letter-exchange': 'dlx',
      'x-dead-letter-routing-key': 'dead',
      'x-max-priority': 5,
      'x-delivery-limit': 3,
      'x-expires': 60_000,
      'x-single-active-consumer': true,
    };
    for (const [name, value] of Object.entries(refusedArgs)) {
      const text = new RegExp(`PRECONDITION_FAILED - invalid arg '${name}' for queue 'dq-2' in vhost '/' of queue type stream`);
      await refused(406, text, (ch) => ch.assertQueue('dq-2', { durable: true, arguments: { 'x-queue-type': 'stream', [name]: value } }));
    }
  });

  test('checks x-max-age and x-stream-max-segment-size-bytes', async () => {
    for (const bad of ['7W', '0D', 'h', '1.5h', '-1D']) {
      await refused(406, /invalid arg 'x-max-age'/, (ch) => ch.assertQueue('dq-3', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': bad } }));
    }
    await refused(406, /invalid arg 'x-max-age'.*expected a string/, (ch) => ch.assertQueue('dq-3', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': 60 } }));
    await refused(406, /x-stream-max-segment-size-bytes/, (ch) => ch.assertQueue('dq-3', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-stream-max-segment-size-bytes': 4_000_000_000 } }));
    const ch = await confirmChannel(broker);
    const args = { 'x-queue-type': 'stream', 'x-max-age': '7D', 'x-max-length-bytes': 20_000_000, 'x-stream-max-segment-size-bytes': 500_000_000 };
    const declared = await ch.assertQueue('dq-3', { durable: true, arguments: args });
    assert.deepEqual([declared.queue, declared.messageCount, declared.consumerCount], ['dq-3', 0, 0]);
    const topic = await broker.server.core.describeTopic('dq-3');
    assert.equal(topic.partitions.length, 1);
    assert.equal(topic.config.retentionMs, 7 * 24 * HOUR_MS);
    assert.equal(topic.config.retentionBytes, 20_000_000);
    assert.equal(topic.config.flushPolicy, 'sync');
  });

  test('x-max-age units: Y (365 days), M (30 days), D, h, m, s', async () => {
    const ch = await confirmChannel(broker);
    const units: Array<[string, number]> = [
      ['1Y', 365 * 24 * HOUR_MS],
      ['2M', 60 * 24 * HOUR_MS],
      ['3D', 3 * 24 * HOUR_MS],
      ['4h', 4 * HOUR_MS],
      ['5m', 5 * 60_000],
      ['6s', 6000],
    ];
    for (const [age, ms] of units) {
      await ch.assertQueue(`age-${age}`, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': age } });
      assert.equal((await broker.server.core.describeTopic(`age-${age}`)).config.retentionMs, ms, age);
    }
  });

  test('re-declaring with another type or other arguments is inequivalent (406); the same declare counts messages', async () => {
    const ch = await confirmChannel(broker);
    await ch.assertQueue('dq-4', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1D' } });
    await publish(ch, 'dq-4', ['a', 'b', 'c']);
    const again = await ch.assertQueue('dq-4', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1D' } });
    assert.equal(again.messageCount, 3);
    await refused(406, /inequivalent arg 'x-queue-type' for queue 'dq-4'/, (c) => c.assertQueue('dq-4', { durable: true, arguments: { 'x-queue-type': 'classic', 'x-max-age': '1D' } }));
    await refused(406, /inequivalent arg 'x-queue-type'/, (c) => c.assertQueue('dq-4', { durable: true, arguments: { 'x-max-age': '1D' } }));
    await refused(406, /inequivalent arg 'x-max-age'/, (c) => c.assertQueue('dq-4', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '2D' } }));
    await ch.assertQueue('cq-4', { durable: true });
    await refused(406, /inequivalent arg 'x-queue-type' for queue 'cq-4'/, (c) => c.assertQueue('cq-4', STREAM));
  });
});

describe('consuming a stream queue', () => {
  test('x-stream-offset first, last, next (the default) and an offset; every consumer reads on its own', async () => {
    const ch = await confirmChannel(broker, 100);
    await ch.assertQueue('s-offsets', STREAM);
    await publish(ch, 's-offsets', ['m0', 'm1', 'm2', 'm3', 'm4']);
    const first = await Recorder.start(ch, 's-offsets', { offset: 'first' });
    const again = await Recorder.start(ch, 's-offsets', { offset: 'first' });
    const last = await Recorder.start(ch, 's-offsets', { offset: 'last' });
    const next = await Recorder.start(ch, 's-offsets');
    const explicitNext = await Recorder.start(ch, 's-offsets', { offset: 'next' });
    const fromTwo = await Recorder.start(ch, 's-offsets', { offset: 2 });
    const pastEnd = await Recorder.start(ch, 's-offsets', { offset: 1000 });
    assert.deepEqual(await first.count(5), ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.deepEqual(await again.count(5), ['m0', 'm1', 'm2', 'm3', 'm4'], 'acks of one consumer remove nothing for another');
    assert.deepEqual(await last.count(1), ['m4']);
    assert.deepEqual(await fromTwo.count(3), ['m2', 'm3', 'm4']);
    await publish(ch, 's-offsets', ['m5']);
    for (const recorder of [first, again, last, fromTwo]) await recorder.until(() => recorder.bodies().includes('m5'), 'm5');
    assert.deepEqual(await next.count(1), ['m5'], 'next: only what was published after the consume');
    assert.deepEqual(await explicitNext.count(1), ['m5']);
    assert.deepEqual(await pastEnd.count(1), ['m5'], 'an offset past the end starts at the next message');
    assert.deepEqual(first.offsets(), [0, 1, 2, 3, 4, 5], 'each delivery carries its offset as x-stream-offset');
    assert.deepEqual(fromTwo.offsets(), [2, 3, 4, 5]);
    assert.deepEqual(last.offsets(), [4, 5]);
    assert.ok(first.messages.every((message) => !message.fields.redelivered));
    assert.ok(first.messages.every((message) => message.fields.routingKey === 's-offsets' && message.fields.exchange === ''));
    const declared = await ch.checkQueue('s-offsets');
    assert.equal(declared.messageCount, 6, 'consumed messages stay in the stream');
    assert.equal(declared.consumerCount, 7);
  });

  test('prefetch bounds the deliveries in flight; acks, multiple acks, nacks and rejects return credit without redelivery', async () => {
    const ch = await confirmChannel(broker, 3);
    await ch.assertQueue('s-prefetch', STREAM);
    await publish(ch, 's-prefetch', Array.from({ length: 10 }, (_, i) => `p${i}`));
    const consumer = await Recorder.start(ch, 's-prefetch', { offset: 'first', ack: false });
    await consumer.count(3);
    // Round trips on the same channel: deliveries the broker had sent would arrive before their answers.
    for (let i = 0; i < 3; i++) await ch.checkQueue('s-prefetch');
    assert.equal(consumer.messages.length, 3, 'the consumer stops at its prefetch until it acks');
    ch.ack(consumer.messages[0]!);
    await consumer.count(4);
    for (let i = 0; i < 3; i++) await ch.checkQueue('s-prefetch');
    assert.equal(consumer.messages.length, 4, 'one ack, one more delivery');
    ch.ack(consumer.messages[3]!, true);
    await consumer.count(7);
    ch.nack(consumer.messages[4]!, false, true);
    ch.reject(consumer.messages[5]!, true);
    ch.nack(consumer.messages[6]!, false, false);
    await consumer.count(10);
    for (let i = 0; i < 3; i++) await ch.checkQueue('s-prefetch');
    assert.deepEqual(consumer.bodies(), Array.from({ length: 10 }, (_, i) => `p${i}`), 'nothing is redelivered in a stream');
    assert.ok(consumer.messages.every((message) => !message.fields.redelivered));
    ch.ackAll();
    await ch.checkQueue('s-prefetch');
  });

  test('cancel stops a consumer; deleting the queue cancels the others (basic.cancel) and deletes the topic', async () => {
    const ch = await confirmChannel(broker, 10);
    await ch.assertQueue('s-delete', STREAM);
    const cancelled = await Recorder.start(ch, 's-delete', { offset: 'first' });
    const deleted = await Recorder.start(ch, 's-delete', { offset: 'first' });
    await publish(ch, 's-delete', ['one']);
    await cancelled.count(1);
    await deleted.count(1);
    await ch.cancel(cancelled.tag);
    await publish(ch, 's-delete', ['two']);
    await deleted.count(2);
    await ch.checkQueue('s-delete');
    assert.deepEqual(cancelled.bodies(), ['one'], 'nothing after basic.cancel');
    const other = await confirmChannel(broker);
    const { messageCount } = await other.deleteQueue('s-delete');
    assert.equal(messageCount, 2);
    await deleted.until(() => deleted.cancelledByBroker, 'basic.cancel from the broker');
    await assert.rejects(broker.server.core.describeTopic('s-delete'), /does not exist/);
    await other.assertQueue('s-delete', STREAM);
    assert.equal((await other.checkQueue('s-delete')).messageCount, 0, 'a new stream of the same name starts empty');
  });

  test('a fanout exchange feeds a stream and a classic queue from one stored copy', async () => {
    const ch = await confirmChannel(broker, 50);
    await ch.assertExchange('s-fan', 'fanout', { durable: true });
    await ch.assertQueue('s-fan-stream', STREAM);
    await ch.assertQueue('s-fan-classic', { durable: true });
    await ch.bindQueue('s-fan-stream', 's-fan', '');
    await ch.bindQueue('s-fan-classic', 's-fan', '');
    for (let i = 0; i < 20; i++) ch.publish('s-fan', 'key', Buffer.from(`f${i}`), { persistent: true, headers: { n: i } });
    await ch.waitForConfirms();
    const stream = await Recorder.start(ch, 's-fan-stream', { offset: 'first' });
    const classic = await Recorder.start(ch, 's-fan-classic');
    const expected = Array.from({ length: 20 }, (_, i) => `f${i}`);
    assert.deepEqual(await stream.count(20), expected);
    assert.deepEqual(await classic.count(20), expected);
    assert.deepEqual(
      stream.messages.map((message) => [message.fields.exchange, message.fields.routingKey, message.properties.headers!.n]),
      expected.map((_, i) => ['s-fan', 'key', i]),
    );
    await ch.cancel(classic.tag);
    await ch.checkQueue('s-fan-classic');
    // Acked in the classic queue, still in the stream.
    assert.equal((await ch.checkQueue('s-fan-stream')).messageCount, 20);
  });

  test('retention by x-max-length-bytes; a reader behind the start goes on from the first retained message', async () => {
    const ch = await confirmChannel(broker, 1000);
    await ch.assertQueue('s-bytes', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-length-bytes': 100_000 } });
    // Ten appends of ten 30 kB messages: a reader's fetch holds at most a batch or two of them.
    const body = 'x'.repeat(30_000);
    for (let round = 0; round < 10; round++) await publish(ch, 's-bytes', Array.from({ length: 10 }, () => body));
    await ch.prefetch(5);
    const slow = await Recorder.start(ch, 's-bytes', { offset: 'first', ack: false });
    await slow.count(5);
    await ch.prefetch(1000);
    await broker.server.enforceRetention();
    const { messageCount } = await ch.checkQueue('s-bytes');
    assert.ok(messageCount >= 1 && messageCount <= 4, `about 100 kB of 30 kB messages are kept, not ${messageCount}`);
    const fresh = await Recorder.start(ch, 's-bytes', { offset: 'first' });
    await fresh.count(messageCount);
    assert.deepEqual(fresh.offsets(), Array.from({ length: messageCount }, (_, i) => 100 - messageCount + i), 'the newest messages are kept');
    slow.ack = true;
    for (const message of slow.messages) ch.ack(message);
    await slow.until(() => slow.offsets().at(-1) === 99, 'the slow reader to reach the end');
    const offsets = slow.offsets();
    assert.ok(offsets.every((offset, i) => i === 0 || offset > offsets[i - 1]!), `offsets only grow: ${offsets.join(',')}`);
    assert.ok(offsets.length < 100, 'the slow reader skipped what retention removed');

  });

  test('the stream is a topic a Weir client can read', async () => {
    const ch = await confirmChannel(broker);
    await ch.assertQueue('s-native', STREAM);
    await publish(ch, 's-native', ['seen natively']);
    const fetched = await broker.server.core.fetch({ topic: 's-native', partition: 0, offset: 0, maxBytes: 65536, minBytes: 1, maxWaitMs: 0 });
    assert.equal(fetched.endOffset, 1);
    assert.equal(fetched.batches.length, 1);
  });
});

describe('stream queues and time', () => {
  /**
   * A broker of its own whose wall clock starts two hours back: messages published before `skew` returns to 0 are
   * stored "two hours ago" (store times never go back, so this needs a fresh store).
   */
  let skew = -2 * HOUR_MS;
  let timed: AmqpBroker;
  before(async () => {
    timed = await startAmqpBroker({ clock: { now: () => Date.now() + skew, monotonic: () => performance.now() } });
  });
  after(async () => timed.close());

  test('x-stream-offset as a timestamp and as an interval; retention by x-max-age', async () => {
    const ch = await confirmChannel(timed, 100);
    await ch.assertQueue('s-time', STREAM);
    await ch.assertQueue('s-age', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1h' } });
    await publish(ch, 's-time', ['old-1', 'old-2']);
    await publish(ch, 's-age', ['expired-1', 'expired-2']);
    skew = 0;
    await publish(ch, 's-time', ['new-1', 'new-2']);
    await publish(ch, 's-age', ['recent']);

    const hourAgo = Math.floor((Date.now() - HOUR_MS) / 1000);
    const byTimestamp = await Recorder.start(ch, 's-time', { offset: { '!': 'timestamp', value: hourAgo } });
    const byInterval = await Recorder.start(ch, 's-time', { offset: '1h' });
    const wide = await Recorder.start(ch, 's-time', { offset: '3h' });
    assert.deepEqual(await byTimestamp.count(2), ['new-1', 'new-2']);
    assert.deepEqual(await byInterval.count(2), ['new-1', 'new-2']);
    assert.deepEqual(await wide.count(4), ['old-1', 'old-2', 'new-1', 'new-2']);
    assert.deepEqual(byInterval.offsets(), [2, 3]);

    assert.equal((await ch.checkQueue('s-age')).messageCount, 3);
    await timed.server.enforceRetention();
    assert.equal((await ch.checkQueue('s-age')).messageCount, 1, 'messages older than x-max-age are gone');
    assert.equal((await ch.checkQueue('s-time')).messageCount, 4, 'a stream without limits keeps everything');
    const reader = await Recorder.start(ch, 's-age', { offset: 'first' });
    assert.deepEqual(await reader.count(1), ['recent']);
    assert.deepEqual(reader.offsets(), [2]);
  });
});

describe('what stream queues refuse', () => {
  const declare = (ch: amqp.Channel, name: string) => ch.assertQueue(name, STREAM);

  test('basic.consume with noAck: 540 NOT_IMPLEMENTED (connection)', async () => {
    await refused(540, /NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues/, async (ch) => {
      await declare(ch, 'r-stream');
      return ch.consume('r-stream', () => {}, { noAck: true });
    }, 10);
  });

  test('basic.consume without a prefetch: 406 PRECONDITION_FAILED', async () => {
    await refused(406, /consumer prefetch count is not set for stream queue 'r-stream'/, async (ch) => {
      await declare(ch, 'r-stream');
      return ch.consume('r-stream', () => {});
    });
  });

  test('basic.consume under a global qos: 406 PRECONDITION_FAILED', async () => {
    await refused(406, /does not support global qos/, async (ch) => {
      await declare(ch, 'r-stream');
      await ch.prefetch(10, false);
      await ch.prefetch(10, true);
      return ch.consume('r-stream', () => {});
    });
  });

  test('an invalid x-stream-offset: 406 PRECONDITION_FAILED', async () => {
    for (const offset of ['sometime', '5W', -1, true]) {
      await refused(406, /invalid arg 'x-stream-offset'/, async (ch) => {
        await declare(ch, 'r-stream');
        return ch.consume('r-stream', () => {}, { arguments: { 'x-stream-offset': offset } });
      }, 10);
    }
  });

  test('basic.get: 540 NOT_IMPLEMENTED (connection)', async () => {
    await refused(540, /basic\.get not supported by stream queues/, async (ch) => {
      await declare(ch, 'r-stream');
      return ch.get('r-stream');
    });
  });

  test('queue.purge: 540 NOT_IMPLEMENTED (connection), as RabbitMQ answers', async () => {
    await refused(540, /queue\.purge not supported by stream queues/, async (ch) => {
      await declare(ch, 'r-stream');
      return ch.purgeQueue('r-stream');
    });
  });
});

describe('stream queues across restarts', () => {
  test('a clean restart keeps the definition, its bindings and messages', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'weir-stream-restart-'));
    try {
      let node = await startAmqpBroker({ dataDir });
      let ch = await (await node.connect()).createConfirmChannel();
      await ch.assertExchange('restart-x', 'direct', { durable: true });
      await ch.assertQueue('restart-stream', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '7D' } });
      await ch.bindQueue('restart-stream', 'restart-x', 'k');
      await publish(ch, 'restart-stream', ['before-1', 'before-2']);
      await node.stop();
      node = await startAmqpBroker({ dataDir });
      try {
        ch = await (await node.connect()).createConfirmChannel();
        await ch.prefetch(10);
        const declared = await ch.assertQueue('restart-stream', { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '7D' } });
        assert.equal(declared.messageCount, 2);
        ch.publish('restart-x', 'k', Buffer.from('after'));
        await ch.waitForConfirms();
        const reader = await Recorder.start(ch, 'restart-stream', { offset: 'first' });
        assert.deepEqual(await reader.count(3), ['before-1', 'before-2', 'after']);
      } finally {
        await node.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('kill -9: every confirmed message is read back with x-stream-offset first', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'weir-stream-crash-'));
    try {
      let node = await startBrokerProcess(dataDir);
      const url = () => `amqp://guest:guest@127.0.0.1:${node.amqpPort}?heartbeat=0`;
      try {
        const model = await amqp.connect(url());
        model.on('error', () => {});
        const ch = await model.createConfirmChannel();
        ch.on('error', () => {});
        await ch.assertQueue('crash-stream', STREAM);
        await publish(ch, 'crash-stream', Array.from({ length: 500 }, (_, i) => `c${i}`));
        await node.kill();
        node = await startBrokerProcess(dataDir);
        const after = await amqp.connect(url());
        after.on('error', () => {});
        const reader = await after.createChannel();
        await reader.prefetch(100);
        const recorder = await Recorder.start(reader, 'crash-stream', { offset: 'first' });
        assert.deepEqual(await recorder.count(500), Array.from({ length: 500 }, (_, i) => `c${i}`));
        await after.close();
      } finally {
        await node.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
