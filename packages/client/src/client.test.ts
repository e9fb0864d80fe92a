import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { DEFAULT_TOPIC_CONFIG } from './admin.js';
import { WeirClient } from './client.js';
import { WeirClientError } from './errors.js';
import { FakeBroker } from './testing/fake-broker.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startBroker(): Promise<FakeBroker> {
  const broker = await FakeBroker.start();
  cleanups.push(() => broker.close());
  return broker;
}

function client(options: ConstructorParameters<typeof WeirClient>[0]): WeirClient {
  const created = new WeirClient(options);
  cleanups.push(() => created.abort());
  return created;
}

async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('client: WeirClient', () => {
  it('client: WeirClient connects lazily, on the first request', async () => {
    const broker = await startBroker();
    const weir = client({ brokers: [broker.address] });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(weir.currentConnection, null);
    assert.equal(broker.received.length, 0);
    await weir.request('Ping', {});
    assert.notEqual(weir.currentConnection, null);
    assert.deepEqual(
      broker.received.map((request) => request.name),
      ['Handshake', 'Ping'],
    );
  });

  it('client: WeirClient reconnects after the connection drops', async () => {
    const broker = await startBroker();
    const weir = client({ brokers: [broker.address], retry: { initialMs: 5, maxMs: 20, retries: 5 } });
    const disconnects: WeirClientError[] = [];
    weir.on('disconnect', (error) => disconnects.push(error));
    await weir.request('Ping', {});
    const first = weir.currentConnection;
    broker.dropConnections();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(disconnects.length, 1);
    assert.equal(disconnects[0]!.code, 'CONNECTION_CLOSED');
    await weir.request('Ping', {});
    assert.notEqual(weir.currentConnection, first);
  });

  it('client: WeirClient gives up with a message that says what to check', async () => {
    const port = await freePort();
    const weir = client({ brokers: [`127.0.0.1:${port}`], retry: { initialMs: 1, maxMs: 5, retries: 2 } });
    await assert.rejects(weir.request('Ping', {}), (error: WeirClientError) => {
      assert.equal(error.code, 'CONNECTION_CLOSED');
      assert.equal(error.retriable, true);
      assert.match(error.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED — is \`weir serve\` running there\\? \\(gave up after 3 attempts\\)`));
      return true;
    });
  });

  it('client: WeirClient moves on to the next broker when one is down', async () => {
    const broker = await startBroker();
    const port = await freePort();
    const weir = client({ brokers: [`127.0.0.1:${port}`, broker.address], retry: { initialMs: 1, maxMs: 5, retries: 3 } });
    await weir.request('Ping', {});
    assert.equal(weir.currentConnection!.address, broker.address);
  });

  it('client: WeirClient connects to an IPv6 address written [::1]:port', async (context) => {
    const server = createServer((socket) => socket.destroy());
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::1', () => resolve(true));
    });
    if (!listening) return context.skip('no IPv6 loopback here');
    const port = (server.address() as { port: number }).port;
    const weir = client({ brokers: [`[::1]:${port}`], retry: { initialMs: 1, maxMs: 1, retries: 0 } });
    // The fake broker listens on IPv4 only; reaching the socket (and being dropped) proves the address was used.
    await assert.rejects(weir.request('Ping', {}), (error: WeirClientError) => error.code === 'CONNECTION_CLOSED' && error.message.includes(`[::1]:${port}`));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('client: WeirClient close flushes producers, closes consumers and refuses further use', async () => {
    const broker = await startBroker();
    broker.createTopic('t', 1);
    const weir = client({ brokers: [broker.address] });
    const producer = weir.producer({ lingerMs: 60_000 });
    const sent = producer.send('t', { body: 'flushed on close' });
    const consumer = weir.consumer();
    await consumer.subscribe('t');
    await weir.close();
    await sent;
    assert.deepEqual(broker.bodies('t', 0), ['flushed on close']);
    assert.equal((await consumer.next()).done, true);
    await assert.rejects(weir.request('Ping', {}), (error: WeirClientError) => error.code === 'CLIENT_CLOSED');
    assert.throws(() => weir.producer(), (error: WeirClientError) => error.code === 'CLIENT_CLOSED');
  });
});

describe('client: Admin', () => {
  it('client: admin createTopic fills the protocol defaults and caches the partition count', async () => {
    const broker = await startBroker();
    const weir = client({ brokers: [broker.address] });
    const admin = weir.admin();
    const created = await admin.createTopic('orders', { partitions: 3, retentionMs: 60_000 });
    assert.equal(created.partitions.length, 3);
    assert.deepEqual(broker.topics.get('orders')!.config, { ...DEFAULT_TOPIC_CONFIG, retentionMs: 60_000 });
    assert.equal(weir.metadata.cachedPartitionCount('orders'), 3);
    await assert.rejects(admin.createTopic('orders', { partitions: 1 }), (error: WeirClientError) => error.code === 'TOPIC_EXISTS');
    assert.deepEqual(
      (await admin.listTopics()).map((topic) => topic.name),
      ['orders'],
    );
    assert.equal((await admin.describeTopic('orders')).config.retentionMs, 60_000);
    await admin.deleteTopic('orders');
    assert.equal(weir.metadata.cachedPartitionCount('orders'), undefined);
    await assert.rejects(admin.describeTopic('orders'), (error: WeirClientError) => error.code === 'UNKNOWN_TOPIC' && /create it first/.test(error.message));
  });

  it('client: admin getMessage takes hex ids and says what to do with anything else', async () => {
    const broker = await startBroker();
    const weir = client({ brokers: [broker.address] });
    const admin = weir.admin();
    await assert.rejects(admin.getMessage({ id: 'order-42' }), (error: WeirClientError) => error.code === 'INVALID_ARGUMENT' && /Buffer\.from/.test(error.message));
    await assert.rejects(admin.getMessage({}), (error: WeirClientError) => error.code === 'INVALID_ARGUMENT');
  });
});
