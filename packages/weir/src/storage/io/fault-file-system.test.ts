import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FaultFileSystem, seededRandom } from './fault-file-system.js';
import { readWholeFile, writeFileAtomic, type FileHandle, type FileSystem } from './file-system.js';
import { NodeFileSystem } from './node-file-system.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

async function writeAt(handle: FileHandle, position: number, text: string): Promise<void> {
  await handle.write([bytes(text)], position);
}

async function readAll(fs: FileSystem, path: string): Promise<string | null> {
  const content = await readWholeFile(fs, path);
  return content === null ? null : content.toString('utf8');
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.equal((error as NodeJS.ErrnoException).code, code);
    return true;
  });
}

/** A file `dir/name` whose directory entry is already durable. */
async function durableFile(fs: FaultFileSystem, path: string): Promise<FileHandle> {
  const slash = path.lastIndexOf('/');
  const directory = slash < 0 ? '.' : path.slice(0, slash);
  if (directory !== '.') await fs.mkdirp(directory);
  const handle = await fs.open(path, 'write');
  await fs.syncDirectory(directory);
  return handle;
}

test('storage: fault fs datasync makes current content durable', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'd/f');
  await writeAt(handle, 0, 'hello');
  assert.equal(fs.readFileSync('d/f')?.toString(), 'hello');
  assert.equal(fs.crash({ keepUnsyncedPrefix: false }).readFileSync('d/f')?.toString(), '');

  const fs2 = new FaultFileSystem();
  const h2 = await durableFile(fs2, 'd/f');
  await writeAt(h2, 0, 'hello');
  await h2.datasync();
  assert.deepEqual(fs2.pendingOperations('d/f'), []);
  await writeAt(h2, 5, ' world');
  await h2.truncate(3);
  assert.equal(fs2.readFileSync('d/f')?.toString(), 'hel');
  assert.equal(fs2.pendingOperations('d/f').length, 2);
  const after = fs2.crash({ keepUnsyncedPrefix: false });
  assert.equal(after.readFileSync('d/f')?.toString(), 'hello');
  assert.equal(await readAll(after, 'd/f'), 'hello');
});

test('storage: fault fs loses unsynced writes on crash without prefix', async () => {
  const fs = new FaultFileSystem();
  const a = await durableFile(fs, 'log/a');
  const b = await durableFile(fs, 'log/b');
  await writeAt(a, 0, 'synced');
  await a.datasync();
  await writeAt(a, 6, '+lost');
  await writeAt(b, 0, 'all lost');
  const after = fs.crash({ keepUnsyncedPrefix: false });
  assert.deepEqual(
    new Map([...after.snapshot()].map(([path, content]) => [path, content.toString()])),
    new Map([
      ['log/a', 'synced'],
      ['log/b', ''],
    ]),
  );
});

// A reference model of one file, deliberately naive (whole-buffer copies), to check the real one against.
type ReferenceOperation = { kind: 'write'; position: number; bytes: Buffer } | { kind: 'truncate'; length: number };

function applyReference(content: Buffer, operation: ReferenceOperation, tornAt?: number): Buffer {
  if (operation.kind === 'truncate') {
    return operation.length <= content.length
      ? Buffer.from(content.subarray(0, operation.length))
      : Buffer.concat([content, Buffer.alloc(operation.length - content.length)]);
  }
  const data = tornAt === undefined ? operation.bytes : operation.bytes.subarray(0, tornAt);
  if (data.length === 0) return content;
  const size = Math.max(content.length, operation.position + data.length);
  const result = Buffer.alloc(size);
  content.copy(result);
  data.copy(result, operation.position);
  return result;
}

/** Every content a crash may leave: durable plus a prefix of pending, the prefix's last write possibly torn. */
function allowedAfterCrash(durable: Buffer, pending: readonly ReferenceOperation[]): Buffer[] {
  const allowed: Buffer[] = [durable];
  let content = durable;
  pending.forEach((operation) => {
    if (operation.kind === 'write') {
      for (let torn = 0; torn < operation.bytes.length; torn++) allowed.push(applyReference(content, operation, torn));
    }
    content = applyReference(content, operation);
    allowed.push(content);
  });
  return allowed;
}

const fileOperation = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      file: fc.integer({ min: 0, max: 2 }),
      position: fc.integer({ min: 0, max: 40 }),
      bytes: fc.uint8Array({ minLength: 0, maxLength: 24 }),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant('truncate' as const), file: fc.integer({ min: 0, max: 2 }), length: fc.integer({ min: 0, max: 50 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('datasync' as const), file: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
);

test('storage: fault fs crash keeps durable content plus a prefix of pending operations, last write possibly torn', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fileOperation, { maxLength: 30 }), fc.integer(), async (operations, seed) => {
      const fs = new FaultFileSystem();
      const paths = ['d/f0', 'd/f1', 'd/f2'];
      const handles: FileHandle[] = [];
      for (const path of paths) handles.push(await durableFile(fs, path));
      const reference = paths.map((): { current: Buffer; durable: Buffer; pending: ReferenceOperation[] } => ({ current: Buffer.alloc(0), durable: Buffer.alloc(0), pending: [] }));

      for (const operation of operations) {
        const handle = handles[operation.file]!;
        const model = reference[operation.file]!;
        if (operation.kind === 'datasync') {
          await handle.datasync();
          model.durable = model.current;
          model.pending = [];
          continue;
        }
        let step: ReferenceOperation;
        if (operation.kind === 'write') {
          const buffer = Buffer.from(operation.bytes);
          await handle.write([buffer.subarray(0, 5), buffer.subarray(5)], operation.position);
          buffer.fill(0xee); // the file system must have copied the bytes
          step = { kind: 'write', position: operation.position, bytes: Buffer.from(operation.bytes) };
        } else {
          await handle.truncate(operation.length);
          step = { kind: 'truncate', length: operation.length };
        }
        model.current = applyReference(model.current, step);
        if (step.kind === 'truncate' || step.bytes.length > 0) model.pending.push(step);
      }

      paths.forEach((path, i) => assert.deepEqual(fs.readFileSync(path), reference[i]!.current, `current ${path}`));

      const withoutPrefix = fs.crash({ keepUnsyncedPrefix: false });
      paths.forEach((path, i) => assert.deepEqual(withoutPrefix.readFileSync(path), reference[i]!.durable, `durable ${path}`));

      const crashed = fs.crash({ random: seededRandom(seed) });
      const again = fs.crash({ random: seededRandom(seed) });
      paths.forEach((path, i) => {
        const actual = crashed.readFileSync(path);
        assert.ok(actual !== null, `${path} survives`);
        const allowed = allowedAfterCrash(reference[i]!.durable, reference[i]!.pending);
        assert.ok(
          allowed.some((candidate) => candidate.equals(actual)),
          `${path}: ${actual.toString('hex')} is not durable content plus a prefix of pending operations`,
        );
        assert.deepEqual(again.readFileSync(path), actual, 'same seed, same crash');
      });
    }),
    { numRuns: 200 },
  );
});

test('storage: fault fs crash explores empty, torn and complete prefixes', async () => {
  // Two pending appends of 100 bytes: a crash may keep none, part of the first, the first, part of the second, both.
  const outcomes = new Set<string>();
  for (let seed = 0; seed < 500; seed++) {
    const fs = new FaultFileSystem();
    const handle = await durableFile(fs, 'f');
    await handle.write([Buffer.alloc(100, 1)], 0);
    await handle.write([Buffer.alloc(100, 2)], 100);
    const length = fs.crash({ random: seededRandom(seed) }).readFileSync('f')!.length;
    outcomes.add(length === 0 ? 'none' : length < 100 ? 'torn first' : length === 100 ? 'first' : length < 200 ? 'torn second' : 'both');
  }
  assert.deepEqual([...outcomes].sort(), ['both', 'first', 'none', 'torn first', 'torn second']);
});

test('storage: fault fs rename is durable only after syncDirectory', async () => {
  const fs = new FaultFileSystem();
  const old = await durableFile(fs, 'd/current');
  await writeAt(old, 0, 'old');
  await old.datasync();
  const temporary = await fs.open('d/current.tmp', 'write');
  await writeAt(temporary, 0, 'new');
  await temporary.datasync();
  await fs.rename('d/current.tmp', 'd/current');
  assert.equal(fs.readFileSync('d/current')?.toString(), 'new');
  assert.equal(await fs.exists('d/current.tmp'), false);

  const beforeSync = fs.crash();
  assert.equal(beforeSync.readFileSync('d/current')?.toString(), 'old');
  assert.equal(beforeSync.readFileSync('d/current.tmp'), null, 'the temporary file was never made durable');

  // Same history, then the directory sync.
  const fs2 = new FaultFileSystem();
  const old2 = await durableFile(fs2, 'd/current');
  await writeAt(old2, 0, 'old');
  await old2.datasync();
  const temporary2 = await fs2.open('d/current.tmp', 'write');
  await writeAt(temporary2, 0, 'new');
  await temporary2.datasync();
  await fs2.rename('d/current.tmp', 'd/current');
  await fs2.syncDirectory('d');
  const afterSync = fs2.crash();
  assert.equal(afterSync.readFileSync('d/current')?.toString(), 'new');
  assert.deepEqual(await afterSync.list('d'), ['current']);
});

test('storage: fault fs unsynced cross-directory rename can leave both names on one inode', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'a/f');
  await writeAt(handle, 0, 'x');
  await handle.datasync();
  await fs.mkdirp('b');
  await fs.rename('a/f', 'b/f');
  await fs.syncDirectory('b'); // 'a' not synced: its durable set still has f
  const after = fs.crash();
  assert.equal(after.readFileSync('a/f')?.toString(), 'x');
  assert.equal(after.readFileSync('b/f')?.toString(), 'x');
  const through = await after.open('a/f', 'write');
  await writeAt(through, 0, 'y');
  assert.equal(after.readFileSync('b/f')?.toString(), 'y', 'both names are the same inode');
});

test('storage: fault fs writeFileAtomic leaves old or new content whatever step the process dies at', async () => {
  for (let budget = 0; budget < 20; budget++) {
    for (let seed = 0; seed < 5; seed++) {
      const fs = new FaultFileSystem();
      await fs.mkdirp('state');
      await writeFileAtomic(fs, 'state/meta', bytes('old'));
      let calls = 0;
      const dying = dieAfter(fs, budget, () => calls++);
      let finished = false;
      try {
        await writeFileAtomic(dying, 'state/meta', bytes('new content'));
        finished = true;
      } catch (error) {
        assert.equal((error as Error).message, 'process died');
      }
      const content = fs.crash({ random: seededRandom(seed * 31 + budget) }).readFileSync('state/meta')?.toString();
      if (finished) assert.equal(content, 'new content', `budget ${budget}`);
      else assert.ok(content === 'old' || content === 'new content', `budget ${budget}: ${content}`);
    }
  }
});

/** Wraps a file system so that every call after the first `budget` ones throws, as if the process had died. */
function dieAfter(fs: FileSystem, budget: number, count: () => number): FileSystem {
  const step = (): void => {
    if (count() >= budget) throw new Error('process died');
  };
  const wrapHandle = (handle: FileHandle): FileHandle => ({
    read: async (...args) => (step(), handle.read(...args)),
    write: async (...args) => (step(), handle.write(...args)),
    datasync: async () => (step(), handle.datasync()),
    truncate: async (length) => (step(), handle.truncate(length)),
    size: async () => (step(), handle.size()),
    close: async () => handle.close(),
  });
  return {
    open: async (path, mode) => (step(), wrapHandle(await fs.open(path, mode))),
    list: async (directory) => (step(), fs.list(directory)),
    mkdirp: async (directory) => (step(), fs.mkdirp(directory)),
    remove: async (path) => (step(), fs.remove(path)),
    removeTree: async (directory) => (step(), fs.removeTree(directory)),
    rename: async (from, to) => (step(), fs.rename(from, to)),
    syncDirectory: async (directory) => (step(), fs.syncDirectory(directory)),
    exists: async (path) => (step(), fs.exists(path)),
  };
}

test('storage: fault fs file created but directory not synced disappears on crash', async () => {
  const fs = new FaultFileSystem();
  await fs.mkdirp('d');
  const handle = await fs.open('d/segment', 'write');
  await writeAt(handle, 0, 'data');
  await handle.datasync(); // content durable, but the name is not
  const after = fs.crash();
  assert.equal(await after.exists('d/segment'), false);
  assert.deepEqual(await after.list('d'), [], 'mkdirp-created directories are durable at once');
  assert.equal(await after.exists('d'), true);
});

test('storage: fault fs removal is undone by a crash unless the directory is synced', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'd/f');
  await writeAt(handle, 0, 'keep');
  await handle.datasync();
  await fs.remove('d/f');
  assert.equal(await fs.exists('d/f'), false);
  const undone = fs.crash();
  assert.equal(undone.readFileSync('d/f')?.toString(), 'keep');

  await undone.remove('d/f');
  await undone.syncDirectory('d');
  assert.equal(undone.crash().readFileSync('d/f'), null);
});

test('storage: fault fs removeTree is undone by a crash unless the parent is synced', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'topics/t1/00.log');
  await writeAt(handle, 0, 'records');
  await handle.datasync();
  await fs.removeTree('topics/t1');
  assert.deepEqual(await fs.list('topics'), []);
  const undone = fs.crash();
  assert.equal(undone.readFileSync('topics/t1/00.log')?.toString(), 'records');
  await undone.removeTree('topics/t1');
  await undone.syncDirectory('topics');
  assert.deepEqual(await undone.crash().list('topics'), []);
});

test('storage: fault fs enforces disk capacity with ENOSPC and no partial write', async () => {
  const fs = new FaultFileSystem();
  fs.setDiskCapacity(10);
  const a = await fs.open('a', 'write');
  await writeAt(a, 0, '12345678');
  await rejectsWithCode(writeAt(a, 8, 'abc'), 'ENOSPC');
  assert.equal(fs.readFileSync('a')?.toString(), '12345678', 'nothing of the failed write applied');
  assert.equal(fs.pendingOperations('a').length, 1);
  await writeAt(a, 0, 'ABCDEFGH'); // overwriting needs no space
  await writeAt(a, 8, 'ab'); // exactly full
  assert.equal(fs.usedBytes(), 10);
  const b = await fs.open('b', 'write');
  await rejectsWithCode(writeAt(b, 0, 'x'), 'ENOSPC');
  await rejectsWithCode(b.truncate(1), 'ENOSPC');
  await fs.remove('a'); // frees its space
  await writeAt(b, 0, 'x');
  fs.setDiskCapacity(null);
  await writeAt(b, 0, 'x'.repeat(1000));
  assert.equal(fs.stats.writes, 5);
  assert.equal(fs.stats.bytesWritten, 8 + 8 + 2 + 1 + 1000);
});

test('storage: fault fs injected write and sync failures change nothing and fire once', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'f');
  fs.failNextWrite();
  await rejectsWithCode(writeAt(handle, 0, 'x'), 'ENOSPC');
  fs.failNextWrite('EIO');
  await rejectsWithCode(writeAt(handle, 0, 'x'), 'EIO');
  assert.equal(fs.readFileSync('f')?.length, 0);
  await writeAt(handle, 0, 'ok');

  fs.failNextSync();
  await rejectsWithCode(handle.datasync(), 'EIO');
  assert.equal(fs.pendingOperations('f').length, 1, 'a failed sync makes nothing durable');
  assert.equal(fs.stats.datasyncs, 0);
  await handle.datasync();
  assert.equal(fs.stats.datasyncs, 1);

  const other = await fs.open('g', 'write');
  await other.datasync();
  fs.failNextSync('EIO');
  await rejectsWithCode(fs.syncDirectory('.'), 'EIO');
  assert.equal(fs.crash({ keepUnsyncedPrefix: false }).readFileSync('g'), null);
});

test('storage: fault fs old instance and its handles fail with EIO after a crash', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'd/f');
  await writeAt(handle, 0, 'before');
  await handle.datasync();
  const after = fs.crash();
  assert.equal(fs.crashed, true);
  assert.equal(after.crashed, false);
  await rejectsWithCode(writeAt(handle, 0, 'zombie'), 'EIO');
  await rejectsWithCode(handle.read(Buffer.alloc(1), 0, 1, 0), 'EIO');
  await rejectsWithCode(handle.datasync(), 'EIO');
  await rejectsWithCode(handle.truncate(0), 'EIO');
  await rejectsWithCode(handle.size(), 'EIO');
  await rejectsWithCode(handle.close(), 'EIO');
  await rejectsWithCode(fs.open('d/f', 'read'), 'EIO');
  await rejectsWithCode(fs.list('d'), 'EIO');
  await rejectsWithCode(fs.mkdirp('e'), 'EIO');
  await rejectsWithCode(fs.remove('d/f'), 'EIO');
  await rejectsWithCode(fs.removeTree('d'), 'EIO');
  await rejectsWithCode(fs.rename('d/f', 'd/g'), 'EIO');
  await rejectsWithCode(fs.syncDirectory('d'), 'EIO');
  await rejectsWithCode(fs.exists('d/f'), 'EIO');
  assert.throws(() => fs.writeFileSync('d/f', bytes('x')), { code: 'EIO' });
  assert.equal(after.readFileSync('d/f')?.toString(), 'before');
  assert.equal(after.stats.writes, 0, 'stats start afresh');
});

test('storage: fault fs errors and reads past end', async () => {
  const fs = new FaultFileSystem();
  await rejectsWithCode(fs.open('missing', 'read'), 'ENOENT');
  await rejectsWithCode(fs.open('no/such/dir/file', 'write'), 'ENOENT');
  await rejectsWithCode(fs.rename('missing', 'other'), 'ENOENT');
  await rejectsWithCode(fs.syncDirectory('nodir'), 'ENOENT');
  await fs.mkdirp('d');
  await rejectsWithCode(fs.open('d', 'write'), 'EISDIR');
  await rejectsWithCode(fs.remove('d'), 'ERR_FS_EISDIR');
  await fs.remove('missing'); // absent is fine
  await fs.remove('nodir/missing');
  await fs.removeTree('nodir');
  assert.deepEqual(await fs.list('nodir'), []);

  const handle = await fs.open('d/f', 'write');
  await writeAt(handle, 0, 'abc');
  const buffer = Buffer.alloc(8, 0xff);
  assert.equal(await handle.read(buffer, 0, 8, 0), 3);
  assert.equal(buffer.subarray(0, 3).toString(), 'abc');
  assert.equal(await handle.read(buffer, 0, 8, 3), 0);
  assert.equal(await handle.read(buffer, 0, 8, 100), 0);
  await writeAt(handle, 6, 'z'); // a gap reads as zeros
  assert.deepEqual(fs.readFileSync('d/f'), Buffer.from([0x61, 0x62, 0x63, 0, 0, 0, 0x7a]));
  await handle.close();
  await rejectsWithCode(handle.size(), 'EBADF');
  await handle.close(); // closing twice is fine

  const reader = await fs.open('d/f', 'read');
  await rejectsWithCode(writeAt(reader, 0, 'x'), 'EBADF');
  await rejectsWithCode(reader.truncate(0), 'EINVAL');
  await rejectsWithCode(fs.open('d/f/x', 'write'), 'ENOTDIR');
  await rejectsWithCode(fs.remove('d/f/x'), 'ENOTDIR');
  await rejectsWithCode(fs.mkdirp('d/f'), 'EEXIST');
  await rejectsWithCode(fs.mkdirp('d/f/g'), 'ENOTDIR');
  await rejectsWithCode(fs.list('d/f'), 'ENOTDIR');

  await fs.mkdirp('e/sub');
  await fs.mkdirp('empty');
  await rejectsWithCode(fs.rename('e', 'e/sub/e'), 'EINVAL');
  await rejectsWithCode(fs.rename('d/f', 'e'), 'EISDIR');
  await rejectsWithCode(fs.rename('e', 'd/f'), 'ENOTDIR');
  await rejectsWithCode(fs.rename('empty', 'e'), 'ENOTEMPTY');
  await fs.rename('e', 'empty'); // a directory may replace an empty one
  assert.deepEqual(await fs.list('empty'), ['sub']);
  await fs.rename('d/f', 'd/f'); // renaming onto itself does nothing
  assert.equal(await fs.exists('d/f'), true);
});

test('storage: fault fs normalises paths', async () => {
  const fs = new FaultFileSystem();
  await fs.mkdirp('/data//topics/');
  const handle = await fs.open('/data/topics//t.log', 'write');
  await writeAt(handle, 0, 'x');
  assert.equal(await fs.exists('/data/topics/t.log'), true);
  assert.equal(await fs.exists('/data/./topics/../topics/t.log'), true);
  assert.deepEqual(await fs.list('/data/topics/'), ['t.log']);
  assert.equal(await fs.exists('data/topics/t.log'), false, 'relative and absolute paths are separate');
  await fs.mkdirp('rel');
  await fs.open('./rel//f', 'write');
  assert.deepEqual([...fs.snapshot().keys()].sort(), ['/data/topics/t.log', 'rel/f']);
});

test('storage: fault fs handles follow the inode across rename and remove', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'd/a');
  await fs.rename('d/a', 'd/b');
  await writeAt(handle, 0, 'moved');
  assert.equal(fs.readFileSync('d/b')?.toString(), 'moved');
  await fs.remove('d/b');
  await writeAt(handle, 0, 'M');
  assert.equal(await handle.size(), 5);
  assert.equal(fs.readFileSync('d/b'), null);
});

test('storage: fault fs test helpers write durably and read current content', async () => {
  const fs = new FaultFileSystem();
  fs.writeFileSync('x/y/z', bytes('abc'));
  assert.equal(fs.crash().readFileSync('x/y/z')?.toString(), 'abc');

  const fs2 = new FaultFileSystem();
  const handle = await durableFile(fs2, 'seg');
  await writeAt(handle, 0, 'record');
  await handle.datasync();
  const restarted = fs2.crash();
  const damaged = Buffer.from(restarted.readFileSync('seg')!);
  damaged[2]! ^= 0x01;
  restarted.writeFileSync('seg', Buffer.concat([damaged, bytes('garbage')]));
  assert.equal(await readAll(restarted, 'seg'), 'rebord' + 'garbage');
  assert.equal(restarted.crash().readFileSync('seg')?.toString(), 'rebordgarbage');
  assert.equal(fs2.readFileSync('missing'), null);

  // Pending operations of a file replaced by writeFileSync are discarded: the new content is all there is.
  const fs3 = new FaultFileSystem();
  const open = await durableFile(fs3, 'f');
  await writeAt(open, 0, 'pending bytes');
  fs3.writeFileSync('f', bytes('replaced'));
  assert.deepEqual(fs3.pendingOperations('f'), []);
  for (let seed = 0; seed < 10; seed++) {
    assert.equal(fs3.crash({ random: seededRandom(seed) }).readFileSync('f')?.toString(), 'replaced');
  }
});

test('storage: fault fs keeps its own copy of written bytes', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'f');
  const reused = bytes('first');
  await handle.write([reused], 0);
  reused.write('XXXXX');
  assert.equal(fs.readFileSync('f')?.toString(), 'first');
  const [pending] = fs.pendingOperations('f');
  assert.ok(pending?.kind === 'write');
  assert.equal(pending.bytes.toString(), 'first');
  await handle.datasync();
  assert.equal(fs.crash({ keepUnsyncedPrefix: false }).readFileSync('f')?.toString(), 'first');
});

test('storage: fault fs stats count writes, bytes and syncs', async () => {
  const fs = new FaultFileSystem();
  const handle = await fs.open('f', 'write');
  await handle.write([bytes('ab'), bytes('cd')], 0);
  await handle.write([], 4);
  await handle.datasync();
  await fs.syncDirectory('.');
  assert.deepEqual({ ...fs.stats }, { writes: 2, bytesWritten: 4, datasyncs: 1, directorySyncs: 1 });
});

test('storage: fault fs handles tens of MB of small writes', async () => {
  const fs = new FaultFileSystem();
  const handle = await durableFile(fs, 'big/log');
  const chunk = Buffer.alloc(4096);
  const total = 32 * 1024 * 1024;
  for (let position = 0; position < total; position += chunk.length) {
    chunk.writeUInt32BE(position, 0);
    await handle.write([chunk], position);
    if (position % (1024 * 1024) === 0) await handle.datasync();
  }
  await handle.datasync();
  assert.equal(await handle.size(), total);
  const after = fs.crash();
  const content = after.readFileSync('big/log')!;
  assert.equal(content.length, total);
  assert.equal(content.readUInt32BE(total - 4096), total - 4096);
  assert.equal(fs.stats.bytesWritten, total);
});

// The in-memory current state must behave like the real disk: run the same random operations on both.
const names = ['a', 'b', 'd', 'd/a', 'd/b', 'd/e', 'd/e/a'];
const name = fc.constantFrom(...names);
const command = fc.oneof(
  fc.record({ op: fc.constant('mkdirp' as const), path: name }),
  fc.record({ op: fc.constant('write' as const), path: name, position: fc.integer({ min: 0, max: 8 }), text: fc.string({ maxLength: 6 }) }),
  fc.record({ op: fc.constant('truncate' as const), path: name, length: fc.integer({ min: 0, max: 10 }) }),
  fc.record({ op: fc.constant('read' as const), path: name }),
  fc.record({ op: fc.constant('list' as const), path: name }),
  fc.record({ op: fc.constant('exists' as const), path: name }),
  fc.record({ op: fc.constant('remove' as const), path: name }),
  fc.record({ op: fc.constant('removeTree' as const), path: name }),
  fc.record({ op: fc.constant('rename' as const), path: name, to: name }),
);
type Command = typeof command extends fc.Arbitrary<infer T> ? T : never;

async function run(fs: FileSystem, root: string, c: Command): Promise<unknown> {
  const path = `${root}/${c.path}`;
  try {
    switch (c.op) {
      case 'mkdirp':
        return await fs.mkdirp(path);
      case 'write':
      case 'truncate': {
        const handle = await fs.open(path, 'write');
        try {
          if (c.op === 'write') await handle.write([bytes(c.text)], c.position);
          else await handle.truncate(c.length);
          return await handle.size();
        } finally {
          await handle.close();
        }
      }
      case 'read':
        return await readAll(fs, path);
      case 'list':
        return (await fs.list(path)).sort();
      case 'exists':
        return await fs.exists(path);
      case 'remove':
        return await fs.remove(path);
      case 'removeTree':
        return await fs.removeTree(path);
      case 'rename':
        return await fs.rename(path, `${root}/${c.to}`);
    }
  } catch (error) {
    return { error: (error as NodeJS.ErrnoException).code };
  }
}

test('storage: fault fs matches NodeFileSystem on current-state semantics', async () => {
  const base = await mkdtemp(join(tmpdir(), 'weir-fault-fs-'));
  let round = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 30 }), async (commands) => {
        const root = join(base, String(round++));
        const disk = new NodeFileSystem();
        const memory = new FaultFileSystem();
        await disk.mkdirp(root);
        await memory.mkdirp(root);
        for (const [i, c] of commands.entries()) {
          assert.deepEqual(await run(memory, root, c), await run(disk, root, c), `command ${i}: ${JSON.stringify(c)}`);
        }
      }),
      { numRuns: 150 },
    );
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
