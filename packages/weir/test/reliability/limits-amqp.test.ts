import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import amqp from 'amqplib';
import {
  type AmqpMethod,
  decodeMethod,
  encodeFrame,
  encodeMethodFrame,
  FrameParser,
  FrameType,
  PROTOCOL_HEADER,
} from '../../src/protocols/amqp/codec/index.js';
import { startBroker, until } from './limits-support.js';

/** A bare AMQP 0-9-1 speaker: handshakes by hand, then sends what a hostile or broken client would. */
class RawAmqpClient {
  private readonly parser = new FrameParser({ maxFrameSize: 1 << 20 });
  private readonly methods: Array<{ channel: number; method: AmqpMethod }> = [];
  private readonly counts = new Map<string, number>();
  private waiter: (() => void) | null = null;
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      for (let frame = this.parser.next(); frame !== null; frame = this.parser.next()) {
        if (frame.type !== FrameType.Method) continue;
        const method = decodeMethod(frame.payload);
        this.counts.set(method.method, (this.counts.get(method.method) ?? 0) + 1);
        // Deliveries are only counted, so a test can take millions without keeping them.
        if (method.method !== 'basic.deliver') this.methods.push({ channel: frame.channel, method });
      }
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = once(socket, 'close').then(() => undefined);
  }

  static async open(port: number): Promise<RawAmqpClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawAmqpClient(socket);
  }

  /** How many methods named `name` arrived. */
  received(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  send(channel: number, method: AmqpMethod): void {
    this.socket.write(encodeMethodFrame(channel, method));
  }

  /** The next method received named `name` (earlier ones of other names are skipped). */
  async expect<N extends AmqpMethod['method']>(name: N): Promise<Extract<AmqpMethod, { method: N }>> {
    for (;;) {
      const index = this.methods.findIndex((entry) => entry.method.method === name);
      if (index >= 0) return this.methods.splice(0, index + 1)[index]!.method as Extract<AmqpMethod, { method: N }>;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** Header, start-ok (PLAIN guest/guest), tune-ok and open: a running connection. */
  async handshake(tune: { channelMax?: number; frameMax?: number; heartbeat?: number } = {}): Promise<void> {
    this.socket.write(PROTOCOL_HEADER);
    await this.expect('connection.start');
    this.send(0, { method: 'connection.start-ok', clientProperties: new Map(), mechanism: 'PLAIN', response: Buffer.from('\u0000guest\u0000guest'), locale: 'en_US' });
    const offered = await this.expect('connection.tune');
    this.send(0, { method: 'connection.tune-ok', channelMax: tune.channelMax ?? 0, frameMax: tune.frameMax ?? offered.frameMax, heartbeat: tune.heartbeat ?? 0 });
    this.send(0, { method: 'connection.open', virtualHost: '/' } as AmqpMethod);
    await this.expect('connection.open-ok');
  }
}

function connectionError(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

/** AMQP 0-9-1 limits against abuse, each against a real broker with small limits so the tests are fast. */
describe('limits: AMQP 0-9-1', { timeout: 60_000 }, () => {
  it('limits: a connection over maxConnections is refused after start-ok with 530 NOT_ALLOWED and a reason', async () => {
    const broker = await startBroker({ maxConnections: 2 });
    const url = `amqp://guest:guest@127.0.0.1:${broker.server.amqpPort}`;
    try {
      const first = await amqp.connect(url);
      const second = await amqp.connect(url);
      await assert.rejects(amqp.connect(url), (error) => /530/.test(connectionError(error)) && /connection limit \(maxConnections 2\)/.test(connectionError(error)));
      await first.close();
      // The slot frees once the broker has seen the socket close.
      let third: amqp.ChannelModel | null = null;
      await until(async () => (third = await amqp.connect(url).catch(() => null)) !== null);
      await third!.close();
      await second.close();
    } finally {
      await broker.close();
    }
  });

  it('limits: channel-max is negotiated, and channel.open above it closes the connection with 530', async () => {
    const broker = await startBroker({ amqpChannelMax: 3 });
    try {
      const client = await RawAmqpClient.open(broker.server.amqpPort);
      client.socket.write(PROTOCOL_HEADER);
      await client.expect('connection.start');
      client.send(0, { method: 'connection.start-ok', clientProperties: new Map(), mechanism: 'PLAIN', response: Buffer.from('\u0000guest\u0000guest'), locale: 'en_US' });
      const tune = await client.expect('connection.tune');
      assert.equal(tune.channelMax, 3);
      client.send(0, { method: 'connection.tune-ok', channelMax: 0, frameMax: tune.frameMax, heartbeat: 0 });
      client.send(0, { method: 'connection.open', virtualHost: '/' } as AmqpMethod);
      await client.expect('connection.open-ok');
      client.send(3, { method: 'channel.open' } as AmqpMethod);
      await client.expect('channel.open-ok');
      client.send(4, { method: 'channel.open' } as AmqpMethod);
      const close = await client.expect('connection.close');
      assert.equal(close.replyCode, 530);
      assert.match(close.replyText, /channel_max 3/);
      client.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a frame over frame-max closes the connection with 501 FRAME_ERROR', async () => {
    const broker = await startBroker({ amqpFrameMax: 4096 });
    try {
      const client = await RawAmqpClient.open(broker.server.amqpPort);
      await client.handshake();
      client.send(1, { method: 'channel.open' } as AmqpMethod);
      await client.expect('channel.open-ok');
      client.socket.write(encodeFrame(FrameType.Body, 1, Buffer.alloc(64 * 1024)));
      const close = await client.expect('connection.close');
      assert.equal(close.replyCode, 501);
      client.socket.destroy();
    } finally {
      await broker.close();
    }
  });

  it('limits: a message over amqpMaxMessageBytes closes the channel with 406 PRECONDITION_FAILED', async () => {
    const broker = await startBroker({ amqpMaxMessageBytes: 1000 });
    const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.server.amqpPort}`);
    connection.on('error', () => {});
    try {
      const channel = await connection.createChannel();
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
      await connection.close().catch(() => {});
      await broker.close();
    }
  });

  it('limits: queue.declare past maxQueuesPerVhost fails with 406 naming the limit; existing queues still declare', async () => {
    const broker = await startBroker({ maxQueuesPerVhost: 2 });
    const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.server.amqpPort}`);
    connection.on('error', () => {});
    try {
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
      await connection.close().catch(() => {});
      await broker.close();
    }
  });

  it('limits: a client that trickles the protocol header byte by byte, or sends nothing, is closed after handshakeTimeoutMs', async () => {
    const broker = await startBroker({ handshakeTimeoutMs: 300 });
    try {
      const silent = await RawAmqpClient.open(broker.server.amqpPort);
      const started = performance.now();
      await silent.closed;
      assert.ok(performance.now() - started >= 250);
      const trickle = await RawAmqpClient.open(broker.server.amqpPort);
      let at = 0;
      // "AMQP\0\0\x09\x01" at one byte per 100 ms would take 800 ms; the limit is 300.
      const timer = setInterval(() => {
        if (at < PROTOCOL_HEADER.length && !trickle.socket.destroyed) trickle.socket.write(PROTOCOL_HEADER.subarray(at, ++at));
      }, 100);
      await trickle.closed;
      clearInterval(timer);
      assert.ok(at < PROTOCOL_HEADER.length);
      assert.ok(await broker.logger.next(/amqp handshake timed out/));
    } finally {
      await broker.close();
    }
  });

  it('limits: a connection that negotiated heartbeats and then goes silent is closed after two intervals', async () => {
    const broker = await startBroker({ amqpHeartbeatSeconds: 1 });
    try {
      const client = await RawAmqpClient.open(broker.server.amqpPort);
      await client.handshake({ heartbeat: 1 });
      const started = performance.now();
      await client.closed;
      assert.ok(performance.now() - started >= 1500, 'closed before two heartbeat intervals');
      assert.ok(await broker.logger.next(/missed heartbeats/));
    } finally {
      await broker.close();
    }
  });

  it('limits: a no-ack consumer that stops reading is held at the high-water mark, not closed, and gets everything later', async () => {
    // The cap is far below what the queue holds: writing it all would close the connection.
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 1024 * 1024 });
    const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.server.amqpPort}`);
    try {
      const channel = await connection.createConfirmChannel();
      await channel.assertQueue('flood');
      const total = 2400; // 24 MiB: more than the loopback socket buffers of both ends absorb
      for (let n = 0; n < total; n++) channel.sendToQueue('flood', Buffer.alloc(10 * 1024, n));
      await channel.waitForConfirms();

      const consumer = await RawAmqpClient.open(broker.server.amqpPort);
      await consumer.handshake();
      consumer.send(1, { method: 'channel.open' } as AmqpMethod);
      await consumer.expect('channel.open-ok');
      consumer.send(1, { method: 'basic.consume', queue: 'flood', consumerTag: 'c', noLocal: false, noAck: true, exclusive: false, noWait: false, arguments: new Map() } as AmqpMethod);
      await consumer.expect('basic.consume-ok');
      consumer.socket.pause();
      // Whatever the queue hands the consumer, the socket gets no more than it can hold: the connection stays.
      let last = -1;
      await until(async () => {
        const now = (await channel.checkQueue('flood')).messageCount;
        const settled = now === last;
        last = now;
        return settled;
      }, 300);
      assert.equal(broker.logger.entries.filter((entry) => /not reading its socket/.test(entry.message)).length, 0);
      consumer.socket.resume();
      await until(() => consumer.received('basic.deliver') === total);
      assert.equal(broker.logger.entries.filter((entry) => /not reading its socket/.test(entry.message)).length, 0);
      consumer.socket.destroy();
    } finally {
      await connection.close().catch(() => {});
      await broker.close();
    }
  });

  it('limits: a client that pipelines requests and never reads the answers is closed once its unsent output passes the cap', async () => {
    const broker = await startBroker({ outputHighWaterMarkBytes: 16 * 1024, maxOutputBytesPerConnection: 1024 * 1024 });
    const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.server.amqpPort}`);
    try {
      const channel = await connection.createConfirmChannel();
      await channel.assertQueue('gets');
      const total = 2400;
      for (let n = 0; n < total; n++) channel.sendToQueue('gets', Buffer.alloc(10 * 1024, n));
      await channel.waitForConfirms();
      const client = await RawAmqpClient.open(broker.server.amqpPort);
      await client.handshake();
      client.send(1, { method: 'channel.open' } as AmqpMethod);
      await client.expect('channel.open-ok');
      client.socket.pause();
      // 2,400 basic.get of 20-odd bytes each ask for 24 MiB of answers, none of which is read.
      const get = encodeMethodFrame(1, { method: 'basic.get', queue: 'gets', noAck: false } as AmqpMethod);
      client.socket.write(Buffer.concat(Array.from({ length: total }, () => get)));
      const entry = await broker.logger.next(/not reading its socket/);
      assert.ok((entry.fields as { unsentBytes: number }).unsentBytes > 1024 * 1024);
      client.socket.resume();
      await client.closed;
    } finally {
      await connection.close().catch(() => {});
      await broker.close();
    }
  });
});
