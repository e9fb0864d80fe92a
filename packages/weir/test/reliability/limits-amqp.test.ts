import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFrame, encodeMethodFrame, FrameType, PROTOCOL_HEADER } from '../../src/protocols/amqp/codec/index.js';
import { type AmqpBroker, confirmChannel } from '../support/amqp.js';
import { RawAmqp } from '../support/amqp-raw.js';
import { startBroker, until } from './limits-support.js';

function connectionError(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

/** Declares `queue` and publishes `total` messages of 10 KiB to it, confirmed. */
async function fillQueue(broker: AmqpBroker, queue: string, total: number): Promise<void> {
  const channel = await confirmChannel(broker);
  await channel.assertQueue(queue);
  for (let n = 0; n < total; n++) channel.sendToQueue(queue, Buffer.alloc(10 * 1024, n));
  await channel.waitForConfirms();
}

/** AMQP 0-9-1 limits against abuse, each against a real broker with small limits so the tests are fast. */
describe('limits: AMQP 0-9-1', { timeout: 60_000 }, () => {
  it('limits: a connection over maxConnections is refused after start-ok with 530 NOT_ALLOWED and a reason', async () => {
    const broker = await startBroker({ maxConnections: 2 });
    try {
      const first = await broker.connect();
      await broker.connect();
      await assert.rejects(broker.connect(), (error) => /530/.test(connectionError(error)) && /connection limit \(maxConnections 2\)/.test(connectionError(error)));
      await first.close();
      // The slot frees once the broker has seen the socket close.
      await until(async () => (await broker.connect().catch(() => null)) !== null);
    } finally {
      await broker.close();
    }
  });

  it('limits: channel-max is negotiated, and channel.open above it closes the connection with 530', async () => {
    const broker = await startBroker({ amqpChannelMax: 3 });
    try {
      const client = await RawAmqp.open(broker.server.amqpPort);
      const tune = await client.handshake();
      assert.equal(tune.channelMax, 3);
      await client.openChannel(3);
      client.method(4, { method: 'channel.open' });
      await client.expectConnectionClose(530, /channel_max 3/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a frame over frame-max closes the connection with 501 FRAME_ERROR', async () => {
    const broker = await startBroker({ amqpFrameMax: 4096 });
    try {
      const client = await RawAmqp.open(broker.server.amqpPort);
      await client.handshake();
      await client.openChannel(1);
      client.send(encodeFrame(FrameType.Body, 1, Buffer.alloc(64 * 1024)));
      await client.expectConnectionClose(501, /65536 payload bytes on channel 1 is over frame-max/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a message over amqpMaxMessageBytes closes the channel with 406 PRECONDITION_FAILED', async () => {
    const broker = await startBroker({ amqpMaxMessageBytes: 1000 });
    try {
      const channel = await (await broker.connect()).createChannel();
      channel.on('error', () => {});
      await channel.assertQueue('sized');
      const closed = new Promise<void>((resolve) => channel.once('close', resolve));
      const errored = new Promise<Error & { code?: number }>((resolve) => channel.once('error', resolve));
      channel.sendToQueue('sized', Buffer.alloc(2000));
      const error = await errored;
      await closed;
      assert.equal(error.code, 406);
      assert.match(error.message, /larger than configured max size 1000/);
    } finally {
      await broker.close();
    }
  });

  it('limits: queue.declare past maxQueuesPerVhost fails with 406 naming the limit; existing queues still declare', async () => {
    const broker = await startBroker({ maxQueuesPerVhost: 2 });
    try {
      const connection = await broker.connect();
      const channel = await connection.createChannel();
      await channel.assertQueue('one');
      await channel.assertQueue('two');
      channel.on('error', () => {});
      await assert.rejects(channel.assertQueue('three'), (error: Error & { code?: number }) => error.code === 406 && /queue limit in vhost '\/' \(2\) is reached/.test(error.message));
      const again = await connection.createChannel();
      assert.equal((await again.assertQueue('one')).queue, 'one');
      // Concurrent declarations cannot overshoot the limit either.
      await again.deleteQueue('two');
      const racers = await Promise.all([1, 2, 3].map(() => connection.createChannel()));
      for (const racer of racers) racer.on('error', () => {});
      const results = await Promise.allSettled(racers.map((racer, index) => racer.assertQueue(`racer-${index}`)));
      assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    } finally {
      await broker.close();
    }
  });

  it('limits: a client that trickles the protocol header byte by byte, or sends nothing, is closed after handshakeTimeoutMs', async () => {
    const broker = await startBroker({ handshakeTimeoutMs: 300 });
    try {
      const silent = await RawAmqp.open(broker.server.amqpPort);
      const started = performance.now();
      await silent.closed;
      assert.ok(performance.now() - started >= 250);
      const trickle = await RawAmqp.open(broker.server.amqpPort);
      let at = 0;
      // "AMQP\0\0\x09\x01" at one byte per 100 ms would take 800 ms; the limit is 300.
      const timer = setInterval(() => {
        if (at < PROTOCOL_HEADER.length && !trickle.socket.destroyed) trickle.socket.write(PROTOCOL_HEADER.subarray(at, ++at));
      }, 100);
      await trickle.closed;
      clearInterval(timer);
      assert.ok(at < PROTOCOL_HEADER.length);
      await broker.logger.next(/amqp handshake timed out/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a connection that negotiated heartbeats and then goes silent is closed after two intervals', async () => {
    const broker = await startBroker({ amqpHeartbeatSeconds: 1 });
    try {
      const client = await RawAmqp.open(broker.server.amqpPort);
      await client.handshake({ heartbeat: 1 });
      const started = performance.now();
      await client.closed;
      assert.ok(performance.now() - started >= 1500, 'closed before two heartbeat intervals');
      await broker.logger.next(/missed heartbeats/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a no-ack consumer that stops reading is held at the high-water mark, not closed, and gets everything later', async () => {
    // The cap is far below what the queue holds: writing it all would close the connection.
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 1024 * 1024 });
    try {
      const total = 2400; // 24 MiB: more than the loopback socket buffers of both ends absorb
      await fillQueue(broker, 'flood', total);
      const { group, topic } = broker.server.vhosts.get('/')!.queue('flood', '').definition;
      // No-ack deliveries are settled as they are written to the socket: what is unsettled was held back.
      const unsettled = (): number => {
        const stats = broker.server.core.sharedGroupStats(group, topic)!;
        return stats.ready + stats.unread + stats.waiting + stats.inflight;
      };
      const consumer = await RawAmqp.open(broker.server.amqpPort);
      await consumer.handshake();
      await consumer.openChannel(1);
      consumer.countDeliveries();
      consumer.method(1, { method: 'basic.consume', queue: 'flood', consumerTag: 'c', noLocal: false, noAck: true, exclusive: false, noWait: false, arguments: new Map() });
      await consumer.expect('basic.consume-ok', 1);
      consumer.socket.pause();
      // Whatever the queue hands the consumer, the socket gets no more than it can hold: the connection stays.
      let last = -1;
      await until(() => {
        const now = unsettled();
        const settled = now === last;
        last = now;
        return settled;
      }, 300);
      assert.ok(last > 0, `all ${total} messages were written to a consumer that reads nothing`);
      assert.equal(broker.logger.entries.filter((entry) => /not reading its socket/.test(entry.message)).length, 0);
      consumer.socket.resume();
      await until(() => consumer.deliveries === total);
      assert.equal(unsettled(), 0);
      assert.equal(broker.logger.entries.filter((entry) => /not reading its socket/.test(entry.message)).length, 0);
      consumer.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a client that pipelines requests and never reads the answers is closed once its unsent output passes the cap', async () => {
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 1024 * 1024 });
    try {
      const total = 2400;
      await fillQueue(broker, 'gets', total);
      const client = await RawAmqp.open(broker.server.amqpPort);
      await client.handshake();
      await client.openChannel(1);
      client.socket.pause();
      // 2,400 basic.get of 20-odd bytes each ask for 24 MiB of answers, none of which is read.
      const get = encodeMethodFrame(1, { method: 'basic.get', queue: 'gets', noAck: false });
      client.send(...Array.from({ length: total }, () => get));
      const entry = await broker.logger.next(/not reading its socket/);
      assert.ok((entry.fields as { unsentBytes: number }).unsentBytes > 1024 * 1024);
      client.socket.resume();
      await client.closed;
    } finally {
      await broker.close();
    }
  });
});
