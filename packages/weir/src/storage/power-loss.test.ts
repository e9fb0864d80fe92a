import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { DiskMessageStore, type DiskMessageStoreOptions } from './disk-message-store.js';
import { FaultFileSystem, seededRandom } from './io/fault-file-system.js';
import { prepareMessage } from './record-batch.js';
import { HookedFileSystem, pause } from './test-support.js';

/**
 * Power loss through the fault-injecting file system: a random workload runs against the store, the "machine loses
 * power" at a random moment (each file keeps its fsynced bytes plus a random, possibly torn, prefix of later writes),
 * and the store reopens on what survived.
 * - `sync` queue: every append whose promise resolved is there, intact, in order, once.
 * - `interval` and `none` queues: what survives is a prefix of what was appended (no hole in the middle), and every
 *   append that resolved before the last completed `flush()` is in it.
 * About a third of the appends are shared batches (one copy for several queues); a shared batch is acknowledged under
 * the strictest policy of its queues, so the same rules hold for each queue it went to.
 * 50 seeds × 4 consecutive crashes = 200 crash points (WEIR_CHAOS: 250 seeds); then the same with checkpoints on a
 * timer and consume queues writing their entries out every few messages, so checkpoints run while the log has
 * written but unsynced batches.
 */
const SEEDS = Number(process.env.WEIR_POWER_SEEDS ?? (process.env.WEIR_CHAOS ? 250 : 50));
const CRASHES_PER_SEED = 4;
const QUEUES = [
  { name: 'sync-q', settings: { flushPolicy: 'sync' as const } },
  { name: 'interval-q', settings: { flushPolicy: 'interval' as const, flushIntervalMs: 2 } },
  { name: 'none-q', settings: { flushPolicy: 'none' as const } },
];

interface History {
  /** Per queue: every value ever appended, in offset order of the attempts that got an offset. */
  acked: Map<string, Array<{ baseOffset: number; values: string[] }>>;
  /** Per queue: how many of `acked` were acknowledged before the last completed flush (they survive any policy). */
  flushed: Map<string, number>;
}

type StoreVariant = Partial<DiskMessageStoreOptions>;

const TIMER_CHECKPOINTS: StoreVariant = { checkpointIntervalMs: 1, consumeQueueFlushEntries: 2 };

async function openStore(fs: HookedFileSystem, variant: StoreVariant = {}): Promise<DiskMessageStore> {
  return DiskMessageStore.open({
    dataDir: '/data',
    fs,
    segmentBytes: 8 * 1024,
    consumeQueueEntriesPerFile: 32,
    checkpointIntervalMs: 0,
    retentionIntervalMs: 0,
    indexMaxEntries: 256,
    indexSlotCount: 64,
    ...variant,
  });
}

/** Resolves once a checkpoint is written, or after `ms` (a checkpoint with nothing new writes nothing). */
async function checkpointWritten(fs: HookedFileSystem, ms: number): Promise<void> {
  await Promise.race([fs.renamedTo('/data/checkpoint'), pause(ms)]);
}

async function runUntilCrash(fs: HookedFileSystem, store: DiskMessageStore, random: () => number, history: History, round: number, variant: StoreVariant): Promise<void> {
  let stop = false;
  const queues = QUEUES.map((queue) => store.queue(queue.name)!);
  const worker = async (id: number): Promise<void> => {
    for (let sequence = 0; !stop; sequence++) {
      // A third of the appends go to several queues as one shared batch.
      const chosen = random() < 0.3 ? queues.filter(() => random() < 0.7) : [queues[Math.floor(random() * queues.length)]!];
      if (chosen.length === 0) continue;
      const count = 1 + Math.floor(random() * 3);
      const values = Array.from({ length: count }, (_, index) => `${round}.${id}.${sequence}.${index}`);
      const inputs = values.map((value) => ({ key: `k${id}`, body: value }));
      try {
        const results = chosen.length === 1 ? [await store.append(chosen[0]!.id, inputs)] : await store.appendShared(chosen.map((queue) => queue.id), inputs);
        if (stop) return;
        chosen.forEach((queue, index) => history.acked.get(queue.name)!.push({ baseOffset: results[index]!.baseOffset, values }));
      } catch {
        return;
      }
      if (random() < 0.05) {
        const acknowledged = QUEUES.map((q) => [q.name, history.acked.get(q.name)!.length] as const);
        try {
          await store.flush();
          if (stop) return;
          for (const [name, count] of acknowledged) history.flushed.set(name, Math.max(count, history.flushed.get(name)!));
        } catch {
          return;
        }
      }
    }
  };
  const workers = Array.from({ length: 4 }, (_, id) => worker(id));
  const turns = 1 + Math.floor(random() * 8);
  for (let turn = 0; turn < turns; turn++) {
    // Timers only fire when time passes: give the checkpoint timer milliseconds, not just turns of the event loop.
    if (variant.checkpointIntervalMs) await pause(Math.floor(random() * 3));
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
  stop = true;
  await Promise.race([Promise.all(workers), new Promise((resolve) => setImmediate(resolve))]);
  // Right after a checkpoint is the moment a checkpoint that counted unsynced batches would be caught out.
  if (variant.checkpointIntervalMs && random() < 0.5) await checkpointWritten(fs, 20);
}

async function verify(store: DiskMessageStore, history: History, label: string): Promise<void> {
  for (const { name, settings } of QUEUES) {
    const queue = store.queue(name)!;
    assert.ok(queue, `${label}: queue ${name} exists`);
    assert.equal(queue.damaged, false, `${label}: ${name} is not damaged`);
    const bodies: string[] = [];
    let offset = queue.startOffset;
    while (offset < queue.endOffset) {
      const read = await store.read(queue.id, offset, { maxMessages: 1000 });
      read.messages.forEach((message, index) => assert.equal(message.offset, offset + index, `${label}: contiguous offsets`));
      bodies.push(...read.messages.map((message) => message.body.toString()));
      offset = read.nextOffset;
    }
    assert.equal(new Set(bodies).size, bodies.length, `${label}: ${name} has no duplicates`);
    const entries = history.acked.get(name)!;
    const byOffset = new Map<number, string>();
    for (const entry of entries) entry.values.forEach((value, index) => byOffset.set(entry.baseOffset + index, value));
    if (settings.flushPolicy === 'sync') {
      for (const [at, value] of byOffset) assert.equal(bodies[at], value, `${label}: acknowledged ${value} at ${name}/${at}`);
    } else {
      for (const entry of entries.slice(0, history.flushed.get(name)!)) {
        entry.values.forEach((value, index) => assert.equal(bodies[entry.baseOffset + index], value, `${label}: flushed ${value} survives in ${name}`));
      }
    }
    // Every survivor was appended, at the offset it was acknowledged at (when it was): a prefix, no hole.
    for (const [at, value] of bodies.entries()) {
      assert.match(value, /^\d+\.\d+\.\d+\.\d+$/, `${label}: ${name}/${at} holds a value that was sent`);
      const expected = byOffset.get(at);
      if (expected !== undefined) assert.equal(value, expected, `${label}: ${name}/${at}`);
    }
    // Forget acknowledgements past the survivors (only possible for non-sync queues): the next round appends there.
    const kept = entries.filter((entry) => entry.baseOffset + entry.values.length <= queue.endOffset);
    history.acked.set(name, kept);
    history.flushed.set(name, Math.min(history.flushed.get(name)!, kept.length));
  }
}

async function crashRepeatedly(seeds: number, variant: StoreVariant): Promise<void> {
  const baseSeed = Number(process.env.WEIR_SEED ?? 1);
  for (let seed = baseSeed; seed < baseSeed + seeds; seed++) {
    const random = seededRandom(seed);
    let fs = new HookedFileSystem(new FaultFileSystem());
    let store = await openStore(fs, variant);
    for (const queue of QUEUES) await store.createQueue(queue.name, queue.settings);
    const history: History = {
      acked: new Map(QUEUES.map((queue) => [queue.name, []])),
      flushed: new Map(QUEUES.map((queue) => [queue.name, 0])),
    };
    for (let crash = 0; crash < CRASHES_PER_SEED; crash++) {
      await runUntilCrash(fs, store, random, history, crash, variant);
      const crashed = fs.disk.crash({ random });
      await store.abandon();
      fs = new HookedFileSystem(crashed);
      store = await openStore(fs, variant);
      await verify(store, history, `seed ${seed} crash ${crash}`);
    }
    await store.close();
  }
}

test('storage: power loss at 200 random points keeps every acknowledged append', { timeout: 600_000 }, () => crashRepeatedly(SEEDS, {}));

test('storage: power loss at random points with timer checkpoints keeps every acknowledged append', { timeout: 600_000 }, () =>
  crashRepeatedly(Math.ceil(SEEDS / 2), TIMER_CHECKPOINTS));

/** A store on a hooked disk whose checkpoint timer fires when the test moves the clock. */
async function timerStore(variant: StoreVariant = {}) {
  const clock = new ManualClock();
  const disk = new FaultFileSystem();
  const fs = new HookedFileSystem(disk);
  const options = { dataDir: '/data', clock, checkpointIntervalMs: 2, retentionIntervalMs: 0, ...variant };
  const store = await DiskMessageStore.open({ ...options, fs });
  return {
    store,
    /** Runs one timer checkpoint and waits until its file is written. */
    checkpoint: async () => {
      const written = fs.renamedTo('/data/checkpoint');
      const alive = setInterval(() => {}, 1000); // the store's timer is unref'd and would not keep the test running
      clock.advance(2);
      await written;
      clearInterval(alive);
    },
    /** Power loss that keeps exactly what was synced, and the store reopened on it. */
    crashAndReopen: async () => {
      const crashed = disk.crash({ keepUnsyncedPrefix: false });
      await store.abandon();
      return DiskMessageStore.open({ ...options, fs: crashed });
    },
  };
}

/** Every offset the queue reports readable is, and returns how many there are. */
async function readableCount(store: DiskMessageStore, name: string): Promise<number> {
  const info = store.queue(name)!;
  let offset = info.startOffset;
  while (offset < info.endOffset) offset = (await store.read(info.id, offset)).nextOffset;
  return info.endOffset - info.startOffset;
}

test('storage: a timer checkpoint never counts entries an earlier checkpoint wrote past the synced log', async () => {
  const { store, checkpoint, crashAndReopen } = await timerStore();
  const queue = await store.createQueue('q', { flushPolicy: 'none' });
  await store.append(queue.id, [{ body: 'a' }]);
  await checkpoint(); // writes the entry of 'a', whose batch is not synced
  await store.append(queue.id, [{ body: 'b' }]);
  await store.advanceLowWaterMark(queue.id, 2); // recorded, though the messages below it will not survive
  await checkpoint();
  const reopened = await crashAndReopen();
  assert.equal(await readableCount(reopened, 'q'), 0, 'nothing of the none queue was synced');
  assert.equal(reopened.queue('q')!.bytes, 0);
  const next = await reopened.append(queue.id, [{ body: 'c' }]);
  assert.equal(next.baseOffset, 0);
  assert.equal(reopened.queue('q')!.bytes, prepareMessage({ body: 'c' }).encodedBytes);
  await reopened.close();
});

test('storage: a timer checkpoint never counts entries a background flush wrote past the synced log', async () => {
  const { store, checkpoint, crashAndReopen } = await timerStore({ consumeQueueFlushEntries: 2 });
  const synced = await store.createQueue('s');
  const unsynced = await store.createQueue('n', { flushPolicy: 'none' });
  await store.append(synced.id, [{ body: 's1' }]);
  await store.append(unsynced.id, [{ body: 'n1' }, { body: 'n2' }, { body: 'n3' }]);
  await pause(5); // the background flush writes the none queue's entries
  await checkpoint(); // the synced queue moved the durable position, so this one runs
  const reopened = await crashAndReopen();
  assert.equal(await readableCount(reopened, 's'), 1);
  assert.equal(await readableCount(reopened, 'n'), 0);
  await reopened.close();
});
