import type { FileHandle, FileSystem } from './io/file-system.js';

/**
 * Keeps at most `capacity` idle file handles open, closing the least recently used. With 10,000 queues each owning
 * consume-queue files, opening one descriptor per file would run into the process's descriptor limit.
 *
 * Concurrency: any number of `use` calls may be in flight; a handle in use is never closed, and two calls for the same
 * path share one open.
 */
export class HandleCache {
  private readonly entries = new Map<string, { handle: Promise<FileHandle>; users: number; retired?: boolean }>();

  constructor(
    private readonly fs: FileSystem,
    private readonly capacity: number,
  ) {}

  async use<T>(path: string, work: (handle: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.entries.get(path);
    if (entry === undefined) {
      entry = { handle: this.fs.open(path, 'write'), users: 0 };
      entry.handle.catch(() => this.entries.delete(path));
    } else {
      this.entries.delete(path);
    }
    this.entries.set(path, entry);
    entry.users++;
    try {
      return await work(await entry.handle);
    } finally {
      entry.users--;
      if (entry.retired && entry.users === 0) await (await entry.handle).close();
      await this.evict();
    }
  }

  /**
   * Closes every handle of a file under `directory` (before the directory is removed). Handles in use are closed
   * when their last user is done, so a read in flight finishes instead of failing.
   */
  async forgetDirectory(directory: string): Promise<void> {
    const prefix = directory.endsWith('/') ? directory : `${directory}/`;
    for (const path of [...this.entries.keys()]) {
      if (path.startsWith(prefix)) await this.retire(path);
    }
  }

  /** Closes the handle for `path` (before the file is removed or replaced), once its users are done. */
  forget(path: string): Promise<void> {
    return this.retire(path);
  }

  /** Drops `path`'s entry, so the next use opens the file afresh, and closes its handle now or after its last user. */
  private async retire(path: string): Promise<void> {
    const entry = this.entries.get(path);
    if (entry === undefined) return;
    this.entries.delete(path);
    if (entry.users > 0) entry.retired = true;
    else await (await entry.handle).close();
  }

  private async evict(): Promise<void> {
    if (this.entries.size <= this.capacity) return;
    for (const [path, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      if (entry.users > 0) continue;
      this.entries.delete(path);
      await (await entry.handle).close();
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const entry of all) {
      try {
        await (await entry.handle).close();
      } catch {
        // Closing is best effort: the data was written (and synced where it had to be) before.
      }
    }
  }
}
