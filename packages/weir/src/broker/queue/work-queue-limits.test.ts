import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import { decodeHeaders } from '../../storage/record-batch.js';
import type { BrokerCore } from '../broker-core.js';
import { decodeBatches, memoryBroker, rejectsWith, settle, type TestBroker } from '../test-support.js';
import type { OverflowPolicy, SharedGroupSettings } from './shared-subscription.js';

/** Length and byte limits of shared groups (docs/design/work-queues.md, "Dead letters, TTL and overflow"). */

async function setup(): Promise<TestBroker> {
  const context = await memoryBroker();
  await context.broker.createTopic('jobs', 1);
  return context;
}

function produceOne(broker: BrokerCore, body: string, extra: { key?: string; headers?: Record<string, string> } = {}) {
  return broker.produce({ topic: 'jobs', partition: 0, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body, key: extra.key ?? null, headers: extra.headers ?? null }] });
}

async function produce(broker: BrokerCore, bodies: string[]): Promise<void> {
  for (const body of bodies) await produceOne(broker, body);
}

async function ready(broker: BrokerCore, group = 'workers'): Promise<string[]> {
  return (await broker.peek(group, 'jobs', 1000)).map((entry) => entry.message.body.toString());
}

async function deadLetters(broker: BrokerCore, group = 'workers'): Promise<Array<[string, unknown]>> {
  if (!(await broker.listTopics()).some((topic) => topic.name === `${group}.dlq`)) return [];
  const dead = await broker.fetch({ topic: `${group}.dlq`, partition: 0, offset: 0, maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0 });
  return decodeBatches(dead.batches).map((message) => [message.body.toString(), decodeHeaders(message.headers)['weir.dlq.reason']]);
}

test('maxBytes with drop-head keeps the newest messages whose bodies fit; keys and headers are not counted', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxBytes: 10, overflow: 'drop-head' });
  await produceOne(broker, 'aaaa', { key: 'k'.repeat(200), headers: { note: 'x'.repeat(500) } });
  await produce(broker, ['bbb', 'cc']);
  await settle();
  assert.deepEqual(await ready(broker), ['aaaa', 'bbb', 'cc'], '9 body bytes are within 10, however large the key and headers');
  await produce(broker, ['dddddd']);
  await settle();
  // 15 bytes: aaaa goes (11, still over), then bbb (8).
  assert.deepEqual(await ready(broker), ['cc', 'dddddd']);
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.readyBytes, 8);
  assert.deepEqual(await deadLetters(broker), [], 'drop-head dead-letters nothing');
  await broker.close();
});

test('maxBytes with dead-letter moves the oldest to the dead-letter topic with reason overflow', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxBytes: 6, overflow: 'dead-letter' });
  await produce(broker, ['one', 'two', 'three']);
  await settle(5);
  assert.deepEqual(await ready(broker), ['three']);
  assert.deepEqual(await deadLetters(broker), [
    ['one', 'overflow'],
    ['two', 'overflow'],
  ]);
  await broker.close();
});

test('maxBytes with reject-publish refuses produces with QUEUE_FULL while the ready bodies are at the limit', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxBytes: 5, overflow: 'reject-publish' });
  await produce(broker, ['abc', 'de']);
  await settle();
  await assert.rejects(produceOne(broker, 'f'), (error: unknown) => {
    assert.ok(isWeirError(error, ErrorCode.QueueFull), String(error));
    assert.match((error as Error).message, /5 bytes of ready message bodies.*raise maxBytes/);
    assert.equal((error as { retriable?: boolean }).retriable, true);
    return true;
  });
  // In-flight messages do not count: taking one makes room.
  const receive = (maxMessages: number) => broker.receive({ group: 'workers', topic: 'jobs', mode: 'shared', consumerId: 'puller', clientId: 'test', address: 'test', maxMessages, waitMs: 0 });
  const [first] = await receive(1);
  assert.equal(first!.message.body.toString(), 'abc');
  await produceOne(broker, 'fgh');
  await rejectsWith(produceOne(broker, 'i'), ErrorCode.QueueFull);
  // A nacked message is ready again and counts again (8 bytes: over the limit, nothing is dropped).
  await broker.settle('workers', 'jobs', 'puller', [{ partition: 0, offset: first!.offset, outcome: 'nack', delayMs: 0 }]);
  await settle();
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.readyBytes, 8);
  await rejectsWith(produceOne(broker, 'i'), ErrorCode.QueueFull);
  const taken = await receive(2);
  assert.deepEqual(taken.map((delivery) => delivery.message.body.toString()), ['abc', 'de']);
  await broker.settle('workers', 'jobs', 'puller', taken.map((delivery) => ({ partition: 0, offset: delivery.offset, outcome: 'ack' as const })));
  await produceOne(broker, 'i');
  assert.deepEqual(await ready(broker), ['fgh', 'i']);
  await broker.close();
});

test('maxLength and maxBytes together: whichever is reached first applies', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxLength: 3, maxBytes: 10, overflow: 'drop-head' });
  await produce(broker, ['a', 'b', 'c', 'd', 'e']);
  await settle();
  assert.deepEqual(await ready(broker), ['c', 'd', 'e'], 'the length limit is reached first');
  await produce(broker, ['123456789']);
  await settle();
  // Four messages of 12 bytes: d goes for the length, then e for the bytes.
  assert.deepEqual(await ready(broker), ['e', '123456789']);
  await broker.close();
});

test('a reject-publish group with both limits refuses on whichever it is at', async () => {
  const { broker } = await setup();
  await broker.createSharedGroup('workers', 'jobs', { maxLength: 2, maxBytes: 100, overflow: 'reject-publish' });
  await produce(broker, ['x', 'y']);
  await assert.rejects(produceOne(broker, 'z'), /2 ready messages.*raise maxLength/);
  await broker.createTopic('big', 1);
  await broker.createSharedGroup('sized', 'big', { maxLength: 100, maxBytes: 4, overflow: 'reject-publish' });
  await broker.produce({ topic: 'big', partition: 0, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: 'four' }] });
  await assert.rejects(
    broker.produce({ topic: 'big', partition: 0, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: '' }] }),
    /4 bytes of ready message bodies.*raise maxBytes/,
  );
  await broker.close();
});

test('a backlog larger than the read-ahead is read through: maxBytes sees messages past readAhead', async () => {
  const { broker } = await setup();
  await produce(broker, Array.from({ length: 12 }, (_, i) => `m${String(i).padStart(2, '0')}`));
  await broker.createSharedGroup('workers', 'jobs', { maxBytes: 10, readAhead: 2, overflow: 'drop-head' });
  await settle(10);
  assert.deepEqual(await ready(broker), ['m09', 'm10', 'm11']);
  assert.equal(broker.sharedGroupStats('workers', 'jobs')?.unread, 0);

  await broker.createTopic('strict', 1);
  await broker.createSharedGroup('strict', 'strict', { maxBytes: 10, readAhead: 2, overflow: 'reject-publish' });
  let accepted = 0;
  for (let i = 0; i < 10; i++) {
    try {
      await broker.produce({ topic: 'strict', partition: 0, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [{ body: 'xyz' }] });
      accepted++;
      await settle();
    } catch (error) {
      assert.ok(isWeirError(error, ErrorCode.QueueFull), String(error));
    }
  }
  // 9 bytes are below 10, so a fourth is taken; 12 are at the limit.
  assert.equal(accepted, 4);
  await broker.close();
});

test('maxBytes is checked: a negative or fractional value is INVALID_ARGUMENT naming it', async () => {
  const { broker } = await setup();
  for (const maxBytes of [-1, 1.5, '10' as unknown as number]) {
    await assert.rejects(broker.createSharedGroup(`g${String(maxBytes)}`, 'jobs', { maxBytes }), (error: unknown) => {
      assert.ok(isWeirError(error, ErrorCode.InvalidArgument), String(error));
      assert.match((error as Error).message, /maxBytes/);
      return true;
    });
  }
  await broker.close();
});

// ---- property: the limits agree with a reference queue ----------------------------------------------------------------

type LimitOp = { kind: 'publish'; size: number } | { kind: 'take'; count: number };

const limitOp: fc.Arbitrary<LimitOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('publish' as const), size: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('take' as const), count: fc.integer({ min: 1, max: 3 }) }) },
);

test('maxLength and maxBytes under every overflow policy agree with a reference queue (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.option(fc.integer({ min: 0, max: 6 })),
      fc.option(fc.integer({ min: 0, max: 30 })),
      fc.constantFrom<OverflowPolicy>('drop-head', 'dead-letter', 'reject-publish'),
      fc.integer({ min: 1, max: 4 }),
      fc.array(limitOp, { minLength: 1, maxLength: 30 }),
      async (maxLength, maxBytes, overflow, readAhead, ops) => {
        const { broker } = await setup();
        try {
          const settings: Partial<SharedGroupSettings> = { maxLength, maxBytes, overflow, readAhead };
          await broker.createSharedGroup('workers', 'jobs', settings);
          // The reference: ready bodies oldest first; RabbitMQ's rules as docs/design/work-queues.md states them.
          const model: string[] = [];
          const dropped: string[] = [];
          const bytes = () => model.reduce((sum, body) => sum + body.length, 0);
          const over = () => (maxLength !== null && model.length > maxLength) || (maxBytes !== null && bytes() > maxBytes);
          const atLimit = () => (maxLength !== null && model.length >= maxLength) || (maxBytes !== null && bytes() >= maxBytes);
          let next = 0;
          for (const op of ops) {
            if (op.kind === 'publish') {
              // Each message's body is one letter repeated: which ones were kept or dropped shows.
              const body = String.fromCharCode(97 + (next++ % 26)).repeat(op.size);
              const refused = overflow === 'reject-publish' && atLimit();
              try {
                await produceOne(broker, body);
                assert.ok(!refused, `publish of ${body.length} bytes over ${JSON.stringify(model)} should be refused`);
                model.push(body);
              } catch (error) {
                assert.ok(refused && isWeirError(error, ErrorCode.QueueFull), `unexpected ${String(error)}`);
              }
              if (overflow !== 'reject-publish') while (over()) dropped.push(model.shift()!);
            } else {
              // A pull that does not wait gets what is read ahead.
              const readAheadNow = broker.sharedGroupStats('workers', 'jobs')!.ready;
              const taken = await broker.receive({ group: 'workers', topic: 'jobs', mode: 'shared', consumerId: 'taker', clientId: 'test', address: 'test', maxMessages: op.count, waitMs: 0 });
              assert.deepEqual(
                taken.map((delivery) => delivery.message.body.toString()),
                model.splice(0, Math.min(op.count, readAheadNow)),
              );
              await broker.settle('workers', 'jobs', 'taker', taken.map((delivery) => ({ partition: 0, offset: delivery.offset, outcome: 'ack' as const })));
            }
            await settle(4);
            // Without maxBytes only `readAhead` are read ahead; with it, everything within the limit is.
            const peeked = await ready(broker);
            const stats = broker.sharedGroupStats('workers', 'jobs')!;
            const read = maxBytes === null ? Math.min(readAhead, model.length) : model.length;
            assert.deepEqual(peeked, model.slice(0, read), `after ${JSON.stringify(op)}`);
            assert.equal(stats.ready + stats.unread, model.length);
            assert.equal(stats.readyBytes, peeked.reduce((sum, body) => sum + body.length, 0));
          }
          const dead = await deadLetters(broker);
          if (overflow === 'dead-letter') assert.deepEqual(dead, dropped.map((body) => [body, 'overflow']));
          else assert.deepEqual(dead, []);
        } finally {
          await broker.close();
        }
      },
    ),
    { numRuns: Number(process.env.WEIR_CHAOS) ? 1000 : 150 },
  );
});
