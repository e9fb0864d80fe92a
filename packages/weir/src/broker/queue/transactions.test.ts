import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import { type MessageStore, unknownQueue } from '../../storage/message-store.js';
import { decodeHeaders, type MessageInput, RecordFlag, type StoredMessage } from '../../storage/record-batch.js';
import { ManualScheduler } from '../scheduler.js';
import { openDiskStore, rejectsWith, settle, tempDirectory } from '../test-support.js';
import {
  HALF_QUEUE,
  TARGET_HEADER,
  TXN_HEADER,
  type TransactionCheck,
  type TransactionEvent,
  TransactionManager,
  type TransactionManagerOptions,
  type TransactionOutcome,
} from './transactions.js';

type Answer = (producerGroup: string, check: TransactionCheck) => Promise<TransactionOutcome> | null;

interface Harness {
  manager: TransactionManager;
  store: MessageStore;
  clock: ManualClock;
  scheduler: ManualScheduler;
  events: TransactionEvent[];
  /** Every check-back sent, with the monotonic time it was sent. */
  checks: Array<{ producerGroup: string; check: TransactionCheck; at: number }>;
  /** What the producers answer; by default no producer is connected. */
  answer: Answer;
}

/** Appends to the named queue, as the broker's produce path does. */
async function appendTo(store: MessageStore, target: string, messages: MessageInput[]): Promise<void> {
  const queue = store.queue(target);
  if (queue === null) throw unknownQueue(target);
  await store.append(queue.id, messages);
}

async function harness(options: Partial<TransactionManagerOptions> & { store?: MessageStore; clock?: ManualClock } = {}): Promise<Harness> {
  const clock = options.clock ?? new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const store = options.store ?? new MemoryMessageStore(clock);
  for (const name of ['orders/0', 'orders/1']) if (store.queue(name) === null) await store.createQueue(name);
  const partial: Omit<Harness, 'manager'> = { store, clock, scheduler, events: [], checks: [], answer: () => null };
  const manager = await TransactionManager.open({
    logger: silentLogger,
    deliver: (target, messages) => appendTo(store, target, messages),
    check: (producerGroup, check) => {
      partial.checks.push({ producerGroup, check, at: clock.monotonic() });
      return h.answer(producerGroup, check);
    },
    onEvent: (event) => partial.events.push(event),
    ...options,
    store,
    clock,
    scheduler,
  });
  const h: Harness = Object.assign(partial, { manager });
  return h;
}

/** Moves time forward in steps, letting the work each step starts finish before the next. */
async function elapse(h: Harness, ms: number, step = 1000): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    h.scheduler.advance(Math.min(step, ms - done));
    await settle();
  }
}

async function readQueue(store: MessageStore, name: string): Promise<StoredMessage[]> {
  const queue = store.queue(name);
  assert.ok(queue, `queue ${name} exists`);
  return (await store.read(queue.id, queue.startOffset, { maxMessages: 100_000, maxBytes: 1 << 26 })).messages;
}

async function bodies(store: MessageStore, name: string): Promise<string[]> {
  return (await readQueue(store, name)).map((message) => message.body.toString());
}

async function eventually(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const answering = (outcome: TransactionOutcome): Answer => async () => outcome;
const hex = (ids: readonly Buffer[]) => ids.map((id) => id.toString('hex'));
const kinds = (events: readonly TransactionEvent[]) => events.map((event) => event.kind);

describe('broker: transactional messages', () => {
  it('broker: half messages stay invisible until commit, which delivers them in order with the same ids and without the transaction headers', async () => {
    const h = await harness();
    const id = await h.manager.begin('shop');
    const first = await h.manager.add(id, 'orders/0', [
      { body: 'a', key: 'k1', tag: 'new', headers: { trace: 'x1' }, timestamp: 1234 },
      { body: 'b', id: 'my-own-id' },
    ]);
    const second = await h.manager.add(id, 'orders/1', [{ body: 'c' }]);
    const third = await h.manager.add(id, 'orders/0', [{ body: 'd' }]);

    assert.equal(h.store.queue('orders/0')!.endOffset, 0);
    assert.equal(h.store.queue('orders/1')!.endOffset, 0);
    const half = h.store.queue(HALF_QUEUE)!;
    assert.equal(half.settings.flushPolicy, 'sync');
    assert.equal(half.endOffset, 4);
    const stored = await readQueue(h.store, HALF_QUEUE);
    assert.ok(stored.every((message) => (message.flags & RecordFlag.Transactional) !== 0));
    assert.deepEqual(decodeHeaders(stored[0]!.headers), { trace: 'x1', [TXN_HEADER]: id, [TARGET_HEADER]: 'orders/0' });
    assert.deepEqual(hex(stored.map((message) => message.id)), hex([...first.ids, ...second.ids, ...third.ids]));
    assert.equal(first.ids[1]!.toString(), 'my-own-id');
    assert.deepEqual([first.halfOffset, second.halfOffset, third.halfOffset], [0, 2, 3]);
    assert.deepEqual(
      h.manager.list().map(({ id, producerGroup, state, messages, checks }) => ({ id, producerGroup, state, messages, checks })),
      [{ id, producerGroup: 'shop', state: 'open', messages: 4, checks: 0 }],
    );

    await h.manager.commit(id);
    const delivered = await readQueue(h.store, 'orders/0');
    assert.deepEqual(
      delivered.map((message) => message.body.toString()),
      ['a', 'b', 'd'],
    );
    assert.deepEqual(await bodies(h.store, 'orders/1'), ['c']);
    assert.deepEqual(hex(delivered.map((message) => message.id)), hex([...first.ids, ...third.ids]));
    assert.deepEqual(decodeHeaders(delivered[0]!.headers), { trace: 'x1' });
    assert.deepEqual(decodeHeaders(delivered[1]!.headers), {});
    assert.equal(delivered[0]!.key!.toString(), 'k1');
    assert.equal(delivered[0]!.tag, 'new');
    assert.equal(delivered[0]!.timestamp, 1234);
    assert.equal(delivered[0]!.flags, 0);
    assert.deepEqual(h.manager.list(), []);
    assert.deepEqual(h.store.metadata.entries('txn/'), []);
    assert.deepEqual(kinds(h.events), ['begin', 'commit']);
    assert.equal(h.events[1]!.via, 'producer');
    assert.equal(h.events[1]!.outcome, 'commit');
    assert.deepEqual(h.events[1]!.messageIds, hex([...first.ids, ...second.ids, ...third.ids]));
    // Once the half queue is trimmed, an id returned by add finds the delivered message.
    await settle();
    const found = await h.store.findById(first.ids[0]!);
    assert.equal(found?.queueId, h.store.queue('orders/0')!.id);
    await rejectsWith(h.manager.add(id, 'orders/0', [{ body: 'late' }]), ErrorCode.UnknownTransaction);
    await h.manager.close();
  });

  it('broker: rollback discards the messages, and the transaction is gone afterwards', async () => {
    const h = await harness();
    const id = await h.manager.begin('shop');
    const { ids } = await h.manager.add(id, 'orders/0', [{ body: 'a' }, { body: 'b' }]);
    await h.manager.rollback(id);
    assert.equal(h.store.queue('orders/0')!.endOffset, 0);
    assert.deepEqual(h.manager.list(), []);
    assert.deepEqual(kinds(h.events), ['begin', 'rollback']);
    assert.deepEqual(h.events[1]!.messageIds, hex(ids));
    assert.equal(h.events[1]!.via, 'producer');
    await rejectsWith(h.manager.commit(id), ErrorCode.UnknownTransaction);
    await rejectsWith(h.manager.rollback(id), ErrorCode.UnknownTransaction);
    // Nothing is checked later either.
    await elapse(h, 120_000, 10_000);
    assert.equal(h.checks.length, 0);
    assert.equal(h.store.queue('orders/0')!.endOffset, 0);
    await h.manager.close();
    assert.equal(h.scheduler.pending, 0);
  });

  it('broker: after checkAfterMs without activity, a live producer is asked and its commit is applied', async () => {
    const h = await harness();
    h.answer = answering('commit');
    const id = await h.manager.begin('shop');
    await elapse(h, 30_000, 10_000);
    // Activity restarts the wait.
    const { ids } = await h.manager.add(id, 'orders/0', [{ body: 'a' }, { body: 'b' }]);
    await elapse(h, 59_999, 10_000);
    assert.equal(h.checks.length, 0);
    await elapse(h, 1);
    assert.equal(h.checks.length, 1);
    const [sent] = h.checks;
    assert.equal(sent!.producerGroup, 'shop');
    assert.equal(sent!.at, 90_000);
    assert.equal(sent!.check.transactionId, id);
    assert.deepEqual(hex(sent!.check.messages.map((message) => message.id)), hex(ids));
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['a', 'b']);
    assert.deepEqual(kinds(h.events), ['begin', 'check', 'commit']);
    assert.equal(h.events[1]!.outcome, 'commit');
    assert.equal(h.events[2]!.via, 'check');
    assert.deepEqual(h.manager.list(), []);
    await h.manager.close();
  });

  it("broker: 'unknown', failed and unanswered checks are retried with doubling intervals until the producer decides", async () => {
    const h = await harness({ checkTimeoutMs: 5_000, maxCheckIntervalMs: 30_000 });
    const answers: Array<() => Promise<TransactionOutcome>> = [
      async () => 'unknown',
      async () => {
        throw new Error('producer crashed');
      },
      () => new Promise<TransactionOutcome>(() => {}),
      async () => 'unknown',
      async () => 'rollback',
    ];
    h.answer = () => answers.shift()!();
    const id = await h.manager.begin('shop');
    await h.manager.add(id, 'orders/0', [{ body: 'a' }]);
    await elapse(h, 60_000 + 10_000 + 20_000 + 5_000 + 30_000 + 30_000, 1_000);
    // 60 s idle, then 10 s, 20 s, (no answer for 5 s) 30 s capped from 40 s, 30 s.
    assert.deepEqual(
      h.checks.map((check) => check.at),
      [60_000, 70_000, 90_000, 125_000, 155_000],
    );
    assert.deepEqual(
      h.events.filter((event) => event.kind === 'check').map((event) => `${event.outcome}${event.detail === undefined ? '' : ` (${event.detail})`}`),
      ['unknown', 'unknown (the check failed: producer crashed)', 'unknown (no answer within 5000 ms)', 'unknown', 'rollback'],
    );
    assert.equal(h.events.at(-1)!.kind, 'rollback');
    assert.equal(h.events.at(-1)!.via, 'check');
    assert.equal(h.store.queue('orders/0')!.endOffset, 0);
    assert.deepEqual(h.manager.list(), []);
    await h.manager.close();
    assert.equal(h.scheduler.pending, 0);
  });

  it("broker: without a live producer, checks stop after maxChecks and the group's configured outcome is applied and traced", async () => {
    const h = await harness({ maxChecks: 3, checkIntervalMs: 10_000, maxCheckIntervalMs: 15_000, outcomeAfterMaxChecks: (group) => (group === 'keep' ? 'commit' : 'rollback') });
    const kept = await h.manager.begin('keep');
    const dropped = await h.manager.begin('drop');
    await h.manager.add(kept, 'orders/0', [{ body: 'kept' }]);
    await h.manager.add(dropped, 'orders/0', [{ body: 'dropped' }]);
    await elapse(h, 84_000, 1_000);
    assert.equal(h.manager.list().length, 2);
    assert.deepEqual(
      h.manager.list().map((txn) => txn.checks),
      [2, 2],
    );
    await elapse(h, 1_000);
    assert.deepEqual(
      h.checks.filter((check) => check.producerGroup === 'keep').map((check) => check.at),
      [60_000, 70_000, 85_000],
    );
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['kept']);
    assert.deepEqual(h.manager.list(), []);
    const settled = h.events.filter((event) => event.kind.startsWith('timeout-')).sort((a, b) => (a.producerGroup < b.producerGroup ? 1 : -1));
    assert.deepEqual(
      settled.map((event) => [event.producerGroup, event.kind, event.outcome, event.via]),
      [
        ['keep', 'timeout-commit', 'commit', 'timeout'],
        ['drop', 'timeout-rollback', 'rollback', 'timeout'],
      ],
    );
    assert.match(settled[0]!.detail!, /no decision after 3 check/);
    assert.equal(h.events.filter((event) => event.kind === 'check' && event.detail === 'no live producer in the group').length, 6);
    await h.manager.close();
  });

  it('broker: an answer that arrives after the producer settled the transaction, or after it added more, is ignored', async () => {
    const h = await harness();
    let release: (outcome: TransactionOutcome) => void = () => {};
    h.answer = () => new Promise((resolve) => (release = resolve));
    const committed = await h.manager.begin('shop');
    await h.manager.add(committed, 'orders/0', [{ body: 'a' }]);
    await elapse(h, 60_000, 10_000);
    assert.equal(h.checks.length, 1);
    // The producer's own commit is not held up by the check that is out.
    await h.manager.commit(committed);
    release('rollback');
    await settle();
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['a']);
    assert.deepEqual(kinds(h.events), ['begin', 'commit']);

    const busy = await h.manager.begin('shop');
    await elapse(h, 60_000, 10_000);
    assert.equal(h.checks.length, 2);
    await h.manager.add(busy, 'orders/0', [{ body: 'b' }]);
    release('rollback');
    await settle();
    assert.equal(h.manager.list()[0]?.id, busy);
    await elapse(h, 59_000, 10_000);
    assert.equal(h.checks.length, 2);
    h.answer = answering('commit');
    await elapse(h, 1_000);
    assert.equal(h.checks.length, 3);
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['a', 'b']);
    await h.manager.close();
  });

  it('broker: a transaction left open across a restart is still checked and resolved (disk store)', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    try {
      const clock = new ManualClock();
      const store = await openDiskStore(dataDir, clock);
      const before = await harness({ store, clock });
      const id = await before.manager.begin('shop');
      const { ids } = await before.manager.add(id, 'orders/0', [{ body: 'a', headers: { h: 'v' } }, { body: 'b', key: 'k' }]);
      await elapse(before, 20_000, 10_000);
      // At 60 s the first check finds no producer: the next is due 10 s later (wall clock: nextCheckAt).
      before.scheduler.advance(40_000);
      await eventually(() => before.manager.list()[0]?.checks === 1, 'the first check');
      await before.manager.close();
      await store.close();

      // A restart: the wall clock moved on 4 s, the monotonic one starts again.
      const clockAfter = new ManualClock(clock.now() + 4_000, 0);
      const reopened = await openDiskStore(dataDir, clockAfter);
      const after = await harness({ store: reopened, clock: clockAfter });
      assert.deepEqual(
        after.manager.list().map(({ id, state, messages, checks }) => ({ id, state, messages, checks })),
        [{ id, state: 'open', messages: 2, checks: 1 }],
      );
      assert.equal(reopened.queue('orders/0')!.endOffset, 0);
      after.answer = answering('commit');
      await elapse(after, 5_999);
      assert.equal(after.checks.length, 0);
      after.scheduler.advance(1);
      await eventually(() => after.manager.list().length === 0, 'the commit');
      const delivered = await readQueue(reopened, 'orders/0');
      assert.deepEqual(hex(delivered.map((message) => message.id)), hex(ids));
      assert.deepEqual(decodeHeaders(delivered[0]!.headers), { h: 'v' });
      assert.equal(delivered[1]!.key!.toString(), 'k');
      assert.deepEqual(kinds(after.events), ['check', 'commit']);
      assert.notEqual(await after.manager.begin('shop'), id);
      await after.manager.close();
      await reopened.close();
    } finally {
      await cleanup();
    }
  });

  it('broker: a commit cut short resumes after a restart at the first entry not yet delivered', async () => {
    const store = new MemoryMessageStore(new ManualClock());
    let calls = 0;
    const before = await harness({
      store,
      deliver: async (target, messages) => {
        if (++calls === 2) throw new WeirError(ErrorCode.StorageIo, 'disk full', { retriable: true });
        await appendTo(store, target, messages);
      },
    });
    const id = await before.manager.begin('shop');
    await before.manager.add(id, 'orders/0', [{ body: 'a' }, { body: 'b' }]);
    await before.manager.add(id, 'orders/1', [{ body: 'c' }]);
    await before.manager.add(id, 'orders/0', [{ body: 'd' }]);
    await rejectsWith(before.manager.commit(id), ErrorCode.StorageIo);
    assert.equal(before.manager.list()[0]?.state, 'committing');
    assert.deepEqual(await bodies(store, 'orders/0'), ['a', 'b']);
    assert.deepEqual(await bodies(store, 'orders/1'), []);
    // A committing transaction takes no more messages and cannot be rolled back.
    await rejectsWith(before.manager.add(id, 'orders/0', [{ body: 'x' }]), ErrorCode.InvalidArgument);
    await rejectsWith(before.manager.rollback(id), ErrorCode.InvalidArgument);
    await before.manager.close();

    const after = await harness({ store });
    assert.deepEqual(await bodies(store, 'orders/0'), ['a', 'b', 'd']);
    assert.deepEqual(await bodies(store, 'orders/1'), ['c']);
    assert.deepEqual(after.manager.list(), []);
    assert.deepEqual(
      after.events.map((event) => [event.kind, event.via, event.detail]),
      [['commit', 'producer', 'finished after a restart']],
    );
    await settle();
    const half = store.queue(HALF_QUEUE)!;
    assert.equal(half.startOffset, half.endOffset);
    await after.manager.close();
  });

  it('broker: a failed delivery is retried in the background, and commit() again resumes it at once', async () => {
    const h = await harness({
      deliver: async (target, messages) => {
        if (failures-- > 0) throw new WeirError(ErrorCode.StorageIo, 'disk full', { retriable: true });
        await appendTo(h.store, target, messages);
      },
    });
    let failures = 1;
    const background = await h.manager.begin('shop');
    await h.manager.add(background, 'orders/0', [{ body: 'a' }]);
    await rejectsWith(h.manager.commit(background), ErrorCode.StorageIo);
    await elapse(h, 10_000);
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['a']);
    assert.deepEqual(h.manager.list(), []);

    failures = 1;
    const resumed = await h.manager.begin('shop');
    await h.manager.add(resumed, 'orders/1', [{ body: 'b' }]);
    await rejectsWith(h.manager.commit(resumed), ErrorCode.StorageIo);
    await h.manager.commit(resumed);
    assert.deepEqual(await bodies(h.store, 'orders/1'), ['b']);
    await elapse(h, 60_000, 10_000);
    assert.deepEqual(await bodies(h.store, 'orders/1'), ['b']);
    await h.manager.close();
  });

  it('broker: records found on open are finished or ignored as their state says', async () => {
    const store = new MemoryMessageStore(new ManualClock());
    const record = { id: 'old', producerGroup: 'shop', state: 'rolling-back', entries: [], createdAt: 0, lastActivityAt: 0, checks: 0, nextCheckAt: 0 };
    await store.metadata.put('txn/old', record);
    await store.metadata.put('txn/broken', { id: 'broken', state: 'open' });
    const h = await harness({ store });
    assert.deepEqual(
      h.events.map((event) => [event.transactionId, event.kind]),
      [['old', 'rollback']],
    );
    assert.equal(store.metadata.has('txn/old'), false);
    assert.deepEqual(h.manager.list(), []);
    await h.manager.close();
  });

  it('broker: limits and unknown ids give clear errors', async () => {
    const h = await harness({ maxMessagesPerTransaction: 3, maxOpenTransactions: 2 });
    await h.store.createQueue('small/0', { maxMessageBytes: 100 });
    const first = await h.manager.begin('shop');
    await h.manager.add(first, 'orders/0', [{ body: 'a' }, { body: 'b' }]);
    await assert.rejects(h.manager.add(first, 'orders/0', [{ body: 'c' }, { body: 'd' }]), (error: unknown) => {
      assert.ok(error instanceof WeirError && error.code === ErrorCode.InvalidArgument);
      assert.match(error.message, /would hold 4 messages; a transaction holds at most 3/);
      return true;
    });
    await h.manager.add(first, 'orders/0', [{ body: 'c' }]);
    const second = await h.manager.begin('shop');
    await assert.rejects(h.manager.begin('shop'), (error: unknown) => {
      assert.ok(error instanceof WeirError && error.code === ErrorCode.InvalidArgument);
      assert.match(error.message, /2 unfinished transactions.*maxOpenTransactions/);
      return true;
    });
    await h.manager.rollback(second);
    const third = await h.manager.begin('shop');

    await assert.rejects(h.manager.commit('no-such-id'), (error: unknown) => {
      assert.ok(error instanceof WeirError && error.code === ErrorCode.UnknownTransaction);
      assert.match(error.message, /transaction "no-such-id" does not exist/);
      return true;
    });
    await rejectsWith(h.manager.add(third, 'missing/0', [{ body: 'x' }]), ErrorCode.UnknownQueue);
    await rejectsWith(h.manager.add(third, HALF_QUEUE, [{ body: 'x' }]), ErrorCode.InvalidArgument);
    await rejectsWith(h.manager.add(third, 'orders/0', []), ErrorCode.InvalidArgument);
    await assert.rejects(h.manager.add(third, 'small/0', [{ body: 'x'.repeat(200) }]), (error: unknown) => {
      assert.ok(error instanceof WeirError && error.code === ErrorCode.MessageTooLarge);
      assert.match(error.message, /queue "small\/0"'s limit of 100 bytes/);
      return true;
    });
    await rejectsWith(h.manager.begin(''), ErrorCode.InvalidArgument);
    await rejectsWith(TransactionManager.open({ ...optionsOf(h), checkAfterMs: 0 }), ErrorCode.InvalidArgument);
    await rejectsWith(TransactionManager.open({ ...optionsOf(h), checkIntervalMs: 20, maxCheckIntervalMs: 10 }), ErrorCode.InvalidArgument);
    // The failed adds left nothing behind.
    assert.equal(h.manager.list().find((txn) => txn.id === first)?.messages, 3);
    assert.equal(h.manager.list().find((txn) => txn.id === third)?.messages, 0);
    await h.manager.close();
    await rejectsWith(h.manager.begin('shop'), ErrorCode.BrokerShuttingDown);
    await rejectsWith(h.manager.commit(first), ErrorCode.BrokerShuttingDown);
    assert.equal(h.scheduler.pending, 0);
  });

  it('broker: concurrent transactions interleaving adds each keep their own order, and only committed ones arrive', async () => {
    const step = fc.record({ txn: fc.nat({ max: 3 }), target: fc.nat({ max: 1 }), count: fc.integer({ min: 1, max: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), async (steps, commits) => {
        const h = await harness();
        const ids = await Promise.all([0, 1, 2, 3].map(() => h.manager.begin('shop')));
        const expected = new Map<string, string[]>();
        const sent: Array<Promise<{ ids: Buffer[] }>> = [];
        const bodiesSent: string[][] = [];
        steps.forEach(({ txn, target, count }, index) => {
          const batch = Array.from({ length: count }, (_, at) => `t${txn}-${index}-${at}`);
          bodiesSent.push(batch);
          const key = `${txn}:orders/${target}`;
          expected.set(key, [...(expected.get(key) ?? []), ...batch]);
          // Not awaited: the adds of all transactions are in flight together.
          sent.push(h.manager.add(ids[txn]!, `orders/${target}`, batch.map((body) => ({ body }))));
        });
        const results = await Promise.all(sent);
        await Promise.all(ids.map((id, txn) => (commits[txn] ? h.manager.commit(id) : h.manager.rollback(id))));
        for (const target of [0, 1]) {
          const delivered = await readQueue(h.store, `orders/${target}`);
          for (let txn = 0; txn < 4; txn++) {
            const own = delivered.filter((message) => message.body.toString().startsWith(`t${txn}-`)).map((message) => message.body.toString());
            assert.deepEqual(own, commits[txn] ? (expected.get(`${txn}:orders/${target}`) ?? []) : []);
          }
        }
        // Every delivered message kept the id its add returned.
        const idOf = new Map<string, string>();
        results.forEach((result, index) => result.ids.forEach((id, at) => idOf.set(bodiesSent[index]![at]!, id.toString('hex'))));
        for (const target of [0, 1]) {
          for (const message of await readQueue(h.store, `orders/${target}`)) assert.equal(message.id.toString('hex'), idOf.get(message.body.toString()));
        }
        await settle();
        const half = h.store.queue(HALF_QUEUE)!;
        assert.equal(half.startOffset, half.endOffset);
        await h.manager.close();
      }),
      { numRuns: 40 },
    );
  });

  it("broker: the half queue's low-water mark follows the oldest unsettled transaction", async () => {
    const h = await harness();
    const low = () => h.store.queue(HALF_QUEUE)!.startOffset;
    const [t1, t2, t3] = [await h.manager.begin('shop'), await h.manager.begin('shop'), await h.manager.begin('shop')];
    await h.manager.add(t1, 'orders/0', [{ body: 'a' }, { body: 'b' }]);
    await h.manager.add(t2, 'orders/0', [{ body: 'c' }, { body: 'd' }]);
    await h.manager.add(t3, 'orders/1', [{ body: 'e' }]);
    await h.manager.add(t1, 'orders/1', [{ body: 'f' }]);
    await h.manager.commit(t2);
    await settle();
    assert.equal(low(), 0);
    await h.manager.commit(t1);
    await settle();
    assert.equal(low(), 4);
    await h.manager.rollback(t3);
    await settle();
    assert.equal(low(), 6);
    assert.equal(h.store.queue(HALF_QUEUE)!.endOffset, 6);
    assert.deepEqual(await bodies(h.store, 'orders/0'), ['c', 'd', 'a', 'b']);
    assert.deepEqual(await bodies(h.store, 'orders/1'), ['f']);
    await h.manager.close();
  });
});

/** The options `harness` opened its manager with, for opening another over the same store. */
function optionsOf(h: Harness): TransactionManagerOptions {
  return { store: h.store, clock: h.clock, scheduler: h.scheduler, logger: silentLogger, deliver: (target, messages) => appendTo(h.store, target, messages), check: () => null };
}
