import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WeirClient } from 'weir-client';
import { decodeRecordBatches, encodeRequest, errorCodeOf, isRetriable, type RequestOf } from 'weir-protocol';
import { WeirServer } from '../src/server/weir-server.js';
import { RawNativeClient } from './support/native-raw.js';

const config = { retentionMs: -1, retentionBytes: -1, flushPolicy: 'sync', flushIntervalMs: 1000, maxMessageBytes: 4096 };

describe('native protocol server', () => {
  let directory = '';
  let server: WeirServer;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'weir-native-'));
    server = await WeirServer.start({ dataDir: directory, port: 0, amqpPort: 0, logLevel: 'silent' });
  });
  after(async () => {
    await server.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('native: handshake, create, produce, fetch', async () => {
    const client = await RawNativeClient.open(server.port);
    await client.handshake();
    const created = await client.request('CreateTopic', { name: 'orders', partitions: 2, config });
    assert.equal(created.errorCode, 0, created.errorMessage ?? '');
    const produced = await client.request('Produce', {
      topic: 'orders',
      partition: 1,
      acks: 2,
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      messages: [{ id: null, key: Buffer.from('k'), tag: 'created', headers: [{ name: 'h', isString: true, value: Buffer.from('v') }], timestamp: -1, body: Buffer.from('hello') }],
    });
    assert.equal(produced.errorCode, 0, produced.errorMessage ?? '');
    const fetched = await client.request('Fetch', { topic: 'orders', partition: 1, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 100 });
    assert.equal(fetched.errorCode, 0);
    const body = fetched.body as { records: Buffer; endOffset: number };
    assert.equal(body.endOffset, 1);
    const messages = decodeRecordBatches(body.records, 0);
    assert.equal(messages[0]!.body.toString(), 'hello');
    assert.deepEqual(messages[0]!.headers, { h: 'v' });
    client.socket.destroy();
  });

  it('native: produced headers keep their names and values, a header named __proto__ included', async () => {
    const client = await RawNativeClient.open(server.port);
    await client.handshake();
    await client.request('CreateTopic', { name: 'headers', partitions: 1, config });
    const headers = [
      { name: '__proto__', isString: true, value: Buffer.from('polluted?') },
      { name: 'text', isString: true, value: Buffer.from('héllo') },
      { name: 'raw', isString: false, value: Buffer.from([0, 1, 2]) },
    ];
    const produced = await client.request('Produce', { topic: 'headers', partition: 0, acks: 2, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ id: null, key: null, tag: null, headers, timestamp: -1, body: Buffer.from('h') }] });
    assert.equal(produced.errorCode, 0, produced.errorMessage ?? '');
    const fetched = await client.request('Fetch', { topic: 'headers', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 100 });
    const [message] = decodeRecordBatches((fetched.body as { records: Buffer }).records, 0);
    assert.deepEqual(Object.entries(message!.headers), [
      ['__proto__', 'polluted?'],
      ['text', 'héllo'],
      ['raw', Buffer.from([0, 1, 2])],
    ]);
    assert.equal(Object.getPrototypeOf(message!.headers), Object.prototype);
    client.socket.destroy();
  });

  it('native: a long poll is answered by the append that arrives, not by its timeout', async () => {
    const consumer = await RawNativeClient.open(server.port);
    const producer = await RawNativeClient.open(server.port);
    await consumer.handshake();
    await producer.handshake();
    await consumer.request('CreateTopic', { name: 'poll', partitions: 1, config });
    const started = performance.now();
    const fetchesBefore = server.requestCounts.get('Fetch') ?? 0;
    const waiting = consumer.request('Fetch', { topic: 'poll', partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await producer.request('Produce', { topic: 'poll', partition: 0, acks: 2, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ id: null, key: null, tag: null, headers: [], timestamp: -1, body: Buffer.from('wake') }] });
    const response = await waiting;
    assert.ok(performance.now() - started < 5000, 'answered long before maxWaitMs');
    assert.equal((server.requestCounts.get('Fetch') ?? 0) - fetchesBefore, 1, 'one fetch, held open, not a stream of polls');
    assert.equal(decodeRecordBatches((response.body as { records: Buffer }).records, 0)[0]!.body.toString(), 'wake');
    consumer.socket.destroy();
    producer.socket.destroy();
  });

  it('native: bad input gets a clear error and the broker keeps serving others', async () => {
    const healthy = await RawNativeClient.open(server.port);
    await healthy.handshake();

    // A request before the handshake.
    const early = await RawNativeClient.open(server.port);
    const notHandshaken = await early.request('ListTopics', {});
    assert.equal(notHandshaken.errorCode, 22);
    await early.closed;

    // Random bytes.
    const noise = await RawNativeClient.open(server.port);
    noise.socket.write(randomBytes(4096));
    await noise.closed;

    // A frame length of 2^31: refused before anything is buffered.
    const huge = await RawNativeClient.open(server.port);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(2 ** 31, 0);
    huge.socket.write(header);
    await huge.closed;

    // An unknown request type: answered, and the connection keeps working.
    const unknown = await RawNativeClient.open(server.port);
    await unknown.handshake();
    const frame = Buffer.alloc(4 + 1 + 2 + 2 + 4);
    frame.writeUInt32LE(frame.byteLength - 4, 0);
    frame.writeUInt8(0, 4);
    frame.writeInt16LE(999, 5);
    frame.writeInt16LE(1, 7);
    frame.writeInt32LE(777, 9);
    const answer = unknown.answer(777);
    unknown.socket.write(frame);
    const unknownResponse = await answer;
    assert.equal(unknownResponse.errorCode, 20);
    assert.equal((await unknown.request('ListTopics', {})).errorCode, 0);

    // An oversized message.
    await healthy.request('CreateTopic', { name: 'small', partitions: 1, config });
    const tooBig = await healthy.request('Produce', { topic: 'small', partition: 0, acks: 2, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ id: null, key: null, tag: null, headers: [], timestamp: -1, body: Buffer.alloc(10_000) }] });
    assert.equal(tooBig.errorCode, 8);
    assert.match(tooBig.errorMessage ?? '', /exceeds/);

    assert.equal((await healthy.request('ListTopics', {})).errorCode, 0, 'still serving');
    unknown.socket.destroy();
    healthy.socket.destroy();
  });

  it('native: while a watermark is crossed, produces are refused as retriable with nothing stored, and a producer retries through it', async () => {
    const raw = await RawNativeClient.open(server.port);
    await raw.handshake();
    await raw.request('CreateTopic', { name: 'alarm', partitions: 1, config });
    const message = (body: string) => ({ id: null, key: null, tag: null, headers: [], timestamp: -1, body: Buffer.from(body) });
    const produce = (acks: number, body: string): RequestOf<'Produce'> => ({ topic: 'alarm', partition: 0, acks, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [message(body)] });
    const client = new WeirClient({ brokers: [`127.0.0.1:${server.port}`], clientId: 'alarm-test', retry: { initialMs: 20, maxMs: 100, retries: 100 } });
    const producesBefore = server.requestCounts.get('Produce') ?? 0;
    try {
      await server.resources.setLimits({ memoryHighWatermarkBytes: 1 });
      const refused = await raw.request('Produce', produce(2, 'refused'));
      assert.equal(refused.errorCode, errorCodeOf('RESOURCE_ALARM'));
      assert.ok(isRetriable(refused.errorCode));
      assert.match(refused.errorMessage ?? '', /nothing was stored: memory: resident .* above the high watermark/);
      // Acks 0 gets no answer either way; it must not be stored.
      raw.socket.write(encodeRequest('Produce', 999_999, produce(0, 'dropped')));
      const { body: begun } = await raw.request('BeginTransaction', { producerGroup: 'alarm-group' });
      const inTransaction = await raw.request('TransactionProduce', { transactionId: (begun as { transactionId: string }).transactionId, topic: 'alarm', partition: 0, messages: [message('half')] });
      assert.equal(inTransaction.errorCode, errorCodeOf('RESOURCE_ALARM'));

      const sent = client.producer({ lingerMs: 0 }).send('alarm', { body: 'after the alarm' });
      let settled = false;
      void sent.then(() => (settled = true), () => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(settled, false, 'the producer keeps retrying while the alarm is on');
      assert.ok((server.requestCounts.get('Produce') ?? 0) - producesBefore >= 4, 'refused, dropped, and the producer tried more than once');

      await server.resources.setLimits({ memoryHighWatermarkBytes: 0 });
      assert.equal((await sent).offset, 0, 'stored once the alarm cleared, and nothing before it');
      const latest = await raw.request('ListOffsets', { topic: 'alarm', partition: 0, timestamp: -1 });
      assert.equal((latest.body as { offset: number }).offset, 1);
    } finally {
      await server.resources.setLimits({ memoryHighWatermarkBytes: 0 });
      await client.close();
      raw.socket.destroy();
    }
  });
});
