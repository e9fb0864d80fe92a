import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { encodePush, type DecodedPush } from 'weir-protocol';
import { Connection } from './connection.js';
import { WeirClientError } from './errors.js';
import { duplexPair, ProtocolPeer, type ProtocolPeerOptions } from './testing/duplex-pair.js';

async function open(options: ProtocolPeerOptions = {}, highWaterMark?: number): Promise<{ connection: Connection; peer: ProtocolPeer; clientEnd: ReturnType<typeof duplexPair>[0] }> {
  const [clientEnd, brokerEnd] = duplexPair(highWaterMark);
  const peer = new ProtocolPeer(brokerEnd, options);
  const connection = await Connection.open(clientEnd, { clientId: 'test', requestTimeoutMs: 5000 }, 'pair');
  return { connection, peer, clientEnd };
}

function describeBody(name: string): unknown {
  return { topic: { name, config: { retentionMs: -1, retentionBytes: -1, flushPolicy: 'sync', flushIntervalMs: 1000, maxMessageBytes: 1 }, partitions: [] } };
}

function isClientError(code: string, retriable?: boolean, message?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof WeirClientError, `not a WeirClientError: ${String(error)}`);
    assert.equal(error.code, code);
    if (retriable !== undefined) assert.equal(error.retriable, retriable);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  };
}

describe('client: Connection', () => {
  it('client: Connection handshake sends the client id and keeps what the broker negotiated', async () => {
    const [clientEnd, brokerEnd] = duplexPair();
    const peer = new ProtocolPeer(brokerEnd, { maxFrameBytes: 4096, heartbeatMs: 0 });
    const connection = await Connection.open(clientEnd, { clientId: 'my-app', maxFrameBytes: 1 << 20 });
    assert.equal(connection.info.maxFrameBytes, 4096);
    assert.equal(connection.info.connectionId, 'test-connection');
    assert.equal(connection.frameLimit, 4096);
    connection.destroy();
    assert.equal(peer.requests.length, 0);
  });

  it('client: Connection matches responses to requests by correlation id when they arrive out of order', async () => {
    const { connection, peer } = await open();
    const names = ['a', 'b', 'c', 'd', 'e'];
    const answers = names.map((name) => connection.request('DescribeTopic', { name }));
    const requests = await peer.received(names.length);
    assert.equal(new Set(requests.map((request) => request.correlationId)).size, names.length);
    for (const index of [3, 0, 4, 2, 1]) {
      const request = requests[index]!;
      peer.reply(request, describeBody((request.body as { name: string }).name));
    }
    const bodies = await Promise.all(answers);
    assert.deepEqual(
      bodies.map((body) => body.topic.name),
      names,
    );
    assert.equal(connection.inFlight, 0);
    connection.destroy();
  });

  it('client: Connection rejects an error response with the broker code, message and retriable flag', async () => {
    const { connection, peer } = await open();
    const missing = connection.request('DescribeTopic', { name: 'nope' });
    const storage = connection.request('DescribeTopic', { name: 'disk' });
    const [first, second] = await peer.received(2);
    peer.fail(first!, 'UNKNOWN_TOPIC', 'topic "nope" does not exist');
    peer.fail(second!, 'STORAGE_ERROR', 'disk full');
    await assert.rejects(missing, isClientError('UNKNOWN_TOPIC', false, /topic "nope" does not exist/));
    await assert.rejects(storage, isClientError('STORAGE_ERROR', true, /disk full/));
    assert.equal(connection.closed, false);
    connection.destroy();
  });

  it('client: Connection fails every request in flight with retriable CONNECTION_CLOSED when the connection drops', async () => {
    const { connection, peer } = await open();
    const pending = [connection.request('Ping', {}), connection.request('DescribeTopic', { name: 'x' }), connection.request('ListTopics', {})];
    peer.answerPings = false;
    await peer.received(2);
    let closedWith: WeirClientError | null = null;
    connection.on('close', (error) => {
      closedWith = error;
    });
    peer.end.destroy();
    for (const request of pending) await assert.rejects(request, isClientError('CONNECTION_CLOSED', true));
    assert.ok(closedWith !== null);
    assert.equal(connection.closed, true);
    await assert.rejects(connection.request('Ping', {}), isClientError('CONNECTION_CLOSED', true));
    assert.throws(() => connection.send('Ping', {}), isClientError('CONNECTION_CLOSED'));
  });

  it('client: Connection times a request out, ignores its late answer and stays usable', async () => {
    const { connection, peer } = await open();
    const slow = connection.request('DescribeTopic', { name: 'slow' }, { timeoutMs: 30 });
    const [request] = await peer.received(1);
    await assert.rejects(slow, isClientError('TIMEOUT', true, /no response within 30 ms/));
    peer.reply(request!, describeBody('slow'));
    const next = connection.request('DescribeTopic', { name: 'next' });
    const [, second] = await peer.received(2);
    peer.reply(second!, describeBody('next'));
    assert.equal((await next).topic.name, 'next');
    connection.destroy();
  });

  it('client: Connection close() rejects what is in flight with CLIENT_CLOSED', async () => {
    const { connection, peer } = await open();
    const pending = connection.request('DescribeTopic', { name: 'x' });
    await peer.received(1);
    const rejected = assert.rejects(pending, isClientError('CLIENT_CLOSED', false));
    await connection.close();
    await rejected;
  });

  it('client: Connection coalesces the frames of one tick into one write', async () => {
    const { connection, peer, clientEnd } = await open();
    const writesBefore = clientEnd.writeCalls;
    const pings = Array.from({ length: 200 }, () => connection.request('Ping', {}));
    await Promise.all(pings);
    assert.equal(clientEnd.writeCalls - writesBefore, 1);
    assert.equal(peer.requests.length, 0);
    connection.destroy();
  });

  it('client: Connection queues frames while the socket is full and sends them after drain', async () => {
    const { connection, peer, clientEnd } = await open({}, 1024);
    clientEnd.hold = true;
    const requests = Array.from({ length: 300 }, (_, index) => connection.request('DescribeTopic', { name: `topic-${index}` }));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(connection.writable, false);
    assert.ok(connection.queuedFrames > 0, 'frames should wait in the connection queue');
    assert.ok(connection.queuedBytes > 0);
    const writable = connection.whenWritable();
    let drained = false;
    void writable.then(() => {
      drained = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(drained, false);
    clientEnd.release();
    await writable;
    const received = await peer.received(300);
    // Order on the wire is the order of the calls.
    assert.deepEqual(
      received.map((request) => (request.body as { name: string }).name),
      Array.from({ length: 300 }, (_, index) => `topic-${index}`),
    );
    assert.equal(connection.queuedFrames, 0);
    for (const request of received) peer.reply(request, describeBody((request.body as { name: string }).name));
    await Promise.all(requests);
    connection.destroy();
  });

  it('client: Connection send() writes a request that expects no response', async () => {
    const { connection, peer } = await open();
    connection.send('Produce', {
      topic: 't',
      partition: 0,
      acks: 0,
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      messages: [{ id: null, key: null, tag: null, headers: [], timestamp: -1, body: Buffer.from('x') }],
    });
    assert.equal(connection.inFlight, 0);
    const [request] = await peer.received(1);
    assert.equal(request!.name, 'Produce');
    connection.destroy();
  });

  it('client: Connection refuses a request larger than the negotiated frame limit', async () => {
    const { connection } = await open({ maxFrameBytes: 1024 });
    await assert.rejects(
      connection.request('GetMessage', { id: Buffer.alloc(2000), key: null, topic: null, limit: 1 }),
      isClientError('FRAME_TOO_LARGE', false, /exceeds the frame limit of 1024 bytes/),
    );
    assert.equal(connection.closed, false);
    connection.destroy();
  });

  it('client: Connection pings when idle and drops a broker silent for 3 heartbeat intervals', async () => {
    const { connection, peer } = await open({ heartbeatMs: 40 });
    // The heartbeat timer is unref'd (a real socket keeps the process alive; an in-memory pair does not).
    const keepAlive = setInterval(() => {}, 1000);
    after(() => clearInterval(keepAlive));
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(connection.closed, false, 'answered pings keep the connection');
    assert.ok(connection.rttMs >= 0, 'a ping was answered');
    peer.answerPings = false;
    const closed = new Promise<WeirClientError>((resolve) => connection.once('close', resolve));
    const started = Date.now();
    const error = await closed;
    assert.equal(error.code, 'CONNECTION_CLOSED');
    assert.match(error.message, /3 heartbeat intervals/);
    assert.ok(Date.now() - started < 1000);
  });

  it('client: Connection reports a refused handshake with the broker error', async () => {
    const [clientEnd, brokerEnd] = duplexPair();
    new ProtocolPeer(brokerEnd, { handshakeError: 'UNSUPPORTED_VERSION' });
    await assert.rejects(Connection.open(clientEnd, {}), isClientError('UNSUPPORTED_VERSION', false, /upgrade the client or the broker/));
  });

  it('client: Connection.connect says what to check when nothing listens', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(
      Connection.connect(`127.0.0.1:${port}`),
      isClientError('CONNECTION_CLOSED', true, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED — is \`weir serve\` running there\\?`)),
    );
  });

  it('client: Connection.connect gives up on a broker that never answers the handshake', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await assert.rejects(Connection.connect({ host: '127.0.0.1', port }, { connectTimeoutMs: 100 }), isClientError('CONNECTION_CLOSED', true));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
  it('client: Connection emits Deliver pushes, drops push keys it does not know, and closes on a malformed push', async () => {
    const { connection, peer } = await open();
    const pushes: DecodedPush[] = [];
    connection.on('push', (push) => pushes.push(push));
    const delivery = { partition: 1, offset: 7, deliveryCount: 2, timestamp: 5, storeTimestamp: 6, id: Buffer.from('id'), key: null, tag: 't', headers: [], body: Buffer.from('b') };
    peer.end.write(encodePush('Deliver', { group: 'g', topic: 'jobs', consumerId: 'c1', deliveries: [delivery] }));
    // A push key from a newer broker: [length][kind 2][key 99][anything].
    const unknown = Buffer.alloc(4 + 3 + 4);
    unknown.writeUInt32LE(7, 0);
    unknown[4] = 2;
    unknown.writeInt16LE(99, 5);
    peer.end.write(unknown);
    const answer = connection.request('ListTopics', {});
    const [request] = await peer.received(1);
    peer.reply(request!, { topics: [] });
    await answer; // the pushes before it were handled in order
    assert.equal(pushes.length, 1);
    assert.equal(pushes[0]!.name, 'Deliver');
    assert.equal(pushes[0]!.body.consumerId, 'c1');
    assert.equal(pushes[0]!.body.deliveries[0]!.offset, 7);
    assert.equal(connection.closed, false, 'an unknown push key is not an error');

    const pending = connection.request('ListTopics', {});
    await peer.received(2);
    const malformed = encodePush('Deliver', { group: 'g', topic: 'jobs', consumerId: 'c1', deliveries: [delivery] });
    malformed.writeUInt32LE(malformed.length - 4 - 6, 0); // cut inside the delivery
    peer.end.write(malformed.subarray(0, malformed.length - 6));
    await assert.rejects(pending, isClientError('CONNECTION_CLOSED', true, /undecodable push frame/));
    assert.equal(connection.closed, true);
    assert.equal(pushes.length, 1);
  });
});
