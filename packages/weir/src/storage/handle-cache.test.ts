import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HandleCache } from './handle-cache.js';
import type { FileHandle, FileSystem } from './io/file-system.js';
import { FaultFileSystem } from './io/fault-file-system.js';

/** Counts open handles of a FaultFileSystem. */
function counting(): { fs: FileSystem; open: () => number } {
  const inner = new FaultFileSystem();
  let open = 0;
  const fs: FileSystem = Object.assign(Object.create(inner) as FileSystem, {
    open: async (path: string, mode: 'read' | 'write'): Promise<FileHandle> => {
      const handle = await inner.open(path, mode);
      open++;
      return Object.assign(Object.create(handle) as FileHandle, {
        close: async () => {
          open--;
          await handle.close();
        },
      });
    },
  });
  return { fs, open: () => open };
}

describe('storage: handle cache', () => {
  it('storage: handle cache keeps at most its capacity of idle handles, least recently used first out', async () => {
    const { fs, open } = counting();
    await fs.mkdirp('/d');
    const cache = new HandleCache(fs, 2);
    for (const name of ['a', 'b', 'c', 'a', 'd']) await cache.use(`/d/${name}`, async (handle) => handle.write([Buffer.from(name)], 0));
    assert.equal(open(), 2);
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
