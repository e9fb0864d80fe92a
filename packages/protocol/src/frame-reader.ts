import { ProtocolError } from './errors.js';

/**
 * Cuts a byte stream (socket chunks) into frame payloads.
 *
 * Wire: `[length:uint32 — bytes after this field][payload: kind byte, header, fields]`
 *
 * Chunks are kept in a list as they arrive; a payload that lies inside one chunk is returned as a view of it, and
 * only a payload that spans chunks is copied, into one buffer of exactly its size. So buffering costs O(bytes), never
 * O(bytes × chunks). A declared length is checked as soon as its 4 bytes are in: over `maxFrameBytes` throws
 * FRAME_TOO_LARGE and 0 throws INVALID_REQUEST, before any of the body is waited for or allocated. After that the
 * stream is unusable (the next frame boundary is unknown): chunks are dropped, every later `next()` throws the same
 * error, and the connection should be closed.
 *
 * Usage: after each `push(chunk)`, call `next()` until it returns null.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  /** Index of the first chunk still holding unread bytes (consumed chunks are dropped in batches, not shifted). */
  private first = 0;
  /** Bytes of `chunks[first]` already consumed. */
  private firstOffset = 0;
  /** Unread bytes across all chunks. */
  private buffered = 0;
  /** Length of the frame whose prefix has been read, or -1 while waiting for a prefix. */
  private pendingLength = -1;
  private maxFrameBytes: number;
  /** Set once a bad length was read: the next frame boundary is unknown, so every later call throws it again. */
  private failure: ProtocolError | null = null;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = checkLimit(maxFrameBytes);
  }

  /** Changes the limit, e.g. to the one Handshake negotiated. Applies to frames whose prefix is not yet read. */
  setMaxFrameBytes(maxFrameBytes: number): void {
    this.maxFrameBytes = checkLimit(maxFrameBytes);
  }

  /** Unread bytes held, including a partial frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.failure !== null) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete frame's payload (after the length field, starting with the kind byte), or null. */
  next(): Buffer | null {
    if (this.failure !== null) throw this.failure;
    if (this.pendingLength < 0) {
      if (this.buffered < 4) return null;
      const length = this.readLength();
      if (length === 0) this.failure = new ProtocolError('INVALID_REQUEST', 'frame length 0: a frame holds at least its kind byte');
      else if (length > this.maxFrameBytes) {
        this.failure = new ProtocolError('FRAME_TOO_LARGE', `frame of ${length} bytes is over the limit of ${this.maxFrameBytes}`);
      }
      if (this.failure !== null) {
        this.chunks = []; // nothing buffered will ever be read
        this.first = 0;
        this.firstOffset = 0;
        this.buffered = 0;
        throw this.failure;
      }
      this.pendingLength = length;
    }
    const length = this.pendingLength;
    if (this.buffered < length) return null;
    this.pendingLength = -1;
    return this.take(length);
  }

  /** Reads and consumes the 4-byte little-endian length, which may straddle chunks. */
  private readLength(): number {
    const chunk = this.chunks[this.first]!;
    if (chunk.length - this.firstOffset >= 4) {
      const at = this.firstOffset;
      const length = (chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16) | (chunk[at + 3]! << 24)) >>> 0;
      this.consume(4);
      return length;
    }
    let length = 0;
    for (let index = 0; index < 4; index++) {
      const current = this.chunks[this.first]!;
      length += current[this.firstOffset]! * 2 ** (8 * index);
      this.consume(1);
    }
    return length;
  }

  private take(length: number): Buffer {
    const chunk = this.chunks[this.first]!;
    const start = this.firstOffset;
    if (chunk.length - start >= length) {
      this.consume(length);
      return chunk.subarray(start, start + length);
    }
    const payload = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const current = this.chunks[this.first]!;
      const available = current.length - this.firstOffset;
      const count = Math.min(available, length - filled);
      current.copy(payload, filled, this.firstOffset, this.firstOffset + count);
      filled += count;
      this.consume(count);
    }
    return payload;
  }

  /** Advances past `count` bytes, which never run past the current chunk. */
  private consume(count: number): void {
    this.firstOffset += count;
    this.buffered -= count;
    if (this.firstOffset === this.chunks[this.first]!.length) {
      this.chunks[this.first] = EMPTY; // release the chunk now, even before the list is compacted
      this.first++;
      this.firstOffset = 0;
      if (this.first === this.chunks.length) {
        this.chunks = [];
        this.first = 0;
      } else if (this.first >= 64 && this.first * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
  }
}

const EMPTY = Buffer.alloc(0);

function checkLimit(maxFrameBytes: number): number {
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
    throw new RangeError(`maxFrameBytes must be an integer from 1 to 2^32-1, got ${maxFrameBytes}`);
  }
  return maxFrameBytes;
}
