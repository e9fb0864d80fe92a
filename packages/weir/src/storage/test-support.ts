import { open } from 'node:fs/promises';
import type { FileHandle, FileSystem } from './io/file-system.js';
import type { FaultFileSystem } from './io/fault-file-system.js';

/** Calls a test can hold back. */
export type HeldCall = 'datasync' | 'removeTree';

/**
 * A FaultFileSystem seen through hooks, for storage tests (not a test file itself): calls can be held back, so a
 * test sees the store between a write and its sync, and renames can be awaited, so a test knows a checkpoint was
 * written. The store gets this object; crash, fault injection and inspection stay on `disk`.
 */
export class HookedFileSystem implements FileSystem {
  private readonly gates = new Map<HeldCall, Promise<void>>();
  private readonly renameWaiters: Array<{ path: string; resolve: () => void }> = [];

  constructor(readonly disk: FaultFileSystem) {}

  /** Makes every `call` wait from now until the returned function is called. */
  hold(call: HeldCall): () => void {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.gates.set(call, gate);
    return () => {
      if (this.gates.get(call) === gate) this.gates.delete(call);
      release();
    };
  }

  /** Resolves once something is renamed onto `path` (how writeFileAtomic replaces a file, e.g. the checkpoint). */
  renamedTo(path: string): Promise<void> {
    return new Promise((resolve) => this.renameWaiters.push({ path, resolve }));
  }

  private async pass(call: HeldCall): Promise<void> {
    for (let gate = this.gates.get(call); gate !== undefined; gate = this.gates.get(call)) await gate;
  }

  async open(path: string, mode: 'read' | 'write'): Promise<FileHandle> {
    const handle = await this.disk.open(path, mode);
    return {
      read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
      write: (buffers, position) => handle.write(buffers, position),
      datasync: async () => {
        await this.pass('datasync');
        await handle.datasync();
      },
      truncate: (length) => handle.truncate(length),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }

  list(directory: string): Promise<string[]> {
    return this.disk.list(directory);
  }

  mkdirp(directory: string): Promise<void> {
    return this.disk.mkdirp(directory);
  }

  remove(path: string): Promise<void> {
    return this.disk.remove(path);
  }

  async removeTree(directory: string): Promise<void> {
    await this.pass('removeTree');
    await this.disk.removeTree(directory);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.disk.rename(from, to);
    for (const waiter of this.renameWaiters.filter((candidate) => candidate.path === to)) {
      this.renameWaiters.splice(this.renameWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  syncDirectory(directory: string): Promise<void> {
    return this.disk.syncDirectory(directory);
  }

  exists(path: string): Promise<boolean> {
    return this.disk.exists(path);
  }
}

/** Lets pending I/O callbacks and timers of `ms` run. */
export function pause(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Flips one bit of a file in place: damage that only a checksum can notice. */
export async function flipBit(path: string, position: number, bit: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = byte[0]! ^ (1 << bit);
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}
