import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { encodeRequest, errorCodeOf } from 'weir-protocol';
import { MAX_REFUSING_CONNECTIONS } from '../../src/net/tcp-listener.js';
import { RawNativeClient } from '../support/native-raw.js';
import { within } from '../support/within.js';
import { message, startBroker, topicConfig, until } from './limits-support.js';

/** The native protocol's limits against abuse, each against a real broker with small limits so the tests are fast. */
describe('limits: native protocol', { timeout: 60_000 }, () => {
  it('limits: a connection over maxConnections gets LIMIT_REACHED and is closed; a freed slot admits the next', async () => {
    const broker = await startBroker({ maxConnections: 2 });
    try {
      const first = await RawNativeClient.open(broker.server.port);
      const second = await RawNativeClient.open(broker.server.port);
      await first.handshake();
      await second.handshake();
      const third = await RawNativeClient.open(broker.server.port);
      const refused = await third.sendHandshake();
      assert.equal(refused.errorCode, errorCodeOf('LIMIT_REACHED'));
      assert.match(refused.errorMessage ?? '', /connection limit \(maxConnections 2\)/);
      await third.closed;
      first.socket.end();
      await first.closed;
      await until(() => broker.logger.entries.filter((entry) => entry.message === 'connection closed').length >= 2);
      const fourth = await RawNativeClient.open(broker.server.port);
      await fourth.handshake();
      second.socket.destroy();
      fourth.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a connection that sends nothing, or its Handshake byte by byte, is closed after handshakeTimeoutMs', async () => {
    const broker = await startBroker({ handshakeTimeoutMs: 300 });
    try {
      const silent = await RawNativeClient.open(broker.server.port);
      const started = performance.now();
      await silent.closed;
      assert.ok(performance.now() - started >= 250, 'closed before the timeout');

      const trickle = await RawNativeClient.open(broker.server.port);
      const handshake = encodeRequest('Handshake', 1, { minVersion: 1, maxVersion: 1, clientId: 'slow'.repeat(50), clientVersion: '0', maxFrameBytes: 0, heartbeatMs: 0 });
      let at = 0;
      // One byte every 20 ms: the whole Handshake would take seconds, far past the timeout.
      const timer = setInterval(() => {
        if (at < handshake.length && !trickle.socket.destroyed) trickle.socket.write(handshake.subarray(at, ++at));
      }, 20);
      await trickle.closed;
      clearInterval(timer);
      assert.ok(at < handshake.length, 'the handshake completed before the connection was closed');
      await broker.logger.next(/handshake timed out/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a handshaken connection silent for 3 heartbeat intervals is closed (idle timeout)', async () => {
    const broker = await startBroker({ heartbeatMs: 200 });
    try {
      const client = await RawNativeClient.open(broker.server.port);
      await client.handshake();
      const started = performance.now();
      await client.closed;
      assert.ok(performance.now() - started >= 550, 'closed before 3 intervals of silence');
      await broker.logger.next(/closing silent connection/);
    } finally {
      await broker.close();
    }
  });

  it('limits: a frame declared over maxFrameBytes closes the connection before its body is sent', async () => {
    const broker = await startBroker({ maxFrameBytes: 4096 });
    try {
      const client = await RawNativeClient.open(broker.server.port);
      await client.handshake();
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32LE(1 << 30); // a 1 GiB frame: nothing of it follows
      client.socket.write(prefix);
      await client.closed;
      const entry = await broker.logger.next(/closing connection after bad input/);
      assert.equal((entry.fields as { code: string }).code, 'FRAME_TOO_LARGE');
    } finally {
      await broker.close();
    }
  });

  it("limits: a message over its topic's maxMessageBytes is refused with MESSAGE_TOO_LARGE", async () => {
    const broker = await startBroker({});
    try {
      const client = await RawNativeClient.open(broker.server.port);
      await client.handshake();
      assert.equal((await client.request('CreateTopic', { name: 'small', partitions: 1, config: { ...topicConfig, maxMessageBytes: 1024 } })).errorCode, 0);
      const produce = { topic: 'small', partition: 0, acks: 1, producerId: -1, producerEpoch: -1, baseSequence: -1 };
      assert.equal((await client.request('Produce', { ...produce, messages: [message(Buffer.alloc(512))] })).errorCode, 0);
      const refused = await client.request('Produce', { ...produce, messages: [message(Buffer.alloc(4096))] });
      assert.equal(refused.errorCode, errorCodeOf('MESSAGE_TOO_LARGE'));
      client.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: CreateTopic past maxTopics is refused with LIMIT_REACHED', async () => {
    const broker = await startBroker({ maxTopics: 2 });
    try {
      const client = await RawNativeClient.open(broker.server.port);
      await client.handshake();
      const create = (name: string) => client.request('CreateTopic', { name, partitions: 1, config: topicConfig });
      const answers = await Promise.all([create('a'), create('b'), create('c')]);
      assert.deepEqual(answers.map((answer) => answer.errorCode).sort(), [0, 0, errorCodeOf('LIMIT_REACHED')]);
      assert.match(answers.find((answer) => answer.errorCode !== 0)!.errorMessage ?? '', /topic limit \(maxTopics 2\)/);
      assert.equal((await broker.server.core.listTopics()).filter((topic) => !topic.name.startsWith('__')).length, 2);
      client.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a subscriber that never reads stops receiving deliveries, and gets them all once it reads again', async () => {
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 64 * 1024 * 1024 });
    try {
      const producer = await RawNativeClient.open(broker.server.port);
      await producer.handshake();
      await producer.request('CreateTopic', { name: 'flood', partitions: 1, config: topicConfig });
      // 24 MiB: more than the loopback socket buffers of both ends can absorb, so the broker's own buffer fills.
      const total = 2400;
      for (let batch = 0; batch < total / 100; batch++) {
        const answer = await producer.request('Produce', {
          topic: 'flood', partition: 0, acks: 1, producerId: -1, producerEpoch: -1, baseSequence: -1,
          messages: Array.from({ length: 100 }, () => message(Buffer.alloc(10 * 1024, batch))),
        });
        assert.equal(answer.errorCode, 0);
      }
      const consumer = await RawNativeClient.open(broker.server.port);
      await consumer.handshake();
      const subscribed = await consumer.request('Subscribe', { group: 'g', topic: 'flood', mode: 'shared', consumerId: '', prefetch: 0, priority: 0, filterKind: '', filter: '', settings: '' });
      assert.equal(subscribed.errorCode, 0);
      consumer.socket.pause(); // from here on the client reads nothing
      const inflight = async (): Promise<number> => (await broker.server.core.describeSharedGroup('g')).topics[0]!.stats.inflight;
      // Deliveries stop once the socket's buffers are full: the count stops moving, well short of everything.
      let last = -1;
      await until(async () => {
        const now = await inflight();
        const settled = now > 0 && now === last;
        last = now;
        return settled;
      }, 300);
      assert.ok(last < total, `all ${total} messages were pushed to a client that reads nothing`);
      consumer.socket.resume();
      await until(() => consumer.deliveries === total);
      assert.equal(await inflight(), total);
      producer.socket.destroy();
      consumer.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a client that pipelines requests and never reads is closed once its unsent output passes the cap', async () => {
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 1024 * 1024 });
    try {
      const client = await RawNativeClient.open(broker.server.port);
      await client.handshake();
      await client.request('CreateTopic', { name: 'big', partitions: 1, config: topicConfig });
      for (let batch = 0; batch < 10; batch++) {
        await client.request('Produce', {
          topic: 'big', partition: 0, acks: 1, producerId: -1, producerEpoch: -1, baseSequence: -1,
          messages: Array.from({ length: 50 }, () => message(Buffer.alloc(10 * 1024, batch))),
        });
      }
      client.socket.pause();
      // 40 fetches of up to 4 MiB each in one write: 160 MiB of answers for a client that reads none of them.
      const fetch = (): Buffer => client.encode('Fetch', { topic: 'big', partition: 0, offset: 0, maxBytes: 4 << 20, minBytes: 0, maxWaitMs: 0 });
      client.socket.write(Buffer.concat(Array.from({ length: 40 }, fetch)));
      const entry = await broker.logger.next(/not reading its socket/);
      assert.ok((entry.fields as { unsentBytes: number }).unsentBytes > 1024 * 1024);
      client.socket.resume();
      await client.closed;
    } finally {
      await broker.close();
    }
  });

  it('limits: past maxConnections plus the refusal backlog, sockets are closed at accept', async () => {
    // A handshake timeout longer than the test: a socket that closes here was closed at accept, not timed out.
    const broker = await startBroker({ maxConnections: 1, handshakeTimeoutMs: 120_000 });
    try {
      const sockets = Array.from({ length: 80 }, () => connect({ host: '127.0.0.1', port: broker.server.port }).on('error', () => {}));
      // 1 served and 64 waiting to be told they are refused stay open; every socket past those is closed at once.
      const dropped = sockets.length - 1 - MAX_REFUSING_CONNECTIONS;
      let closed = 0;
      const allDropped = new Promise<void>((resolve) => {
        for (const socket of sockets) {
          socket.once('close', () => {
            if (++closed === dropped) resolve();
          });
        }
      });
      await within(allDropped, `${dropped} sockets to be closed at accept`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(closed, dropped, 'sockets within the refusal backlog were closed too');
      assert.equal(broker.logger.entries.filter((entry) => /dropped at accept/.test(entry.message)).length, dropped);
      for (const socket of sockets) socket.destroy();
    } finally {
      await broker.close();
    }
  });
});
