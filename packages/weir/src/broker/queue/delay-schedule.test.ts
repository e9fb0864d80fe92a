import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { RecordingLogger, silentLogger } from '../../core/logger.js';
import { DiskMessageStore } from '../../storage/disk-message-store.js';
import { FaultFileSystem, seededRandom } from '../../storage/io/fault-file-system.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import { type MessageStore, unknownQueue } from '../../storage/message-store.js';
import { decodeHeaders, encodeHeaders, type MessageInput } from '../../storage/record-batch.js';
import { ManualScheduler } from '../scheduler.js';
import { isSettled, openDiskStore, rejectsWith, settle, tempDirectory } from '../test-support.js';
import { DelayEntries, EntryBuffer } from './delay-entries.js';
import { BUCKET_QUEUE_PREFIX, DELIVER_AT_HEADER, DelaySchedule, type DelayScheduleOptions, encodedDeliverAt, parseDeliverAt, TARGET_HEADER } from './delay-schedule.js';

interface Delivery {
  id: string;
  target: string;
  deliverAt: number;
  /** clock.now() when deliver was called. */
  at: number;
}

/** A deliver callback that records every message handed over, and asserts none is early. */
/** A delivered message's headers, however the schedule handed them over (decoded, or encoded as stored). */
function headersOf(message: MessageInput): Record<string, string | Uint8Array> {
  if (message.headers !== undefined && message.headers !== null) return message.headers;
  return message.encodedHeaders === undefined ? {} : decodeHeaders(Buffer.from(message.encodedHeaders));
}

class Recorder {
  readonly deliveries: Delivery[] = [];
  readonly calls: Array<{ target: string; count: number }> = [];
  /** Called before recording; may throw to make the call fail. */
  failWith: ((target: string, messages: MessageInput[]) => Error | null) | null = null;
  /** Event-loop turns a call takes to resolve (so later rounds are issued while it is pending). */
  lag: (() => number) | null = null;

  constructor(private readonly clock: ManualClock) {}

  readonly deliver = async (target: string, messages: MessageInput[]): Promise<void> => {
    const at = this.clock.now();
    const failure = this.failWith?.(target, messages) ?? null;
    if (failure !== null) throw failure;
    this.calls.push({ target, count: messages.length });
    for (const message of messages) {
      const deliverAt = Number(headersOf(message)[DELIVER_AT_HEADER]);
      assert.ok(deliverAt <= at, `message ${String(message.id)} due at ${deliverAt} delivered early at ${at}`);
      assert.equal(headersOf(message)[TARGET_HEADER], undefined, 'the target header is removed on delivery');
      this.deliveries.push({ id: Buffer.from(message.id as Uint8Array).toString(), target, deliverAt, at });
    }
    for (let turn = this.lag?.() ?? 0; turn > 0; turn--) await new Promise<void>((resolve) => setImmediate(resolve));
  };

  ids(): string[] {
    return this.deliveries.map((delivery) => delivery.id);
  }
}

function delayed(id: string, deliverAt: number, body: string | Uint8Array = 'x'): MessageInput {
  return { id, headers: { [DELIVER_AT_HEADER]: String(deliverAt), note: 'kept' }, body };
}

type Options = Omit<DelayScheduleOptions, 'store' | 'clock' | 'scheduler' | 'logger' | 'deliver'>;

interface Harness {
  store: MessageStore;
  clock: ManualClock;
  scheduler: ManualScheduler;
  recorder: Recorder;
  schedule: DelaySchedule;
}

async function memoryHarness(options: Options = {}, logger = silentLogger): Promise<Harness> {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const store = new MemoryMessageStore(clock);
  const recorder = new Recorder(clock);
  const schedule = await DelaySchedule.open({ store, clock, scheduler, logger, deliver: recorder.deliver, ...options });
  return { store, clock, scheduler, recorder, schedule };
}

/** Moves time forward in steps, letting the schedule finish its work after each. */
async function run(schedule: DelaySchedule, scheduler: ManualScheduler, ms: number, step: number): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    scheduler.advance(Math.min(step, ms - done));
    await schedule.settled();
  }
}

/** Each target receives its messages in due order (targets relative to one another: no order is promised). */
function assertNondecreasing(deliveries: readonly Delivery[], label: string): void {
  const last = new Map<string, Delivery>();
  for (const delivery of deliveries) {
    const previous = last.get(delivery.target);
    if (previous !== undefined) {
      assert.ok(previous.deliverAt <= delivery.deliverAt, `${label}, ${delivery.target}: ${previous.id} (${previous.deliverAt}) before ${delivery.id} (${delivery.deliverAt})`);
    }
    last.set(delivery.target, delivery);
  }
}

/**
 * A MemoryMessageStore whose appends resolve a few event-loop turns late: either stored at once and acknowledged late
 * (readers may see a message before its append resolves) or stored late (as the disk store makes them visible).
 */
function laggyStore(inner: MemoryMessageStore, random: () => number): MessageStore {
  const turns = async (): Promise<void> => {
    for (let turn = Math.floor(random() * 4); turn > 0; turn--) await new Promise<void>((resolve) => setImmediate(resolve));
  };
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'append') {
        return async (...args: Parameters<MessageStore['append']>) => {
          if (random() < 0.5) {
            await turns();
            return target.append(...args);
          }
          const result = await target.append(...args);
          await turns();
          return result;
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Calls a dead process may still make: they read its own memory or the store's, and change nothing. */
const SYNC_READS = new Set<PropertyKey>(['get', 'has', 'entries', 'queue', 'queueById', 'listQueues', 'onAppend']);

/**
 * The store and deliver callback as one process sees them, for modelling kill -9 in memory. After `kill()`, what the
 * process started earlier still reaches the store (as a write the kernel already had), but it never hears back, and
 * nothing it calls afterwards happens: an abandoned DelaySchedule's promise chains (a load, a round) would otherwise
 * go on delivering and deleting buckets beside its successor, which no killed process can do.
 */
function mortalProcess(store: MessageStore, deliver: DelayScheduleOptions['deliver']): { store: MessageStore; deliver: DelayScheduleOptions['deliver']; kill: () => void } {
  let dead = false;
  const never = new Promise<never>(() => {});
  const guard = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property, receiver) {
        const value = Reflect.get(object, property, receiver) as unknown;
        if (property === 'metadata') return guard(value as object);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (dead && !SYNC_READS.has(property)) return never;
          const result = (value as (...args: unknown[]) => unknown).apply(object, args);
          if (!(result instanceof Promise)) return result;
          return result.then(
            (settled) => (dead ? never : settled),
            (error: unknown) => (dead ? never : Promise.reject(error)),
          );
        };
      },
    });
  return {
    store: guard(store),
    deliver: (target, messages) => (dead ? never : deliver(target, messages).then((settled) => (dead ? never : settled))),
    kill: () => {
      dead = true;
    },
  };
}

/**
 * 5,000 messages due at random in one 1 s bucket (with a staged one), delivered in 10 ms steps under the given
 * read-ahead budget: checks order, earliness and completeness, and reports how many messages rounds and read-ahead
 * passes read from the bucket once it was loaded, and the most read-ahead bytes held. With `failReadsUntilDue`, every
 * read once the bucket is loaded fails until its time comes (those reads are counted in `failedReads`).
 */
async function readAheadRun(readAheadBytes: number, failReadsUntilDue = false): Promise<{ messagesReadWhileDue: number; maxReadAheadBytes: number; failedReads: number }> {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const inner = new MemoryMessageStore(clock);
  let messagesRead = 0;
  let failing = false;
  let failedReads = 0;
  let loaded = (): number => 0;
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'read') {
        return async (...args: Parameters<MessageStore['read']>) => {
          if (failing && loaded() >= total) {
            failedReads++;
            throw new WeirError(ErrorCode.StorageIo, 'injected read failure');
          }
          const result = await target.read(...args);
          messagesRead += result.messages.length;
          return result;
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const recorder = new Recorder(clock);
  const total = 5000;
  const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver: recorder.deliver, readAheadBytes });
  loaded = () => schedule.stats().loaded;
  const bucket = Math.floor(clock.now() / 1000) * 1000 + 5000;
  const random = seededRandom(5);
  for (let from = 0; from < total; from += 100) {
    const messages: MessageInput[] = [];
    for (let index = from; index < from + 100; index++) messages.push(delayed(`m${index}`, bucket + Math.floor(random() * 1000), 'x'.repeat(100)));
    await schedule.schedule('t/0', messages);
  }
  failing = failReadsUntilDue;
  scheduler.advance(bucket - 1000 - clock.now());
  await schedule.settled();
  assert.equal(schedule.stats().loaded, total, 'loaded one bucket ahead');
  await schedule.schedule('t/0', [delayed('late', bucket + 500, 'y')]);
  messagesRead = 0;
  let maxReadAheadBytes = schedule.stats().readAheadBytes;
  // Through the bucket, from one second before it.
  for (let step = 0; step < 210; step++) {
    // Reads work again from the step that reaches the bucket's time, so those rounds read when due succeed.
    if (clock.now() + 10 >= bucket) failing = false;
    scheduler.advance(10);
    await schedule.settled();
    maxReadAheadBytes = Math.max(maxReadAheadBytes, schedule.stats().readAheadBytes);
  }
  assert.equal(recorder.deliveries.length, total + 1);
  assert.equal(new Set(recorder.ids()).size, total + 1);
  assertNondecreasing(recorder.deliveries, 'read-ahead');
  for (const delivery of recorder.deliveries) assert.ok(delivery.at - delivery.deliverAt <= 10, `${delivery.id} late by ${delivery.at - delivery.deliverAt} ms`);
  assert.equal(schedule.stats().readAheadBytes, 0, 'everything read ahead was released');
  await schedule.close();
  return { messagesReadWhileDue: messagesRead, maxReadAheadBytes, failedReads };
}

function bucketQueues(store: MessageStore): string[] {
  return store
    .listQueues()
    .map((queue) => queue.name)
    .filter((name) => name.startsWith(BUCKET_QUEUE_PREFIX));
}

describe('delay schedule: entries', () => {
  it('delay: entries sort by (deliverAt, offset) and merge staged ones into the waiting part', () => {
    const buffer = new EntryBuffer(2);
    for (const [key, offset] of [[30, 0], [10, 1], [20, 2], [10, 3], [40, 4]] as const) buffer.push(key, offset, 1, offset === 2 ? 77 : -1);
    const entries = DelayEntries.sorted(buffer);
    assert.deepEqual([...entries.keys], [10, 10, 20, 30, 40]);
    assert.deepEqual([...entries.offsets], [1, 3, 2, 0, 4]);
    assert.deepEqual([...entries.slots], [-1, -1, 77, -1, -1], 'slots travel with their entries');
    entries.head = 2;
    const staged = new EntryBuffer();
    assert.equal(staged.minKey, Infinity);
    staged.push(25, 5, 1, 88);
    staged.push(20, 6, 1);
    staged.push(50, 7, 1);
    assert.equal(staged.minKey, 20);
    const merged = entries.merged(staged);
    assert.equal(merged.head, 0);
    assert.deepEqual([...merged.keys], [20, 20, 25, 30, 40, 50]);
    assert.deepEqual([...merged.offsets], [2, 6, 5, 0, 4, 7]);
    assert.deepEqual([...merged.slots], [77, -1, 88, -1, -1, -1]);
    const dropped: number[] = [];
    staged.dropBelow(6, (slot) => dropped.push(slot));
    assert.equal(staged.length, 2);
    assert.deepEqual(dropped, [88], 'the slot of a dropped entry is handed back');
    assert.equal(staged.minKey, 20);
    staged.clear();
    assert.equal(staged.minKey, Infinity);
  });

  it('delay: the packed sort and the comparator sort agree', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.nat(50)), { maxLength: 400 }), fc.nat(1e12), fc.boolean(), (pairs, base, sparse) => {
        const buffer = new EntryBuffer();
        // Distinct offsets: dense (a bucket load) or spread out (staged appends), shuffled against the keys.
        const slotOf = (index: number): number => (index % 3 === 0 ? -1 : index * 2 ** 24);
        pairs.forEach(([key, size], index) => buffer.push(base + key, sparse ? index * 1000 + size : pairs.length - 1 - index, size, slotOf(index)));
        const entries = DelayEntries.sorted(buffer);
        const expected = pairs.map(([key, size], index) => ({ key: base + key, offset: sparse ? index * 1000 + size : pairs.length - 1 - index, size, slot: slotOf(index) }));
        expected.sort((a, b) => a.key - b.key || a.offset - b.offset);
        assert.deepEqual([...entries.keys], expected.map((entry) => entry.key));
        assert.deepEqual([...entries.offsets], expected.map((entry) => entry.offset));
        assert.deepEqual([...entries.sizes], expected.map((entry) => entry.size));
        assert.deepEqual([...entries.slots], expected.map((entry) => entry.slot));
      }),
    );
  });

  it('delay: weir.deliverAt is read from encoded headers as decodeHeaders would', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string(), fc.uint8Array({ maxLength: 8 }))), fc.option(fc.nat()), (headers, deliverAt) => {
        const all = deliverAt === null ? headers : { ...headers, [DELIVER_AT_HEADER]: String(deliverAt) };
        const encoded = Buffer.from(encodeHeaders(all));
        assert.equal(parseDeliverAt(encodedDeliverAt(encoded)), parseDeliverAt(decodeHeaders(encoded)[DELIVER_AT_HEADER]));
      }),
    );
    assert.equal(encodedDeliverAt(Buffer.alloc(0)), undefined);
    // A damaged list reads as no due time (the message goes with its bucket) rather than failing the bucket's load.
    assert.equal(encodedDeliverAt(Buffer.from([3, 0, 200, 0])), undefined);
  });
});

describe('delay schedule', () => {
  it('delay: delivers in deliverAt order across many fine and coarse buckets (with the cascade), never early', async () => {
    const { store, clock, scheduler, recorder, schedule } = await memoryHarness();
    const start = clock.now();
    const random = seededRandom(11);
    const targets = ['a/0', 'b/0', 'c/1'];
    const total = 3000;
    const due = new Map<string, number>();
    for (let batch = 0; batch < total / 100; batch++) {
      const messages: MessageInput[] = [];
      for (let index = 0; index < 100; index++) {
        const id = `m${batch * 100 + index}`;
        const deliverAt = start + 1 + Math.floor(random() * 3 * 3_600_000);
        due.set(id, deliverAt);
        messages.push(delayed(id, deliverAt));
      }
      await schedule.schedule(targets[batch % targets.length]!, messages);
    }
    const queues = bucketQueues(store);
    assert.ok(queues.some((name) => name.startsWith('__delay.f.')), 'fine buckets exist');
    assert.ok(queues.some((name) => name.startsWith('__delay.c.')), 'coarse buckets exist');
    assert.equal(schedule.stats().pending, total);
    assert.equal(schedule.stats().loaded, 0);

    const step = 5000;
    await run(schedule, scheduler, 3 * 3_600_000 + 2 * step, step);
    assert.equal(recorder.deliveries.length, total);
    assert.equal(new Set(recorder.ids()).size, total, 'each message once');
    assertNondecreasing(recorder.deliveries, 'all targets');
    for (const delivery of recorder.deliveries) {
      assert.equal(delivery.deliverAt, due.get(delivery.id));
      assert.ok(delivery.at - delivery.deliverAt <= step, `${delivery.id} is late by ${delivery.at - delivery.deliverAt} ms`);
    }
    assert.ok(recorder.calls.every((call) => call.count >= 1 && call.count <= 1000));
    assert.deepEqual(schedule.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
    assert.deepEqual(bucketQueues(store), []);
    assert.deepEqual(store.metadata.entries('delay/'), []);
    await schedule.close();
    assert.equal(scheduler.pending, 0, 'close clears the timers');
  });

  it('delay: messages added to a loaded bucket are merged and delivered in order, none before its time', async () => {
    const { clock, scheduler, recorder, schedule } = await memoryHarness();
    const bucket = Math.floor((clock.now() + 5000) / 1000) * 1000;
    await schedule.schedule('t/0', [100, 300, 500, 700, 900].map((ms) => delayed(`a${ms}`, bucket + ms)));
    scheduler.advance(bucket - 500 - clock.now());
    await schedule.settled();
    assert.equal(schedule.stats().loaded, 5, 'loaded one fine bucket ahead of its start');
    assert.equal(recorder.deliveries.length, 0);
    await schedule.schedule('t/1', [200, 400, 600, 800, 0].map((ms) => delayed(`b${ms}`, bucket + ms)));
    assert.equal(schedule.stats().loaded, 10);
    assert.equal(schedule.stats().pending, 10);
    await run(schedule, scheduler, 1000, 50); // to bucket + 500
    assert.deepEqual(recorder.ids(), ['b0', 'a100', 'b200', 'a300', 'b400', 'a500']);
    await schedule.schedule('t/1', [delayed('b650', bucket + 650)]);
    await run(schedule, scheduler, 1000, 50);
    assert.deepEqual(recorder.ids(), ['b0', 'a100', 'b200', 'a300', 'b400', 'a500', 'b600', 'b650', 'a700', 'b800', 'a900']);
    for (const delivery of recorder.deliveries) assert.ok(delivery.at - delivery.deliverAt <= 50);
    await schedule.close();
  });

  it('delay: a deliverAt already passed is delivered at once, and schedule() resolves only once deliver did', async () => {
    const { clock, scheduler, recorder, schedule } = await memoryHarness();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const deliveries: string[] = [];
    const gated = await DelaySchedule.open({
      store: new MemoryMessageStore(clock),
      clock,
      scheduler,
      logger: silentLogger,
      deliver: async (_target, messages) => {
        deliveries.push(...messages.map((message) => String(message.id)));
        await gate;
      },
    });
    const pending = gated.schedule('t/0', [delayed('past', clock.now() - 10_000), delayed('now', clock.now()), delayed('soon', clock.now() + 500)]);
    assert.deepEqual(deliveries, ['past', 'now']);
    assert.equal(await isSettled(pending), false, 'waits for deliver');
    release();
    await pending;
    assert.equal(gated.stats().pending, 1);
    await gated.close();

    // A failing immediate delivery fails the call.
    recorder.failWith = () => new WeirError(ErrorCode.StorageIo, 'disk full', { retriable: true });
    await rejectsWith(schedule.schedule('t/0', [delayed('x', clock.now() - 1)]), ErrorCode.StorageIo);
    await schedule.close();
  });

  it('delay: refuses messages without a valid weir.deliverAt, and bucket names as targets', async () => {
    const { clock, schedule } = await memoryHarness();
    await rejectsWith(schedule.schedule('t/0', [{ body: 'no header' }]), ErrorCode.InvalidArgument);
    await rejectsWith(schedule.schedule('t/0', [{ headers: { [DELIVER_AT_HEADER]: '12.5' }, body: 'x' }]), ErrorCode.InvalidArgument);
    await rejectsWith(schedule.schedule('t/0', [{ headers: { [DELIVER_AT_HEADER]: '-4' }, body: 'x' }]), ErrorCode.InvalidArgument);
    await rejectsWith(schedule.schedule('__delay.f.1000', [delayed('x', clock.now() + 10)]), ErrorCode.InvalidArgument);
    await schedule.schedule('t/0', [{ headers: { [DELIVER_AT_HEADER]: Buffer.from(String(clock.now() + 10)) }, body: 'bytes header' }]);
    assert.equal(schedule.stats().pending, 1);
    await schedule.close();
    await rejectsWith(schedule.schedule('t/0', [delayed('x', clock.now() + 10)]), ErrorCode.StoreClosed);
  });

  for (const [label, readAheadBytes, loadedFirst] of [
    ['read ahead by the load', undefined, false],
    ['kept when appended to a loaded bucket', undefined, true],
    ['read back when due', 0, false],
  ] as const) {
    it(`delay: the delivered message keeps its id, key, tag, timestamp, body and headers (${label})`, async () => {
      const clock = new ManualClock();
      const scheduler = new ManualScheduler(clock);
      const got: MessageInput[] = [];
      const store = new MemoryMessageStore(clock);
      const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver: async (_target, messages) => void got.push(...messages), readAheadBytes });
      const due = Math.floor(clock.now() / 1000) * 1000 + 3000;
      if (loadedFirst) {
        await schedule.schedule('t/0', [delayed('first', due)]);
        await run(schedule, scheduler, due - 900 - clock.now(), 100);
        assert.equal(schedule.stats().loaded, 1);
      }
      const headers = { [DELIVER_AT_HEADER]: String(due + 10), bin: Buffer.from([1, 2]), text: 'é' };
      await schedule.schedule('t/0', [
        { id: 'id-1', key: 'k', tag: 'red', timestamp: 1234, headers, body: 'hello' },
        { id: 'id-2', headers, body: Buffer.from([0, 255]) },
      ]);
      const storedAt = clock.now();
      await run(schedule, scheduler, due + 1000 - clock.now(), 100);
      const messages = got.filter((message) => Buffer.from(message.id as Uint8Array).toString() !== 'first');
      assert.equal(messages.length, 2);
      const [full, bare] = messages as [MessageInput, MessageInput];
      assert.equal(Buffer.from(full.id as Uint8Array).toString(), 'id-1');
      assert.equal(Buffer.from(full.key as Uint8Array).toString(), 'k');
      assert.equal(full.tag, 'red');
      assert.equal(full.timestamp, 1234);
      assert.equal(Buffer.from(full.body as Uint8Array).toString(), 'hello');
      assert.deepEqual(Object.keys(headersOf(full)).sort(), ['bin', 'text', DELIVER_AT_HEADER]);
      assert.deepEqual([...(headersOf(full).bin as Uint8Array)], [1, 2]);
      assert.equal(headersOf(full).text, 'é');
      assert.equal(bare.key, null);
      assert.equal(bare.tag, null);
      assert.equal(bare.timestamp, storedAt, 'a message without a timestamp keeps the store time of its bucket append');
      assert.deepEqual([...(bare.body as Uint8Array)], [0, 255]);
      await schedule.close();
    });
  }

  it('delay: rounds are pipelined, and a failed round makes later rounds to its target go again after it, in order', async () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const store = new MemoryMessageStore(clock);
    const calls: Array<{ target: string; ids: string[]; resolve: () => void; reject: (error: Error) => void }> = [];
    const deliver = (target: string, messages: MessageInput[]): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        calls.push({ target, ids: messages.map((message) => String(message.id)), resolve, reject });
      });
    const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver });
    const bucket = Math.floor(clock.now() / 1000) * 1000 + 5000;
    // Six blocks of 1,000 messages in due order, alternately for a/0 and b/0: one run each, two runs a round.
    const total = 6000;
    const messages = new Map<string, MessageInput[]>([['a/0', []], ['b/0', []]]);
    for (let index = 0; index < total; index++) messages.get(Math.floor(index / 1000) % 2 === 0 ? 'a/0' : 'b/0')!.push(delayed(`m${index}`, bucket + Math.floor(index / 10)));
    for (const [target, list] of messages) await schedule.schedule(target, list);
    scheduler.advance(bucket + 1000 - clock.now());
    await settle(20);
    assert.deepEqual(
      calls.map((call) => `${call.target} ${call.ids[0]}`),
      ['a/0 m0', 'b/0 m1000', 'a/0 m2000', 'b/0 m3000', 'a/0 m4000', 'b/0 m5000'],
      'all three rounds are issued before the first resolves',
    );
    calls[0]!.reject(new WeirError(ErrorCode.StorageIo, 'write failed', { retriable: true }));
    for (const call of calls.slice(1)) call.resolve();
    // The retry (after its backoff): a/0's runs again, in order; b/0's were handed over and are not repeated.
    for (let wait = 0; wait < 20 && calls.length < 9; wait++) {
      scheduler.advance(100);
      await settle(10);
      for (const call of calls.slice(6)) call.resolve();
    }
    await settle(10);
    for (const call of calls.slice(6)) call.resolve();
    await schedule.settled();
    assert.deepEqual(
      calls.slice(6).map((call) => `${call.target} ${call.ids[0]}`),
      ['a/0 m0', 'a/0 m2000', 'a/0 m4000'],
    );
    assert.deepEqual(schedule.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
    await schedule.close();
  });

  it('delay: a round whose bucket read fails issues nothing after it and is retried: none lost, still in order', async () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const inner = new MemoryMessageStore(clock);
    const recorder = new Recorder(clock);
    // Deliveries resolve late, so the second round's read fails while the first round is still in flight.
    recorder.lag = () => 30;
    let armed = false;
    let failed = false;
    const store = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'read') {
          return async (...args: Parameters<MessageStore['read']>) => {
            if (armed && !failed && recorder.calls.length > 0) {
              failed = true;
              throw new WeirError(ErrorCode.StorageIo, 'read failed', { retriable: true });
            }
            return target.read(...args);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver: recorder.deliver, readAheadBytes: 0 });
    const bucket = Math.floor(clock.now() / 1000) * 1000 + 5000;
    const random = seededRandom(9);
    const total = 5000;
    await schedule.schedule('t/0', Array.from({ length: total }, (_, index) => delayed(`m${index}`, bucket + Math.floor(random() * 1000))));
    await run(schedule, scheduler, bucket - 900 - clock.now(), 100);
    assert.equal(schedule.stats().loaded, total);
    armed = true;
    // Everything falls due at once: three rounds' worth.
    scheduler.advance(bucket + 1000 - clock.now());
    await schedule.settled();
    await run(schedule, scheduler, 2000, 100);
    assert.ok(failed, 'a read failed');
    assert.equal(recorder.deliveries.length, total);
    assert.equal(new Set(recorder.ids()).size, total);
    assertNondecreasing(recorder.deliveries, 'after a failed read');
    await schedule.close();
  });

  it('delay: undeliverable targets are dropped with a warning; storage errors are retried with backoff', async () => {
    const logger = new RecordingLogger();
    const { clock, scheduler, recorder, schedule } = await memoryHarness({}, logger);
    const base = clock.now() + 2000;
    let flaky = 2;
    recorder.failWith = (target) => {
      if (target === 'gone/0') return unknownQueue(target);
      if (target === 'flaky/0' && flaky > 0) {
        flaky--;
        return new WeirError(ErrorCode.StorageIo, 'write failed', { retriable: true });
      }
      return null;
    };
    await schedule.schedule('ok/0', [delayed('ok1', base + 10), delayed('ok2', base + 20)]);
    await schedule.schedule('gone/0', [delayed('gone1', base + 30), delayed('gone2', base + 40)]);
    await schedule.schedule('flaky/0', [delayed('flaky1', base + 50), delayed('flaky2', base + 60)]);
    await schedule.schedule('ok/0', [delayed('ok3', base + 70)]);
    await run(schedule, scheduler, 2100, 10);
    // flaky1 failed; ok3 waited behind it and nothing was delivered twice.
    assert.deepEqual(recorder.ids(), ['ok1', 'ok2']);
    await run(schedule, scheduler, 500, 10);
    // The second attempt (at +150 ms) took flaky1, flaky2 and ok3: ok3 went through and is not delivered again by the
    // third (at +350 ms).
    assert.deepEqual(recorder.ids(), ['ok1', 'ok2', 'ok3', 'flaky1', 'flaky2']);
    assert.equal(flaky, 0);
    const flakyAt = recorder.deliveries.find((delivery) => delivery.id === 'flaky1')!.at;
    assert.ok(flakyAt >= base + 50 + 100 + 200, 'retried after 100 ms, then 200 ms');
    assert.ok(logger.entries.some((entry) => entry.level === 'warn' && entry.message.includes('cannot be delivered') && (entry.fields as { target?: string }).target === 'gone/0'));
    assert.equal(logger.entries.filter((entry) => entry.message.includes('will retry')).length, 2);
    assert.equal(schedule.stats().pending, 0);
    await schedule.close();
  });

  it('delay: a failed run is retried alone: the other targets of its round are not delivered again', async () => {
    const { clock, scheduler, recorder, schedule } = await memoryHarness();
    const due = clock.now() + 2000;
    let failures = 2;
    recorder.failWith = (_target, messages) => (String(messages[0]!.id) === 'f1' && failures-- > 0 ? new WeirError(ErrorCode.StorageIo, 'write failed', { retriable: true }) : null);
    // All due together, interleaved, so one round hands them over as one run per target: flaky [f1, f2], other [o1, o2].
    await schedule.schedule('flaky/0', [delayed('f1', due)]);
    await schedule.schedule('other/0', [delayed('o1', due)]);
    await schedule.schedule('flaky/0', [delayed('f2', due)]);
    await schedule.schedule('other/0', [delayed('o2', due)]);
    await run(schedule, scheduler, 2000, 1000);
    // Round 1: the flaky run failed; the other target's went through.
    assert.deepEqual(recorder.ids(), ['o1', 'o2']);
    await run(schedule, scheduler, 1000, 50);
    // Round 2 skipped o1 and o2 and failed again; round 3 delivered f1 and f2.
    assert.deepEqual(recorder.ids(), ['o1', 'o2', 'f1', 'f2']);
    assert.deepEqual(recorder.calls, [{ target: 'other/0', count: 2 }, { target: 'flaky/0', count: 2 }], 'one call per target (successful calls)');
    const flaky = recorder.deliveries.filter((delivery) => delivery.target === 'flaky/0').map((delivery) => delivery.id);
    assert.deepEqual(flaky.slice(-2), ['f1', 'f2'], 'the target ends in order');
    assert.equal(schedule.stats().pending, 0);
    await schedule.close();
  });

  it('delay: dropTarget discards due messages of a deleted target until it is scheduled to again', async () => {
    const { clock, scheduler, recorder, schedule } = await memoryHarness();
    await schedule.schedule('x/0', [delayed('x1', clock.now() + 100), delayed('x2', clock.now() + 200)]);
    await schedule.schedule('y/0', [delayed('y1', clock.now() + 150)]);
    schedule.dropTarget('x/0');
    await run(schedule, scheduler, 3000, 100);
    assert.deepEqual(recorder.ids(), ['y1']);
    assert.equal(schedule.stats().pending, 0);
    await schedule.schedule('x/0', [delayed('x3', clock.now() + 100)]);
    await run(schedule, scheduler, 3000, 100);
    assert.deepEqual(recorder.ids(), ['y1', 'x3']);
    await schedule.close();
  });

  it('delay: a bucket that fits the read-ahead budget is delivered from memory: no round reads the bucket again', async () => {
    const outcome = await readAheadRun(32 << 20);
    assert.equal(outcome.messagesReadWhileDue, 0);
    assert.ok(outcome.maxReadAheadBytes > 0);
  });

  it('delay: a bucket over the budget is read ahead in due order, within the budget, instead of across it every round', async () => {
    const budget = 64 << 10;
    const unbudgeted = await readAheadRun(0);
    const budgeted = await readAheadRun(budget);
    assert.equal(unbudgeted.maxReadAheadBytes, 0);
    assert.ok(budgeted.maxReadAheadBytes <= budget + budget / 8, `held ${budgeted.maxReadAheadBytes} bytes for a budget of ${budget}`);
    // Without read-ahead every round reads across the bucket for its few due messages.
    assert.ok(
      budgeted.messagesReadWhileDue * 3 < unbudgeted.messagesReadWhileDue,
      `read ${budgeted.messagesReadWhileDue} messages with read-ahead, ${unbudgeted.messagesReadWhileDue} without`,
    );
  });

  it('delay: read-ahead that fails gives those messages up to the due-time read, once: no pass is retried in a loop', async () => {
    const outcome = await readAheadRun(100 * 1024, true);
    // Each pass marks what it asked for as read when due, so the passes over 5,000 messages end: a failing pass that
    // was simply started again would read without end and keep the event loop from ever reaching the next step.
    assert.ok(outcome.failedReads > 0, 'read-ahead was attempted while reads failed');
    assert.ok(outcome.failedReads < 100, `${outcome.failedReads} failed reads`);
  });

  it('delay: 1,000,000 messages due within a minute keep at most two fine buckets in memory', async () => {
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const store = new MemoryMessageStore(clock);
    const total = 1_000_000;
    const seen = new Uint8Array(total);
    let delivered = 0;
    let lastDue = 0;
    const deliver = async (_target: string, messages: MessageInput[]): Promise<void> => {
      const now = clock.now();
      for (const message of messages) {
        const due = Number(headersOf(message)[DELIVER_AT_HEADER]);
        assert.ok(due <= now && due >= lastDue);
        lastDue = due;
        const index = Number(Buffer.from(message.body as Uint8Array).toString());
        assert.equal(seen[index], 0);
        seen[index] = 1;
        delivered++;
      }
    };
    const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver });
    const first = Math.floor(clock.now() / 1000) * 1000 + 10_000;
    const random = seededRandom(3);
    const perBucket = new Array<number>(60).fill(0);
    const batch = 1000;
    for (let from = 0; from < total; from += batch * 10) {
      const calls: Array<Promise<void>> = [];
      for (let part = 0; part < 10; part++) {
        const bucket = (from / batch + part) % 60;
        const messages: MessageInput[] = [];
        for (let index = from + part * batch; index < from + (part + 1) * batch; index++) {
          messages.push({ headers: { [DELIVER_AT_HEADER]: String(first + bucket * 1000 + Math.floor(random() * 1000)) }, body: String(index) });
        }
        perBucket[bucket]! += batch;
        calls.push(schedule.schedule('t/0', messages));
      }
      await Promise.all(calls);
    }
    const bucketSize = Math.max(...perBucket);
    assert.deepEqual(schedule.stats(), { pending: total, buckets: 60, loaded: 0, readAheadBytes: 0 });
    let maxLoaded = 0;
    const limit = 2 * bucketSize;
    scheduler.advance(first - 1500 - clock.now());
    await schedule.settled();
    assert.equal(schedule.stats().loaded, 0, 'nothing loaded while the clock is before the buckets');
    // Through the first 20 buckets (a third of the messages; the rest behaves the same and only costs time).
    for (let step = 0; step < 20 * 4 + 6; step++) {
      // Ends 1 ms before bucket 20 starts.
      scheduler.advance(step === 20 * 4 + 5 ? 249 : 250);
      await schedule.settled();
      maxLoaded = Math.max(maxLoaded, schedule.stats().loaded);
      assert.ok(schedule.stats().loaded <= limit, `loaded ${schedule.stats().loaded} entries, more than two buckets (${limit})`);
    }
    const firstTwenty = perBucket.slice(0, 20).reduce((sum, count) => sum + count, 0);
    assert.equal(delivered, firstTwenty);
    assert.ok(maxLoaded > 0 && maxLoaded <= limit);
    assert.equal(schedule.stats().pending, total - firstTwenty);
    assert.equal(schedule.stats().buckets, 41, 'buckets 0–18 deleted; 19 is delivered but its time has not passed yet');
    await schedule.close();
  });

  it('delay: 100,000 messages over 2 hours on disk survive a clean restart: each delivered once, none early', { timeout: 60_000 }, async () => {
    const { dataDir, cleanup } = await tempDirectory();
    try {
      const clock = new ManualClock();
      const recorder = new Recorder(clock);
      const options: Options = { fineBucketMs: 60_000, coarseBucketMs: 900_000, horizonMs: 1_800_000 };
      let store = await openDiskStore(dataDir, clock);
      let scheduler = new ManualScheduler(clock);
      let schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver: recorder.deliver, ...options });
      const start = clock.now();
      const total = 100_000;
      const random = seededRandom(5);
      const due = Array.from({ length: total }, () => start + 1 + Math.floor(random() * 7_200_000));
      const order = Array.from({ length: total }, (_, index) => index).sort((a, b) => due[a]! - due[b]!);
      // Batches of nearby due times (a few buckets per call), shuffled inside, ten calls at a time.
      for (let from = 0; from < total; from += 10_000) {
        const calls: Array<Promise<void>> = [];
        for (let batch = from; batch < from + 10_000; batch += 1000) {
          const indexes = order.slice(batch, batch + 1000).sort(() => random() - 0.5);
          calls.push(schedule.schedule(`t/${batch % 4}`, indexes.map((index) => delayed(`m${index}`, due[index]!))));
        }
        await Promise.all(calls);
      }
      assert.equal(schedule.stats().pending, total);

      await run(schedule, scheduler, 3_600_000, 30_000);
      const beforeRestart = recorder.deliveries.length;
      assert.ok(beforeRestart > total / 3 && beforeRestart < (total * 2) / 3, `${beforeRestart} delivered in the first hour`);
      await schedule.close();
      await store.close();

      store = await openDiskStore(dataDir, clock);
      scheduler = new ManualScheduler(clock);
      schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver: recorder.deliver, ...options });
      await run(schedule, scheduler, 3_600_000 + 120_000, 30_000);
      assert.equal(recorder.deliveries.length, total);
      assert.equal(new Set(recorder.ids()).size, total, 'each message exactly once');
      assertNondecreasing(recorder.deliveries, 'across the restart');
      assert.deepEqual(schedule.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
      assert.deepEqual(bucketQueues(store), []);
      await schedule.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('delay: kill -9 of the disk store repeats at most flushIntervalMs of deliveries and loses none', async () => {
    const clock = new ManualClock();
    const flushIntervalMs = 5000;
    const open = (fs: FaultFileSystem): Promise<DiskMessageStore> =>
      DiskMessageStore.open({ dataDir: '/data', fs, clock, segmentBytes: 1 << 20, checkpointIntervalMs: 0, retentionIntervalMs: 0 });
    let fs = new FaultFileSystem();
    let store = await open(fs);
    await store.createQueue('t/0');
    const deliver = async (target: string, messages: MessageInput[]): Promise<void> => {
      const queue = store.queue(target);
      if (queue === null) throw unknownQueue(target);
      for (const message of messages) assert.ok(Number(headersOf(message)[DELIVER_AT_HEADER]) <= clock.now());
      await store.append(queue.id, messages);
    };
    let scheduler = new ManualScheduler(clock);
    const schedule = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver, flushIntervalMs, fineBucketMs: 2000 });
    const start = clock.now();
    const total = 600;
    await schedule.schedule('t/0', Array.from({ length: total }, (_, index) => delayed(`m${index}`, start + 100 * (index + 1))));
    await run(schedule, scheduler, 30_500, 1000);
    // Crash in the middle of work: the round the last step started may be half done.
    scheduler.advance(1000);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const crashedAt = clock.now();
    const crashed = fs.crash({ random: seededRandom(7) });
    await store.abandon();
    fs = crashed;
    store = await open(fs);
    scheduler = new ManualScheduler(clock);
    const reopened = await DelaySchedule.open({ store, clock, scheduler, logger: silentLogger, deliver, flushIntervalMs, fineBucketMs: 2000 });
    await run(reopened, scheduler, 40_000, 1000);

    const queue = store.queue('t/0')!;
    const counts = new Map<string, number>();
    for (let offset = 0; offset < queue.endOffset; ) {
      const read = await store.read(queue.id, offset);
      for (const message of read.messages) {
        const id = message.id.toString();
        counts.set(id, (counts.get(id) ?? 0) + 1);
        assert.ok(Number(decodeHeaders(message.headers)[DELIVER_AT_HEADER]) <= message.storeTimestamp, 'not early');
      }
      offset = read.nextOffset;
    }
    assert.equal(counts.size, total, 'nothing lost');
    for (const [id, count] of counts) {
      if (count === 1) continue;
      assert.equal(count, 2, `${id} delivered ${count} times`);
      const due = start + 100 * (Number(id.slice(1)) + 1);
      // Repeated: only what was delivered since the last completed flush (plus the step that delivered it).
      assert.ok(due > crashedAt - flushIntervalMs - 2000, `${id} (due ${due - start} ms) repeated though older than the flush interval`);
    }
    assert.deepEqual(reopened.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
    await reopened.close();
    await store.close();
  });

  it('delay: a crash before any flush repeats exactly what was delivered; a clean close repeats nothing', async () => {
    const clock = new ManualClock();
    const store = new MemoryMessageStore(clock);
    const recorder = new Recorder(clock);
    // One wide bucket, and no flush until close: a crash forgets every delivery.
    const options = { store, clock, logger: silentLogger, deliver: recorder.deliver, fineBucketMs: 600_000, flushIntervalMs: 1_000_000_000 };
    const start = clock.now();
    let scheduler = new ManualScheduler(clock);
    const first = await DelaySchedule.open({ ...options, scheduler });
    await first.schedule('t/0', Array.from({ length: 200 }, (_, index) => delayed(`m${index}`, start + 100 * (index + 1))));
    await run(first, scheduler, 10_000, 1000);
    const beforeCrash = recorder.ids();
    assert.equal(beforeCrash.length, 100);
    assert.equal(store.metadata.entries('delay/').length, 0, 'nothing flushed yet');

    // "kill -9": the first instance is abandoned (its scheduler never runs again); a second opens the same store.
    scheduler = new ManualScheduler(clock);
    const second = await DelaySchedule.open({ ...options, scheduler });
    await run(second, scheduler, 2000, 1000);
    const afterCrash = recorder.ids().slice(beforeCrash.length);
    assert.deepEqual(afterCrash.slice(0, 100), beforeCrash, 'everything since the last flush is delivered again, in order');
    assert.equal(afterCrash.length, 120);

    await second.close();
    assert.equal(store.metadata.entries('delay/').length, 1, 'close writes the cursor');
    const delivered = recorder.deliveries.length;
    scheduler = new ManualScheduler(clock);
    const third = await DelaySchedule.open({ ...options, scheduler });
    await run(third, scheduler, 30_000, 1000);
    const afterClose = recorder.ids().slice(delivered);
    assert.deepEqual(afterClose, Array.from({ length: 80 }, (_, index) => `m${index + 120}`), 'a clean restart repeats nothing');
    await run(third, scheduler, 600_000, 60_000);
    assert.deepEqual(third.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
    await third.close();
  });

  it('delay: a wall clock stepped back never makes a message sort before a cursor (late, never lost)', async () => {
    const clock = new ManualClock();
    const store = new MemoryMessageStore(clock);
    const recorder = new Recorder(clock);
    const options = { store, clock, logger: silentLogger, deliver: recorder.deliver, fineBucketMs: 10_000, flushIntervalMs: 100 };
    const start = Math.ceil(clock.now() / 10_000) * 10_000;
    clock.advance(start - clock.now());
    let scheduler = new ManualScheduler(clock);
    const first = await DelaySchedule.open({ ...options, scheduler });
    await first.schedule('t/0', [delayed('m1', start + 5000), delayed('m3', start + 8000)]);
    await run(first, scheduler, 6000, 500);
    assert.deepEqual(recorder.ids(), ['m1']);
    clock.jumpWall(-3000);
    // Due at start + 4000: before m1, which its bucket already delivered and saved as its cursor.
    await first.schedule('t/0', [delayed('m2', start + 4000)]);
    await run(first, scheduler, 500, 500);
    // Crash, reopen: m2 must still be there.
    scheduler = new ManualScheduler(clock);
    const second = await DelaySchedule.open({ ...options, scheduler });
    await run(second, scheduler, 30_000, 500);
    const ids = recorder.ids();
    assert.equal(ids.filter((id) => id === 'm2').length, 1, 'm2 delivered once');
    assert.equal(ids.filter((id) => id === 'm3').length >= 1, true);
    assert.equal(ids.filter((id) => id === 'm1').length, 1, 'm1 not repeated: its cursor was flushed');
    await second.close();
  });

  it('delay: random schedules, clock moves and restarts deliver each message once, in order, never early', async () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('schedule' as const), target: fc.constantFrom('a/0', 'b/0', 'c/2'), delays: fc.array(fc.integer({ min: -300, max: 12_000 }), { minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ kind: fc.constant('restart' as const) }),
      fc.record({ kind: fc.constant('crash' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 30 }), fc.constantFrom(0, 600, 32 << 20), async (operations, readAheadBytes) => {
        const clock = new ManualClock();
        const store = new MemoryMessageStore(clock);
        const recorder = new Recorder(clock);
        const options = { clock, logger: silentLogger, fineBucketMs: 100, coarseBucketMs: 1000, horizonMs: 2000, flushIntervalMs: 50, readAheadBytes };
        let life = mortalProcess(store, recorder.deliver);
        let scheduler = new ManualScheduler(clock);
        let schedule = await DelaySchedule.open({ ...options, store: life.store, deliver: life.deliver, scheduler });
        const scheduled = new Map<string, { deliverAt: number; future: boolean }>();
        let next = 0;
        let crashed = false;
        for (const op of operations) {
          if (op.kind === 'schedule') {
            const now = clock.now();
            const messages = op.delays.map((delay) => {
              const id = `m${next++}`;
              scheduled.set(id, { deliverAt: now + delay, future: delay > 0 });
              return delayed(id, now + delay);
            });
            await schedule.schedule(op.target, messages);
          } else if (op.kind === 'advance') {
            await run(schedule, scheduler, op.ms, 250);
          } else {
            // A crash kills the instance mid-work: its cursors are not written, and what it had in flight never returns.
            if (op.kind === 'restart') await schedule.close();
            else {
              crashed = true;
              life.kill();
            }
            life = mortalProcess(store, recorder.deliver);
            scheduler = new ManualScheduler(clock);
            schedule = await DelaySchedule.open({ ...options, store: life.store, deliver: life.deliver, scheduler });
          }
        }
        await run(schedule, scheduler, 20_000, 500);
        const firsts = recorder.deliveries.filter((delivery, index) => recorder.deliveries.findIndex((other) => other.id === delivery.id) === index);
        assert.equal(firsts.length, scheduled.size, 'every message delivered');
        if (!crashed) assert.equal(recorder.deliveries.length, scheduled.size, 'each once without a crash');
        for (const delivery of recorder.deliveries) assert.equal(delivery.deliverAt, scheduled.get(delivery.id)!.deliverAt);
        assertNondecreasing(
          firsts.filter((delivery) => scheduled.get(delivery.id)!.future),
          'messages scheduled ahead',
        );
        assert.deepEqual(schedule.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
        await schedule.close();
      }),
      { numRuns: 100 },
    );
  });

  it('delay: with appends in flight while time moves (and flaky delivery), nothing is lost, early or out of order', async () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('schedule' as const), target: fc.constantFrom('a/0', 'b/0'), delays: fc.array(fc.integer({ min: -200, max: 6000 }), { minLength: 1, maxLength: 6 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 700 }), turns: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('restart' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 40 }), fc.integer(), fc.boolean(), fc.constantFrom(0, 600, 32 << 20), async (operations, seed, flaky, readAheadBytes) => {
        const random = seededRandom(seed);
        const clock = new ManualClock();
        const store = laggyStore(new MemoryMessageStore(clock), random);
        const recorder = new Recorder(clock);
        if (flaky) recorder.failWith = () => (random() < 0.2 ? new WeirError(ErrorCode.StorageIo, 'injected', { retriable: true }) : null);
        recorder.lag = () => Math.floor(random() * 4);
        const options = { store, clock, logger: silentLogger, deliver: recorder.deliver, fineBucketMs: 100, coarseBucketMs: 1000, horizonMs: 1500, flushIntervalMs: 50, readAheadBytes };
        let scheduler = new ManualScheduler(clock);
        let schedule = await DelaySchedule.open({ ...options, scheduler });
        const scheduled = new Map<string, { deliverAt: number; future: boolean }>();
        const calls: Array<Promise<void>> = [];
        let next = 0;
        for (const op of operations) {
          if (op.kind === 'schedule') {
            const now = clock.now();
            const messages = op.delays.map((delay) => {
              const id = `m${next++}`;
              scheduled.set(id, { deliverAt: now + delay, future: delay > 0 });
              return delayed(id, now + delay);
            });
            // Not awaited: time moves on while the appends are in flight.
            calls.push(schedule.schedule(op.target, messages).catch(() => {
              for (const message of messages) scheduled.delete(String(message.id));
            }));
          } else if (op.kind === 'advance') {
            scheduler.advance(op.ms);
            for (let turn = 0; turn < op.turns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
          } else {
            await schedule.close();
            scheduler = new ManualScheduler(clock);
            schedule = await DelaySchedule.open({ ...options, scheduler });
          }
        }
        await Promise.all(calls);
        await run(schedule, scheduler, 60_000, 250);
        const firsts = recorder.deliveries.filter((delivery, index) => recorder.deliveries.findIndex((other) => other.id === delivery.id) === index);
        // An immediate delivery that failed fails its schedule() call: those were dropped from `scheduled` above.
        for (const id of scheduled.keys()) assert.ok(firsts.some((delivery) => delivery.id === id), `${id} delivered`);
        if (!flaky) {
          assert.equal(recorder.deliveries.length, scheduled.size, 'each once');
          assertNondecreasing(
            firsts.filter((delivery) => scheduled.get(delivery.id)!.future),
            'messages scheduled ahead',
          );
        }
        assert.deepEqual(schedule.stats(), { pending: 0, buckets: 0, loaded: 0, readAheadBytes: 0 });
        await schedule.close();
      }),
      { numRuns: 100 },
    );
  });
});
