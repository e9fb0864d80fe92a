import { constants, promises as fsp } from 'node:fs';
import type { FileHandle, FileSystem } from './file-system.js';

/** The real disk, through node:fs/promises. */
export class NodeFileSystem implements FileSystem {
  async open(path: string, mode: 'read' | 'write'): Promise<FileHandle> {
    const flags = mode === 'read' ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT;
    return new NodeFileHandle(await fsp.open(path, flags, 0o644));
  }

  async list(directory: string): Promise<string[]> {
    try {
      return await fsp.readdir(directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async mkdirp(directory: string): Promise<void> {
    await fsp.mkdir(directory, { recursive: true });
  }

  async remove(path: string): Promise<void> {
    await fsp.rm(path, { force: true });
  }

  async removeTree(directory: string): Promise<void> {
    await fsp.rm(directory, { recursive: true, force: true });
  }

  async rename(from: string, to: string): Promise<void> {
    await fsp.rename(from, to);
  }

  async syncDirectory(directory: string): Promise<void> {
    const handle = await fsp.open(directory, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await fsp.access(path);
      return true;
    } catch {
      return false;
    }
  }
}

class NodeFileHandle implements FileHandle {
  constructor(private readonly handle: fsp.FileHandle) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, offset, length, position);
    return bytesRead;
  }

  async write(buffers: readonly Uint8Array[], position: number): Promise<void> {
    let remaining = buffers.slice();
    let at = position;
    // writev may write short (e.g. near ENOSPC on some filesystems); loop until every byte is down or it throws.
    while (remaining.length > 0) {
      const { bytesWritten } = await this.handle.writev(remaining as Uint8Array[], at);
      at += bytesWritten;
      let skip = bytesWritten;
      const next: Uint8Array[] = [];
      for (const buffer of remaining) {
        if (skip >= buffer.byteLength) {
          skip -= buffer.byteLength;
          continue;
        }
        next.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
      if (bytesWritten === 0 && next.length > 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      remaining = next;
    }
  }

  async datasync(): Promise<void> {
    await this.handle.datasync();
  }

  async truncate(length: number): Promise<void> {
    await this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
