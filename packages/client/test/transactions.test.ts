import assert from 'node:assert/strict';
import { once } from 'node:events';
import { before, describe, it } from 'node:test';
import { isWeirClientError, type TraceEvent, type Transaction, type TransactionCheck, type WeirClient } from 'weir-client';
import { partitionForKey } from 'weir-protocol';
import { ChaosProxy, clientFor, sleep, startBroker, take, type RunningBroker } from './support.js';

/** Messages stored in a topic's partitions (end offsets), without consuming. */
async function stored(client: WeirClient, topic: string): Promise<number> {
  const info = await client.admin().describeTopic(topic);
  return info.partitions.reduce((sum, partition) => sum + partition.endOffset, 0);
}

/** Polls a message's trace until an event matches (the trace is the only signal a timeout rollback gives). */
async function traceUntil(client: WeirClient, id: string, match: (event: TraceEvent) => boolean, what: string, timeoutMs = 10_000): Promise<TraceEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await client.admin().trace(id);
    if (events.some(match)) return events;
    assert.ok(Date.now() < deadline, `no ${what} in the trace of ${id} within ${timeoutMs} ms: ${JSON.stringify(events)}`);
    await sleep(20);
  }
}

const neverAsked = (): 'unknown' => 'unknown';

describe('client integration: transactional producer (half messages)', () => {
  describe('commit and rollback by the producer', () => {
    let broker: RunningBroker;
    before(async () => {
      broker = await startBroker({ trace: 1 });
    });

    it('client integration: a transaction that resolves commits: the messages become visible with the ids tx.send returned', async () => {
      const client = clientFor(broker);
      await client.admin().createTopic('tx-orders', { partitions: 3 });
      const producer = client.transactionalProducer({ producerGroup: 'orders-service', onCheck: neverAsked });
      await producer.ready();
      const { results, invisible } = await producer.transaction(async (tx) => {
        assert.equal(tx.state, 'open');
        const one = await tx.send('tx-orders', { key: 'customer-1', headers: { orderId: 'o-1' }, body: 'created' });
        const more = await tx.send('tx-orders', [
          { key: 'customer-2', body: 'paid' },
          { key: 'customer-3', id: 'my-own-id', body: 'shipped' },
        ]);
        // Stored, but no consumer can see them before the commit.
        return { results: [one, ...more], invisible: await stored(client, 'tx-orders') };
      });
      assert.equal(invisible, 0);
      assert.deepEqual(
        results.map((result) => result.partition),
        ['customer-1', 'customer-2', 'customer-3'].map((key) => partitionForKey(Buffer.from(key), 3)),
        'each keyed message goes where its key maps, as with Producer.send',
      );
      assert.equal(results[2]!.id, Buffer.from('my-own-id').toString('hex'));

      const consumer = client.consumer();
      await consumer.subscribe('tx-orders');
      const received = await take(consumer, 3);
      const byId = new Map(received.map((message) => [message.id, message]));
      for (const result of results) {
        const message = byId.get(result.id);
        assert.ok(message !== undefined, `message ${result.id} consumed with the id tx.send returned`);
        assert.equal(message.partition, result.partition);
        assert.equal(message.headers['weir.txn'], undefined, 'the half-message headers are gone after the commit');
      }
      assert.equal(byId.get(results[0]!.id)!.headers.orderId, 'o-1');
      await consumer.close();

      const trace = await traceUntil(client, results[0]!.id, (event) => event.kind === 'transaction', 'transaction event');
      const stepped = trace.find((event) => event.kind === 'transaction');
      assert.ok(stepped?.kind === 'transaction' && stepped.outcome === 'commit' && stepped.via === 'producer', JSON.stringify(trace));
      const where = trace.find((event) => event.kind === 'stored');
      assert.ok(where?.kind === 'stored' && where.topic === 'tx-orders' && where.partition === results[0]!.partition, JSON.stringify(trace));
      await client.close();
    });

    it('client integration: a transaction whose work throws rolls back and rethrows; an explicit rollback ends it without an error', async () => {
      const client = clientFor(broker);
      await client.admin().createTopic('tx-rollback', { partitions: 1 });
      const producer = client.transactionalProducer({ producerGroup: 'rollback-service', onCheck: neverAsked });
      const failure = new Error('the local transaction failed');
      let sentId = '';
      await assert.rejects(
        producer.transaction(async (tx) => {
          sentId = (await tx.send('tx-rollback', { body: 'never visible' })).id;
          throw failure;
        }),
        (error) => error === failure,
      );
      const trace = await traceUntil(client, sentId, (event) => event.kind === 'transaction', 'rollback');
      const stepped = trace.find((event) => event.kind === 'transaction');
      assert.ok(stepped?.kind === 'transaction' && stepped.outcome === 'rollback' && stepped.via === 'producer', JSON.stringify(trace));

      let ended: Transaction | null = null;
      const value = await producer.transaction(async (tx) => {
        ended = tx;
        await tx.send('tx-rollback', { body: 'also never visible' });
        await tx.rollback();
        return 'rolled back on purpose';
      });
      assert.equal(value, 'rolled back on purpose');
      assert.equal(ended!.state, 'rolled-back');
      await assert.rejects(ended!.send('tx-rollback', { body: 'late' }), /cannot send in transaction .* it is rolled-back/);
      await assert.rejects(
        producer.transaction((tx) => tx.send('tx-rollback', { body: 'x', delayMs: 1000 })),
        (error) => isWeirClientError(error, 'INVALID_ARGUMENT') && /cannot be delayed/.test(error.message),
      );
      assert.equal(await stored(client, 'tx-rollback'), 0, 'nothing of a rolled-back transaction is visible');
      await client.close();
    });

    it('client integration: a commit whose answer is lost is repeated, and the repeat finding it settled counts as committed', async () => {
      const proxy = await ChaosProxy.start(broker.port);
      const client = clientFor({ port: proxy.port });
      const observer = clientFor(broker);
      await observer.admin().createTopic('tx-lost-answer', { partitions: 1 });
      const consumer = observer.consumer();
      await consumer.subscribe('tx-lost-answer');
      const producer = client.transactionalProducer({ producerGroup: 'lost-answer-service', onCheck: neverAsked });
      const tx = await producer.begin();
      const sent = await tx.send('tx-lost-answer', { body: 'exactly once' });
      proxy.holdAnswers = true;
      const committing = tx.commit();
      // The broker applied the commit (the message is visible) while its answer is held back; then the connection dies.
      const [message] = await take(consumer, 1);
      assert.equal(message!.id, sent.id);
      proxy.holdAnswers = false;
      proxy.dropAll();
      await committing;
      assert.equal(tx.state, 'committed');
      assert.equal(await stored(observer, 'tx-lost-answer'), 1, 'committed once');
      await consumer.close();
      await client.close();
      await observer.close();
    });
  });

  describe('check-back', () => {
    let broker: RunningBroker;
    before(async () => {
      broker = await startBroker({ trace: 1, transactionCheckAfterMs: 300, transactionCheckIntervalMs: 100, transactionMaxChecks: 5 });
    });

    it('client integration: a producer that crashed after sending is checked with a live member of its group, which commits', async () => {
      const observer = clientFor(broker);
      await observer.admin().createTopic('tx-crash', { partitions: 2 });
      // The survivor's connection drops once before the crash: it must join its group again to be asked.
      const proxy = await ChaosProxy.start(broker.port);
      const survivorClient = clientFor({ port: proxy.port });
      const checks: TransactionCheck[] = [];
      const errors: Error[] = [];
      const survivor = survivorClient.transactionalProducer({
        producerGroup: 'payments',
        onCheck: (check) => {
          checks.push(check);
          // The first answer fails: a throwing onCheck answers unknown, and the broker asks again.
          if (checks.length === 1) throw new Error('database unreachable');
          return check.messages.every((message) => message.headers.paymentId === 'p-7') ? 'commit' : 'rollback';
        },
      });
      survivor.on('error', (error) => errors.push(error));
      await survivor.ready();
      const rejoined = once(survivor, 'joined');
      proxy.dropAll();
      await rejoined;

      const doomedClient = clientFor(broker);
      const doomed = doomedClient.transactionalProducer({ producerGroup: 'payments', onCheck: neverAsked });
      await doomed.ready();
      const tx = await doomed.begin();
      const sent = await tx.send('tx-crash', [
        { key: 'account-1', headers: { paymentId: 'p-7' }, body: 'debit' },
        { key: 'account-2', headers: { paymentId: 'p-7' }, body: 'credit' },
      ]);
      doomedClient.abort(); // between the local commit and the broker commit

      const consumer = observer.consumer();
      await consumer.subscribe('tx-crash');
      const received = await take(consumer, 2);
      assert.deepEqual(received.map((message) => message.id).sort(), sent.map((result) => result.id).sort(), 'committed by the check, with the ids tx.send returned');
      assert.equal(checks.length, 2);
      const check = checks[1]!;
      assert.equal(check.transactionId, tx.id);
      assert.equal(check.producerGroup, 'payments');
      assert.deepEqual(
        check.messages.map((message) => [message.topic, message.partition, message.offset, message.body.toString(), message.headers['weir.txn'], message.headers['weir.target']]),
        sent.map((result, index) => ['tx-crash', result.partition, -1, ['debit', 'credit'][index], tx.id, `tx-crash/${result.partition}`]),
      );
      assert.deepEqual(check.messages.map((message) => message.id), sent.map((result) => result.id));
      assert.ok(errors.some((error) => /onCheck .* threw \(database unreachable\); answered unknown/.test(error.message)), errors.map(String).join('\n'));

      const trace = await traceUntil(observer, sent[0]!.id, (event) => event.kind === 'transaction' && event.outcome === 'commit', 'commit');
      assert.ok(trace.some((event) => event.kind === 'transaction' && event.outcome === 'unknown' && event.via === 'check'), 'the inconclusive check is traced');
      await consumer.close();
      await survivorClient.close();
      await observer.close();
    });

    it('client integration: a commit that cannot reach the broker is not rolled back: the check-back commits it', async () => {
      const observer = clientFor(broker);
      await observer.admin().createTopic('tx-in-doubt', { partitions: 1 });
      const survivor = observer.transactionalProducer({ producerGroup: 'shipping', onCheck: () => 'commit' });
      const checked = once(survivor, 'checked');
      await survivor.ready();

      const proxy = await ChaosProxy.start(broker.port);
      const cutOff = clientFor({ port: proxy.port }, { retry: { initialMs: 10, maxMs: 20, retries: 1 } });
      const producer = cutOff.transactionalProducer({ producerGroup: 'shipping', onCheck: () => 'commit' });
      let transactionId = '';
      let sentId = '';
      await assert.rejects(
        producer.transaction(async (tx) => {
          transactionId = tx.id;
          sentId = (await tx.send('tx-in-doubt', { body: 'parcel' })).id;
          await proxy.close(); // the local work committed; the broker is out of reach from here on
        }),
        (error) => isWeirClientError(error, 'TRANSACTION_IN_DOUBT') && /asks a live member of producer group "shipping"/.test(error.message),
      );
      const consumer = observer.consumer();
      await consumer.subscribe('tx-in-doubt');
      const [message] = await take(consumer, 1);
      assert.equal(message!.id, sentId);
      assert.deepEqual(await checked, [{ transactionId, decision: 'commit' }]);
      cutOff.abort();
      await consumer.close();
      await observer.close();
    });
  });

  describe('closed producer on an open connection', () => {
    it('client integration: a producer closed while its connection stays open leaves its group: the check goes to the live member', async () => {
      // One check only (the next is a minute away): if the closed producer were still a member it would be asked
      // first (members are asked in join order) and could only answer unknown.
      const broker = await startBroker({ trace: 1, transactionCheckAfterMs: 100, transactionCheckIntervalMs: 60_000, transactionMaxChecks: 5 });
      const stayingClient = clientFor(broker);
      await stayingClient.admin().createTopic('tx-left', { partitions: 1 });
      const leaving = stayingClient.transactionalProducer({ producerGroup: 'leavers', onCheck: () => 'commit' });
      await leaving.ready();
      const memberClient = clientFor(broker);
      const member = memberClient.transactionalProducer({ producerGroup: 'leavers', onCheck: () => 'rollback' });
      await member.ready();
      await leaving.close();

      const doomedClient = clientFor(broker);
      const tx = await doomedClient.transactionalProducer({ producerGroup: 'leavers', onCheck: () => 'commit' }).begin();
      const sent = await tx.send('tx-left', { body: 'orphan' });
      doomedClient.abort();
      const trace = await traceUntil(stayingClient, sent.id, (event) => event.kind === 'transaction', 'check', 5_000);
      const check = trace.find((event) => event.kind === 'transaction');
      // The member's answer is its EndTransaction, so the trace may credit the rollback to it (via producer).
      assert.ok(check?.kind === 'transaction' && check.outcome === 'rollback', JSON.stringify(trace));
      assert.equal(await stored(stayingClient, 'tx-left'), 0, 'rolled back by the live member');
      await memberClient.close();
      await stayingClient.close();
    });
  });

  describe('no live producer', () => {
    it('client integration: a transaction nobody answers for is rolled back after the last check', async () => {
      const broker = await startBroker({ trace: 1, transactionCheckAfterMs: 100, transactionCheckIntervalMs: 50, transactionMaxChecks: 2 });
      const observer = clientFor(broker);
      await observer.admin().createTopic('tx-orphan', { partitions: 1 });
      const doomedClient = clientFor(broker);
      const doomed = doomedClient.transactionalProducer({ producerGroup: 'orphans', onCheck: () => 'commit' });
      const tx = await doomed.begin();
      const sent = await tx.send('tx-orphan', { body: 'abandoned' });
      doomedClient.abort();
      const trace = await traceUntil(observer, sent.id, (event) => event.kind === 'transaction' && event.outcome === 'rollback', 'rollback');
      const outcome = trace.find((event) => event.kind === 'transaction' && event.outcome === 'rollback');
      assert.ok(outcome?.kind === 'transaction' && outcome.via === 'timeout' && outcome.transactionId === tx.id, JSON.stringify(trace));
      assert.equal(trace.filter((event) => event.kind === 'transaction' && event.outcome === 'unknown' && event.via === 'check').length, 2, 'two inconclusive checks first');
      assert.equal(await stored(observer, 'tx-orphan'), 0);
      await observer.close();
    });
  });
});
