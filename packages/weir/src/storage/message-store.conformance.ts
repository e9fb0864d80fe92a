import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManualClock } from '../core/clock.js';
import { ErrorCode, isWeirError } from '../core/errors.js';
import fc from 'fast-check';
import type { AppendResult, MessageStore } from './message-store.js';
import { decodeHeaders, decodeMessages, prepareMessage, type StoredMessage } from './record-batch.js';

/**
 * One suite, run against every MessageStore implementation (disk and memory), so both keep the same contract.
 */
export interface ConformanceTarget {
  name: string;
  clock: () => ManualClock;
  /** A fresh, empty store using `clock`. */
  open(clock: ManualClock): Promise<MessageStore>;
  /** Closes `store` and opens it again on the same data; absent for stores that do not persist. */
  reopen?(store: MessageStore, clock: ManualClock): Promise<MessageStore>;
  /** How many files hold message data (to assert retention reclaims space); absent for memory. */
  dataFileCount?(store: MessageStore): Promise<number>;
  cleanup?(): Promise<void>;
}

function body(queue: number, index: number, size = 20): Buffer {
  const text = `q${queue}-m${index}-`;
  return Buffer.from(text.padEnd(size, 'x'));
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isWeirError(error, code));
}

export function runMessageStoreConformance(target: ConformanceTarget): void {
  describe(`storage conformance: ${target.name}`, () => {
    async function withStore(work: (store: MessageStore, clock: ManualClock) => Promise<MessageStore | void>): Promise<void> {
      const clock = target.clock();
      let store = await target.open(clock);
      try {
        store = (await work(store, clock)) ?? store;
      } finally {
        await store.close();
        await target.cleanup?.();
      }
    }

    it('storage conformance: append and read round trip every field', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('orders');
        const result = await store.append(queue.id, [
          { id: 'm-1', key: 'k1', tag: 'created', headers: { a: 'x', b: Buffer.from([1, 2]) }, timestamp: 1234, body: 'hello' },
          { id: null, timestamp: -1, body: Buffer.alloc(0) },
        ]);
        assert.equal(result.baseOffset, 0);
        assert.equal(result.count, 2);
        const read = await store.read(queue.id, 0);
        assert.equal(read.messages.length, 2);
        assert.equal(read.nextOffset, 2);
        assert.equal(read.endOffset, 2);
        const [first, second] = read.messages;
        assert.equal(first!.id.toString(), 'm-1');
        assert.equal(first!.key!.toString(), 'k1');
        assert.equal(first!.tag, 'created');
        assert.equal(first!.timestamp, 1234);
        assert.equal(first!.body.toString(), 'hello');
        assert.deepEqual(decodeHeaders(first!.headers), { a: 'x', b: Buffer.from([1, 2]) });
        assert.equal(first!.offset, 0);
        assert.equal(second!.offset, 1);
        assert.equal(second!.key, null);
        assert.equal(second!.tag, null);
        assert.equal(second!.id.byteLength, 16, 'a generated id');
        assert.equal(second!.body.byteLength, 0);
        assert.equal(second!.timestamp, second!.storeTimestamp, 'no timestamp given: the store time');
      }));

    it('storage conformance: offsets are contiguous per queue across batches and reads resume at nextOffset', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('stream');
        const appends: Promise<unknown>[] = [];
        let sent = 0;
        for (let batch = 0; batch < 50; batch++) {
          const size = 1 + (batch % 7);
          appends.push(store.append(queue.id, Array.from({ length: size }, (_, index) => ({ body: body(0, sent + index) }))));
          sent += size;
        }
        const results = (await Promise.all(appends)) as Array<{ baseOffset: number; count: number }>;
        let expected = 0;
        for (const result of results) {
          assert.equal(result.baseOffset, expected);
          expected += result.count;
        }
        const seen: string[] = [];
        let offset = 0;
        while (offset < sent) {
          const read = await store.read(queue.id, offset, { maxMessages: 13 });
          assert.ok(read.messages.length > 0 && read.messages.length <= 13);
          read.messages.forEach((message, index) => assert.equal(message.offset, offset + index));
          seen.push(...read.messages.map((message) => message.body.toString()));
          offset = read.nextOffset;
        }
        assert.deepEqual(seen, Array.from({ length: sent }, (_, index) => body(0, index).toString()));
        assert.equal((await store.read(queue.id, sent)).messages.length, 0, 'reading at the end is empty, not an error');
      }));

    it('storage conformance: readBatches returns whole stored batches from the one holding the offset', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('raw');
        await store.append(queue.id, [{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
        await store.append(queue.id, [{ body: 'd' }]);
        const raw = await store.readBatches(queue.id, 1);
        assert.equal(raw.batches.length, 2);
        assert.equal(raw.nextOffset, 4);
        assert.equal(raw.endOffset, 4);
        const decoded: StoredMessage[] = [];
        raw.batches.forEach((batch) => decodeMessages(batch, 0, 0, 1, 100, decoded));
        assert.deepEqual(decoded.map((message) => [message.offset, message.body.toString()]), [[1, 'b'], [2, 'c'], [3, 'd']]);
        const bounded = await store.readBatches(queue.id, 0, { maxBytes: 1 });
        assert.equal(bounded.batches.length, 1, 'at least one batch');
        assert.equal(bounded.nextOffset, 3);
        assert.equal((await store.readBatches(queue.id, 4)).batches.length, 0);
        await expectCode(store.readBatches(queue.id, 5), ErrorCode.OffsetOutOfRange);
      }));

    it('storage conformance: a shared append stores one batch that every queue reads at its own offsets', () =>
      withStore(async (store) => {
        const a = await store.createQueue('a');
        const b = await store.createQueue('b');
        const c = await store.createQueue('c');
        await store.append(b.id, [{ body: 'b only' }]);
        const heard: Array<[number, number]> = [];
        const stop = store.onAppend((id, end) => heard.push([id, end]));
        let written: readonly AppendResult[] = [];
        const results = await store.appendShared([a.id, b.id, c.id], [{ key: 'k', tag: 't', headers: { h: 'v' }, body: 'one' }, { body: 'two' }], { onWritten: (seen) => (written = seen) });
        stop();
        assert.deepEqual(results.map((result) => [result.queueId, result.baseOffset, result.count]), [[a.id, 0, 2], [b.id, 1, 2], [c.id, 0, 2]]);
        assert.equal(new Set(results.map((result) => result.position)).size, 1, 'one batch');
        assert.deepEqual(written, results);
        assert.deepEqual(heard.map(([id, end]) => [id, end]).sort(), [[a.id, 2], [b.id, 3], [c.id, 2]].sort());
        for (const [queue, first] of [[a, 0], [b, 1], [c, 0]] as const) {
          const read = await store.read(queue.id, first);
          assert.deepEqual(read.messages.map((message) => [message.queueId, message.offset, message.body.toString()]), [[queue.id, first, 'one'], [queue.id, first + 1, 'two']]);
          assert.equal(read.messages[0]!.key!.toString(), 'k');
          assert.equal(read.messages[0]!.tag, 't');
          assert.deepEqual(decodeHeaders(read.messages[0]!.headers), { h: 'v' });
          assert.ok(read.messages[1]!.id.equals((await store.read(a.id, 1)).messages[0]!.id), 'the same message, the same generated id');
          // Consumers get a plain one-queue batch of their queue.
          const raw = await store.readBatches(queue.id, first);
          const decoded: StoredMessage[] = [];
          raw.batches.forEach((batch) => decodeMessages(batch, 0, 0, first, 100, decoded));
          assert.deepEqual(decoded.map((message) => [message.queueId, message.offset, message.body.toString()]), [[queue.id, first, 'one'], [queue.id, first + 1, 'two']]);
          assert.equal(raw.nextOffset, first + 2);
        }
        const sizes = (await store.read(a.id, 0)).messages.length;
        assert.equal(sizes, 2);
        assert.equal(store.queueById(a.id)!.bytes, store.queueById(c.id)!.bytes, 'each queue counts the messages it holds');
        assert.ok(store.queueById(b.id)!.bytes > store.queueById(a.id)!.bytes);
        const next = await store.append(a.id, [{ body: 'three' }]);
        assert.equal(next.baseOffset, 2, 'single appends continue after the shared batch');
        const single = await store.appendShared([c.id], [{ body: 'alone' }]);
        assert.deepEqual(single.map((result) => [result.queueId, result.baseOffset]), [[c.id, 2]]);
      }));

    it('storage conformance: shared batches are found by id and key in each queue that still holds them', () =>
      withStore(async (store, clock) => {
        const a = await store.createQueue('a');
        const b = await store.createQueue('b');
        const start = clock.now();
        clock.advance(10);
        await store.appendShared([a.id, b.id], [{ id: 'given', key: 'key', body: 'shared' }, { body: 'anonymous' }]);
        clock.advance(10);
        await store.append(b.id, [{ body: 'later' }]);
        const byId = await store.findById('given');
        assert.equal(byId?.body.toString(), 'shared');
        assert.ok([a.id, b.id].includes(byId!.queueId));
        const anonymous = (await store.read(b.id, 1)).messages[0]!;
        assert.equal((await store.findById(anonymous.id))?.body.toString(), 'anonymous');
        const byKey = await store.findByKey('key');
        assert.deepEqual(byKey.map((message) => message.queueId).sort(), [a.id, b.id].sort(), 'one match per queue');
        assert.deepEqual((await store.findByKey('key', { queueIds: [b.id] })).map((message) => [message.queueId, message.offset]), [[b.id, 0]]);
        await store.advanceLowWaterMark(a.id, 2);
        assert.deepEqual((await store.findByKey('key')).map((message) => message.queueId), [b.id], 'a trimmed queue no longer answers');
        assert.equal(await store.offsetForTimestamp(b.id, start + 15), 2);
        assert.equal(await store.offsetForTimestamp(a.id, start), 2, 'a starts at its low-water mark');
      }));

    it('storage conformance: a shared batch stays readable in one queue after the other queue trimmed it', () =>
      withStore(async (store) => {
        const a = await store.createQueue('a');
        const b = await store.createQueue('b');
        for (let index = 0; index < 200; index++) await store.appendShared([a.id, b.id], [{ body: body(0, index, 1000) }]);
        await store.flush();
        await store.advanceLowWaterMark(a.id, 200);
        await store.enforceRetention();
        await store.flush();
        await store.enforceRetention();
        assert.equal(store.queueById(a.id)!.bytes, 0);
        const read = await store.read(b.id, 0, { maxMessages: 1000, maxBytes: 1 << 30 });
        assert.deepEqual(read.messages.map((message) => message.body.toString()), Array.from({ length: 200 }, (_, index) => body(0, index, 1000).toString()));
        const filesWhileNeeded = (await target.dataFileCount?.(store)) ?? 0;
        await store.advanceLowWaterMark(b.id, 200);
        await store.enforceRetention();
        if (target.dataFileCount) {
          const filesAfter = await target.dataFileCount(store);
          assert.ok(filesWhileNeeded > 2 && filesAfter < filesWhileNeeded, `segments stay while b needs them (${filesWhileNeeded}), then go (${filesAfter})`);
        }
      }));

    it('storage conformance: a shared append is checked as a whole and fails without a trace', () =>
      withStore(async (store) => {
        const roomy = await store.createQueue('roomy');
        const strict = await store.createQueue('strict', { maxMessageBytes: 1024 });
        await expectCode(store.appendShared([], [{ body: 'x' }]), ErrorCode.InvalidArgument);
        await expectCode(store.appendShared([roomy.id, roomy.id], [{ body: 'x' }]), ErrorCode.InvalidArgument);
        await expectCode(store.appendShared([roomy.id, 9999], [{ body: 'x' }]), ErrorCode.UnknownQueue);
        await expectCode(store.appendShared([roomy.id, strict.id], []), ErrorCode.InvalidArgument);
        await assert.rejects(store.appendShared([roomy.id, strict.id], [{ body: Buffer.alloc(2000) }]), (error: unknown) => isWeirError(error, ErrorCode.MessageTooLarge) && /strict/.test((error as Error).message));
        assert.equal(store.queueById(roomy.id)!.endOffset, 0);
        assert.equal(store.queueById(strict.id)!.endOffset, 0);
        const ok = await store.appendShared([strict.id, roomy.id], [{ body: 'fits' }]);
        assert.deepEqual(ok.map((result) => result.baseOffset), [0, 0]);
      }));

    it('storage conformance: any mix of single and shared appends reads back per queue as a model says (property)', () =>
      withStore(async (store) => {
        let run = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                queues: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
                bodies: fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 4 }),
              }),
              { minLength: 1, maxLength: 25 },
            ),
            fc.integer({ min: 1, max: 5 }),
            async (appends, maxMessages) => {
              run++;
              const queues = await Promise.all([0, 1, 2, 3].map((index) => store.createQueue(`p${run}-${index}`)));
              const model: string[][] = [[], [], [], []];
              await Promise.all(
                appends.map(({ queues: chosen, bodies }) => {
                  for (const index of chosen) model[index]!.push(...bodies);
                  const inputs = bodies.map((text) => ({ body: text }));
                  return chosen.length === 1 ? store.append(queues[chosen[0]!]!.id, inputs) : store.appendShared(chosen.map((index) => queues[index]!.id), inputs);
                }),
              );
              for (const [index, queue] of queues.entries()) {
                const info = store.queueById(queue.id)!;
                assert.equal(info.endOffset, model[index]!.length);
                assert.equal(info.bytes, model[index]!.reduce((sum, text) => sum + prepareMessage({ body: text }).encodedBytes, 0), 'bytes of the messages held');
                const seen: string[] = [];
                for (let offset = 0; offset < info.endOffset; ) {
                  const read = await store.read(queue.id, offset, { maxMessages });
                  read.messages.forEach((message, at) => assert.equal(message.offset, offset + at));
                  seen.push(...read.messages.map((message) => message.body.toString()));
                  offset = read.nextOffset;
                }
                assert.deepEqual(seen, model[index]);
                const raw: StoredMessage[] = [];
                for (let offset = 0; offset < info.endOffset; ) {
                  const read = await store.readBatches(queue.id, offset, { maxBytes: 1 });
                  read.batches.forEach((batch) => decodeMessages(batch, 0, 0, offset, Infinity, raw));
                  offset = read.nextOffset;
                }
                assert.deepEqual(raw.map((message) => [message.queueId, message.body.toString()]), model[index]!.map((text) => [queue.id, text]));
              }
            },
          ),
          { numRuns: 30 },
        );
      }));

    it('storage conformance: metadata keeps JSON values for the layers above', () =>
      withStore(async (store) => {
        await store.metadata.put('topic/a', { partitions: 3 });
        await store.metadata.apply([{ key: 'topic/b', value: 1 }, { key: 'topic/a', delete: true }]);
        assert.deepEqual(store.metadata.entries('topic/'), [['topic/b', 1]]);
        assert.equal(store.metadata.has('topic/a'), false);
        let reopened: MessageStore = store;
        if (target.reopen) {
          reopened = await target.reopen(store, target.clock());
          assert.equal(reopened.metadata.get('topic/b'), 1);
        }
        return reopened;
      }));

    it('storage conformance: metadata values are what JSON gives back, frozen, and what JSON cannot hold is refused', () =>
      withStore(async (store) => {
        await store.metadata.put('topic/a', { partitions: [1, 2], at: new Date(0), skipped: undefined });
        const value = store.metadata.get('topic/a') as { partitions: number[] };
        assert.deepEqual(value, { partitions: [1, 2], at: '1970-01-01T00:00:00.000Z' });
        assert.throws(() => value.partitions.push(3), TypeError, 'frozen: copy, change, then put');
        await expectCode(store.metadata.put('topic/b', undefined), ErrorCode.InvalidArgument);
        await expectCode(store.metadata.put('topic/b', 10n), ErrorCode.InvalidArgument);
        await expectCode(store.metadata.apply([{ key: 'topic/b', value: 1 }, { key: 'topic/c', value: () => 1 }]), ErrorCode.InvalidArgument);
        assert.equal(store.metadata.has('topic/b'), false, 'a refused apply changes nothing');
      }));

    it('storage conformance: maxBytes bounds a read but always returns at least one message', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('big');
        for (let index = 0; index < 10; index++) await store.append(queue.id, [{ body: Buffer.alloc(1000, index) }]);
        const small = await store.read(queue.id, 0, { maxBytes: 10 });
        assert.equal(small.messages.length, 1);
        const some = await store.read(queue.id, 0, { maxBytes: 3500 });
        assert.ok(some.messages.length >= 2 && some.messages.length <= 4, `got ${some.messages.length}`);
      }));

    it('storage conformance: thousands of queues interleaved keep their own order', () =>
      withStore(async (store) => {
        const queues = [];
        for (let index = 0; index < 2000; index++) queues.push(await store.createQueue(`p-${index}`));
        const appends: Promise<unknown>[] = [];
        for (let round = 0; round < 5; round++) {
          for (const [index, queue] of queues.entries()) appends.push(store.append(queue.id, [{ key: `k${index}`, body: body(index, round) }]));
        }
        await Promise.all(appends);
        for (const [index, queue] of queues.entries()) {
          const read = await store.read(queue.id, 0);
          assert.deepEqual(
            read.messages.map((message) => message.body.toString()),
            [0, 1, 2, 3, 4].map((round) => body(index, round).toString()),
          );
          assert.equal(store.queueById(queue.id)!.endOffset, 5);
        }
      }));

    it('storage conformance: many segments of data read back intact', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('rolling');
        const payload = (index: number) => Buffer.alloc(3000, index % 251);
        for (let index = 0; index < 300; index++) await store.append(queue.id, [{ body: payload(index) }]);
        let offset = 0;
        while (offset < 300) {
          const read = await store.read(queue.id, offset, { maxMessages: 100, maxBytes: 64 * 1024 });
          for (const message of read.messages) assert.ok(message.body.equals(payload(message.offset)));
          offset = read.nextOffset;
        }
      }));

    it('storage conformance: lookups by id, key and time', () =>
      withStore(async (store, clock) => {
        const a = await store.createQueue('a');
        const b = await store.createQueue('b');
        const start = clock.now();
        const results = [];
        for (let index = 0; index < 30; index++) {
          clock.advance(10);
          results.push(await store.append(index % 2 === 0 ? a.id : b.id, [{ id: `id-${index}`, key: `key-${index % 3}`, body: `v${index}` }]));
        }
        const found = await store.findById('id-17');
        assert.equal(found?.body.toString(), 'v17');
        assert.equal(await store.findById('id-nope'), null);
        const generated = await store.append(a.id, [{ body: 'anonymous' }]);
        const anonymous = (await store.read(a.id, generated.baseOffset)).messages[0]!;
        assert.equal((await store.findById(anonymous.id))?.body.toString(), 'anonymous');

        const byKey = await store.findByKey('key-1');
        assert.deepEqual(
          byKey.map((message) => message.body.toString()),
          [28, 25, 22, 19, 16, 13, 10, 7, 4, 1].map((index) => `v${index}`),
          'newest first',
        );
        const byKeyInB = await store.findByKey('key-1', { queueIds: [b.id], limit: 3 });
        assert.deepEqual(byKeyInB.map((message) => message.body.toString()), ['v25', 'v19', 'v13']);

        // a received messages 0, 2, 4, … at start + 10, + 30, + 50, …
        assert.equal(await store.offsetForTimestamp(a.id, start), 0);
        assert.equal(await store.offsetForTimestamp(a.id, start + 31), 2, 'first at or after the time');
        assert.equal(await store.offsetForTimestamp(a.id, start + 30), 1);
        assert.equal(await store.offsetForTimestamp(a.id, clock.now() + 1), store.queueById(a.id)!.endOffset);
      }));

    it('storage conformance: findByKey finds matches behind many newer messages with the key in other queues', () =>
      withStore(async (store) => {
        const a = await store.createQueue('a');
        const b = await store.createQueue('b');
        await store.append(b.id, [{ key: 'k', body: 'in b' }]);
        // One big batch, then many small ones: either way, far more candidates than the limit belong to queue a.
        await store.append(a.id, Array.from({ length: 200 }, () => ({ key: 'k', body: 'in a' })));
        assert.deepEqual((await store.findByKey('k', { queueIds: [b.id] })).map((message) => message.body.toString()), ['in b']);
        await store.append(b.id, [{ key: 'k', body: 'in b again' }]);
        for (let index = 0; index < 300; index++) await store.append(a.id, [{ key: 'k', body: `a${index}` }]);
        assert.deepEqual(
          (await store.findByKey('k', { queueIds: [b.id], limit: 5 })).map((message) => message.body.toString()),
          ['in b again', 'in b'],
          'newest first, every match found although the limit was not reached',
        );
        const all = await store.findByKey('k', { limit: 1000 });
        assert.equal(all.length, 502);
        assert.deepEqual(all.slice(0, 2).map((message) => message.body.toString()), ['a299', 'a298']);
        assert.deepEqual(await store.findByKey('k', { limit: 0 }), []);
        await expectCode(store.findByKey('k', { limit: -1 }), ErrorCode.InvalidArgument);
      }));

    it('storage conformance: retention by age and by size moves the low-water mark and reclaims files', () =>
      withStore(async (store, clock) => {
        const aged = await store.createQueue('aged', { retentionMs: 60_000 });
        const sized = await store.createQueue('sized', { retentionBytes: 50_000 });
        for (let index = 0; index < 100; index++) {
          await store.append(aged.id, [{ body: Buffer.alloc(2000, 1) }]);
          await store.append(sized.id, [{ body: Buffer.alloc(2000, 2) }]);
          clock.advance(1000);
        }
        await store.flush();
        const filesBefore = (await target.dataFileCount?.(store)) ?? 0;
        const report = await store.enforceRetention();
        assert.equal(report.queuesTrimmed, 2);
        const agedInfo = store.queueById(aged.id)!;
        assert.ok(agedInfo.startOffset >= 39 && agedInfo.startOffset <= 41, `aged start ${agedInfo.startOffset}`);
        const sizedInfo = store.queueById(sized.id)!;
        assert.ok(sizedInfo.bytes <= 50_000, `sized keeps ${sizedInfo.bytes} bytes`);
        assert.ok(sizedInfo.bytes > 50_000 - 2100, `sized keeps ${sizedInfo.bytes} bytes`);
        await expectCode(store.read(aged.id, 0), ErrorCode.OffsetOutOfRange);
        const first = await store.read(aged.id, agedInfo.startOffset);
        assert.equal(first.messages[0]!.offset, agedInfo.startOffset);
        // Everything is now old: both queues trim to nothing, and every full segment can go.
        clock.advance(120_000);
        await store.updateQueue('sized', { retentionBytes: 0 });
        await store.enforceRetention();
        assert.equal(store.queueById(aged.id)!.startOffset, 100);
        assert.equal(store.queueById(sized.id)!.startOffset, 100);
        assert.equal(store.queueById(sized.id)!.bytes, 0);
        if (target.dataFileCount) {
          await store.flush();
          await store.enforceRetention();
          const filesAfter = await target.dataFileCount(store);
          assert.ok(filesAfter < filesBefore, `files before ${filesBefore}, after ${filesAfter}`);
          assert.ok(filesAfter <= 2, `at most the active segment remains, got ${filesAfter}`);
        }
        // New appends continue at the next offset.
        const next = await store.append(aged.id, [{ body: 'after' }]);
        assert.equal(next.baseOffset, 100);
      }));

    it('storage conformance: the low-water mark can be moved by other code', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('acked');
        for (let index = 0; index < 10; index++) await store.append(queue.id, [{ body: `m${index}` }]);
        await store.advanceLowWaterMark(queue.id, 4);
        assert.equal(store.queueById(queue.id)!.startOffset, 4);
        await store.advanceLowWaterMark(queue.id, 2);
        assert.equal(store.queueById(queue.id)!.startOffset, 4, 'never moves back');
        assert.equal((await store.read(queue.id, 4)).messages[0]!.body.toString(), 'm4');
        await store.advanceLowWaterMark(queue.id, 1000);
        assert.equal(store.queueById(queue.id)!.startOffset, 10, 'never past the end');
      }));

    it('storage conformance: a low-water mark must be a non-negative integer', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('acked');
        await store.append(queue.id, [{ body: 'a' }, { body: 'b' }]);
        for (const offset of [Number.NaN, -1, 1.5, Infinity]) await expectCode(store.advanceLowWaterMark(queue.id, offset), ErrorCode.InvalidArgument);
        const info = store.queueById(queue.id)!;
        assert.equal(info.startOffset, 0);
        assert.equal((await store.read(queue.id, 0)).messages.length, 2);
        await expectCode(store.advanceLowWaterMark(9999, 1), ErrorCode.UnknownQueue);
      }));

    it('storage conformance: a closed store refuses to move low-water marks or enforce retention', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('q');
        await store.append(queue.id, [{ body: 'a' }]);
        await store.close();
        await expectCode(store.advanceLowWaterMark(queue.id, 1), ErrorCode.StoreClosed);
        await expectCode(store.enforceRetention(), ErrorCode.StoreClosed);
      }));

    it('storage conformance: listeners hear about appends once they are visible', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('watched');
        const heard: Array<[number, number]> = [];
        const stop = store.onAppend((id, end) => heard.push([id, end]));
        await store.append(queue.id, [{ body: 'a' }, { body: 'b' }]);
        await store.append(queue.id, [{ body: 'c' }]);
        stop();
        await store.append(queue.id, [{ body: 'd' }]);
        assert.deepEqual(heard, [
          [queue.id, 2],
          [queue.id, 3],
        ]);
      }));

    it('storage conformance: bad calls fail with typed errors', () =>
      withStore(async (store) => {
        const queue = await store.createQueue('strict', { maxMessageBytes: 1024 });
        await expectCode(store.createQueue('strict'), ErrorCode.QueueExists);
        await expectCode(store.createQueue(''), ErrorCode.InvalidArgument);
        await expectCode(store.createQueue('x', { flushPolicy: 'sometimes' as never }), ErrorCode.InvalidArgument);
        await expectCode(store.append(9999, [{ body: 'x' }]), ErrorCode.UnknownQueue);
        await expectCode(store.read(9999, 0), ErrorCode.UnknownQueue);
        await expectCode(store.append(queue.id, []), ErrorCode.InvalidArgument);
        await expectCode(store.append(queue.id, [{ body: Buffer.alloc(2000) }]), ErrorCode.MessageTooLarge);
        await expectCode(store.append(queue.id, [{ id: '', body: 'x' }]), ErrorCode.InvalidArgument);
        await expectCode(store.append(queue.id, [{ tag: 't'.repeat(300), body: 'x' }]), ErrorCode.InvalidArgument);
        await expectCode(store.append(queue.id, [{ timestamp: Number.NaN, body: 'x' }]), ErrorCode.InvalidArgument);
        await store.append(queue.id, [{ body: 'ok' }]);
        await expectCode(store.read(queue.id, 2), ErrorCode.OffsetOutOfRange);
        await expectCode(store.read(queue.id, -1), ErrorCode.OffsetOutOfRange);
        await expectCode(store.deleteQueue('nope'), ErrorCode.UnknownQueue);
        assert.equal(store.queueById(queue.id)!.endOffset, 1, 'failed appends leave no trace');
        const racing = await Promise.allSettled([store.createQueue('dup'), store.createQueue('dup')]);
        assert.equal(racing.filter((outcome) => outcome.status === 'fulfilled').length, 1, 'one of two concurrent creates wins');
        assert.equal(store.listQueues().filter((info) => info.name === 'dup').length, 1);
      }));

    it('storage conformance: deleting a queue forgets it and never reuses its id', () =>
      withStore(async (store) => {
        const first = await store.createQueue('temp');
        await store.append(first.id, [{ body: 'old' }]);
        await store.deleteQueue('temp');
        assert.equal(store.queue('temp'), null);
        const second = await store.createQueue('temp');
        assert.notEqual(second.id, first.id);
        assert.equal(second.endOffset, 0);
        let reopened: MessageStore = store;
        if (target.reopen) reopened = await target.reopen(store, target.clock());
        assert.equal(reopened.queue('temp')!.endOffset, 0, 'the old batches do not join the new queue');
        return reopened;
      }));

    if (target.reopen) {
      it('storage conformance: everything survives a clean close and reopen', () =>
        withStore(async (store, clock) => {
          const queues = [];
          for (let index = 0; index < 20; index++) queues.push(await store.createQueue(`q${index}`, { flushPolicy: index % 3 === 0 ? 'none' : 'sync' }));
          for (let round = 0; round < 30; round++) {
            await Promise.all(queues.map((queue, index) => store.append(queue.id, [{ id: `id-${index}-${round}`, key: `key-${round}`, body: body(index, round) }])));
          }
          await store.advanceLowWaterMark(queues[1]!.id, 5);
          const reopened = await target.reopen!(store, clock);
          for (const [index, queue] of queues.entries()) {
            const info = reopened.queue(`q${index}`)!;
            assert.equal(info.endOffset, 30);
            assert.equal(info.startOffset, index === 1 ? 5 : 0);
            const read = await reopened.read(queue.id, info.startOffset);
            assert.deepEqual(
              read.messages.map((message) => message.body.toString()),
              Array.from({ length: 30 - info.startOffset }, (_, round) => body(index, round + info.startOffset).toString()),
            );
          }
          assert.equal((await reopened.findById('id-7-12'))?.body.toString(), body(7, 12).toString());
          assert.equal((await reopened.findByKey('key-3')).length, 19, 'queue q1 was trimmed past round 3');
          const next = await reopened.append(queues[0]!.id, [{ body: 'more' }]);
          assert.equal(next.baseOffset, 30);
          return reopened;
        }));

      it('storage conformance: shared batches survive a clean close and reopen', () =>
        withStore(async (store, clock) => {
          const a = await store.createQueue('a');
          const b = await store.createQueue('b', { flushPolicy: 'none' });
          await store.append(a.id, [{ body: 'a0' }]);
          for (let round = 0; round < 10; round++) await store.appendShared([b.id, a.id], [{ key: `key-${round}`, body: `s${round}` }]);
          await store.advanceLowWaterMark(b.id, 4);
          const bytes = [store.queueById(a.id)!.bytes, store.queueById(b.id)!.bytes];
          const reopened = await target.reopen!(store, clock);
          assert.deepEqual((await reopened.read(a.id, 0)).messages.map((message) => message.body.toString()), ['a0', ...Array.from({ length: 10 }, (_, round) => `s${round}`)]);
          assert.deepEqual((await reopened.read(b.id, 4)).messages.map((message) => [message.offset, message.body.toString()]), Array.from({ length: 6 }, (_, index) => [index + 4, `s${index + 4}`]));
          assert.deepEqual([reopened.queueById(a.id)!.bytes, reopened.queueById(b.id)!.bytes], bytes);
          assert.equal((await reopened.findByKey('key-2')).length, 1, 'b was trimmed past round 2');
          const next = await reopened.appendShared([a.id, b.id], [{ body: 'more' }]);
          assert.deepEqual(next.map((result) => result.baseOffset), [11, 10]);
          return reopened;
        }));
    }
  });
}
