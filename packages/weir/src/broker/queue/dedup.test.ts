import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { ErrorCode } from '../../core/errors.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import type { MessageStore } from '../../storage/message-store.js';
import { isSettled, openDiskStore, tempDirectory, throwsWith } from '../test-support.js';
import { type DedupReservation, MessageDedup, type StoredLocation, storedLocations } from './dedup.js';

const MINUTE = 60_000;
const WINDOW = 10 * MINUTE;

function ids(...names: Array<string | null>): Array<Buffer | null> {
  return names.map((name) => (name === null ? null : Buffer.from(name)));
}

/** The produce path as the broker runs it: claim, append what is fresh, complete (or abort on failure). */
async function produce(dedup: MessageDedup, store: MessageStore, queueId: number, names: Array<string | null>, options: { fail?: boolean } = {}): Promise<DedupReservation> {
  const claimed = ids(...names);
  const reservation = await dedup.begin(claimed);
  try {
    if (reservation.fresh.length > 0) {
      if (options.fail) throw new Error('injected append failure');
      const result = await store.append(
        queueId,
        reservation.fresh.map((index) => ({ id: claimed[index], body: `body-${index}` })),
      );
      reservation.complete(storedLocations(result));
    }
    return reservation;
  } finally {
    reservation.abort();
  }
}

async function storedIds(store: MessageStore, queueId: number): Promise<string[]> {
  const read = await store.read(queueId, 0, { maxMessages: 10_000 });
  return read.messages.map((message) => message.id.toString());
}

async function setup(options: { windowMs?: number; maxEntries?: number } = {}) {
  const clock = new ManualClock();
  const store = new MemoryMessageStore(clock);
  const queue = await store.createQueue('orders/0');
  const dedup = new MessageDedup({ store, clock, ...options });
  return { clock, store, queueId: queue.id, dedup };
}

describe('broker: message dedup', () => {
  it('a resend within the window gets the original location; after it, it is stored again', async () => {
    const { clock, store, queueId, dedup } = await setup();
    const first = await produce(dedup, store, queueId, ['a', 'b', null]);
    assert.deepEqual(first.fresh, [0, 1, 2]);
    clock.advance(WINDOW - 1);
    const retry = await produce(dedup, store, queueId, ['a', 'c', null, 'b']);
    assert.deepEqual(retry.fresh, [1, 2]);
    assert.deepEqual(retry.duplicates[0], { queueId, offset: 0, storeTimestamp: clock.now() - (WINDOW - 1), position: retry.duplicates[0]!.position });
    assert.equal(retry.duplicates[3]!.offset, 1);
    assert.equal(retry.duplicates[2], null, 'messages without an id are never duplicates');
    assert.deepEqual(await dedup.check(ids('a', 'b', 'c', 'zzz', null)).then((found) => found.map((location) => location?.offset ?? null)), [0, 1, 3, null, null]);
    // 'a' and 'b' were stored exactly WINDOW ago now: no longer duplicates. 'c' is 1 ms old.
    clock.advance(1);
    const late = await produce(dedup, store, queueId, ['a', 'b', 'c']);
    assert.deepEqual(late.fresh, [0, 1]);
    assert.equal(late.duplicates[2]!.offset, 3);
    const stored = await storedIds(store, queueId);
    assert.deepEqual([stored[0], stored[1], stored[3], stored[5], stored[6]], ['a', 'b', 'c', 'a', 'b']);
    assert.equal(stored.length, 7);
    assert.ok(dedup.stats().hits >= 3);
  });

  it('an id repeated inside one produce is stored once', async () => {
    const { store, queueId, dedup } = await setup();
    const reservation = await produce(dedup, store, queueId, ['x', 'y', 'x', 'x', null, null]);
    assert.deepEqual(reservation.fresh, [0, 1, 4, 5]);
    assert.deepEqual(reservation.repeatOf, [-1, -1, 0, 0, -1, -1]);
    const again = await produce(dedup, store, queueId, ['y', 'y']);
    assert.deepEqual(again.fresh, []);
    assert.equal(again.duplicates[0]!.offset, 1);
    assert.equal(again.duplicates[1]!.offset, 1, 'a repeat of a duplicate points at the same original');
  });

  it('memory holds the newest maxEntries ids and forgets the oldest first; ages out after the window', async () => {
    const { clock, store, queueId, dedup } = await setup({ maxEntries: 3 });
    // Past the warm-up period the store is not consulted, so what memory forgot is forgotten.
    clock.advance(WINDOW);
    for (const name of ['m1', 'm2', 'm3', 'm4', 'm5']) await produce(dedup, store, queueId, [name]);
    assert.equal(dedup.stats().entries, 3);
    assert.deepEqual(dedup.checkInMemory(ids('m1', 'm2', 'm3', 'm4', 'm5')).map((location) => location?.offset ?? null), [null, null, 2, 3, 4]);
    // Storing an id again moves it to the back: m3 outlives m4 now.
    dedup.remember(ids('m3') as Buffer[], [{ queueId, offset: 2, storeTimestamp: clock.now(), position: 0 }]);
    await produce(dedup, store, queueId, ['m6']);
    assert.deepEqual(dedup.checkInMemory(ids('m3', 'm4', 'm5', 'm6')).map((location) => location !== null), [true, false, true, true]);
    assert.equal(dedup.stats().diskLookups, 0);
    clock.advance(WINDOW);
    await produce(dedup, store, queueId, ['m7']);
    assert.equal(dedup.stats().entries, 1, 'aged entries are evicted from the front');
  });

  it('after a restart, the store index catches resends of messages stored before it, within the window only', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      const queueId = (await store.createQueue('orders/0')).id;
      const before = new MessageDedup({ store, clock });
      await produce(before, store, queueId, ['early']);
      clock.advance(4 * MINUTE);
      await produce(before, store, queueId, ['late', null]);
      await store.close();

      clock.advance(MINUTE);
      store = await openDiskStore(dataDir, clock);
      const dedup = new MessageDedup({ store, clock });
      assert.deepEqual(dedup.checkInMemory(ids('early', 'late', 'new')), [undefined, undefined, undefined], 'memory cannot tell while warming up');
      const resend = await produce(dedup, store, queueId, ['early', 'late', 'new']);
      assert.deepEqual(resend.fresh, [2]);
      assert.equal(resend.duplicates[0]!.offset, 0);
      assert.equal(resend.duplicates[1]!.offset, 1);
      assert.equal(dedup.stats().diskLookups, 3);
      // What the disk found is remembered: no second lookup.
      assert.equal((await dedup.check(ids('early')))[0]!.offset, 0);
      assert.equal(dedup.stats().diskLookups, 3);

      // 'early' was stored at T, 'late' at T+4m; restart at T+5m. At T+10m 'early' is out, 'late' still in.
      clock.advance(5 * MINUTE);
      const restarted = new MessageDedup({ store, clock });
      const found = await restarted.check(ids('early', 'late'));
      assert.equal(found[0], null);
      assert.equal(found[1]!.offset, 1);
      const stored = await produce(restarted, store, queueId, ['early']);
      assert.deepEqual(stored.fresh, [0]);
      assert.equal((await storedIds(store, queueId)).filter((id) => id === 'early').length, 2);

      // Once the instance is older than the window, the disk is never asked again.
      clock.advance(WINDOW);
      const lookups = restarted.stats().diskLookups;
      assert.deepEqual(await restarted.check(ids('late', 'never-seen')), [null, null]);
      assert.notEqual(restarted.tryBegin(ids('never-seen')), null);
      assert.equal(restarted.stats().diskLookups, lookups);
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('racing produces of one id are stored once; the loser gets the winner\'s location', async () => {
    const { store, queueId, dedup, clock } = await setup();
    clock.advance(WINDOW);
    const first = dedup.tryBegin(ids('race'))!;
    assert.deepEqual(first.fresh, [0]);
    assert.equal(dedup.tryBegin(ids('race', 'other')), null, 'an id in flight cannot be claimed synchronously');
    const second = dedup.begin(ids('race', 'other'));
    const checked = dedup.check(ids('race'));
    assert.equal(await isSettled(second), false);
    assert.equal(await isSettled(checked), false);
    assert.equal(dedup.stats().inFlight, 1, 'the waiter holds nothing while it waits, not even "other"');
    const result = await store.append(queueId, [{ id: 'race', body: 'winner' }]);
    first.complete(storedLocations(result));
    const loser = await second;
    assert.deepEqual(loser.fresh, [1]);
    assert.deepEqual(loser.duplicates[0], storedLocations(result)[0]);
    assert.deepEqual((await checked)[0], storedLocations(result)[0]);
    loser.abort();
    assert.equal(dedup.stats().inFlight, 0);
  });

  it('a failed append releases its ids: a waiting duplicate is stored instead', async () => {
    const { store, queueId, dedup } = await setup();
    const failing = produce(dedup, store, queueId, ['x', 'y'], { fail: true });
    const retry = produce(dedup, store, queueId, ['y', 'x']);
    await assert.rejects(failing, /injected/);
    const stored = await retry;
    assert.deepEqual(stored.fresh, [0, 1]);
    assert.deepEqual(await storedIds(store, queueId), ['y', 'x']);
    assert.equal(dedup.stats().inFlight, 0);
  });

  it('racing producers with failures store every id at most once, and once if any attempt succeeded (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ names: fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1, maxLength: 4 }), fail: fc.boolean() }), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (producers, warm) => {
          const { clock, store, queueId, dedup } = await setup();
          if (!warm) clock.advance(WINDOW);
          const answers = await Promise.all(
            producers.map(async ({ names, fail }) => {
              try {
                return { names, fail, reservation: await produce(dedup, store, queueId, names, { fail }) };
              } catch {
                return { names, fail, reservation: null };
              }
            }),
          );
          const read = await store.read(queueId, 0, { maxMessages: 1000 });
          const stored = read.messages.map((message) => message.id.toString());
          assert.equal(new Set(stored).size, stored.length, `stored twice: ${stored.join(',')}`);
          for (const { names, fail, reservation } of answers) {
            if (fail || reservation === null) continue;
            names.forEach((name, index) => {
              assert.ok(stored.includes(name), `${name} was produced successfully but is not stored`);
              const original = read.messages.find((message) => message.id.toString() === name)!;
              const first = reservation.repeatOf[index]! >= 0 ? reservation.repeatOf[index]! : index;
              const location = reservation.duplicates[first];
              if (location !== null) assert.equal(location!.offset, original.offset);
            });
          }
          assert.equal(dedup.stats().inFlight, 0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a failed disk lookup releases the claim and fails the produce', async () => {
    const { store, queueId, clock } = await setup();
    // A store that held messages before the dedup started (a restart): the warm-up period consults the disk.
    await store.append(queueId, [{ body: 'earlier' }]);
    const dedup = new MessageDedup({ store, clock });
    const original = store.findById.bind(store);
    let failing = true;
    store.findById = async (id) => {
      if (failing) throw new Error('index unreadable');
      return original(id);
    };
    await assert.rejects(dedup.begin(ids('q')), /index unreadable/);
    assert.equal(dedup.stats().inFlight, 0);
    failing = false;
    assert.deepEqual((await produce(dedup, store, queueId, ['q'])).fresh, [0]);
  });

  it('checks its options and its completions', async () => {
    const { store, clock, dedup } = await setup();
    throwsWith(() => new MessageDedup({ store, clock, windowMs: 0 }), ErrorCode.InvalidArgument);
    throwsWith(() => new MessageDedup({ store, clock, maxEntries: 1.5 }), ErrorCode.InvalidArgument);
    throwsWith(() => dedup.remember(ids('a') as Buffer[], []), ErrorCode.InvalidArgument);
    const reservation = await dedup.begin(ids('a', 'b'));
    const location: StoredLocation = { queueId: 1, offset: 0, storeTimestamp: clock.now(), position: 0 };
    throwsWith(() => reservation.complete([location]), ErrorCode.InvalidArgument);
    // The bad completion released the ids rather than leaving them held forever.
    assert.equal(dedup.stats().inFlight, 0);
    reservation.complete([location, location]);
    assert.equal(dedup.stats().entries, 0, 'a finished reservation ignores later calls');
  });
});
