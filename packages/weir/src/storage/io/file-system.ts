/**
 * The only way storage code touches files. Two implementations: `NodeFileSystem` (real disk) and
 * `FaultFileSystem` (in memory; records writes and syncs and can simulate power loss). Keeping the surface this small
 * is what makes the fault model complete: every byte the engine persists passes through `write`, and every durability
 * point through `datasync` or `syncDirectory`.
 *
 * Durability contract (POSIX, as the fault model enforces it):
 * - bytes written to a file survive a power loss only once `datasync()` on that file has returned;
 * - a created, renamed or removed directory entry survives only once `syncDirectory()` on its parent has returned.
 *
 * Paths are absolute or relative POSIX paths; implementations do not interpret them beyond `dirname`/`basename`.
 */
export interface FileSystem {
  /**
   * Opens a file. `read` fails if it does not exist; `write` opens it for reading and writing, creating it empty
   * when absent (never truncating).
   */
  open(path: string, mode: 'read' | 'write'): Promise<FileHandle>;
  /** Names (not paths) of the entries of a directory, unsorted; an empty list when the directory does not exist. */
  list(directory: string): Promise<string[]>;
  /** Creates a directory and its missing parents. */
  mkdirp(directory: string): Promise<void>;
  /** Removes a file; succeeds when it is already absent. */
  remove(path: string): Promise<void>;
  /** Removes a directory and everything below it; succeeds when it is already absent. */
  removeTree(directory: string): Promise<void>;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>;
  /** Makes the directory's entries (creations, renames, removals) durable. */
  syncDirectory(directory: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

export interface FileHandle {
  /** Reads up to `length` bytes at `position` into `buffer[offset…]`; returns the count, short only at end of file. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes all of `buffers`, back to back, starting at `position`; throws (e.g. ENOSPC) if it cannot. */
  write(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /** Makes every byte written so far durable (fdatasync). */
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** Reads a whole file, or returns null when it does not exist. */
export async function readWholeFile(fs: FileSystem, path: string): Promise<Buffer | null> {
  if (!(await fs.exists(path))) return null;
  const handle = await fs.open(path, 'read');
  try {
    const buffer = Buffer.allocUnsafe(await handle.size());
    return buffer.subarray(0, await readFully(handle, buffer, 0, buffer.byteLength, 0));
  } finally {
    await handle.close();
  }
}

/**
 * Replaces a file's content atomically and durably: write a temporary file, fsync it, rename it over the target,
 * fsync the directory. A crash at any point leaves either the old or the new content, never a mix.
 */
export async function writeFileAtomic(fs: FileSystem, path: string, content: Uint8Array): Promise<void> {
  const temporary = `${path}.tmp`;
  await fs.remove(temporary);
  const handle = await fs.open(temporary, 'write');
  try {
    await handle.write([content], 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, path);
  await fs.syncDirectory(parentDirectory(path));
}

/** Reads exactly `length` bytes at `position`, or fewer only when the file ends first. */
export async function readFully(handle: FileHandle, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await handle.read(buffer, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function parentDirectory(path: string): string {
  const slash = path.lastIndexOf('/');
  if (slash < 0) return '.';
  if (slash === 0) return '/';
  return path.slice(0, slash);
}

export function joinPath(...parts: string[]): string {
  return parts.join('/').replace(/\/{2,}/g, '/');
}
