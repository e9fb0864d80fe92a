import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { encodePush, type DecodedRequestOf, type Delivery } from 'weir-protocol';
import { WeirClient } from './client.js';
import { isWeirClientError } from './errors.js';
import type { QueueConsumer } from './queue-consumer.js';
import type { QueueMessage } from './queue-message.js';
import { type PairEnd, ProtocolPeer } from './testing/duplex-pair.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A scripted broker: the test answers each request itself (Handshake and Ping are answered by the peer). */
class ScriptedBroker {
  private readonly peers: ProtocolPeer[] = [];
  private waiters: Array<() => void> = [];
  readonly sockets: Socket[] = [];

  constructor(readonly server: Server) {
    server.on('connection', (socket) => {
      this.sockets.push(socket);
      this.peers.push(new ProtocolPeer(socket as unknown as PairEnd));
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async start(): Promise<ScriptedBroker> {
    const broker = new ScriptedBroker(createServer({ noDelay: true }));
    await new Promise<void>((resolve) => broker.server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => broker.close());
    return broker;
  }

  get address(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The peer of the `index`th connection, once it is made. */
  async peer(index: number): Promise<ProtocolPeer> {
    while (this.peers.length <= index) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.peers[index]!;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function delivery(offset: number, deliveryCount = 1): Delivery {
  return { partition: 0, offset, deliveryCount, timestamp: 1, storeTimestamp: 2, id: Buffer.from([offset & 0xff]), key: null, tag: null, headers: [{ name: 'h', isString: true, value: Buffer.from('v') }], body: Buffer.from(`m${offset}`) };
}

function deliver(peer: ProtocolPeer, consumerId: string, deliveries: Delivery[]): void {
  peer.end.write(encodePush('Deliver', { group: 'g', topic: 't', consumerId, deliveries }));
}

async function take(consumer: QueueConsumer, count: number): Promise<QueueMessage[]> {
  const out: QueueMessage[] = [];
  while (out.length < count) {
    const next = await consumer.next();
    assert.equal(next.done, false);
    out.push(next.value!);
  }
  return out;
}

async function setup(): Promise<{ broker: ScriptedBroker; client: WeirClient; consumer: QueueConsumer; peer: ProtocolPeer }> {
  const broker = await ScriptedBroker.start();
  const client = new WeirClient({ brokers: [broker.address], retry: { initialMs: 5, maxMs: 20, retries: 50 } });
  cleanups.push(() => client.abort());
  const consumer = client.queueConsumer({ group: 'g', consumerId: 'c1', prefetch: 5, filter: { tag: 'a || b' }, settings: { ackTimeoutMs: 5000 } });
  const subscribing = consumer.subscribe('t');
  const peer = await broker.peer(0);
  const [subscribe] = await peer.received(1);
  assert.equal(subscribe!.name, 'Subscribe');
  assert.deepEqual(
    { ...(subscribe!.body as DecodedRequestOf<'Subscribe'>) },
    { group: 'g', topic: 't', mode: 'shared', consumerId: 'c1', prefetch: 5, priority: 0, filterKind: 'tag', filter: 'a || b', settings: '{"ackTimeoutMs":5000}' },
  );
  // Deliveries may come before the Subscribe answer: they are routed all the same.
  deliver(peer, 'c1', [delivery(0), delivery(1, 3), delivery(2)]);
  deliver(peer, 'someone-else', [delivery(9)]);
  peer.reply(subscribe!, { consumerId: 'c1' });
  await subscribing;
  return { broker, client, consumer, peer };
}

describe('client: QueueConsumer', () => {
  it('client: queue consumer routes pushed deliveries and sends the outcomes of one tick in one Settle', async () => {
    const { consumer, peer } = await setup();
    const messages = await take(consumer, 3);
    assert.deepEqual(
      messages.map((message) => [message.body.toString(), message.deliveryCount, message.redelivered, message.headers.h, message.consumerId]),
      [
        ['m0', 1, false, 'v', 'c1'],
        ['m1', 3, true, 'v', 'c1'],
        ['m2', 1, false, 'v', 'c1'],
      ],
    );
    assert.equal(consumer.buffered, 0, 'a push for another consumer is not ours');

    const acks = messages.map((message) => message.ack());
    const settle = (await peer.received(2))[1]!;
    assert.equal(settle.name, 'Settle');
    const body = settle.body as DecodedRequestOf<'Settle'>;
    assert.deepEqual(
      body.outcomes.map((outcome) => [outcome.offset, outcome.outcome, outcome.delayMs, outcome.error]),
      [
        [0, 0, -1, null],
        [1, 0, -1, null],
        [2, 0, -1, null],
      ],
    );
    peer.reply(settle, { applied: 2 });
    assert.deepEqual(await Promise.all(acks), [null, null, null], 'part of a batch applied: which is unknown');
    await assert.rejects(messages[0]!.ack(), (error) => isWeirClientError(error, 'ALREADY_SETTLED'));
    await assert.rejects(messages[0]!.nack(), (error) => isWeirClientError(error, 'ALREADY_SETTLED'));

    deliver(peer, 'c1', [delivery(3), delivery(4)]);
    const [nacked, rejected] = await take(consumer, 2);
    await assert.rejects(nacked!.nack({ delayMs: 1.5 }), (error) => isWeirClientError(error, 'INVALID_ARGUMENT'));
    assert.equal(nacked!.settled, false, 'a refused outcome leaves the message unsettled');
    const outcomes = [nacked!.nack({ delayMs: 250, error: 'busy' }), rejected!.reject({ reason: 'x'.repeat(5000) })];
    const second = (await peer.received(3))[2]!;
    const sent = (second.body as DecodedRequestOf<'Settle'>).outcomes;
    assert.deepEqual(
      sent.map((outcome) => [outcome.offset, outcome.outcome, outcome.delayMs, outcome.error?.length]),
      [
        [3, 1, 250, 4],
        [4, 2, -1, 4096],
      ],
    );
    peer.reply(second, { applied: 2 });
    assert.deepEqual(await Promise.all(outcomes), [true, true]);

    // More than 1,000 outcomes in a tick: several Settle requests of at most 1,000.
    const many = Array.from({ length: 1500 }, (_, index) => delivery(100 + index));
    deliver(peer, 'c1', many);
    const bulk = await take(consumer, 1500);
    const bulkAcks = bulk.map((message) => message.ack());
    const [third, fourth] = (await peer.received(5)).slice(3);
    assert.deepEqual(
      [third, fourth].map((request) => (request!.body as DecodedRequestOf<'Settle'>).outcomes.length),
      [1000, 500],
    );
    peer.reply(third!, { applied: 0 });
    peer.reply(fourth!, { applied: 500 });
    const results = await Promise.all(bulkAcks);
    assert.ok(results.slice(0, 1000).every((applied) => applied === false));
    assert.ok(results.slice(1000).every((applied) => applied === true));

    const closing = consumer.close();
    const unsubscribe = (await peer.received(6))[5]!;
    assert.equal(unsubscribe.name, 'Unsubscribe');
    assert.deepEqual({ ...(unsubscribe.body as DecodedRequestOf<'Unsubscribe'>) }, { group: 'g', topic: 't', consumerId: 'c1' });
    peer.reply(unsubscribe, {});
    await closing;
    assert.deepEqual(await consumer.next(), { done: true, value: undefined });
  });

  it('client: queue consumer loses its leases with the connection, drops what it buffered, and subscribes again', async () => {
    const { broker, consumer } = await setup();
    const [held, forgotten] = await take(consumer, 2);
    assert.equal(consumer.buffered, 1);
    const resubscribed = new Promise<void>((resolve) => consumer.once('resubscribed', () => resolve()));
    broker.sockets[0]!.destroy();
    const second = await broker.peer(1);
    const [subscribe] = await second.received(1);
    assert.equal((subscribe!.body as DecodedRequestOf<'Subscribe'>).consumerId, 'c1', 'the same consumer id on the new connection');
    assert.equal(consumer.buffered, 0, 'the old connection’s deliveries are redelivered by the broker, not handed out');
    await assert.rejects(held!.ack(), (error) => isWeirClientError(error, 'CONNECTION_CLOSED') && /redelivers/.test(error.message));
    void forgotten!.ack(); // fire and forget: a lost lease is no unhandled rejection
    second.reply(subscribe!, { consumerId: 'c1' });
    await resubscribed;
    deliver(second, 'c1', [delivery(2, 2)]);
    const [again] = await take(consumer, 1);
    assert.deepEqual([again!.offset, again!.redelivered], [2, true]);
    const ack = again!.ack();
    const settle = (await second.received(2))[1];
    second.reply(settle!, { applied: 1 });
    assert.equal(await ack, true);
  });
});
