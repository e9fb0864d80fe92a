import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { RecordingLogger } from '../core/logger.js';
import { segmentFileName } from './commit-log.js';
import { DiskMessageStore } from './disk-message-store.js';
import { seededRandom } from './io/fault-file-system.js';
import { flipBit } from './test-support.js';

/**
 * Torn tails and damaged records on real files. A "crash" is `abandon()`: the process stops without its closing
 * checkpoint, so the next open re-checks the log's tail, as after kill -9.
 */
interface Written {
  /** Per batch: commit-log start, end, and the offsets it holds. */
  batches: Array<{ start: number; end: number; firstOffset: number; bodies: string[] }>;
  segment: string;
}

let directory = '';
const options = (logger?: RecordingLogger) => ({ dataDir: directory, checkpointIntervalMs: 0, retentionIntervalMs: 0, ...(logger ? { logger } : {}) });

async function writeBatches(count: number, crash: boolean): Promise<Written> {
  const store = await DiskMessageStore.open(options());
  const queue = await store.createQueue('q');
  const written: Written = { batches: [], segment: join(directory, 'commitlog', segmentFileName(0)) };
  for (let index = 0; index < count; index++) {
    const bodies = Array.from({ length: 1 + (index % 3) }, (_, message) => `batch-${index}-message-${message}-${'x'.repeat(index * 7)}`);
    const result = await store.append(queue.id, bodies.map((body) => ({ key: `k${index}`, body })));
    written.batches.push({ start: result.position, end: store.stats.endPosition, firstOffset: result.baseOffset, bodies });
  }
  if (crash) await store.abandon();
  else await store.close();
  return written;
}

/** Copies the data directory aside; the returned function puts that copy back (recovery may have checkpointed since). */
async function keepAside(): Promise<() => Promise<void>> {
  const copy = `${directory}-aside`;
  await cp(directory, copy, { recursive: true });
  return async () => {
    await rm(directory, { recursive: true, force: true });
    await cp(copy, directory, { recursive: true });
  };
}

async function readAll(store: DiskMessageStore): Promise<string[]> {
  const queue = store.queue('q')!;
  const bodies: string[] = [];
  let offset = queue.startOffset;
  while (offset < queue.endOffset) {
    const read = await store.read(queue.id, offset);
    bodies.push(...read.messages.map((message) => message.body.toString()));
    offset = read.nextOffset;
  }
  return bodies;
}

function bodiesOf(written: Written, batches: number): string[] {
  return written.batches.slice(0, batches).flatMap((batch) => batch.bodies);
}

describe('storage: torn tails and damage', () => {
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'weir-torn-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
    await rm(`${directory}-aside`, { recursive: true, force: true });
  });

  it('storage: a tail cut at any byte of the last batch drops exactly that batch', async () => {
    const written = await writeBatches(12, true);
    const last = written.batches[written.batches.length - 1]!;
    const original = await readFile(written.segment);
    const random = seededRandom(7);
    const cuts = [last.start + 1, last.start + 47, last.end - 1, ...Array.from({ length: 8 }, () => last.start + 1 + Math.floor(random() * (last.end - last.start - 1)))];
    for (const cut of cuts) {
      await writeFile(written.segment, original);
      await truncate(written.segment, cut);
      const logger = new RecordingLogger();
      const store = await DiskMessageStore.open(options(logger));
      assert.deepEqual(await readAll(store), bodiesOf(written, 11), `cut at ${cut}`);
      const warning = logger.entries.find((entry) => entry.message.includes('torn tail'));
      assert.deepEqual((warning?.fields as { droppedBytes?: number }).droppedBytes, cut - last.start, 'the log says how much it dropped');
      // The log goes on from the cut: the next append takes the dropped batch's offset.
      const next = await store.append(store.queue('q')!.id, [{ body: 'after' }]);
      assert.equal(next.baseOffset, last.firstOffset);
      await store.abandon();
    }
  });

  it('storage: garbage or zeros after the last batch are dropped and everything is kept', async () => {
    const written = await writeBatches(10, true);
    const original = await readFile(written.segment);
    for (const tail of [randomBytes(1), randomBytes(3000), Buffer.alloc(4096), Buffer.alloc(47)]) {
      await writeFile(written.segment, original);
      await appendFile(written.segment, tail);
      const store = await DiskMessageStore.open(options());
      assert.deepEqual(await readAll(store), bodiesOf(written, 10));
      await store.close();
      assert.equal((await readFile(written.segment)).byteLength, original.byteLength, 'the tail was cut off');
    }
  });

  it('storage: one flipped bit in the last batch is rot, not a torn write: its offsets are reserved, never served nor reused', async () => {
    const written = await writeBatches(10, true);
    const last = written.batches[written.batches.length - 1]!;
    const restore = await keepAside();
    // The length field (outside the CRC), the header's store time, the last message byte.
    for (const at of [last.start + 2, last.start + 30, last.end - 1]) {
      await restore();
      await flipBit(written.segment, at, 3);
      const logger = new RecordingLogger();
      const store = await DiskMessageStore.open(options(logger));
      const queue = store.queue('q')!;
      assert.ok(!logger.entries.some((entry) => entry.message.includes('torn tail')), `bit flipped at ${at}: nothing is cut`);
      assert.ok(logger.entries.some((entry) => entry.level === 'error' && entry.message.includes('flipped bit')), 'the rot is reported');
      assert.equal(queue.endOffset, bodiesOf(written, 10).length);
      assert.equal(queue.damaged, true);
      assert.deepEqual((await store.read(queue.id, 0, { maxMessages: last.firstOffset })).messages.map((message) => message.body.toString()), bodiesOf(written, 9));
      await assert.rejects(store.read(queue.id, last.firstOffset), (error) => isWeirError(error, ErrorCode.DataDamaged));
      assert.equal((await store.append(queue.id, [{ body: 'after' }])).baseOffset, last.firstOffset + last.bodies.length);
      await store.abandon();
    }
  });

  it('storage: a last batch that more than one flipped bit broke is a torn tail and is cut', async () => {
    const written = await writeBatches(10, true);
    const last = written.batches[written.batches.length - 1]!;
    await flipBit(written.segment, last.start + 60, 1);
    await flipBit(written.segment, last.end - 2, 6);
    const store = await DiskMessageStore.open(options());
    assert.deepEqual(await readAll(store), bodiesOf(written, 9));
    assert.equal((await store.append(store.queue('q')!.id, [{ body: 'after' }])).baseOffset, last.firstOffset);
    await store.abandon();
  });

  it("storage: a flipped bit in the header of a queue's last batch, inside the log, still reserves that batch's offsets", async () => {
    const store = await DiskMessageStore.open(options());
    const q = await store.createQueue('q');
    const r = await store.createQueue('r');
    for (let index = 0; index < 3; index++) await store.append(q.id, [{ body: `q-${index}-a` }, { body: `q-${index}-b` }]);
    const victim = await store.append(q.id, [{ body: 'q-last-a' }, { body: 'q-last-b' }]);
    for (let index = 0; index < 3; index++) await store.append(r.id, [{ body: `r-${index}` }]);
    await store.abandon();
    const segment = join(directory, 'commitlog', segmentFileName(0));
    // Byte 23 is the top byte of the base offset, byte 12 the queue id, byte 10 the count: without the batch as it was
    // written, the store could not tell whose offsets these were, and would hand q's 6 and 7 out again.
    const restore = await keepAside();
    for (const at of [23, 12, 10]) {
      await restore();
      await flipBit(segment, victim.position + at, 2);
      const reopened = await DiskMessageStore.open(options());
      const queue = reopened.queue('q')!;
      assert.equal(queue.endOffset, 8, `header byte ${at}`);
      assert.equal(queue.damaged, true);
      await assert.rejects(reopened.read(queue.id, 6), (error) => isWeirError(error, ErrorCode.DataDamaged));
      assert.deepEqual((await reopened.read(reopened.queue('r')!.id, 0)).messages.map((message) => message.body.toString()), ['r-0', 'r-1', 'r-2']);
      assert.equal((await reopened.append(queue.id, [{ body: 'next' }])).baseOffset, 8);
      await reopened.abandon();
    }
  });

  it('storage: a flipped bit in an older batch after a crash is reported as damage, never served', async () => {
    const written = await writeBatches(10, true);
    const victim = written.batches[4]!;
    await flipBit(written.segment, victim.end - 3, 0);
    const logger = new RecordingLogger();
    const store = await DiskMessageStore.open(options(logger));
    const queue = store.queue('q')!;
    assert.equal(queue.damaged, true);
    assert.equal(queue.endOffset, bodiesOf(written, 10).length, 'nothing after the damage was dropped');
    assert.ok(logger.entries.some((entry) => entry.level === 'error'), 'damage is logged as an error');
    const before = await store.read(queue.id, 0, { maxMessages: victim.firstOffset });
    assert.deepEqual(before.messages.map((message) => message.body.toString()), bodiesOf(written, 4));
    await assert.rejects(store.read(queue.id, victim.firstOffset), (error) => isWeirError(error, ErrorCode.DataDamaged));
    const afterOffset = victim.firstOffset + victim.bodies.length;
    const after = await store.read(queue.id, afterOffset);
    assert.deepEqual(after.messages.map((message) => message.body.toString()), bodiesOf(written, 10).slice(afterOffset));
    await store.close();
  });

  it('storage: damage found by a recovery is settled at once: a later crash never rescans it, and its offsets are never handed out again', async () => {
    const written = await writeBatches(10, true);
    const victim = written.batches[4]!;
    await flipBit(written.segment, victim.end - 3, 0);
    const first = await DiskMessageStore.open(options());
    const end = first.queue('q')!.endOffset;
    const appended = await first.append(first.queue('q')!.id, [{ body: 'after the damage' }]);
    assert.equal(appended.baseOffset, end);
    await first.abandon();

    // Had the next recovery started before the damage again, a crash that tore what followed it would have made it
    // look like a torn tail, cut it, and reused its offsets.
    const logger = new RecordingLogger();
    const second = await DiskMessageStore.open(options(logger));
    const queue = second.queue('q')!;
    assert.ok(!logger.entries.some((entry) => entry.level === 'error' && /damaged bytes/.test(entry.message)), 'the damage is not scanned again');
    assert.equal(queue.endOffset, end + 1);
    await assert.rejects(second.read(queue.id, victim.firstOffset), (error) => isWeirError(error, ErrorCode.DataDamaged));
    assert.equal((await second.append(queue.id, [{ body: 'next' }])).baseOffset, end + 1);
    await second.close();
  });

  it('storage: a flipped bit in fsynced data after a clean close is found on read and never served', async () => {
    const written = await writeBatches(10, false);
    const victim = written.batches[6]!;
    await flipBit(written.segment, victim.start + 60, 5);
    const store = await DiskMessageStore.open(options());
    const queue = store.queue('q')!;
    assert.equal(queue.endOffset, bodiesOf(written, 10).length, 'a clean log is not re-scanned or cut');
    await assert.rejects(store.read(queue.id, victim.firstOffset), (error) => isWeirError(error, ErrorCode.DataDamaged));
    assert.equal(store.queue('q')!.damaged, true);
    // A read that starts before the damage stops short of it instead of failing.
    const before = await store.read(queue.id, 0);
    assert.deepEqual(before.messages.map((message) => message.body.toString()), bodiesOf(written, 6));
    await store.close();
  });

  /** Writes shared batches to q and r, then single batches to q only; crashes. */
  async function writeSharedBatches(): Promise<{ segment: string; shared: Array<{ start: number; end: number; offsets: [number, number] }> }> {
    const store = await DiskMessageStore.open(options());
    const q = await store.createQueue('q');
    const r = await store.createQueue('r');
    await store.append(r.id, [{ body: 'r-only' }]);
    const shared = [];
    for (let index = 0; index < 4; index++) {
      const [inQ, inR] = await store.appendShared([q.id, r.id], [{ body: `shared-${index}-a` }, { body: `shared-${index}-b` }]);
      shared.push({ start: inQ!.position, end: store.stats.endPosition, offsets: [inQ!.baseOffset, inR!.baseOffset] as [number, number] });
    }
    for (let index = 0; index < 3; index++) await store.append(q.id, [{ body: `q-${index}` }]);
    await store.abandon();
    return { segment: join(directory, 'commitlog', segmentFileName(0)), shared };
  }

  it('storage: a torn shared batch at the tail is dropped from every queue it was for', async () => {
    const store = await DiskMessageStore.open(options());
    const q = await store.createQueue('q');
    const r = await store.createQueue('r');
    await store.appendShared([q.id, r.id], [{ body: 'kept' }]);
    const torn = await store.appendShared([q.id, r.id], [{ body: 'torn' }]);
    const end = store.stats.endPosition;
    await store.abandon();
    const segment = join(directory, 'commitlog', segmentFileName(0));
    // Cut inside the trailer: the messages are whole, but the batch is not.
    await truncate(segment, end - 5);
    const reopened = await DiskMessageStore.open(options());
    for (const name of ['q', 'r']) {
      const info = reopened.queue(name)!;
      assert.equal(info.endOffset, 1, `${name} keeps the first shared batch only`);
      assert.equal(info.damaged, false);
      assert.deepEqual((await reopened.read(info.id, 0)).messages.map((message) => message.body.toString()), ['kept']);
    }
    const again = await reopened.appendShared([q.id, r.id], [{ body: 'again' }]);
    assert.deepEqual(again.map((result) => result.baseOffset), [torn[0]!.baseOffset, torn[1]!.baseOffset]);
    await reopened.close();
  });

  it('storage: damage in a shared batch marks its offsets lost in every queue, even one that gets nothing after it', async () => {
    const written = await writeSharedBatches();
    const victim = written.shared[3]!;
    await flipBit(written.segment, victim.start + 60, 2); // a message byte: header and trailer are intact
    const logger = new RecordingLogger();
    const store = await DiskMessageStore.open(options(logger));
    const q = store.queue('q')!;
    const r = store.queue('r')!;
    assert.equal(q.damaged, true);
    assert.equal(r.damaged, true);
    assert.equal(q.endOffset, 11, 'q keeps what came after the damage');
    assert.equal(r.endOffset, 9, "r's lost offsets are reserved, not reused");
    await assert.rejects(store.read(r.id, victim.offsets[1]), (error) => isWeirError(error, ErrorCode.DataDamaged));
    await assert.rejects(store.read(q.id, victim.offsets[0]), (error) => isWeirError(error, ErrorCode.DataDamaged));
    assert.deepEqual((await store.read(q.id, 8)).messages.map((message) => message.body.toString()), ['q-0', 'q-1', 'q-2']);
    assert.deepEqual((await store.read(r.id, 0)).messages.map((message) => message.body.toString()), ['r-only', 'shared-0-a', 'shared-0-b', 'shared-1-a', 'shared-1-b', 'shared-2-a', 'shared-2-b']);
    assert.equal((await store.append(r.id, [{ body: 'next' }])).baseOffset, 9);
    await store.close();
  });
});
