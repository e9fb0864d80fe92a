import type { FileHandle, FileSystem } from './file-system.js';

/** One un-synced change to a file, in the order it was made. `path` is the name the handle was opened with. */
export type PendingOperation =
  | { readonly kind: 'write'; readonly path: string; readonly position: number; readonly bytes: Buffer }
  | { readonly kind: 'truncate'; readonly path: string; readonly length: number };

/** Counters of the calls that reached the simulated disk (failed calls are not counted). */
export interface FaultFileSystemStats {
  writes: number;
  bytesWritten: number;
  datasyncs: number;
  directorySyncs: number;
}

export interface CrashOptions {
  /** Source of randomness in [0, 1); pass a seeded PRNG (e.g. `seededRandom(seed)`) for reproducible crashes. */
  random?: () => number;
  /**
   * When true (the default), each file independently also keeps a random-length prefix of its pending operations,
   * the last write of which may be torn. When false, exactly the durable state survives.
   */
  keepUnsyncedPrefix?: boolean;
}

/**
 * An in-memory `FileSystem` that models POSIX durability as the contract in `file-system.ts` states it, so tests
 * can simulate power loss at any point and check what survives.
 *
 * The model:
 * - Files are inodes. A directory entry points at an inode; a rename moves the entry, never the content, and open
 *   handles keep working on their inode after it is renamed or removed (as on POSIX).
 * - Each inode has `current` content (what reads see), `durable` content (what survives power loss) and an ordered
 *   list of pending operations (writes, with a private copy of their bytes, and truncates) made since its last
 *   `datasync()`. `datasync()` applies the pending list to the durable content and clears it, so afterwards
 *   durable equals current.
 * - Each directory has a `current` entry set (what `list`, `open`, `exists`… see) and a `durable` one. Creating a
 *   file (`open(path, 'write')` on a missing path), `rename`, `remove` and `removeTree` change only the current set;
 *   `syncDirectory(dir)` copies the current set over the durable one. Nothing else makes an entry durable — in
 *   particular, a file that was datasynced but whose creation was never synced in its directory vanishes on crash.
 * - Simplification: directories created by `mkdirp` are durable at once (added to their parent's current and
 *   durable sets), so code does not have to sync a parent after `mkdirp`. A later `removeTree` of one is not
 *   durable until its parent is synced, like any other removal.
 * - `crash()` returns a new instance: the disk after power loss and reboot. Starting from the two roots (`/` for
 *   absolute paths, `.` for relative ones, both always present), every directory reachable through durable entries
 *   comes back with its durable entry set, and every file reachable that way with its durable content, plus (when
 *   `keepUnsyncedPrefix`, the default) a random-length prefix of its pending operations in order, the last of which,
 *   if it is a write, may be torn (only a random-length prefix of its bytes lands). Each file draws independently,
 *   in inode-creation order, so a seeded `random` gives reproducible results. The crashed instance is dead: every
 *   `FileSystem` and `FileHandle` call on it (including `close`) rejects with code `EIO`, so code that keeps using it
 *   fails loudly. Its test helpers (`crash`, `snapshot`, `readFileSync`, `pendingOperations`) still work and show
 *   its pre-crash state, so one state can be crashed several times with different seeds.
 * - Because directory entry sets are made durable independently, an unsynced cross-directory rename can come back
 *   with both names (two entries, one inode — a hard link) or neither. For directories, which cannot have two
 *   parents, the first durable entry reached (depth first, in entry-creation order) wins and others are dropped.
 *
 * Fault injection (all simple and explicit):
 * - `setDiskCapacity(bytes)`: a write or truncate that would make the total current size of reachable files exceed
 *   the capacity throws `ENOSPC` and changes nothing (no partial write).
 * - `failNextWrite(code)`: the next `write` call on any handle throws with that code and changes nothing.
 * - `failNextSync(code)`: the next `datasync` or `syncDirectory` throws with that code and makes nothing durable;
 *   the pending operations stay pending (a later sync may still succeed).
 *
 * Paths: `//` and trailing `/` are normalised away, as are `.` segments, and `..` is resolved lexically. Absolute
 * and relative paths are separate namespaces; there is no working directory.
 *
 * Errors carry the Node-style `code` (and `syscall`, `path`): ENOENT, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY, EINVAL,
 * EBADF, ENOSPC, EIO, and `ERR_FS_EISDIR` for `remove` of a directory (as `fs.rm` reports it).
 */
export class FaultFileSystem implements FileSystem {
  private readonly disk = new Disk();

  /** Counters of successful calls. Fresh (all zero) on the instance `crash()` returns. */
  get stats(): FaultFileSystemStats {
    return this.disk.stats;
  }

  /** True once `crash()` has been called on this instance. */
  get crashed(): boolean {
    return this.disk.crashed;
  }

  // ---------------------------------------------------------------------------------------------- FileSystem

  async open(path: string, mode: 'read' | 'write'): Promise<FileHandle> {
    this.disk.assertAlive('open', path);
    const location = parsePath(path, 'open');
    if (location.parts.length === 0) throw fsError('EISDIR', 'open', path);
    const parent = this.walkOrThrow(location, 'open', path);
    const name = lastPart(location);
    let node = parent.current.get(name);
    if (node === undefined) {
      if (mode === 'read') throw fsError('ENOENT', 'open', path);
      node = new FileNode(this.disk.nextInode++);
      parent.current.set(name, node);
    }
    if (node instanceof DirectoryNode) throw fsError('EISDIR', 'open', path);
    return new FaultFileHandle(this.disk, node, location.key, mode);
  }

  async list(directory: string): Promise<string[]> {
    this.disk.assertAlive('scandir', directory);
    if (directory === '') return [];
    const node = this.findNode(directory, 'scandir');
    if (node === undefined) return [];
    if (node instanceof FileNode) throw fsError('ENOTDIR', 'scandir', directory);
    return [...node.current.keys()];
  }

  async mkdirp(directory: string): Promise<void> {
    this.disk.assertAlive('mkdir', directory);
    this.makeDirectories(parsePath(directory, 'mkdir'), directory);
  }

  async remove(path: string): Promise<void> {
    this.disk.assertAlive('rm', path);
    const location = parsePath(path, 'rm');
    if (location.parts.length === 0) throw fsError('ERR_FS_EISDIR', 'rm', path);
    const parent = this.walk(location, location.parts.length - 1);
    if (parent === 'ENOENT') return;
    if (parent === 'ENOTDIR') throw fsError('ENOTDIR', 'rm', path);
    const name = lastPart(location);
    const node = parent.current.get(name);
    if (node === undefined) return;
    if (node instanceof DirectoryNode) throw fsError('ERR_FS_EISDIR', 'rm', path);
    parent.current.delete(name);
  }

  async removeTree(directory: string): Promise<void> {
    this.disk.assertAlive('rm', directory);
    const location = parsePath(directory, 'rm');
    if (location.parts.length === 0) throw fsError('EBUSY', 'rm', directory);
    const parent = this.walk(location, location.parts.length - 1);
    if (parent === 'ENOENT') return;
    if (parent === 'ENOTDIR') throw fsError('ENOTDIR', 'rm', directory);
    parent.current.delete(lastPart(location));
  }

  async rename(from: string, to: string): Promise<void> {
    this.disk.assertAlive('rename', from);
    const source = parsePath(from, 'rename');
    const target = parsePath(to, 'rename');
    if (source.parts.length === 0 || target.parts.length === 0) throw fsError('EBUSY', 'rename', from);
    // As Linux does: resolve both parent directories first, then look the source up.
    const sourceParent = this.walkOrThrow(source, 'rename', from);
    const targetParent = this.walkOrThrow(target, 'rename', to);
    const sourceName = lastPart(source);
    const node = sourceParent.current.get(sourceName);
    if (node === undefined) throw fsError('ENOENT', 'rename', from);
    const targetName = lastPart(target);
    const existing = targetParent.current.get(targetName);
    if (existing === node) return; // same inode under both names: POSIX says do nothing
    // Ancestry first, then types (Linux's order): into its own subtree, or onto one of its ancestors.
    if (target.key.startsWith(`${source.key}/`)) throw fsError('EINVAL', 'rename', from);
    if (source.key.startsWith(`${target.key}/`)) throw fsError('ENOTEMPTY', 'rename', from);
    if (node instanceof DirectoryNode) {
      if (existing instanceof FileNode) throw fsError('ENOTDIR', 'rename', from);
      if (existing instanceof DirectoryNode && existing.current.size > 0) throw fsError('ENOTEMPTY', 'rename', from);
    } else if (existing instanceof DirectoryNode) {
      throw fsError('EISDIR', 'rename', from);
    }
    sourceParent.current.delete(sourceName);
    targetParent.current.set(targetName, node);
  }

  async syncDirectory(directory: string): Promise<void> {
    this.disk.assertAlive('fsync', directory);
    const node = this.findNode(directory, 'open');
    if (node === undefined) throw fsError('ENOENT', 'open', directory);
    if (node instanceof FileNode) throw fsError('ENOTDIR', 'fsync', directory);
    this.disk.consumeSyncFailure(directory);
    node.durable = new Map(node.current);
    this.stats.directorySyncs++;
  }

  async exists(path: string): Promise<boolean> {
    this.disk.assertAlive('access', path);
    try {
      return this.findNode(path, 'access') !== undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR' || code === 'ENOENT') return false;
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------- crash

  /**
   * Simulates power loss and reboot: returns a new instance holding what survived (see the class comment) and marks
   * this one crashed. The disk capacity carries over; one-shot failures and stats do not.
   */
  crash(options: CrashOptions = {}): FaultFileSystem {
    const random = options.random ?? Math.random;
    const keepUnsyncedPrefix = options.keepUnsyncedPrefix ?? true;
    this.disk.crashed = true;

    const next = new FaultFileSystem();
    next.disk.capacity = this.disk.capacity;
    const files = new Map<FileNode, FileNode>();
    const directories = new Set<DirectoryNode>();
    const copyDirectory = (from: DirectoryNode, to: DirectoryNode): void => {
      directories.add(from);
      for (const [name, child] of from.durable) {
        if (child instanceof FileNode) {
          let copy = files.get(child);
          if (copy === undefined) {
            copy = new FileNode(0); // numbered below, in the old creation order
            files.set(child, copy);
          }
          to.current.set(name, copy);
          to.durable.set(name, copy);
        } else if (!directories.has(child)) {
          const copy = new DirectoryNode();
          to.current.set(name, copy);
          to.durable.set(name, copy);
          copyDirectory(child, copy);
        }
      }
    };
    copyDirectory(this.disk.absoluteRoot, next.disk.absoluteRoot);
    copyDirectory(this.disk.relativeRoot, next.disk.relativeRoot);

    const survivors = [...files].sort(([a], [b]) => a.inode - b.inode);
    for (const [old, copy] of survivors) {
      copy.inode = next.disk.nextInode++;
      const content = old.durable.clone();
      if (keepUnsyncedPrefix && old.pending.length > 0) {
        const count = randomInt(random, old.pending.length);
        for (let i = 0; i < count; i++) {
          const operation = old.pending[i]!;
          if (operation.kind === 'truncate') {
            content.truncate(operation.length);
          } else if (i === count - 1) {
            const torn = randomInt(random, operation.bytes.length);
            content.write(operation.position, operation.bytes, torn);
          } else {
            content.write(operation.position, operation.bytes);
          }
        }
      }
      copy.current = content;
      copy.durable = content.clone();
    }
    return next;
  }

  // ---------------------------------------------------------------------------------------------- faults

  /** Sets the disk size in bytes (total current size of reachable files), or `null` for unlimited (the default). */
  setDiskCapacity(bytes: number | null): void {
    if (bytes !== null && !(Number.isInteger(bytes) && bytes >= 0)) throw new RangeError(`bad capacity ${bytes}`);
    this.disk.capacity = bytes;
  }

  /** Makes the next `write` call (on any handle) throw an error with `code`, writing nothing. */
  failNextWrite(code = 'ENOSPC'): void {
    this.disk.writeFailure = code;
  }

  /** Makes the next `datasync` or `syncDirectory` call throw an error with `code`, making nothing durable. */
  failNextSync(code = 'EIO'): void {
    this.disk.syncFailure = code;
  }

  // ---------------------------------------------------------------------------------------------- test helpers

  /** Total current size of the files reachable from the roots (each inode counted once). */
  usedBytes(): number {
    return this.disk.usedBytes();
  }

  /** Copies of the current contents of every reachable file, by normalised path. */
  snapshot(): Map<string, Buffer> {
    const result = new Map<string, Buffer>();
    for (const [path, file] of this.disk.reachableFiles()) result.set(path, Buffer.from(file.current.view()));
    return result;
  }

  /** A copy of the file's current content, or null when there is no file at `path`. */
  readFileSync(path: string): Buffer | null {
    const node = this.findNodeQuietly(path);
    return node instanceof FileNode ? Buffer.from(node.current.view()) : null;
  }

  /**
   * Replaces (or creates, with missing parents) the file at `path` with `data`, durably and at once: its entry, its
   * current and its durable content, with no pending operations left. Meant for tests that damage files (flip bits,
   * append garbage) between a crash and a restart. Bypasses capacity and fault injection; open handles on the file
   * see the new content.
   */
  writeFileSync(path: string, data: Uint8Array): void {
    this.disk.assertAlive('open', path);
    const location = parsePath(path, 'open');
    if (location.parts.length === 0) throw fsError('EISDIR', 'open', path);
    const parentParts = location.parts.slice(0, -1);
    const parent = this.makeDirectories({ ...location, parts: parentParts }, path);
    const name = lastPart(location);
    let node = parent.current.get(name);
    if (node instanceof DirectoryNode) throw fsError('EISDIR', 'open', path);
    if (node === undefined) {
      node = new FileNode(this.disk.nextInode++);
      parent.current.set(name, node);
    }
    parent.durable.set(name, node);
    node.current = GrowableBuffer.from(data);
    node.durable = GrowableBuffer.from(data);
    node.pending = [];
  }

  /** The pending (un-synced) operations of the file at `path`, oldest first, with copies of their bytes. */
  pendingOperations(path: string): PendingOperation[] {
    const node = this.findNodeQuietly(path);
    if (!(node instanceof FileNode)) return [];
    return node.pending.map((operation) =>
      operation.kind === 'write' ? { ...operation, bytes: Buffer.from(operation.bytes) } : { ...operation },
    );
  }

  // ---------------------------------------------------------------------------------------------- internals

  private rootOf(location: Location): DirectoryNode {
    return location.absolute ? this.disk.absoluteRoot : this.disk.relativeRoot;
  }

  /** The directory holding the first `depth` components of the path, or why it cannot be reached. */
  private walk(location: Location, depth: number): DirectoryNode | 'ENOENT' | 'ENOTDIR' {
    let directory = this.rootOf(location);
    for (let i = 0; i < depth; i++) {
      const child = directory.current.get(location.parts[i]!);
      if (child === undefined) return 'ENOENT';
      if (child instanceof FileNode) return 'ENOTDIR';
      directory = child;
    }
    return directory;
  }

  /** The parent directory of the path's last component; throws ENOENT or ENOTDIR when it cannot be reached. */
  private walkOrThrow(location: Location, syscall: string, path: string): DirectoryNode {
    const parent = this.walk(location, location.parts.length - 1);
    if (typeof parent === 'string') throw fsError(parent, syscall, path);
    return parent;
  }

  /** The node at `path` in the current tree; undefined when absent; throws ENOTDIR when a parent is a file. */
  private findNode(path: string, syscall: string): FsNode | undefined {
    const location = parsePath(path, syscall);
    if (location.parts.length === 0) return this.rootOf(location);
    const parent = this.walk(location, location.parts.length - 1);
    if (parent === 'ENOENT') return undefined;
    if (parent === 'ENOTDIR') throw fsError('ENOTDIR', syscall, path);
    return parent.current.get(lastPart(location));
  }

  private findNodeQuietly(path: string): FsNode | undefined {
    try {
      return this.findNode(path, 'open');
    } catch {
      return undefined;
    }
  }

  /** mkdir -p; new directories go into their parent's current and durable entry sets (see the class comment). */
  private makeDirectories(location: Location, path: string): DirectoryNode {
    let directory = this.rootOf(location);
    for (let i = 0; i < location.parts.length; i++) {
      const part = location.parts[i]!;
      const child = directory.current.get(part);
      if (child instanceof FileNode) throw fsError(i === location.parts.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
      if (child !== undefined) {
        directory = child;
        continue;
      }
      const created = new DirectoryNode();
      directory.current.set(part, created);
      directory.durable.set(part, created);
      directory = created;
    }
    return directory;
  }
}

/** A small seeded PRNG (mulberry32) returning numbers in [0, 1), for reproducible `crash({ random })`. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------------------------------------ disk and handles

/** The state of one simulated disk, shared by a `FaultFileSystem` and its handles. */
class Disk {
  readonly stats: FaultFileSystemStats = { writes: 0, bytesWritten: 0, datasyncs: 0, directorySyncs: 0 };
  readonly absoluteRoot = new DirectoryNode();
  readonly relativeRoot = new DirectoryNode();
  nextInode = 1;
  crashed = false;
  capacity: number | null = null;
  writeFailure: string | null = null;
  syncFailure: string | null = null;

  assertAlive(syscall: string, path?: string): void {
    if (this.crashed) throw fsError('EIO', syscall, path, 'the file system has crashed');
  }

  /** Throws ENOSPC when growing the total by `growth` bytes would exceed the capacity. */
  checkCapacity(growth: number, syscall: string, path: string): void {
    if (this.capacity === null || growth <= 0) return;
    if (this.usedBytes() + growth > this.capacity) throw fsError('ENOSPC', syscall, path);
  }

  consumeWriteFailure(path: string): void {
    const code = this.writeFailure;
    if (code === null) return;
    this.writeFailure = null;
    throw fsError(code, 'write', path, 'injected write failure');
  }

  consumeSyncFailure(path: string): void {
    const code = this.syncFailure;
    if (code === null) return;
    this.syncFailure = null;
    throw fsError(code, 'fsync', path, 'injected sync failure');
  }

  usedBytes(): number {
    let total = 0;
    for (const file of new Set(this.reachableFiles().values())) total += file.current.length;
    return total;
  }

  /** Every file reachable from the roots through current entries, by path; an inode linked twice appears twice. */
  reachableFiles(): Map<string, FileNode> {
    const result = new Map<string, FileNode>();
    const seen = new Set<DirectoryNode>();
    const visit = (directory: DirectoryNode, prefix: string): void => {
      if (seen.has(directory)) return;
      seen.add(directory);
      for (const [name, child] of directory.current) {
        const path = prefix + name;
        if (child instanceof FileNode) result.set(path, child);
        else visit(child, `${path}/`);
      }
    };
    visit(this.absoluteRoot, '/');
    visit(this.relativeRoot, '');
    return result;
  }
}


class FaultFileHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly disk: Disk,
    private readonly file: FileNode,
    private readonly path: string,
    private readonly mode: 'read' | 'write',
  ) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.check('read');
    checkInteger(offset, 'offset');
    checkInteger(length, 'length');
    checkInteger(position, 'position');
    if (offset + length > buffer.byteLength) throw rangeError(`offset + length (${offset + length}) > buffer (${buffer.byteLength})`);
    const content = this.file.current;
    const count = Math.max(0, Math.min(length, content.length - position));
    if (count > 0) buffer.set(content.view().subarray(position, position + count), offset);
    return count;
  }

  async write(buffers: readonly Uint8Array[], position: number): Promise<void> {
    this.check('write');
    if (this.mode === 'read') throw fsError('EBADF', 'write', this.path);
    checkInteger(position, 'position');
    let total = 0;
    for (const buffer of buffers) total += buffer.byteLength;
    this.disk.consumeWriteFailure(this.path);
    if (total > 0) this.disk.checkCapacity(position + total - this.file.current.length, 'write', this.path);
    if (total > 0) {
      const bytes = Buffer.allocUnsafe(total); // private copy: callers may reuse their buffers
      let at = 0;
      for (const buffer of buffers) {
        bytes.set(buffer, at);
        at += buffer.byteLength;
      }
      this.file.current.write(position, bytes);
      this.file.pending.push({ kind: 'write', path: this.path, position, bytes });
    }
    this.disk.stats.writes++;
    this.disk.stats.bytesWritten += total;
  }

  async datasync(): Promise<void> {
    this.check('fdatasync');
    this.disk.consumeSyncFailure(this.path);
    const { durable, pending } = this.file;
    for (const operation of pending) {
      if (operation.kind === 'write') durable.write(operation.position, operation.bytes);
      else durable.truncate(operation.length);
    }
    this.file.pending = [];
    this.disk.stats.datasyncs++;
  }

  async truncate(length: number): Promise<void> {
    this.check('ftruncate');
    if (this.mode === 'read') throw fsError('EINVAL', 'ftruncate', this.path);
    checkInteger(length, 'length');
    this.disk.checkCapacity(length - this.file.current.length, 'ftruncate', this.path);
    this.file.current.truncate(length);
    this.file.pending.push({ kind: 'truncate', path: this.path, length });
  }

  async size(): Promise<number> {
    this.check('fstat');
    return this.file.current.length;
  }

  async close(): Promise<void> {
    this.disk.assertAlive('close', this.path);
    this.closed = true;
  }

  private check(syscall: string): void {
    this.disk.assertAlive(syscall, this.path);
    if (this.closed) throw fsError('EBADF', syscall, this.path);
  }
}

// ------------------------------------------------------------------------------------------------ nodes

class FileNode {
  current = new GrowableBuffer();
  durable = new GrowableBuffer();
  pending: PendingOperation[] = [];
  constructor(public inode: number) {}
}

class DirectoryNode {
  current = new Map<string, FsNode>();
  durable = new Map<string, FsNode>();
}

type FsNode = FileNode | DirectoryNode;

/** File content: a Buffer that grows by doubling, of which the first `length` bytes are the content. */
class GrowableBuffer {
  private buffer: Buffer;
  length = 0;

  constructor(capacity = 0) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  static from(data: Uint8Array): GrowableBuffer {
    const result = new GrowableBuffer(data.byteLength);
    result.write(0, data);
    return result;
  }

  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  clone(): GrowableBuffer {
    return GrowableBuffer.from(this.view());
  }

  /** Writes the first `count` bytes of `bytes` at `position`, zero-filling any gap past the end. */
  write(position: number, bytes: Uint8Array, count = bytes.byteLength): void {
    if (count === 0) return;
    const end = position + count;
    if (end > this.length) {
      this.reserve(end);
      if (position > this.length) this.buffer.fill(0, this.length, position);
      this.length = end;
    }
    this.buffer.set(count === bytes.byteLength ? bytes : bytes.subarray(0, count), position);
  }

  truncate(length: number): void {
    if (length > this.length) {
      this.reserve(length);
      this.buffer.fill(0, this.length, length);
    }
    this.length = length;
  }

  private reserve(capacity: number): void {
    if (capacity <= this.buffer.length) return;
    let size = Math.max(64, this.buffer.length * 2);
    while (size < capacity) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
}

// ------------------------------------------------------------------------------------------------ paths and errors

interface Location {
  absolute: boolean;
  /** Normalised components; empty for a root. */
  parts: string[];
  /** The normalised path: `/a/b`, `a/b`, `/` or `.`. */
  key: string;
}

function parsePath(path: string, syscall: string): Location {
  if (path === '') throw fsError('ENOENT', syscall, path);
  const absolute = path.startsWith('/');
  const parts: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (parts.length > 0) parts.pop();
      else if (!absolute) throw fsError('EINVAL', syscall, path, 'relative path escapes its root');
      continue;
    }
    parts.push(segment);
  }
  const key = absolute ? `/${parts.join('/')}` : parts.length === 0 ? '.' : parts.join('/');
  return { absolute, parts, key };
}

function lastPart(location: Location): string {
  return location.parts[location.parts.length - 1]!;
}

function randomInt(random: () => number, max: number): number {
  return Math.min(max, Math.floor(random() * (max + 1)));
}

const messages: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  ERR_FS_EISDIR: 'path is a directory',
  EEXIST: 'file already exists',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
  EBADF: 'bad file descriptor',
  EBUSY: 'resource busy or locked',
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
};

function fsError(code: string, syscall: string, path?: string, detail?: string): NodeJS.ErrnoException {
  const what = detail ?? messages[code] ?? 'error';
  const error: NodeJS.ErrnoException = new Error(`${code}: ${what}, ${syscall}${path === undefined ? '' : ` '${path}'`}`);
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  return error;
}

function checkInteger(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw rangeError(`${name} must be a non-negative integer, got ${value}`);
}

function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' });
}
