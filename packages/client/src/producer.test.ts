import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { decodeRecordBatches, partitionForKey, type DecodedRequestOf } from 'weir-protocol';
import { WeirClient } from './client.js';
import { WeirClientError } from './errors.js';
import { FakeBroker } from './testing/fake-broker.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(partitions = 4, topic = 't'): Promise<{ broker: FakeBroker; client: WeirClient }> {
  const broker = await FakeBroker.start();
  broker.createTopic(topic, partitions);
  const client = new WeirClient({ brokers: [broker.address], retry: { initialMs: 5, maxMs: 50, retries: 50 } });
  cleanups.push(() => broker.close());
  cleanups.push(() => client.abort());
  return { broker, client };
}

function isClientError(code: string, message?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof WeirClientError, `not a WeirClientError: ${String(error)}`);
    assert.equal(error.code, code);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  };
}

describe('client: Producer', () => {
  it('client: producer partition choice by key agrees with partitionForKey', async () => {
    const { client } = await setup(12);
    const producer = client.producer({ lingerMs: 0 });
    const keys = ['foobar', 'abc', 'customer-42', '', ...Array.from({ length: 200 }, (_, index) => `key-${index}`)];
    const results = await producer.send(
      't',
      keys.map((key) => ({ key, body: key })),
    );
    results.forEach((result, index) => assert.equal(result.partition, partitionForKey(Buffer.from(keys[index]!), 12), keys[index]));
    // The examples of docs/protocol.md.
    assert.deepEqual(
      results.slice(0, 4).map((result) => result.partition),
      [6, 3, 9, 9],
    );
  });

  it('client: producer spreads keyless messages round-robin, one partition per batch', async () => {
    const { broker, client } = await setup(4);
    const producer = client.producer({ lingerMs: 0 });
    for (let round = 0; round < 8; round++) {
      const results = await producer.send(
        't',
        Array.from({ length: 10 }, (_, index) => ({ body: `${round}-${index}` })),
      );
      assert.equal(new Set(results.map((result) => result.partition)).size, 1, 'one burst forms one batch on one partition');
    }
    const counts = [0, 1, 2, 3].map((partition) => broker.bodies('t', partition).length);
    assert.deepEqual(counts, [20, 20, 20, 20]);
  });

  it('client: producer honours an explicit partition and rejects one that does not exist', async () => {
    const { client } = await setup(4);
    const producer = client.producer();
    const result = await producer.send('t', { key: 'abc', body: 'x' }, { partition: 2 });
    assert.equal(result.partition, 2);
    await client.metadata.partitionCount('t');
    await assert.rejects(producer.send('t', { body: 'x' }, { partition: 9 }), isClientError('INVALID_PARTITION', /has 4 partitions/));
  });

  it('client: producer results carry offsets and ids (given, or computed like the broker generates them)', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer();
    const results = await producer.send('t', [{ id: 'order-1', body: 'a' }, { body: 'b' }, { id: Buffer.from([1, 2, 3]), body: 'c' }, { body: 'd' }]);
    assert.deepEqual(
      results.map((result) => result.offset),
      [0, 1, 2, 3],
    );
    assert.equal(results[0]!.id, Buffer.from('order-1').toString('hex'));
    assert.equal(results[2]!.id, '010203');
    const stored = decodeRecordBatches(Buffer.concat(broker.topics.get('t')!.partitions[0]!.batches.map((batch) => batch.encoded)), 0);
    assert.deepEqual(
      results.map((result) => result.idBytes),
      stored.map((message) => message.id),
    );
    assert.match(results[1]!.id!, /^[0-9a-f]{32}$/);
  });

  it('client: producer retries after dropped connections without duplicates or reordering', async () => {
    const { broker, client } = await setup(4);
    let produces = 0;
    broker.hook = (request) => {
      if (request.name !== 'Produce') return undefined;
      produces++;
      // Some batches are stored and their answer lost, some never arrive.
      if (produces % 7 === 3) return 'process-then-drop';
      if (produces % 11 === 5) return 'drop';
      return undefined;
    };
    const producer = client.producer({ lingerMs: 1, maxBatchMessages: 20 });
    const sends: Promise<unknown>[] = [];
    const perKey = new Map<string, string[]>();
    for (let index = 0; index < 3000; index++) {
      const key = `k${index % 13}`;
      const body = `${key}:${index}`;
      perKey.set(key, [...(perKey.get(key) ?? []), body]);
      sends.push(producer.send('t', { key, body }));
      if (index % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    }
    const results = (await Promise.all(sends)) as Array<{ duplicate: boolean; offset: number; partition: number }>;
    assert.ok(results.some((result) => result.duplicate), 'some retries were recognised as duplicates');
    const stored: string[] = [];
    for (let partition = 0; partition < 4; partition++) stored.push(...broker.bodies('t', partition));
    assert.equal(stored.length, 3000, 'every message stored exactly once');
    assert.equal(new Set(stored).size, 3000);
    for (const [key, bodies] of perKey) {
      const partition = partitionForKey(Buffer.from(key), 4);
      assert.deepEqual(
        broker.bodies('t', partition).filter((body) => body.startsWith(`${key}:`)),
        bodies,
        `order of ${key}`,
      );
    }
    // Offsets in results match what the broker stored.
    const seen = new Set(results.map((result) => `${result.partition}/${result.offset}`));
    assert.equal(seen.size, 3000);
  });

  it('client: producer resends in order after retriable errors and keeps going', async () => {
    const { broker, client } = await setup(1);
    let produces = 0;
    broker.hook = (request) => {
      if (request.name !== 'Produce') return undefined;
      produces++;
      if (produces === 2 || produces === 3) return { error: 'STORAGE_ERROR', message: 'disk full' };
      if (produces === 6) return { error: 'BROKER_SHUTTING_DOWN' };
      return undefined;
    };
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 5 });
    const bodies = Array.from({ length: 100 }, (_, index) => `m${index}`);
    const results = await producer.send(
      't',
      bodies.map((body) => ({ body })),
    );
    assert.deepEqual(broker.bodies('t', 0), bodies);
    assert.deepEqual(
      results.map((result) => result.offset),
      bodies.map((_, index) => index),
    );
  });

  it('client: producer drops a batch the broker rejects and renumbers the ones behind it', async () => {
    const { broker, client } = await setup(1);
    let produces = 0;
    broker.hook = (request) => {
      if (request.name !== 'Produce') return undefined;
      produces++;
      if (produces === 3) return { error: 'MESSAGE_TOO_LARGE', message: 'too big' };
      return { delayMs: 5 };
    };
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 2 });
    const outcomes = await Promise.allSettled(Array.from({ length: 12 }, (_, index) => producer.send('t', { body: `m${index}` })));
    const rejected = outcomes.flatMap((outcome, index) => (outcome.status === 'rejected' ? [index] : []));
    assert.equal(rejected.length, 2, 'the two messages of the rejected batch fail');
    for (const index of rejected) assert.equal((outcomes[index] as PromiseRejectedResult).reason.code, 'MESSAGE_TOO_LARGE');
    const expected = Array.from({ length: 12 }, (_, index) => `m${index}`).filter((_, index) => !rejected.includes(index));
    assert.deepEqual(broker.bodies('t', 0), expected);
  });

  it('client: producer gives a batch up after its retries and starts a new epoch for the ones behind it', async () => {
    const { broker, client } = await setup(1);
    broker.hook = (request) => {
      if (request.name !== 'Produce') return undefined;
      // The batch of "doomed" fails every attempt.
      const body = request.body as { readonly messages: ReadonlyArray<{ body: Uint8Array }> };
      if (Buffer.from(body.messages[0]!.body).toString() === 'doomed') return { error: 'STORAGE_ERROR', message: 'disk full' };
      return undefined;
    };
    const producer = client.producer({ lingerMs: 0, retry: { retries: 2, initialMs: 1, maxMs: 2 } });
    await producer.send('t', { body: 'first' });
    const epoch = producer.producerEpoch;
    const doomed = producer.send('t', { body: 'doomed' });
    await new Promise((resolve) => setImmediate(resolve)); // a batch of its own
    const after = producer.send('t', { body: 'after' });
    await assert.rejects(doomed, isClientError('STORAGE_ERROR', /disk full/));
    await after;
    assert.equal(producer.producerEpoch, epoch + 1, 'a new epoch, so nothing is renumbered into sequences that may be stored');
    assert.deepEqual(broker.bodies('t', 0), ['first', 'after']);
  });

  it('client: producer initialises again after UNKNOWN_PRODUCER and loses nothing', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('t', { body: 'first' });
    const epoch = producer.producerEpoch;
    // The broker forgets this producer's sequence state on the partition.
    broker.topics.get('t')!.partitions[0]!.producers.clear();
    const results = await producer.send(
      't',
      ['a', 'b', 'c'].map((body) => ({ body })),
    );
    assert.equal(results.length, 3);
    assert.equal(producer.producerEpoch, epoch + 1);
    assert.deepEqual(broker.bodies('t', 0), ['first', 'a', 'b', 'c']);
    assert.equal(broker.received.filter((request) => request.name === 'InitProducer').length, 2);
  });

  it('client: a fenced producer fails with INVALID_PRODUCER_EPOCH and stays failed', async () => {
    const { client } = await setup(1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('t', { body: 'x' });
    await client.request('InitProducer', { producerId: producer.producerId }); // another instance takes the id over
    await assert.rejects(producer.send('t', { body: 'y' }), isClientError('INVALID_PRODUCER_EPOCH', /fenced/));
    await assert.rejects(producer.send('t', { body: 'z' }), isClientError('INVALID_PRODUCER_EPOCH'));
  });

  it('client: producer keeps at most maxInFlightPerPartition batches in flight', async () => {
    const { broker, client } = await setup(1);
    let inFlight = 0;
    let most = 0;
    broker.hook = (request) => {
      if (request.name !== 'Produce') return undefined;
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => inFlight--, 20);
      return { delayMs: 20 };
    };
    const producer = client.producer({ lingerMs: 0, maxBatchMessages: 1, maxInFlightPerPartition: 3 });
    await Promise.all(Array.from({ length: 20 }, (_, index) => producer.send('t', { body: `m${index}` })));
    assert.equal(most, 3);
    assert.deepEqual(
      broker.bodies('t', 0),
      Array.from({ length: 20 }, (_, index) => `m${index}`),
    );
  });

  it('client: a full buffer makes send wait, in call order, and memory stays bounded', async () => {
    const { broker, client } = await setup(1);
    broker.hook = (request) => (request.name === 'Produce' ? { delayMs: 15 } : undefined);
    const producer = client.producer({ lingerMs: 0, maxBufferedBytes: 2000, maxBatchMessages: 2 });
    let most = 0;
    const watcher = setInterval(() => {
      most = Math.max(most, producer.bufferedBytes);
    }, 1);
    const body = 'x'.repeat(300);
    const settledOrder: number[] = [];
    const sends = Array.from({ length: 40 }, (_, index) => producer.send('t', { body: `${index}:${body}` }).then(() => settledOrder.push(index)));
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(producer.bufferedBytes <= 2000, `buffered ${producer.bufferedBytes}`);
    await Promise.all(sends);
    clearInterval(watcher);
    assert.ok(most <= 2000, `buffer peaked at ${most}`);
    assert.equal(producer.bufferedBytes, 0);
    assert.deepEqual(
      broker.bodies('t', 0).map((stored) => Number(stored.split(':')[0])),
      Array.from({ length: 40 }, (_, index) => index),
    );
  });

  it('client: producer says how to fix a send to a topic that does not exist', async () => {
    const { client } = await setup(1);
    const producer = client.producer();
    await assert.rejects(producer.send('missing', { body: 'x' }), isClientError('UNKNOWN_TOPIC', /create it first/));
  });

  it('client: producer rejects malformed messages at once', async () => {
    const { client } = await setup(1);
    const producer = client.producer();
    await assert.rejects(producer.send('t', {} as never), isClientError('INVALID_ARGUMENT', /body is missing/));
    await assert.rejects(producer.send('t', { body: 'x', id: '' }), isClientError('INVALID_ARGUMENT', /1-255 bytes/));
    await assert.rejects(producer.send('t', { body: 'x', tag: 'x'.repeat(300) }), isClientError('INVALID_ARGUMENT', /tag/));
    await assert.rejects(producer.send('t', { body: 'x' }, { acks: 'all' as never }), isClientError('INVALID_ARGUMENT', /acks/));
  });

  it('client: producer sends acks none without waiting for an answer', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer();
    await producer.sendOneway('t', [{ body: 'a' }, { body: 'b' }]);
    const [result] = await producer.send('t', [{ body: 'c' }], { acks: 'none' });
    assert.equal(result!.offset, -1);
    await producer.send('t', { body: 'd' }, { acks: 'written' });
    assert.deepEqual(broker.bodies('t', 0), ['a', 'b', 'c', 'd']);
    const oneway = broker.received.filter((request) => request.name === 'Produce' && (request.body as { acks: number }).acks === 0);
    assert.ok(oneway.every((request) => (request.body as { producerId: number }).producerId === -1), 'acks 0 is never idempotent');
  });

  it('client: flush sends at once despite a long linger; close flushes and then refuses', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ lingerMs: 60_000 });
    const pending = producer.send('t', [{ body: 'a' }, { body: 'b' }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(broker.bodies('t', 0), []);
    const started = Date.now();
    await producer.flush();
    assert.ok(Date.now() - started < 1000);
    assert.equal((await pending).length, 2);
    const last = producer.send('t', { body: 'c' });
    await producer.close();
    await last;
    assert.deepEqual(broker.bodies('t', 0), ['a', 'b', 'c']);
    await assert.rejects(producer.send('t', { body: 'd' }), isClientError('CLIENT_CLOSED'));
  });

  it('client: flush waits for every send made before it (across flushes) and for none made after it', async () => {
    const { broker, client } = await setup(2);
    broker.hook = (request) => (request.name === 'Produce' && (request.body as { partition: number }).partition === 0 ? { delayMs: 150 } : undefined);
    const producer = client.producer({ lingerMs: 0 });
    const settled = new Set<string>();
    const track = (name: string, sending: Promise<unknown>): Promise<unknown> => sending.finally(() => settled.add(name));
    const slow = track('slow', producer.send('t', { body: 'slow' }, { partition: 0 }));
    const first = producer.flush();
    const fast = track('fast', producer.send('t', [{ body: 'fast' }], { partition: 1 }));
    await producer.flush();
    assert.deepEqual([...settled].sort(), ['fast', 'slow'], 'the second flush also waits for what the first one waits for');
    await first;
    const before = track('before', producer.send('t', { body: 'before' }, { partition: 1 }));
    const third = producer.flush();
    const late = track('late', producer.send('t', { body: 'late' }, { partition: 0 }));
    await third;
    assert.ok(settled.has('before'));
    assert.ok(!settled.has('late'), 'a send made after the flush is not waited for');
    await Promise.all([slow, fast, before, late]);
  });

  it('client: a list send resolves with its results in order, or rejects with the first failure; results show every field', async () => {
    const { broker, client } = await setup(4);
    const producer = client.producer({ lingerMs: 0 });
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const results = await producer.send(
      't',
      keys.map((key) => ({ key, body: key })),
    );
    assert.deepEqual(
      results.map((result) => result.partition),
      keys.map((key) => partitionForKey(Buffer.from(key), 4)),
    );
    const json = JSON.parse(JSON.stringify(results[0])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ['topic', 'partition', 'offset', 'id', 'idBytes', 'duplicate']);
    assert.equal(json.id, results[0]!.id);
    assert.match(results[0]!.id!, /^[0-9a-f]{32}$/);
    assert.equal(results[0]!.id, results[0]!.id, 'the id string is built once');
    assert.equal(results[0]!.idBytes!.toString('hex'), results[0]!.id);
    const failing = partitionForKey(Buffer.from('c'), 4);
    broker.hook = (request) =>
      request.name === 'Produce' && (request.body as { partition: number }).partition === failing ? { error: 'MESSAGE_TOO_LARGE', message: 'too large' } : undefined;
    await assert.rejects(
      producer.send(
        't',
        keys.map((key) => ({ key, body: key })),
      ),
      isClientError('MESSAGE_TOO_LARGE'),
    );
    await producer.flush();
    assert.equal(producer.bufferedBytes, 0);
  });

  it('client: producer headers, tags, keys and timestamps reach the broker', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer();
    await producer.send('t', { key: 'k', tag: 'red', headers: { text: 'v', raw: Buffer.from([0, 1]) }, timestamp: new Date(1_700_000_000_000), body: Buffer.from('b') });
    const [stored] = decodeRecordBatches(broker.topics.get('t')!.partitions[0]!.batches[0]!.encoded, 0);
    assert.equal(stored!.key!.toString(), 'k');
    assert.equal(stored!.tag, 'red');
    assert.equal(stored!.timestamp, 1_700_000_000_000);
    assert.deepEqual(stored!.headers, { text: 'v', raw: Buffer.from([0, 1]) });
  });
  it('client: producer sends delayed messages in Produce requests of their own, not idempotent, each with an id of its own', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ lingerMs: 20 });
    const sends = [
      producer.send('t', { body: 'now-1', priority: 7, ttlMs: 5000 }),
      producer.send('t', { body: 'later-1', delayMs: 300 }),
      producer.send('t', { body: 'later-2', deliverAt: new Date(Date.now() + 60_000), id: 'mine' }),
      producer.send('t', { body: 'now-2' }),
    ];
    const results = await Promise.all(sends);
    const produces = broker.received.filter((request) => request.name === 'Produce').map((request) => request.body as DecodedRequestOf<'Produce'>);
    const delayed = produces.filter((body) => body.messages.some((message) => message.headers.some((header) => header.name === 'weir.delayMs' || header.name === 'weir.deliverAt')));
    assert.equal(delayed.length, 1, 'both delayed messages share one batch');
    assert.equal(delayed[0]!.producerId, -1, 'delayed batches are not idempotent');
    assert.equal(delayed[0]!.baseSequence, -1);
    assert.ok(
      delayed[0]!.messages.every((message) => message.headers.some((header) => header.name.startsWith('weir.d'))),
      'no immediate message rides along',
    );
    const [generated, given] = delayed[0]!.messages;
    assert.equal(generated!.id!.length, 16, 'a random id for broker-side dedup of retries');
    assert.equal(Buffer.from(given!.id!).toString(), 'mine');
    assert.equal(results[1]!.id, Buffer.from(generated!.id!).toString('hex'), 'the result names the generated id');
    const immediate = produces.filter((body) => !delayed.includes(body));
    assert.ok(immediate.every((body) => body.producerId >= 0), 'immediate messages stay idempotent');
    const headersOf = (body: DecodedRequestOf<'Produce'>, index: number): Record<string, string> =>
      Object.fromEntries(body.messages[index]!.headers.map((header) => [header.name, Buffer.from(header.value).toString()]));
    const first = immediate.find((body) => body.messages.some((message) => Buffer.from(message.body).toString() === 'now-1'))!;
    assert.deepEqual(headersOf(first, 0), { 'weir.ttlMs': '5000', 'weir.priority': '7' });
    assert.deepEqual(headersOf(delayed[0]!, 0), { 'weir.delayMs': '300' });
  });

  it('client: producer refuses reserved header names and out-of-range queue attributes with a clear error', async () => {
    const { client } = await setup(1);
    const producer = client.producer();
    await assert.rejects(producer.send('t', { body: 'x', headers: { 'weir.priority': '9' } }), isClientError('INVALID_ARGUMENT', /reserved for the broker/));
    await assert.rejects(producer.send('t', { body: 'x', delayMs: -1 }), isClientError('INVALID_ARGUMENT', /delayMs must be a whole number/));
    await assert.rejects(producer.send('t', { body: 'x', priority: 10 }), isClientError('INVALID_ARGUMENT', /priority must be an integer from 0 to 9/));
    await assert.rejects(producer.send('t', { body: 'x', ttlMs: 0 }), isClientError('INVALID_ARGUMENT', /ttlMs must be .* at least 1/));
    await assert.rejects(producer.send('t', { body: 'x', delayMs: 5, deliverAt: Date.now() + 5 }), isClientError('INVALID_ARGUMENT', /not both/));
    await assert.rejects(producer.send('t', { body: 'x', deliverAt: new Date(Number.NaN) }), isClientError('INVALID_ARGUMENT', /deliverAt/));
  });
});
