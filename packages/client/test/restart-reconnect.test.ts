import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientFor, sleep, startBroker, take, temporaryDirectory } from './support.js';

describe('client integration: broker restart', () => {
  it('client integration: a producer and a group consumer ride out a broker restart and reconnect by themselves', { timeout: 60_000 }, async () => {
    const dataDir = await temporaryDirectory();
    let broker = await startBroker({ dataDir });
    const port = broker.port;
    const client = clientFor(broker, { retry: { initialMs: 50, maxMs: 500, retries: 100 } });
    let disconnects = 0;
    client.on('disconnect', () => disconnects++);
    await client.admin().createTopic('restart', { partitions: 2 });
    const producer = client.producer();
    const consumer = client.consumer({ group: 'restart-group', sessionTimeoutMs: 3000, heartbeatIntervalMs: 300 });
    await consumer.subscribe('restart');
    await producer.send(
      'restart',
      Array.from({ length: 10 }, (_, index) => ({ key: `k${index}`, body: `before-${index}` })),
    );
    await take(consumer, 10);
    await consumer.commit();

    // The broker stops while the client is connected, with a long poll and heartbeats in flight.
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([broker.close().then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 10_000)))]);
    clearTimeout(timer);
    assert.ok(
      closed,
      'Broker.close() must finish while clients stay connected (today TcpListener.stopAccepting awaits net.Server#close, which waits for every connection to end, before WeirServer closes them)',
    );
    await sleep(200);
    broker = await startBroker({ dataDir, port });

    // Same client objects: the producer resends through a new connection, the consumer rejoins its group.
    const sent = await producer.send(
      'restart',
      Array.from({ length: 10 }, (_, index) => ({ key: `k${index}`, body: `after-${index}` })),
    );
    assert.equal(sent.length, 10);
    const after = await take(consumer, 10, 30_000);
    assert.deepEqual(
      after.map((message) => message.body.toString()).sort(),
      Array.from({ length: 10 }, (_, index) => `after-${index}`).sort(),
    );
    assert.ok(disconnects >= 1);
    await client.close();
  });
});
