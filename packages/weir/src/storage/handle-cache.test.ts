import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HandleCache } from './handle-cache.js';
import type { FileHandle, FileSystem } from './io/file-system.js';
import { FaultFileSystem } from './io/fault-file-system.js';

/** Counts open handles of a FaultFileSystem, and records which paths had a handle closed. */
function counting(): { fs: FileSystem; open: () => number; closed: string[] } {
  const inner = new FaultFileSystem();
  let open = 0;
  const closed: string[] = [];
  const fs: FileSystem = Object.assign(Object.create(inner) as FileSystem, {
    open: async (path: string, mode: 'read' | 'write'): Promise<FileHandle> => {
      const handle = await inner.open(path, mode);
      open++;
      return Object.assign(Object.create(handle) as FileHandle, {
        close: async () => {
          open--;
          closed.push(path);
          await handle.close();
        },
      });
    },
  });
  return { fs, open: () => open, closed };
}

describe('storage: handle cache', () => {
  it('storage: handle cache keeps at most its capacity of idle handles, least recently used first out', async () => {
    const { fs, open, closed } = counting();
    await fs.mkdirp('/d');
    const cache = new HandleCache(fs, 2);
    // Using a again makes b the least recently used, though a was opened first: FIFO would close a.
    for (const name of ['a', 'b', 'a', 'c']) await cache.use(`/d/${name}`, async (handle) => handle.write([Buffer.from(name)], 0));
    assert.equal(open(), 2);
    assert.deepEqual(closed, ['/d/b']);
    await cache.closeAll();
    assert.equal(open(), 0);
  });

  it('storage: handle cache forget closes a handle in use once its user is done, and the next use opens afresh', async () => {
    const { fs, open, closed } = counting();
    await fs.mkdirp('/d');
    const cache = new HandleCache(fs, 10);
    let release!: () => void;
    const held = cache.use('/d/x', (handle) => new Promise<number>((resolve) => (release = () => void handle.size().then(resolve))));
    await new Promise((resolve) => setImmediate(resolve));
    await cache.forget('/d/x');
    assert.equal(open(), 1, 'still open while its user reads');
    release();
    await held;
    assert.deepEqual(closed, ['/d/x'], 'closed once its user is done, not left open for a removed file');
    await cache.use('/d/x', async () => undefined);
    assert.equal(open(), 1, 'a new handle for the path');
    await cache.closeAll();
    assert.equal(open(), 0);
  });

  it('storage: handle cache never closes a handle in use, and forgetDirectory waits for its users', async () => {
    const { fs, open } = counting();
    await fs.mkdirp('/q/1');
    const cache = new HandleCache(fs, 0);
    let release!: () => void;
    const held = cache.use('/q/1/x', (handle) => new Promise<number>((resolve) => (release = () => void handle.size().then(resolve))));
    await new Promise((resolve) => setImmediate(resolve));
    await cache.forgetDirectory('/q/1');
    assert.equal(open(), 1, 'still open while a read is in flight');
    release();
    assert.equal(await held, 0);
    assert.equal(open(), 0, 'closed once its user is done');
  });
});
