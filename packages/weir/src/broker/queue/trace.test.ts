import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { RecordingLogger, silentLogger } from '../../core/logger.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import type { MessageStore } from '../../storage/message-store.js';
import { ManualScheduler } from '../scheduler.js';
import { openDiskStore, settle, tempDirectory } from '../test-support.js';
import { DEFAULT_TRACE_RETENTION_MS, MessageTrace, TRACE_QUEUE, type TraceEvent } from './trace.js';

const DAY = 86_400_000;

async function setup(options: { clock?: ManualClock; store?: MessageStore; retentionMs?: number; maxBufferedEvents?: number; enabled?: boolean } = {}) {
  const clock = options.clock ?? new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const store = options.store ?? new MemoryMessageStore(clock);
  const logger = new RecordingLogger();
  const trace = await MessageTrace.open({ store, clock, scheduler, logger, ...options });
  return { clock, scheduler, store, logger, trace };
}

/** One event of every kind for `id`, a second apart from `start`. */
function lifeOf(id: Buffer, start: number): TraceEvent[] {
  const where = { topic: 'orders', partition: 2, offset: 17 };
  const consumer = { group: 'billing', consumerId: 'c-1' };
  return [
    { messageId: id, kind: 'delayed', time: start, topic: 'orders', partition: 2, deliverAt: start + 60_000, producer: { clientId: 'shop', address: '10.0.0.5:5123', protocol: 'weir' } },
    { messageId: id, kind: 'stored', time: start + 1000, ...where, producer: { clientId: 'shop', producerId: 42 } },
    { messageId: id, kind: 'transaction', time: start + 2000, outcome: 'commit', via: 'check', transactionId: 'tx-9', ...where },
    { messageId: id, kind: 'delivered', time: start + 3000, ...where, ...consumer, address: '10.0.0.9:4000', deliveryCount: 1 },
    { messageId: id, kind: 'nacked', time: start + 4000, ...where, ...consumer, delayMs: 500, error: 'database locked' },
    { messageId: id, kind: 'delivered', time: start + 5000, ...where, ...consumer, address: '10.0.0.9:4000', deliveryCount: 2 },
    { messageId: id, kind: 'rejected', time: start + 6000, ...where, ...consumer, reason: 'unparseable' },
    { messageId: id, kind: 'dead-lettered', time: start + 7000, ...where, group: 'billing', reason: 'rejected', deliveryCount: 2, to: { topic: 'orders.billing.dlq', partition: 0, offset: 3 }, error: 'unparseable' },
    { messageId: id, kind: 'acked', time: start + 8000, ...where, ...consumer },
    { messageId: id, kind: 'expired', time: start + 9000, ...where, group: 'audit', expiresAt: start + 8500 },
  ];
}

describe('broker: message trace', () => {
  it('every kind of event round-trips through the __trace queue', async () => {
    const { clock, scheduler, store, trace } = await setup();
    const id = Buffer.from('order-1');
    const events = lifeOf(id, clock.now());
    for (const event of events) trace.record(event);
    assert.deepEqual(trace.stats(), { recorded: 0, dropped: 0, buffered: events.length });
    await trace.flush();
    assert.deepEqual(trace.stats(), { recorded: events.length, dropped: 0, buffered: 0 });
    assert.equal(scheduler.pending, 0, 'a flush takes over the pending timer');
    assert.deepEqual(await trace.traceOf(id), events);
    assert.deepEqual(await trace.traceOf(Buffer.from('order-2')), []);
    // Records are keyed by the message id and hold no copy of it in the body.
    const [record] = (await store.read(store.queue(TRACE_QUEUE)!.id, 0)).messages;
    assert.deepEqual(record!.key, id);
    assert.equal(record!.timestamp, events[0]!.time);
    assert.equal(JSON.parse(record!.body.toString()).messageId, undefined);

    await trace.close();
  });

  it('a scheduler tick writes what was recorded, in one append', async () => {
    const { scheduler, store, trace, clock } = await setup();
    let appends = 0;
    const append = store.append.bind(store);
    store.append = (...args) => {
      appends++;
      return append(...args);
    };
    for (let index = 0; index < 100; index++) trace.record({ messageId: Buffer.from(`m${index % 7}`), kind: 'acked', time: clock.now(), topic: 't', partition: 0, offset: index, group: 'g', consumerId: 'c' });
    assert.equal(scheduler.pending, 1, 'one timer, not one per event');
    scheduler.advance(0);
    await settle();
    assert.equal(appends, 1);
    assert.equal(trace.stats().recorded, 100);
    assert.equal((await trace.traceOf(Buffer.from('m3'))).length, 14);
    await trace.close();
  });

  it('interleaved messages each get only their own events, oldest first (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ message: fc.nat(5), at: fc.nat(1_000_000), offset: fc.nat(1000) }), { minLength: 1, maxLength: 60 }),
        fc.nat(3),
        async (events, flushEvery) => {
          const { trace } = await setup();
          const recorded: TraceEvent[] = events.map(({ message, at, offset }) => ({ messageId: Buffer.from(`message-${message}`), kind: 'acked', time: 1_700_000_000_000 + at, topic: 'orders', partition: message, offset, group: 'g', consumerId: 'c' }));
          for (const [index, event] of recorded.entries()) {
            trace.record(event);
            // Some writes happen between records, so one message's events span several batches.
            if (flushEvery > 0 && index % flushEvery === 0) await trace.flush();
          }
          for (let message = 0; message <= 5; message++) {
            const id = Buffer.from(`message-${message}`);
            const expected = recorded.filter((event) => event.messageId.equals(id)).sort((a, b) => a.time - b.time);
            assert.deepEqual(await trace.traceOf(id), expected);
          }
          await trace.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a full buffer drops and counts instead of blocking', async () => {
    const { trace, clock } = await setup({ maxBufferedEvents: 10 });
    const id = Buffer.from('hot');
    for (let index = 0; index < 25; index++) trace.record({ messageId: id, kind: 'stored', time: clock.now() + index, topic: 't', partition: 0, offset: index, producer: {} });
    assert.deepEqual(trace.stats(), { recorded: 0, dropped: 15, buffered: 10 });
    await trace.flush();
    assert.deepEqual(trace.stats(), { recorded: 10, dropped: 15, buffered: 0 });
    assert.deepEqual(
      (await trace.traceOf(id)).map((event) => (event.kind === 'stored' ? event.offset : -1)),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    // Space frees up once the buffer is written.
    trace.record({ messageId: id, kind: 'stored', time: clock.now() + 99, topic: 't', partition: 0, offset: 99, producer: {} });
    await trace.close();
    assert.deepEqual(trace.stats(), { recorded: 11, dropped: 15, buffered: 0 });
  });

  it('malformed events and failed appends are dropped, counted and logged, never thrown', async () => {
    const { trace, store, logger, clock } = await setup();
    const good: TraceEvent = { messageId: Buffer.from('a'), kind: 'acked', time: clock.now(), topic: 't', partition: 0, offset: 0, group: 'g', consumerId: 'c' };
    trace.record(good);
    trace.record({ ...good, time: Number.NaN });
    trace.record({ ...good, kind: 'bogus' } as unknown as TraceEvent);
    trace.record({ ...good, messageId: 'a' } as unknown as TraceEvent);
    trace.record({ ...good, offset: 1n } as unknown as TraceEvent);
    trace.record({ ...good, kind: 'nacked', delayMs: 0, error: 'x'.repeat(100_000) });
    await trace.flush();
    assert.deepEqual(trace.stats(), { recorded: 2, dropped: 4, buffered: 0 });
    const [, nacked] = await trace.traceOf(Buffer.from('a'));
    assert.equal(nacked!.kind === 'nacked' && nacked!.error!.length, 1025, 'long error text is clipped');

    const append = store.append.bind(store);
    store.append = () => Promise.reject(new WeirError(ErrorCode.StorageIo, 'disk full', { retriable: true }));
    trace.record(good);
    trace.record(good);
    await trace.flush();
    assert.deepEqual(trace.stats(), { recorded: 2, dropped: 6, buffered: 0 });
    const warnings = logger.entries.filter((entry) => entry.level === 'warn');
    assert.equal(warnings.length, 1, 'one line, not one per event');
    store.append = append;
    trace.record(good);
    await trace.close();
    assert.equal(trace.stats().recorded, 3);
  });

  it('the trace survives close and reopen on a disk store', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    try {
      let store = await openDiskStore(dataDir, clock);
      let trace = await MessageTrace.open({ store, clock, scheduler, logger: silentLogger });
      const ids = [Buffer.from('disk-1'), Buffer.from([0, 1, 2, 255])];
      const lives = ids.map((id, index) => lifeOf(id, clock.now() + index * 500));
      for (let step = 0; step < lives[0]!.length; step++) for (const life of lives) trace.record(life[step]!);
      await trace.close();
      trace.record(lives[0]![0]!);
      assert.equal(trace.stats().dropped, 1, 'events after close are dropped and counted');
      assert.equal(scheduler.pending, 0);
      await store.close();

      store = await openDiskStore(dataDir, clock);
      trace = await MessageTrace.open({ store, clock, scheduler, logger: silentLogger });
      assert.deepEqual(await trace.traceOf(ids[0]!), lives[0]);
      assert.deepEqual(await trace.traceOf(ids[1]!), lives[1]);
      trace.record({ ...lives[0]![8]!, time: clock.now() + 20_000 });
      assert.equal((await trace.traceOf(ids[0]!)).length, lives[0]!.length + 1);
      await trace.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('the __trace queue gets the configured retention, and old trace records go with it', async () => {
    const clock = new ManualClock();
    const first = await setup({ clock });
    const queue = first.store.queue(TRACE_QUEUE)!;
    assert.equal(queue.settings.retentionMs, DEFAULT_TRACE_RETENTION_MS);
    assert.equal(queue.settings.flushPolicy, 'interval');
    assert.equal(queue.settings.flushIntervalMs, 1000);
    await first.trace.close();

    const { store, trace } = await setup({ clock, store: first.store, retentionMs: DAY });
    assert.equal(store.queue(TRACE_QUEUE)!.id, queue.id, 'reopening reuses the queue');
    assert.equal(store.queue(TRACE_QUEUE)!.settings.retentionMs, DAY);
    const id = Buffer.from('old');
    trace.record({ messageId: id, kind: 'expired', time: clock.now(), topic: 't', partition: 0, offset: 0, group: 'g', expiresAt: clock.now() });
    await trace.flush();
    clock.advance(DAY - 1);
    await store.enforceRetention();
    assert.equal((await trace.traceOf(id)).length, 1);
    clock.advance(2);
    await store.enforceRetention();
    assert.deepEqual(await trace.traceOf(id), []);
    await trace.close();
    await assert.rejects(MessageTrace.open({ store, clock, scheduler: new ManualScheduler(clock), logger: silentLogger, retentionMs: 0 }), /retentionMs/);
  });

  it('a disabled trace creates no queue and records nothing', async () => {
    const { store, trace, scheduler, clock } = await setup({ enabled: false });
    trace.record({ messageId: Buffer.from('x'), kind: 'acked', time: clock.now(), topic: 't', partition: 0, offset: 0, group: 'g', consumerId: 'c' });
    assert.equal(scheduler.pending, 0);
    await trace.flush();
    assert.equal(store.queue(TRACE_QUEUE), null);
    assert.deepEqual(await trace.traceOf(Buffer.from('x')), []);
    assert.deepEqual(trace.stats(), { recorded: 0, dropped: 0, buffered: 0 });
    await trace.close();
  });
});
