import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { RecordingLogger } from '../core/logger.js';
import { NodeFileSystem } from './io/node-file-system.js';
import { IndexKind, MessageIndex, batchIndexer, hashIndexKey, type MessageIndexOptions } from './message-index.js';

const fs = new NodeFileSystem();

async function withDirectory(run: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'weir-message-index-'));
  try {
    await run(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

async function withIndex(options: MessageIndexOptions, run: (index: MessageIndex, directory: string) => Promise<void>): Promise<void> {
  await withDirectory(async (directory) => {
    const index = await MessageIndex.open(fs, directory, options);
    try {
      await run(index, directory);
    } finally {
      await index.close();
    }
  });
}

const bytes = (text: string): Uint8Array => Buffer.from(text);

async function indexFiles(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.endsWith('.idx')).sort();
}

/** The positions a correct index must return: every entry of that kind whose hash matches, newest first. */
function expected(entries: readonly Entry[], kind: IndexKind, key: Uint8Array, limit: number): number[] {
  const hash = hashIndexKey(kind, key);
  const out: number[] = [];
  for (let i = entries.length - 1; i >= 0 && out.length < limit; i--) {
    const entry = entries[i] as Entry;
    if (entry.kind === kind && hashIndexKey(entry.kind, entry.key) === hash) out.push(entry.position);
  }
  return out;
}

interface Entry {
  kind: IndexKind;
  key: Uint8Array;
  position: number;
}

test('storage: message index adds and looks up ids and keys', async () => {
  await withIndex({ slotCount: 1024, maxEntries: 1000 }, async (index) => {
    index.add(IndexKind.MessageId, bytes('id-1'), 0);
    index.add(IndexKind.Key, bytes('order-7'), 0);
    index.add(IndexKind.MessageId, bytes('id-2'), 120);
    index.add(IndexKind.Key, bytes('id-1'), 120); // same bytes as an id, other kind
    index.add(IndexKind.MessageId, bytes('id-3'), 2 ** 40 + 5); // needs the high half of the u64

    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-1')), [0]);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('id-1')), [120]);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('order-7')), [0]);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-2')), [120]);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-3')), [2 ** 40 + 5]);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('order-7')), []);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('absent')), []);
    assert.deepEqual(await index.lookup(IndexKind.Key, new Uint8Array(0)), []);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-1'), 0), []);
    assert.equal(index.entryCount, 5);
    assert.equal(index.fileCount, 1);
  });
});

test('storage: message index returns many positions for a key newest first, honouring the limit', async () => {
  await withIndex({ slotCount: 256, maxEntries: 10_000 }, async (index) => {
    const positions = new Map<string, number[]>();
    for (let i = 0; i < 3000; i++) {
      const key = `key-${i % 17}`;
      index.add(IndexKind.Key, bytes(key), i * 10);
      positions.set(key, [...(positions.get(key) ?? []), i * 10]);
    }
    for (const [key, list] of positions) {
      const newestFirst = list.slice().reverse();
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(key)), newestFirst.slice(0, 32));
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(key), 5), newestFirst.slice(0, 5));
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(key), 1000), newestFirst);
    }
  });
});

test('storage: message index keeps chains apart when keys share a slot', async () => {
  await withIndex({ slotCount: 4, maxEntries: 5000 }, async (index) => {
    const entries: Entry[] = [];
    for (let i = 0; i < 400; i++) {
      const entry = { kind: i % 3 === 0 ? IndexKind.MessageId : IndexKind.Key, key: bytes(`k${i % 50}`), position: i };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    }
    for (let k = 0; k < 50; k++) {
      for (const kind of [IndexKind.MessageId, IndexKind.Key]) {
        const got = await index.lookup(kind, bytes(`k${k}`), 1000);
        assert.deepEqual(got, expected(entries, kind, bytes(`k${k}`), 1000));
        // Distinct 32-bit hashes among 50 keys: the model with the hash filter is also the exact answer here.
        assert.deepEqual(
          got,
          entries.filter((e) => e.kind === kind && Buffer.from(e.key).toString() === `k${k}`).map((e) => e.position).reverse(),
        );
      }
    }
  });
});

test('storage: message index returns same-kind hash collisions as candidates but never another kind', async () => {
  // Found by search: equal 32-bit hashes.
  const [id, key] = [bytes('id-60938'), bytes('key-36602')];
  const [keyA, keyB] = [bytes('k-38627'), bytes('k-183836')];
  assert.equal(hashIndexKey(IndexKind.MessageId, id), hashIndexKey(IndexKind.Key, key));
  assert.equal(hashIndexKey(IndexKind.Key, keyA), hashIndexKey(IndexKind.Key, keyB));
  await withIndex({ slotCount: 64, maxEntries: 2 }, async (index) => {
    index.add(IndexKind.MessageId, id, 1);
    index.add(IndexKind.Key, keyA, 2);
    index.add(IndexKind.Key, keyB, 3);
    index.add(IndexKind.Key, key, 4);
    for (let round = 0; round < 2; round++) {
      // Round 0 reads the first file from memory, round 1 from disk.
      assert.deepEqual(await index.lookup(IndexKind.MessageId, id), [1]);
      assert.deepEqual(await index.lookup(IndexKind.Key, key), [4]);
      assert.deepEqual(await index.lookup(IndexKind.Key, keyA), [3, 2]);
      assert.deepEqual(await index.lookup(IndexKind.Key, keyB), [3, 2]);
      await index.flush();
    }
  });
});

test('storage: message index rolls over files and looks up across them, before and after flush', async () => {
  await withIndex({ slotCount: 8, maxEntries: 3 }, async (index, directory) => {
    const entries: Entry[] = [];
    for (let i = 0; i < 20; i++) {
      const entry = { kind: IndexKind.Key, key: bytes(`key-${i % 4}`), position: 100 + i * 7 };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    }
    assert.equal(index.fileCount, 7);
    assert.equal(index.entryCount, 20);
    for (let k = 0; k < 4; k++) {
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(`key-${k}`), 100), expected(entries, IndexKind.Key, bytes(`key-${k}`), 100));
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(`key-${k}`), 2), expected(entries, IndexKind.Key, bytes(`key-${k}`), 2));
    }
    assert.deepEqual(await indexFiles(directory), []); // nothing written before a flush
    await index.flush();
    assert.deepEqual(await indexFiles(directory), [100, 121, 142, 163, 184, 205, 226].map((p) => `${String(p).padStart(20, '0')}.idx`));
    // Sealed files are now read from disk.
    for (let k = 0; k < 4; k++) {
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes(`key-${k}`), 100), expected(entries, IndexKind.Key, bytes(`key-${k}`), 100));
    }
  });
});

test('storage: message index names a file one past its predecessor when a whole file shares one position', async () => {
  await withIndex({ slotCount: 8, maxEntries: 2 }, async (index, directory) => {
    for (let i = 0; i < 5; i++) index.add(IndexKind.Key, bytes(`k${i}`), 50);
    await index.flush();
    assert.deepEqual(await indexFiles(directory), [50, 51, 52].map((p) => `${String(p).padStart(20, '0')}.idx`));
    for (let i = 0; i < 5; i++) assert.deepEqual(await index.lookup(IndexKind.Key, bytes(`k${i}`)), [50]);
  });
});

test('storage: message index finds everything after flush and reopen, and keeps adding to the partial file', async () => {
  await withDirectory(async (directory) => {
    const entries: Entry[] = [];
    const options = { slotCount: 16, maxEntries: 10 };
    let index = await MessageIndex.open(fs, directory, options);
    for (let i = 0; i < 25; i++) {
      const entry = { kind: (i % 2) as IndexKind, key: bytes(`key-${i % 6}`), position: i * 3 };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    }
    await index.flush();
    await index.close();

    index = await MessageIndex.open(fs, directory, options);
    assert.equal(index.fileCount, 3);
    assert.equal(index.entryCount, 25);
    const check = async (): Promise<void> => {
      for (const kind of [IndexKind.MessageId, IndexKind.Key]) {
        for (let k = 0; k < 6; k++) {
          assert.deepEqual(await index.lookup(kind, bytes(`key-${k}`), 100), expected(entries, kind, bytes(`key-${k}`), 100));
        }
      }
    };
    await check();
    assert.throws(() => index.add(IndexKind.Key, bytes('x'), 71), (e) => isWeirError(e, ErrorCode.InvalidArgument));
    for (let i = 25; i < 32; i++) {
      const entry = { kind: (i % 2) as IndexKind, key: bytes(`key-${i % 6}`), position: i * 3 };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    }
    assert.equal(index.fileCount, 4); // 5 more fill the third file, 2 start a fourth
    await check();
    await index.close(); // close flushes

    index = await MessageIndex.open(fs, directory, { slotCount: 1024, maxEntries: 100 }); // other geometry for new files
    assert.equal(index.entryCount, 32);
    assert.equal(index.fileCount, 4);
    await check();
    for (let i = 32; i < 41; i++) {
      const entry = { kind: IndexKind.Key, key: bytes(`key-${i % 6}`), position: i * 3 };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    }
    assert.equal(index.fileCount, 5); // the fourth file (2 + 8 = 10 entries) filled, then a new-geometry file started
    await check();
    await index.close();
  });
});

test('storage: message index truncateFrom drops exactly the entries at or past the position, across files', async () => {
  await withIndex({ slotCount: 4, maxEntries: 4 }, async (index, directory) => {
    let entries: Entry[] = [];
    const add = (key: string, position: number): void => {
      const entry = { kind: IndexKind.Key, key: bytes(key), position };
      index.add(entry.kind, entry.key, entry.position);
      entries.push(entry);
    };
    for (let i = 0; i < 28; i++) add(`key-${i % 5}`, i * 5);
    add('key-1', 140);
    add('key-3', 140); // two entries at one position
    add('key-4', 145);
    await index.flush();
    assert.equal(index.fileCount, 8); // the last one, active, holds 140, 140, 145
    const check = async (): Promise<void> => {
      assert.equal(index.entryCount, entries.length);
      for (let k = 0; k < 6; k++) {
        assert.deepEqual(await index.lookup(IndexKind.Key, bytes(`key-${k}`), 100), expected(entries, IndexKind.Key, bytes(`key-${k}`), 100));
      }
    };

    // Within the active file: both entries at 140 go.
    await index.truncateFrom(140);
    entries = entries.filter((e) => e.position < 140);
    await check();
    assert.equal(index.fileCount, 7);
    await index.truncateFrom(135);
    entries = entries.filter((e) => e.position < 135);
    await check();
    assert.equal(index.fileCount, 7);
    // Across files: removes whole newer files and cuts into a written, sealed one (which becomes active again).
    await index.truncateFrom(75);
    entries = entries.filter((e) => e.position < 75);
    await check();
    assert.equal(index.fileCount, 4);
    assert.equal((await indexFiles(directory)).length, 4);
    // A position past everything changes nothing.
    await index.truncateFrom(1000);
    await check();

    // Later adds continue from the cut, into the partial file first.
    assert.throws(() => index.add(IndexKind.Key, bytes('x'), 60), (e) => isWeirError(e, ErrorCode.InvalidArgument));
    for (let i = 0; i < 9; i++) add(`key-${(i + 2) % 6}`, 70 + i);
    await check();
    await index.flush();
    await check();
    await index.close();

    const reopened = await MessageIndex.open(fs, directory, { slotCount: 4, maxEntries: 4 });
    try {
      index = reopened;
      await check();
      await index.truncateFrom(0);
      entries = [];
      await check();
      assert.equal(index.fileCount, 0);
      assert.deepEqual(await indexFiles(directory), []);
      add('again', 0);
      await check();
    } finally {
      await reopened.close();
    }
  });
});

test('storage: message index truncateFrom restores slot heads to older entries of the same slot', async () => {
  await withIndex({ slotCount: 1, maxEntries: 8 }, async (index) => {
    index.add(IndexKind.Key, bytes('a'), 0);
    index.add(IndexKind.Key, bytes('b'), 1);
    index.add(IndexKind.Key, bytes('a'), 2);
    await index.truncateFrom(2);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('a')), [0]);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('b')), [1]);
    index.add(IndexKind.Key, bytes('b'), 3);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('a')), [0]);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('b')), [3, 1]);
    await index.flush();
    await index.truncateFrom(1); // the flushed entries: the file on disk is rewritten at the next flush
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('b')), []);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('a')), [0]);
  });
});

test('storage: message index deleteBelow removes old files but never the newest', async () => {
  await withIndex({ slotCount: 8, maxEntries: 5 }, async (index, directory) => {
    for (let i = 0; i < 23; i++) index.add(IndexKind.MessageId, bytes(`id-${i}`), i * 100);
    await index.flush();
    assert.equal(index.fileCount, 5); // first positions 0, 500, 1000, 1500, 2000

    await index.deleteBelow(900); // the second file ends at 900: kept
    assert.equal(index.fileCount, 4);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-4')), []);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-5')), [500]);

    await index.deleteBelow(901);
    assert.equal(index.fileCount, 3);
    assert.equal(index.entryCount, 13);
    assert.deepEqual(await indexFiles(directory), [1000, 1500, 2000].map((p) => `${String(p).padStart(20, '0')}.idx`));

    await index.deleteBelow(1_000_000);
    assert.equal(index.fileCount, 1); // the active file stays
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-22')), [2200]);
    index.add(IndexKind.MessageId, bytes('id-23'), 2300);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-23')), [2300]);
  });
});

test('storage: message index keeps adds made while a flush is in flight', async () => {
  await withDirectory(async (directory) => {
    const options = { slotCount: 32, maxEntries: 7 };
    const index = await MessageIndex.open(fs, directory, options);
    const entries: Entry[] = [];
    let position = 0;
    const flushes: Promise<void>[] = [];
    let addedDuringFlush = 0;
    for (let round = 0; round < 20; round++) {
      let settled = false;
      const flush = index.flush(); // not awaited: adds continue underneath
      void flush.then(() => (settled = true));
      flushes.push(flush);
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setImmediate(resolve)); // let the flush's I/O start
        const entry = { kind: IndexKind.Key, key: bytes(`key-${(round * 5 + i) % 9}`), position: position++ };
        if (!settled) addedDuringFlush++;
        index.add(entry.kind, entry.key, entry.position);
        entries.push(entry);
      }
    }
    await Promise.all(flushes);
    assert.ok(addedDuringFlush > 0);
    await index.close();
    const reopened = await MessageIndex.open(fs, directory, options);
    try {
      assert.equal(reopened.entryCount, entries.length);
      for (let k = 0; k < 9; k++) {
        assert.deepEqual(await reopened.lookup(IndexKind.Key, bytes(`key-${k}`), 100), expected(entries, IndexKind.Key, bytes(`key-${k}`), 100));
      }
    } finally {
      await reopened.close();
    }
  });
});

test('storage: message index ignores entries its header does not count (crash between flush phases)', async () => {
  await withDirectory(async (directory) => {
    const options = { slotCount: 4, maxEntries: 100 };
    let index = await MessageIndex.open(fs, directory, options);
    for (let i = 0; i < 5; i++) index.add(IndexKind.Key, bytes(`k${i % 2}`), i);
    await index.flush();
    for (let i = 5; i < 9; i++) index.add(IndexKind.Key, bytes(`k${i % 2}`), i);
    await index.close();
    // Put back the header of the first flush: slot table and entries are newer than the header, as after a crash
    // between writing the body and writing the header.
    const [name] = await indexFiles(directory);
    const path = join(directory, name as string);
    const content = await readFile(path);
    content.writeUInt32LE(5, 16); // entryCount
    content.writeUInt32LE(4, 28); // lastPosition, low half
    await writeFile(path, content);

    index = await MessageIndex.open(fs, directory, options);
    try {
      assert.equal(index.entryCount, 5);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k0')), [4, 2, 0]);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k1')), [3, 1]);
      index.add(IndexKind.Key, bytes('k1'), 10);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k1')), [10, 3, 1]);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k0')), [4, 2, 0]);
    } finally {
      await index.close();
    }
    index = await MessageIndex.open(fs, directory, options);
    try {
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k1')), [10, 3, 1]);
    } finally {
      await index.close();
    }
  });
});

test('storage: message index deletes files with a bad header on open and warns', async () => {
  await withDirectory(async (directory) => {
    const options = { slotCount: 8, maxEntries: 4 };
    let index = await MessageIndex.open(fs, directory, options);
    for (let i = 0; i < 10; i++) index.add(IndexKind.Key, bytes(`k${i}`), i);
    await index.close();
    const names = await indexFiles(directory);
    assert.equal(names.length, 3);
    const newest = join(directory, names[2] as string);
    const content = await readFile(newest);
    content.write('XXXX', 0);
    await writeFile(newest, content);
    await writeFile(join(directory, `${'9'.repeat(20)}.idx`), Buffer.alloc(10)); // shorter than a header
    await writeFile(join(directory, 'notes.txt'), 'not an index file');

    const logger = new RecordingLogger();
    index = await MessageIndex.open(fs, directory, { ...options, logger });
    try {
      assert.equal(logger.entries.filter((e) => e.level === 'warn').length, 2);
      assert.deepEqual(await indexFiles(directory), names.slice(0, 2));
      assert.equal(index.entryCount, 8);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k7')), [7]);
      assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k8')), []);
      index.add(IndexKind.Key, bytes('k8'), 8); // the newest remaining file is full: starts a new one
      assert.equal(index.fileCount, 3);
    } finally {
      await index.close();
    }
  });
});

test('storage: message index rejects bad arguments and use after close', async () => {
  await withDirectory(async (directory) => {
    await assert.rejects(MessageIndex.open(fs, directory, { slotCount: 0 }), (e) => isWeirError(e, ErrorCode.InvalidArgument));
    const index = await MessageIndex.open(fs, directory, { slotCount: 8, maxEntries: 4 });
    const invalid = (e: unknown): boolean => isWeirError(e, ErrorCode.InvalidArgument);
    index.add(IndexKind.Key, bytes('a'), 10);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), 9), invalid);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), 10.5), invalid);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), Number.NaN), invalid);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), 2 ** 53), invalid);
    assert.throws(() => index.add(7 as IndexKind, bytes('a'), 11), invalid);
    await assert.rejects(index.lookup(IndexKind.Key, bytes('a'), -1), invalid);
    await assert.rejects(index.truncateFrom(-1), invalid);
    index.add(IndexKind.Key, bytes('a'), 10); // equal positions are fine
    const truncation = index.truncateFrom(10);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), 20), invalid);
    await truncation;
    index.add(IndexKind.Key, bytes('b'), 5); // below the old tail, above what remains
    await index.close();
    const closed = (e: unknown): boolean => isWeirError(e, ErrorCode.StoreClosed);
    assert.throws(() => index.add(IndexKind.Key, bytes('a'), 30), closed);
    await assert.rejects(index.lookup(IndexKind.Key, bytes('a')), closed);
    await assert.rejects(index.flush(), closed);
    await index.close(); // idempotent
  });
});

test('storage: message index matches an in-memory model (property)', async () => {
  type Op =
    | { type: 'add'; kind: IndexKind; key: number; gap: number }
    | { type: 'flush' }
    | { type: 'flushInFlight' }
    | { type: 'reopen' }
    | { type: 'truncate'; back: number }
    | { type: 'deleteBelow'; back: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 20, arbitrary: fc.record({ type: fc.constant('add' as const), kind: fc.constantFrom(IndexKind.MessageId, IndexKind.Key), key: fc.nat(11), gap: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.constant({ type: 'flush' as const }) },
    { weight: 2, arbitrary: fc.constant({ type: 'flushInFlight' as const }) },
    { weight: 1, arbitrary: fc.constant({ type: 'reopen' as const }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('truncate' as const), back: fc.nat(20) }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('deleteBelow' as const), back: fc.nat(20) }) },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 9 }), async (ops, slotCount, maxEntries) => {
      await withDirectory(async (directory) => {
        const options = { slotCount, maxEntries };
        let index = await MessageIndex.open(fs, directory, options);
        let entries: Entry[] = [];
        let position = 0;
        const inFlight: Promise<void>[] = [];
        try {
          for (const step of ops) {
            if (step.type !== 'add' && step.type !== 'flushInFlight') await Promise.all(inFlight.splice(0));
            if (step.type === 'add') {
              position += step.gap;
              const entry = { kind: step.kind, key: bytes(`key-${step.key}`), position };
              index.add(entry.kind, entry.key, entry.position);
              entries.push(entry);
            } else if (step.type === 'flush') {
              await index.flush();
            } else if (step.type === 'flushInFlight') {
              inFlight.push(index.flush()); // later adds run while it writes
              await new Promise((resolve) => setImmediate(resolve));
            } else if (step.type === 'reopen') {
              await index.close();
              index = await MessageIndex.open(fs, directory, options);
            } else if (step.type === 'truncate') {
              const cut = Math.max(0, position - step.back);
              await index.truncateFrom(cut);
              entries = entries.filter((e) => e.position < cut);
              position = entries.at(-1)?.position ?? 0;
            } else {
              const before = index.entryCount;
              const below = Math.max(0, position - step.back);
              await index.deleteBelow(below);
              const removed = before - index.entryCount;
              assert.ok(entries.slice(0, removed).every((e) => e.position < below));
              entries = entries.slice(removed);
            }
            assert.equal(index.entryCount, entries.length);
          }
          await Promise.all(inFlight.splice(0));
          for (const kind of [IndexKind.MessageId, IndexKind.Key]) {
            for (let k = 0; k < 12; k++) {
              const key = bytes(`key-${k}`);
              assert.deepEqual(await index.lookup(kind, key, 1000), expected(entries, kind, key, 1000));
              assert.deepEqual(await index.lookup(kind, key, 3), expected(entries, kind, key, 3));
            }
          }
        } finally {
          await index.close();
        }
      });
    }),
    { numRuns: 60 },
  );
});

test('storage: message index returns exactly the model positions for distinct keys with many slots (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 20, selector: (k) => Buffer.from(k).toString('hex') }),
      fc.array(fc.tuple(fc.nat(19), fc.nat(1000)), { maxLength: 200 }),
      fc.integer({ min: 1, max: 40 }),
      async (keys, adds, limit) => {
        await withIndex({ slotCount: 1 << 16, maxEntries: 64 }, async (index) => {
          const model = new Map<string, number[]>();
          let position = 0;
          for (const [which, gap] of adds) {
            const key = keys[which % keys.length] as Uint8Array;
            position += gap;
            index.add(IndexKind.Key, key, position);
            const name = Buffer.from(key).toString('hex');
            model.set(name, [position, ...(model.get(name) ?? [])]);
          }
          for (const key of keys) {
            const want = (model.get(Buffer.from(key).toString('hex')) ?? []).slice(0, limit);
            assert.deepEqual(await index.lookup(IndexKind.Key, key, limit), want);
          }
        });
      },
    ),
    { numRuns: 100 },
  );
});

test('storage: message index takes one entry per distinct (kind, key) of a batch', () =>
  withIndex({ slotCount: 64, maxEntries: 1024 }, async (index) => {
    const first = batchIndexer(index, 100, 200);
    for (let message = 0; message < 200; message++) {
      first(IndexKind.Key, bytes('k'));
      first(IndexKind.MessageId, bytes(`id-${message % 3}`));
    }
    first(IndexKind.MessageId, bytes('k'));
    const second = batchIndexer(index, 200, 2);
    second(IndexKind.Key, bytes('k'));
    second(IndexKind.Key, bytes('k'));
    assert.equal(index.entryCount, 1 + 3 + 1 + 1);
    assert.deepEqual(await index.lookup(IndexKind.Key, bytes('k')), [200, 100]);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('k')), [100]);
    assert.deepEqual(await index.lookup(IndexKind.MessageId, bytes('id-2')), [100]);
  }));
