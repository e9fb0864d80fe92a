import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ErrorCode, isWeirError } from '../../src/core/errors.js';
import { DiskMessageStore } from '../../src/storage/disk-message-store.js';
import { seededRandom } from '../../src/storage/io/fault-file-system.js';
import { damageOldRecord, durableFrontier, readLogLayout, TAIL_FAULTS, tearTail } from './torn-log.js';

/**
 * The harness's log damage on a real store: tearing the tail never touches a batch below the frontier (what clients
 * saw survives every tear), and a flipped bit in an older batch is refused with DATA_DAMAGED, never served changed.
 */
const options = (dataDir: string) => ({ dataDir, checkpointIntervalMs: 0, retentionIntervalMs: 0 });

async function writeAndCrash(dataDir: string, batches: number): Promise<string[][]> {
  const store = await DiskMessageStore.open(options(dataDir));
  const queue = await store.createQueue('q');
  const written: string[][] = [];
  for (let batch = 0; batch < batches; batch++) {
    const values = Array.from({ length: 1 + (batch % 3) }, (_, index) => `v${batch}.${index}`);
    await store.append(queue.id, values.map((body) => ({ body })));
    written.push(values);
  }
  await store.abandon();
  return written;
}

async function readEverything(dataDir: string): Promise<{ values: string[]; damaged: number[] }> {
  const store = await DiskMessageStore.open(options(dataDir));
  try {
    const queue = store.queue('q')!;
    const values: string[] = [];
    const damaged: number[] = [];
    for (let offset = queue.startOffset; offset < queue.endOffset; ) {
      try {
        const read = await store.read(queue.id, offset);
        values.push(...read.messages.map((message) => message.body.toString()));
        offset = read.nextOffset;
      } catch (error) {
        if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
        damaged.push(offset++);
      }
    }
    return { values, damaged };
  } finally {
    await store.close();
  }
}

describe('reliability: commit-log damage the harness injects', () => {
  it('tears only what no client saw: every kind, many seeds', async () => {
    for (const kind of TAIL_FAULTS) {
      for (let seed = 1; seed <= 6; seed++) {
        const dataDir = await mkdtemp(join(tmpdir(), 'weir-torn-log-'));
        try {
          const written = await writeAndCrash(dataDir, 12);
          const seenBatches = 4 + seed;
          const seen = new Set(written.slice(0, seenBatches).flat());
          const layout = await readLogLayout(dataDir);
          assert.deepEqual(layout.batches.map((batch) => batch.values), written, 'the layout lists every batch with its values');
          const frontier = durableFrontier(layout, (value) => seen.has(value));
          assert.equal(frontier, layout.batches[seenBatches - 1]!.end);
          const corruption = await tearTail(layout, frontier, kind, seededRandom(seed));
          assert.ok(corruption.applied, `${kind} seed ${seed}: ${corruption.detail}`);
          const { values, damaged } = await readEverything(dataDir);
          // Garbage or zeros over part of the tail with intact batches after it is damage, not a torn tail: recovery
          // keeps what follows and refuses the offsets in between (never one a client saw).
          assert.ok(damaged.every((offset) => offset >= seen.size), `${kind} seed ${seed}: damage reported below the frontier: ${damaged.join(', ')}`);
          assert.deepEqual(values.slice(0, seen.size), [...seen], `${kind} seed ${seed}: everything seen survives (${corruption.detail})`);
          const kept = written.flat().filter((_, offset) => !damaged.includes(offset));
          assert.deepEqual(values, kept.slice(0, values.length), `${kind} seed ${seed}: the rest is in order, unchanged`);
          if (kind === 'bitflip') assert.ok(values.length < written.flat().length, 'the damaged last record is dropped');
        } finally {
          await rm(dataDir, { recursive: true, force: true });
        }
      }
    }
  });

  it('a flipped bit in an older batch is refused with DATA_DAMAGED and nothing else is lost', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const dataDir = await mkdtemp(join(tmpdir(), 'weir-torn-log-'));
      try {
        const written = await writeAndCrash(dataDir, 10);
        const layout = await readLogLayout(dataDir);
        const corruption = await damageOldRecord(layout, layout.batches[layout.batches.length - 1]!.end, () => true, seededRandom(seed));
        assert.ok(corruption.applied);
        const { values, damaged } = await readEverything(dataDir);
        const expected = written.flat().filter((value) => !corruption.values.includes(value));
        assert.deepEqual(values, expected, `seed ${seed}: every other value is served, unchanged (${corruption.detail})`);
        assert.equal(damaged.length, corruption.values.length, `seed ${seed}: each damaged offset is refused`);
        assert.deepEqual((await readLogLayout(dataDir)).batches.length, written.length - 1, 'the damage stays on disk, skipped by the layout');
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  });
});
