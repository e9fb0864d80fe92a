/**
 * Message bytes of delayed messages read ahead of their due time, packed one after another into large chunks, so a
 * delivery round builds its messages from memory instead of reading them back from scattered bucket offsets, and the
 * read-ahead costs a few big buffers rather than one object per message.
 *
 * A message is referred to by its **slot**, a number (chunk × 2^24 + byte offset), which fits the typed arrays of
 * `delay-entries.ts`. A chunk is dropped once every message in it was released: views handed out by `read` keep
 * their chunk's memory alive until they are garbage themselves, so nothing is ever overwritten under a reader.
 *
 * Record layout (little-endian):
 * `[timestamp:f64][idLength:1][id][keyLength:2, 0xFFFF = none][key][tagLength:1][tag][headersLength:4][headers][bodyLength:4][body]`
 */

/** What one packed message holds: the fields a delivery passes on. Byte fields are views into the chunk. */
export interface ArenaMessage {
  timestamp: number;
  id: Buffer;
  key: Buffer | null;
  tag: string | null;
  /** Encoded header list (record-batch.ts format). */
  headers: Buffer;
  body: Buffer;
}

/** The fields `put` copies in. */
export interface ArenaInput {
  timestamp: number;
  id: Uint8Array;
  key: Uint8Array | null;
  tag: Uint8Array | null;
  headers: Uint8Array;
  body: Uint8Array;
}

const SLOT_SHIFT = 2 ** 24;
const NO_KEY = 0xffff;
const FIXED_BYTES = 8 + 1 + 2 + 1 + 4 + 4;

interface Chunk {
  buffer: Buffer;
  used: number;
  /** Messages put and not yet released. */
  live: number;
}

export class MessageArena {
  private readonly chunks = new Map<number, Chunk>();
  private current: Chunk | null = null;
  private currentId = -1;
  private nextId = 0;
  /** Bytes of the chunks still held. */
  private heldBytes = 0;

  /** `chunkBytes` (at most 16 MiB): the size of an ordinary chunk; a larger message gets a chunk of its own. */
  constructor(private readonly chunkBytes = 1 << 20) {
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 64 || chunkBytes > SLOT_SHIFT) throw new RangeError('chunkBytes must be 64 B to 16 MiB');
  }

  /** Memory held by chunks (what a read-ahead budget is measured against). */
  get bytes(): number {
    return this.heldBytes;
  }

  /** The bytes `put` takes for a message (its share of a chunk). */
  static recordBytes(message: ArenaInput): number {
    return FIXED_BYTES + message.id.byteLength + (message.key?.byteLength ?? 0) + (message.tag?.byteLength ?? 0) + message.headers.byteLength + message.body.byteLength;
  }

  /** Copies a message in; returns its slot, or -1 when a field is over its length field (the caller reads it instead). */
  put(message: ArenaInput): number {
    if (message.id.byteLength > 0xff || (message.tag?.byteLength ?? 0) > 0xff || (message.key?.byteLength ?? 0) >= NO_KEY) return -1;
    const size = MessageArena.recordBytes(message);
    if (size > SLOT_SHIFT) return -1;
    let chunk = this.current;
    if (chunk === null || chunk.used + size > chunk.buffer.byteLength) {
      chunk = this.newChunk(Math.max(size, this.chunkBytes));
    }
    const buffer = chunk.buffer;
    const start = chunk.used;
    let at = start;
    buffer.writeDoubleLE(message.timestamp, at);
    at += 8;
    buffer[at++] = message.id.byteLength;
    buffer.set(message.id, at);
    at += message.id.byteLength;
    if (message.key === null) {
      buffer.writeUInt16LE(NO_KEY, at);
      at += 2;
    } else {
      buffer.writeUInt16LE(message.key.byteLength, at);
      buffer.set(message.key, at + 2);
      at += 2 + message.key.byteLength;
    }
    const tagLength = message.tag?.byteLength ?? 0;
    buffer[at++] = tagLength;
    if (message.tag !== null) buffer.set(message.tag, at);
    at += tagLength;
    buffer.writeUInt32LE(message.headers.byteLength, at);
    buffer.set(message.headers, at + 4);
    at += 4 + message.headers.byteLength;
    buffer.writeUInt32LE(message.body.byteLength, at);
    buffer.set(message.body, at + 4);
    at += 4 + message.body.byteLength;
    chunk.used = at;
    chunk.live++;
    return this.currentId * SLOT_SHIFT + start;
  }

  /** The message in `slot` (which must be live). */
  read(slot: number): ArenaMessage {
    const buffer = this.chunkOf(slot).buffer;
    let at = slot % SLOT_SHIFT;
    const timestamp = buffer.readDoubleLE(at);
    at += 8;
    const idLength = buffer[at++]!;
    const id = buffer.subarray(at, at + idLength);
    at += idLength;
    const keyLength = buffer.readUInt16LE(at);
    at += 2;
    const key = keyLength === NO_KEY ? null : buffer.subarray(at, at + keyLength);
    if (key !== null) at += keyLength;
    const tagLength = buffer[at++]!;
    const tag = tagLength === 0 ? null : buffer.toString('utf8', at, at + tagLength);
    at += tagLength;
    const headersLength = buffer.readUInt32LE(at);
    const headers = buffer.subarray(at + 4, at + 4 + headersLength);
    at += 4 + headersLength;
    const bodyLength = buffer.readUInt32LE(at);
    const body = buffer.subarray(at + 4, at + 4 + bodyLength);
    return { timestamp, id, key, tag, headers, body };
  }

  /** The message in `slot` is no longer needed; its chunk goes once all of its messages are. */
  release(slot: number): void {
    const id = Math.floor(slot / SLOT_SHIFT);
    const chunk = this.chunkOf(slot);
    chunk.live--;
    if (chunk.live === 0) this.drop(id, chunk);
  }

  private chunkOf(slot: number): Chunk {
    const chunk = this.chunks.get(Math.floor(slot / SLOT_SHIFT));
    if (chunk === undefined) throw new Error(`delay arena: slot ${slot} is not live`);
    return chunk;
  }

  private newChunk(bytes: number): Chunk {
    // Not from Buffer's shared pool: a chunk must be able to go on its own.
    const chunk: Chunk = { buffer: Buffer.allocUnsafeSlow(bytes), used: 0, live: 0 };
    this.currentId = this.nextId++;
    this.chunks.set(this.currentId, chunk);
    this.current = chunk;
    this.heldBytes += bytes;
    return chunk;
  }

  private drop(id: number, chunk: Chunk): void {
    this.chunks.delete(id);
    this.heldBytes -= chunk.buffer.byteLength;
    if (chunk === this.current) {
      this.current = null;
      this.currentId = -1;
    }
  }
}
