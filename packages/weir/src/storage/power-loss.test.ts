import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DiskMessageStore } from './disk-message-store.js';
import { FaultFileSystem, seededRandom } from './io/fault-file-system.js';

/**
 * Power loss through the fault-injecting file system: a random workload runs against the store, the "machine loses
 * power" at a random moment (each file keeps its fsynced bytes plus a random, possibly torn, prefix of later writes),
 * and the store reopens on what survived.
 * - `sync` queue: every append whose promise resolved is there, intact, in order, once.
 * - `interval` and `none` queues: what survives is a prefix of what was appended (no hole in the middle), and every
 *   append that resolved before the last completed `flush()` is in it.
 * 50 seeds × 4 consecutive crashes = 200 crash points (WEIR_CHAOS: 250 seeds).
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

async function openStore(fs: FaultFileSystem): Promise<DiskMessageStore> {
  return DiskMessageStore.open({
    dataDir: '/data',
    fs,
    segmentBytes: 8 * 1024,
    consumeQueueEntriesPerFile: 32,
    checkpointIntervalMs: 0,
    retentionIntervalMs: 0,
    indexMaxEntries: 256,
    indexSlotCount: 64,
  });
}

async function runUntilCrash(store: DiskMessageStore, random: () => number, history: History, round: number): Promise<void> {
  let stop = false;
  const queues = QUEUES.map((queue) => store.queue(queue.name)!);
  const worker = async (id: number): Promise<void> => {
    for (let sequence = 0; !stop; sequence++) {
      const queue = queues[Math.floor(random() * queues.length)]!;
      const count = 1 + Math.floor(random() * 3);
      const values = Array.from({ length: count }, (_, index) => `${round}.${id}.${sequence}.${index}`);
      try {
        const result = await store.append(queue.id, values.map((value) => ({ key: `k${id}`, body: value })));
        if (stop) return;
        history.acked.get(queue.name)!.push({ baseOffset: result.baseOffset, values });
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
  for (let turn = 0; turn < turns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
  stop = true;
  await Promise.race([Promise.all(workers), new Promise((resolve) => setImmediate(resolve))]);
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

test('storage: power loss at 200 random points keeps every acknowledged append', { timeout: 600_000 }, async () => {
  const baseSeed = Number(process.env.WEIR_SEED ?? 1);
  for (let seed = baseSeed; seed < baseSeed + SEEDS; seed++) {
    const random = seededRandom(seed);
    let fs = new FaultFileSystem();
    let store = await openStore(fs);
    for (const queue of QUEUES) await store.createQueue(queue.name, queue.settings);
    const history: History = {
      acked: new Map(QUEUES.map((queue) => [queue.name, []])),
      flushed: new Map(QUEUES.map((queue) => [queue.name, 0])),
    };
    for (let crash = 0; crash < CRASHES_PER_SEED; crash++) {
      await runUntilCrash(store, random, history, crash);
      const crashed = fs.crash({ random });
      await store.abandon();
      fs = crashed;
      store = await openStore(fs);
      await verify(store, history, `seed ${seed} crash ${crash}`);
    }
    await store.close();
  }
});
