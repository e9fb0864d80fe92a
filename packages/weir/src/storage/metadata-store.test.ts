import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { RecordingLogger } from '../core/logger.js';
import { crc32c } from './crc.js';
import type { FileHandle, FileSystem } from './io/file-system.js';
import { FaultFileSystem, seededRandom } from './io/fault-file-system.js';
import { NodeFileSystem } from './io/node-file-system.js';
import { MetadataStore, type MetadataOp } from './metadata-store.js';

// ------------------------------------------------------------------------------------------------ helpers

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-metadata-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function randomInt(random: () => number, below: number): number {
  return Math.floor(random() * below);
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function isCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => isWeirError(error, code);
}

function sorted(map: Map<string, unknown>): Array<[string, unknown]> {
  return [...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Applies ops to a model map, as the store does. */
function applyModel(map: Map<string, unknown>, ops: readonly MetadataOp[]): void {
  for (const op of ops) {
    if (op.delete === true) map.delete(op.key);
    else map.set(op.key, JSON.parse(JSON.stringify(op.value)));
  }
}

function randomOps(random: () => number, keys: number): MetadataOp[] {
  const choice = random();
  const op = (): MetadataOp => {
    const key = `k${randomInt(random, keys)}`;
    if (random() < 0.2) return { key, delete: true };
    return { key, value: { n: randomInt(random, 1000), pad: 'p'.repeat(randomInt(random, 40)) } };
  };
  if (choice < 0.7) return [op()];
  return Array.from({ length: 1 + randomInt(random, 4) }, op);
}

function issue(store: MetadataStore, ops: MetadataOp[]): Promise<void> {
  if (ops.length === 1 && ops[0]!.delete === true) return store.delete(ops[0]!.key);
  if (ops.length === 1) return store.put(ops[0]!.key, ops[0]!.value);
  return store.apply(ops);
}

interface Hooks {
  /** Called before a handle's datasync; may throw to fail it, or wait. */
  beforeDatasync?: (path: string) => Promise<void> | void;
  /** Replaces a handle's write when set. */
  write?: (inner: FileHandle, path: string, buffers: readonly Uint8Array[], position: number) => Promise<void>;
  /** Called before a rename; may throw to fail it, or wait. */
  beforeRename?: (from: string, to: string) => Promise<void> | void;
}

/** Wraps a FileSystem to count datasyncs, check that disk operations never overlap, and inject faults or pauses. */
class HookedFileSystem implements FileSystem {
  datasyncs = 0;
  hooks: Hooks = {};
  active = 0;
  maxActive = 0;

  constructor(private readonly inner: FileSystem) {}

  async track<T>(operation: () => Promise<T>): Promise<T> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      return await operation();
    } finally {
      this.active--;
    }
  }

  async open(path: string, mode: 'read' | 'write'): Promise<FileHandle> {
    return new HookedHandle(this, path, await this.inner.open(path, mode));
  }
  list(directory: string): Promise<string[]> {
    return this.inner.list(directory);
  }
  mkdirp(directory: string): Promise<void> {
    return this.inner.mkdirp(directory);
  }
  remove(path: string): Promise<void> {
    return this.track(() => this.inner.remove(path));
  }
  removeTree(directory: string): Promise<void> {
    return this.inner.removeTree(directory);
  }
  async rename(from: string, to: string): Promise<void> {
    await this.track(async () => {
      await this.hooks.beforeRename?.(from, to);
      await this.inner.rename(from, to);
    });
  }
  syncDirectory(directory: string): Promise<void> {
    return this.track(() => this.inner.syncDirectory(directory));
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
}

class HookedHandle implements FileHandle {
  constructor(
    private readonly fs: HookedFileSystem,
    private readonly path: string,
    private readonly inner: FileHandle,
  ) {}
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.inner.read(buffer, offset, length, position);
  }
  write(buffers: readonly Uint8Array[], position: number): Promise<void> {
    return this.fs.track(() => {
      const hook = this.fs.hooks.write;
      return hook === undefined ? this.inner.write(buffers, position) : hook(this.inner, this.path, buffers, position);
    });
  }
  datasync(): Promise<void> {
    this.fs.datasyncs++;
    return this.fs.track(async () => {
      await this.fs.hooks.beforeDatasync?.(this.path);
      await this.inner.datasync();
    });
  }
  truncate(length: number): Promise<void> {
    return this.fs.track(() => this.inner.truncate(length));
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

const nodeFs = new NodeFileSystem();

// ------------------------------------------------------------------------------------------------ tests

test('storage: metadata put/get/delete round trip across reopen', async () => {
  await withTempDir(async (root) => {
    const dir = join(root, 'meta', 'nested'); // created by open
    const store = await MetadataStore.open(nodeFs, dir);
    assert.equal(store.size, 0);
    assert.equal(store.get('queue/a'), undefined);

    await store.put('queue/b', { partitions: 3, durable: true });
    await store.put('queue/a', { partitions: 1 });
    await store.put('setting/retention', 3600);
    await store.put('queue/c', null);
    await store.put('queue/gone', 'x');
    await store.delete('queue/gone');
    await store.delete('never-existed');
    await store.put('setting/retention', 7200);

    const expect = (s: MetadataStore): void => {
      assert.equal(s.size, 4);
      assert.equal(s.has('queue/c'), true);
      assert.equal(s.get('queue/c'), null);
      assert.equal(s.has('queue/gone'), false);
      assert.equal(s.get('setting/retention'), 7200);
      assert.deepEqual(s.entries('queue/'), [
        ['queue/a', { partitions: 1 }],
        ['queue/b', { partitions: 3, durable: true }],
        ['queue/c', null],
      ]);
      assert.deepEqual(
        s.entries().map(([key]) => key),
        ['queue/a', 'queue/b', 'queue/c', 'setting/retention'],
      );
      assert.deepEqual(s.entries('nothing'), []);
    };
    expect(store);
    await store.close();

    const reopened = await MetadataStore.open(nodeFs, dir);
    expect(reopened);
    await reopened.put('queue/d', [1, 2, 3]);
    await reopened.close();

    const third = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(third.get('queue/d'), [1, 2, 3]);
    assert.equal(third.size, 5);
    await third.close();
    assert.deepEqual(await listDir(dir), ['log-0']);
  });
});

test('storage: metadata values are stored as their JSON form, frozen; invalid writes change nothing', async () => {
  await withTempDir(async (dir) => {
    const store = await MetadataStore.open(nodeFs, dir);
    const value = { a: 1, nested: { list: [1, { b: 2 }] }, skipped: undefined, when: new Date(0) };
    const written = store.put('obj', value);
    value.a = 99; // the caller's object is not the stored one
    const stored = store.get('obj') as { nested: { list: unknown[] } };
    assert.deepEqual(stored, { a: 1, nested: { list: [1, { b: 2 }] }, when: '1970-01-01T00:00:00.000Z' });
    assert.ok(Object.isFrozen(stored) && Object.isFrozen(stored.nested) && Object.isFrozen(stored.nested.list[1]));
    await written;

    const odd = 'ключ \u{1F600} \ud800 lone surrogate';
    await store.put(odd, 'значение \u{1F600}');
    await store.put('', 'empty key');

    await assert.rejects(store.put('u', undefined), isCode(ErrorCode.InvalidArgument));
    await assert.rejects(store.put('f', () => 1), isCode(ErrorCode.InvalidArgument));
    await assert.rejects(store.put('big', 10n), isCode(ErrorCode.InvalidArgument));
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    await assert.rejects(store.put('cycle', cycle), isCode(ErrorCode.InvalidArgument));
    await assert.rejects(store.apply([{ key: 'x', value: 1, delete: true }]), isCode(ErrorCode.InvalidArgument));
    await assert.rejects(store.apply([{ key: 7 as unknown as string, value: 1 }]), isCode(ErrorCode.InvalidArgument));
    // A bad op anywhere rejects the whole apply before anything changes.
    await assert.rejects(store.apply([{ key: 'first', value: 1 }, { key: 'obj', delete: true }, { key: 'bad', value: 1n }]), isCode(ErrorCode.InvalidArgument));
    assert.equal(store.has('first'), false);
    assert.equal(store.has('obj'), true);
    for (const key of ['u', 'f', 'big', 'cycle', 'x', 'bad']) assert.equal(store.has(key), false);
    await store.apply([]); // a barrier: nothing to write
    assert.equal(store.size, 3);
    await store.close();

    const reopened = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(reopened.get('obj'), stored);
    assert.equal(reopened.get(odd), 'значение \u{1F600}');
    assert.equal(reopened.get(''), 'empty key');
    assert.equal(reopened.size, 3);
    await reopened.close();
  });
});

test('storage: metadata apply is atomic: a torn multi-op record applies nothing', async () => {
  await withTempDir(async (dir) => {
    const logPath = join(dir, 'log-0');
    const store = await MetadataStore.open(nodeFs, dir);
    await store.put('a', 1);
    const before = (await stat(logPath)).size;
    const pending = store.apply([
      { key: 'b', value: 2 },
      { key: 'c', value: { x: 1 } },
      { key: 'a', delete: true },
      { key: 'b', value: 3 },
    ]);
    // Visible at once, in op order.
    assert.deepEqual(store.entries(), [['b', 3], ['c', { x: 1 }]]);
    await pending;
    await store.close();
    const original = await readFile(logPath);
    assert.ok(original.length > before);

    for (let cut = before; cut <= original.length; cut++) {
      await writeFile(logPath, original.subarray(0, cut));
      const reopened = await MetadataStore.open(nodeFs, dir);
      if (cut < original.length) assert.deepEqual(reopened.entries(), [['a', 1]], `cut at ${cut}`);
      else assert.deepEqual(reopened.entries(), [['b', 3], ['c', { x: 1 }]]);
      await reopened.close();
      assert.equal((await stat(logPath)).size, cut < original.length ? before : original.length);
    }
  });
});

test('storage: metadata group commit: concurrent writes share datasyncs, one disk operation at a time', async () => {
  await withTempDir(async (dir) => {
    const fs = new HookedFileSystem(nodeFs);
    const store = await MetadataStore.open(fs, dir);
    const syncsBefore = fs.datasyncs;
    const resolved: number[] = [];
    const writes: Array<Promise<void>> = [];
    const model = new Map<string, unknown>();
    let count = 0;
    for (let wave = 0; wave < 10; wave++) {
      for (let i = 0; i < 50; i++) {
        const n = count++;
        const ops: MetadataOp[] = n % 7 === 0 ? [{ key: `k${n % 13}`, delete: true }] : [{ key: `k${n % 13}`, value: n }];
        applyModel(model, ops);
        writes.push(issue(store, ops).then(() => void resolved.push(n)));
      }
      assert.deepEqual(store.entries(), sorted(model)); // reads see every call at once
      await tick(); // let a batch get under way, so later waves queue behind it
    }
    await Promise.all(writes);
    const syncs = fs.datasyncs - syncsBefore;
    assert.ok(syncs >= 1 && syncs <= count / 10, `${syncs} datasyncs for ${count} writes`);
    assert.deepEqual(resolved, [...resolved].sort((a, b) => a - b), 'promises resolve in call order');
    assert.equal(fs.maxActive, 1, 'disk operations never overlap');
    await store.close();

    const reopened = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(reopened.entries(), sorted(model));
    await reopened.close();
  });
});

test('storage: metadata torn tail: reopening after truncation or garbage yields a prefix of the writes', async () => {
  await withTempDir(async (dir) => {
    const logPath = join(dir, 'log-0');
    const random = seededRandom(42);
    const store = await MetadataStore.open(nodeFs, dir);
    const model = new Map<string, unknown>();
    const states: Array<Array<[string, unknown]>> = [[]];
    const boundaries = [(await stat(logPath)).size];
    for (let i = 0; i < 40; i++) {
      const ops = randomOps(random, 6);
      applyModel(model, ops);
      await issue(store, ops);
      states.push(sorted(model));
      boundaries.push((await stat(logPath)).size);
    }
    await store.close();
    const original = await readFile(logPath);
    assert.equal(original.length, boundaries.at(-1));

    for (let trial = 0; trial < 60; trial++) {
      const cut = 8 + randomInt(random, original.length - 8 + 1);
      const garbage = random() < 0.5 ? Buffer.from(Array.from({ length: 1 + randomInt(random, 40) }, () => randomInt(random, 256))) : Buffer.alloc(0);
      if (trial % 10 === 9) garbage.fill(0); // a zero-filled tail, as a file system may leave after a crash
      await writeFile(logPath, Buffer.concat([original.subarray(0, cut), garbage]));

      let k = 0;
      while (k + 1 < boundaries.length && boundaries[k + 1]! <= cut) k++;
      const logger = new RecordingLogger();
      const reopened = await MetadataStore.open(nodeFs, dir, { logger });
      const context = `trial ${trial}: cut ${cut}, ${garbage.length} garbage bytes`;
      assert.deepEqual(reopened.entries(), states[k], context);
      const dropped = cut + garbage.length - boundaries[k]!;
      const warnings = logger.entries.filter((entry) => entry.level === 'warn');
      if (dropped > 0) {
        assert.equal(warnings.length, 1, context);
        assert.equal((warnings[0]!.fields as { droppedBytes: number }).droppedBytes, dropped, context);
      } else {
        assert.equal(warnings.length, 0, context);
      }
      assert.equal((await stat(logPath)).size, boundaries[k], context);

      // The log is appendable again, and what is appended survives.
      await reopened.put('after', trial);
      await reopened.close();
      const again = await MetadataStore.open(nodeFs, dir);
      assert.deepEqual(again.entries(), sorted(new Map([...states[k]!, ['after', trial]])), context);
      await again.close();
    }

    // A zero-filled tail right after the last record (a zero length with a zero CRC, which the CRC alone would pass).
    await writeFile(logPath, Buffer.concat([original, Buffer.alloc(64)]));
    const zeroLogger = new RecordingLogger();
    const zeroTail = await MetadataStore.open(nodeFs, dir, { logger: zeroLogger });
    assert.deepEqual(zeroTail.entries(), states.at(-1));
    assert.equal((zeroLogger.entries[0]!.fields as { droppedBytes: number }).droppedBytes, 64);
    await zeroTail.close();

    // A log torn inside its header (its creation was interrupted) reopens empty.
    for (let cut = 0; cut < 8; cut++) {
      await writeFile(logPath, original.subarray(0, cut));
      const reopened = await MetadataStore.open(nodeFs, dir);
      assert.equal(reopened.size, 0);
      await reopened.put('x', cut);
      await reopened.close();
      const again = await MetadataStore.open(nodeFs, dir);
      assert.deepEqual(again.entries(), [['x', cut]]);
      await again.close();
    }
    // A file that is not a metadata log is refused, not truncated.
    await writeFile(logPath, Buffer.from('NOTAMETADATALOG'));
    await assert.rejects(MetadataStore.open(nodeFs, dir), isCode(ErrorCode.BadFormat));
    assert.equal((await readFile(logPath)).toString(), 'NOTAMETADATALOG');
  });
});

test('storage: metadata compaction: snapshots replace the log and data survives reopen', async () => {
  await withTempDir(async (dir) => {
    const logger = new RecordingLogger();
    const store = await MetadataStore.open(nodeFs, dir, { compactAfterBytes: 1024, logger });
    const model = new Map<string, unknown>();
    for (let i = 0; i < 300; i++) {
      const ops: MetadataOp[] = i % 11 === 0 ? [{ key: `queue/${i % 10}`, delete: true }] : [{ key: `queue/${i % 10}`, value: { i, pad: 'x'.repeat(20) } }];
      applyModel(model, ops);
      if (i % 3 === 0) await issue(store, ops);
      else void issue(store, ops);
    }
    await store.apply([]);
    const compactions = logger.entries.filter((entry) => entry.message.startsWith('compacted'));
    assert.ok(compactions.length >= 3, `${compactions.length} compactions`);
    const generation = (compactions.at(-1)!.fields as { generation: number }).generation;
    assert.deepEqual(await listDir(dir), [`log-${generation}`, `snapshot-${generation}`]);
    assert.ok((await stat(join(dir, `log-${generation}`))).size <= 1024 + 200);
    assert.deepEqual(store.entries(), sorted(model));
    await store.close();

    const reopened = await MetadataStore.open(nodeFs, dir, { compactAfterBytes: 1024 });
    assert.deepEqual(reopened.entries(), sorted(model));
    await reopened.close();
  });
});

test('storage: metadata writes made during compaction survive and go to the new log', async () => {
  await withTempDir(async (dir) => {
    const fs = new HookedFileSystem(nodeFs);
    const store = await MetadataStore.open(fs, dir, { compactAfterBytes: 256 });
    await store.put('a', 'first');
    await store.put('keep', 'kept');

    // Calls made while the batch that triggers compaction is being synced: still queued when compaction starts.
    const queued: Array<Promise<void>> = [];
    fs.hooks.beforeDatasync = () => {
      fs.hooks.beforeDatasync = undefined;
      queued.push(store.put('big', 'changed'), store.delete('a'), store.put('queued', 1));
    };
    // Calls made while the snapshot is being written (its rename is held back).
    let reachedRename!: () => void;
    let releaseRename!: () => void;
    const renameReached = new Promise<void>((resolve) => (reachedRename = resolve));
    const renameReleased = new Promise<void>((resolve) => (releaseRename = resolve));
    fs.hooks.beforeRename = async () => {
      fs.hooks.beforeRename = undefined;
      reachedRename();
      await renameReleased;
    };

    await store.put('big', 'x'.repeat(300)); // takes the log past 256 bytes
    await renameReached;
    let duringResolved = 0;
    const during = [
      store.put('during/1', 1),
      store.apply([{ key: 'during/2', value: 2 }, { key: 'keep', value: 'changed during' }]),
      store.delete('queued'),
    ].map((write) => write.then(() => void duringResolved++));
    assert.equal(store.get('during/1'), 1);
    assert.equal(store.get('keep'), 'changed during');
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(duringResolved, 0, 'writes wait while compaction holds the loop');
    releaseRename();
    await Promise.all([...queued, ...during]);
    assert.equal(fs.maxActive, 1);

    const expected: Array<[string, unknown]> = [
      ['big', 'changed'],
      ['during/1', 1],
      ['during/2', 2],
      ['keep', 'changed during'],
    ];
    assert.deepEqual(store.entries(), expected);
    await store.close();
    assert.deepEqual(await listDir(dir), ['log-1', 'snapshot-1']);

    // The snapshot holds the durable state at the switch: none of the queued or concurrent writes.
    const snapshot = await readFile(join(dir, 'snapshot-1'));
    assert.equal(snapshot.toString('latin1', 0, 4), 'WSNP');
    assert.equal(snapshot.readUInt16LE(4), 1);
    const payload = snapshot.subarray(16);
    assert.equal(snapshot.readUInt32LE(8), payload.length);
    assert.equal(snapshot.readUInt32LE(12), crc32c(payload));
    assert.deepEqual(
      (JSON.parse(payload.toString()) as Array<[string, unknown]>).sort(),
      [['a', 'first'], ['big', 'x'.repeat(300)], ['keep', 'kept']],
    );

    const reopened = await MetadataStore.open(nodeFs, dir, { compactAfterBytes: 256 });
    assert.deepEqual(reopened.entries(), expected);
    await reopened.close();
  });
});

test('storage: metadata failed write or datasync rejects the batch, reverts memory and leaves no trace on disk', async () => {
  await withTempDir(async (dir) => {
    const fs = new HookedFileSystem(nodeFs);
    const logger = new RecordingLogger();
    const store = await MetadataStore.open(fs, dir, { logger });
    await store.put('a', 1);
    await store.put('b', 1);

    // 1. The datasync fails; a call made meanwhile (queued behind the batch) is rejected too.
    let behind: Promise<void> | undefined;
    fs.hooks.beforeDatasync = () => {
      fs.hooks.beforeDatasync = undefined;
      behind = store.put('c', 'behind');
      throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
    };
    const failing = [store.put('a', 2), store.delete('b'), store.apply([{ key: 'n', value: 1 }, { key: 'a', value: 3 }])];
    assert.equal(store.get('a'), 3);
    for (const write of failing) {
      await assert.rejects(write, (error: unknown) => isWeirError(error, ErrorCode.StorageIo) && error.retriable);
    }
    await assert.rejects(behind!, isCode(ErrorCode.StorageIo));
    assert.deepEqual(store.entries(), [['a', 1], ['b', 1]]);
    assert.ok(logger.entries.some((entry) => entry.level === 'error'));

    // 2. A write fails part way: the first record and a half land, then ENOSPC. The next record has the same
    //    length as the first failed one, so without the truncation the second failed record would be replayed.
    fs.hooks.write = async (inner, _path, buffers, position) => {
      fs.hooks.write = undefined;
      const all = Buffer.concat(buffers);
      const recordLength = 8 + all.readUInt32LE(0);
      await inner.write([all.subarray(0, recordLength + Math.floor(recordLength * 1.5))], position);
      throw Object.assign(new Error('injected ENOSPC'), { code: 'ENOSPC' });
    };
    const partial = [store.put('x', 1), store.put('y', 2), store.put('w', 3)];
    for (const write of partial) await assert.rejects(write, isCode(ErrorCode.StorageIo));
    assert.deepEqual(store.entries(), [['a', 1], ['b', 1]]);

    await store.put('x', 9);
    assert.deepEqual(store.entries(), [['a', 1], ['b', 1], ['x', 9]]);
    await store.close();

    const reopened = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(reopened.entries(), [['a', 1], ['b', 1], ['x', 9]]);
    await reopened.close();
  });
});

test('storage: metadata failed compaction keeps the current generation and is retried later', async () => {
  await withTempDir(async (dir) => {
    // a. The snapshot's rename fails: nothing of generation 1 becomes visible.
    {
      const fs = new HookedFileSystem(nodeFs);
      const logger = new RecordingLogger();
      const store = await MetadataStore.open(fs, dir, { compactAfterBytes: 200, logger });
      fs.hooks.beforeRename = () => {
        fs.hooks.beforeRename = undefined;
        throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
      };
      await store.put('big', 'x'.repeat(250));
      await store.apply([]); // compaction runs after the batch that triggers it; this waits for it
      assert.ok(logger.entries.some((entry) => entry.level === 'warn' && entry.message.includes('compaction failed')));
      await store.put('after', 1); // cleans up first, then appends to log-0
      assert.deepEqual(await listDir(dir), ['log-0']);
      // Retried once the log has grown by another compactAfterBytes.
      for (let i = 0; i < 10; i++) await store.put(`more/${i}`, 'y'.repeat(30));
      await store.apply([]);
      const files = await listDir(dir);
      assert.equal(files.length, 2, files.join());
      assert.match(files[0]!, /^log-[1-9]\d*$/);
      assert.equal(files[1], files[0]!.replace('log', 'snapshot'));
      await store.close();
      const reopened = await MetadataStore.open(nodeFs, dir);
      assert.equal(reopened.size, 12);
      await reopened.close();
    }
    await rm(dir, { recursive: true, force: true });
    // b. Creating the new log fails after the snapshot is in place: the snapshot must go before log-0 grows,
    //    or reopening would pick generation 1 and lose the later writes.
    {
      const fs = new HookedFileSystem(nodeFs);
      const store = await MetadataStore.open(fs, dir, { compactAfterBytes: 200 });
      fs.hooks.beforeDatasync = (path) => {
        if (!path.endsWith('log-1')) return;
        fs.hooks.beforeDatasync = undefined;
        throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
      };
      await store.put('big', 'x'.repeat(250));
      await store.apply([]);
      assert.ok(existsSync(join(dir, 'snapshot-1')));
      await store.put('after', 1);
      assert.deepEqual(await listDir(dir), ['log-0']);
      await store.close();
      const reopened = await MetadataStore.open(nodeFs, dir);
      assert.deepEqual(reopened.entries(), [['after', 1], ['big', 'x'.repeat(250)]]);
      await reopened.close();
    }
  });
});

test('storage: metadata open picks the newest snapshot, recreates a missing log, removes leftovers, refuses damage', async () => {
  await withTempDir(async (dir) => {
    const store = await MetadataStore.open(nodeFs, dir, { compactAfterBytes: 100 });
    await store.put('a', 'x'.repeat(120)); // compacts to generation 1
    await store.put('b', 2);
    await store.close();
    assert.deepEqual(await listDir(dir), ['log-1', 'snapshot-1']);
    const log1 = await readFile(join(dir, 'log-1'));
    const snapshot1 = await readFile(join(dir, 'snapshot-1'));
    const expected: Array<[string, unknown]> = [['a', 'x'.repeat(120)], ['b', 2]];

    // Leftovers of interrupted compactions and of an older generation are removed.
    await writeFile(join(dir, 'log-0'), log1);
    await writeFile(join(dir, 'snapshot-2.tmp'), Buffer.from('half a snapshot'));
    await writeFile(join(dir, 'log-2'), log1.subarray(0, 8));
    await writeFile(join(dir, 'unrelated.txt'), 'left alone');
    let reopened = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(reopened.entries(), expected);
    await reopened.close();
    assert.deepEqual(await listDir(dir), ['log-1', 'snapshot-1', 'unrelated.txt']);

    // A crash after the snapshot was renamed but before the new log was created.
    await writeFile(join(dir, 'snapshot-2'), snapshot1);
    reopened = await MetadataStore.open(nodeFs, dir);
    assert.deepEqual(reopened.entries(), [['a', 'x'.repeat(120)]]);
    await reopened.close();
    assert.deepEqual(await listDir(dir), ['log-2', 'snapshot-2', 'unrelated.txt']);
    assert.equal((await stat(join(dir, 'log-2'))).size, 8);

    // A damaged newest snapshot is reported, never silently replaced by older data.
    const damaged = Buffer.from(snapshot1);
    damaged[damaged.length - 2]! ^= 0x40;
    await writeFile(join(dir, 'snapshot-2'), damaged);
    await assert.rejects(MetadataStore.open(nodeFs, dir), isCode(ErrorCode.DataDamaged));
    const badMagic = Buffer.from(snapshot1);
    badMagic.write('XXXX', 0, 'latin1');
    await writeFile(join(dir, 'snapshot-2'), badMagic);
    await assert.rejects(MetadataStore.open(nodeFs, dir), isCode(ErrorCode.BadFormat));
    await writeFile(join(dir, 'snapshot-2'), snapshot1);

    // A newer log with records but no snapshot means lost files: refuse.
    await writeFile(join(dir, 'log-3'), log1);
    await assert.rejects(MetadataStore.open(nodeFs, dir), isCode(ErrorCode.DataDamaged));
    await rm(join(dir, 'log-3'));

    // A CRC-valid record that is not an op list is damage, not a torn tail.
    const payload = Buffer.from('{"not":"ops"}');
    const header = Buffer.alloc(8);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(crc32c(payload), 4);
    const log2 = await readFile(join(dir, 'log-2'));
    await writeFile(join(dir, 'log-2'), Buffer.concat([log2, header, payload]));
    await assert.rejects(MetadataStore.open(nodeFs, dir), isCode(ErrorCode.DataDamaged));

    await assert.rejects(MetadataStore.open(nodeFs, dir, { compactAfterBytes: 0 }), isCode(ErrorCode.InvalidArgument));
  });
});

test('storage: metadata close waits for writes in flight, then refuses calls', async () => {
  await withTempDir(async (dir) => {
    const store = await MetadataStore.open(nodeFs, dir);
    const writes = Array.from({ length: 20 }, (_, i) => store.put(`k${i}`, i));
    const closing = store.close();
    assert.equal(store.close(), closing);
    await assert.rejects(store.put('late', 1), isCode(ErrorCode.StoreClosed));
    await assert.rejects(store.apply([]), isCode(ErrorCode.StoreClosed));
    assert.throws(() => store.get('k0'), isCode(ErrorCode.StoreClosed));
    assert.throws(() => store.entries(), isCode(ErrorCode.StoreClosed));
    await Promise.all(writes);
    await closing;

    const reopened = await MetadataStore.open(nodeFs, dir);
    assert.equal(reopened.size, 20);
    assert.equal(reopened.has('late'), false);
    await reopened.close();
  });
});

test('storage: metadata power loss: every acknowledged write survives, and the state is a prefix of the calls', async () => {
  const root = '/data/meta';
  for (let seed = 1; seed <= 150; seed++) {
    const random = seededRandom(seed);
    let fs = new FaultFileSystem();
    // states[i]: the map after the first i calls that are still part of history.
    let states: Array<Array<[string, unknown]>> = [[]];
    let minimum = 0; // states[minimum] is the state after the last acknowledged call
    for (let life = 0; ; life++) {
      const context = `seed ${seed}, life ${life}`;
      if (random() < 0.3) {
        // Power fails during recovery itself.
        const opening = MetadataStore.open(fs, root).then(
          (store) => store.close(),
          () => undefined,
        );
        const steps = randomInt(random, 150);
        for (let j = 0; j < steps; j++) await Promise.resolve();
        fs = fs.crash({ random });
        await opening.catch(() => undefined);
      }
      const store = await MetadataStore.open(fs, root, { compactAfterBytes: 300 + randomInt(random, 600) });
      const recovered = store.entries();
      let k = states.length - 1;
      while (k >= minimum && !isDeepEqual(states[k]!, recovered)) k--;
      assert.ok(k >= minimum, `${context}: lost acknowledged writes (acknowledged ${minimum} of ${states.length - 1} calls)`);
      states = states.slice(0, k + 1); // calls after k are lost for good
      if (life === 3) {
        await store.close();
        break;
      }

      const model = new Map(states[k]!);
      let acknowledged = k;
      const calls = 20 + randomInt(random, 80);
      const settled: Array<Promise<void>> = [];
      for (let i = 0; i < calls; i++) {
        const ops = randomOps(random, 8);
        applyModel(model, ops);
        states.push(sorted(model));
        const index = states.length - 1;
        settled.push(
          issue(store, ops).then(
            () => void (acknowledged = Math.max(acknowledged, index)),
            () => undefined,
          ),
        );
        const pause = randomInt(random, 6);
        for (let j = 0; j < pause; j++) await Promise.resolve();
        if (random() < 0.05) await tick();
      }
      const steps = randomInt(random, 60);
      for (let j = 0; j < steps; j++) await Promise.resolve();
      fs = fs.crash({ random });
      await Promise.all(settled);
      await store.close().catch(() => undefined);
      minimum = acknowledged;
    }
  }
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
