import { ErrorCode, WeirError } from '../core/errors.js';
import { crc32c } from './crc.js';
import { readU64, TWO_32 } from './u64.js';

/**
 * The record batch: the unit the commit log stores. One batch holds one or more messages appended together to one
 * queue; they share one header and one CRC, so the per-message cost stays small (Kafka's record batches do the same).
 *
 * Header (48 bytes, little-endian):
 * Wire: `[length:4][crc:4][version:1][flags:1][count:2][queueId:4][baseOffset:8][storeTimestamp:8][producerId:8][producerEpoch:2][reserved:2][baseSequence:4]`
 * - `length` counts the whole batch including itself; `crc` is CRC-32C over bytes [8, length).
 * - `storeTimestamp` is the broker's append time (ms), the same for every message of the batch and non-decreasing
 *   across the log; time lookups and age retention use it.
 * - `producerId` 0 and `baseSequence` -1 mean "no idempotent producer".
 *
 * Message (repeated `count` times, back to back):
 * Wire: `[length:4][timestamp:8][idLength:1][id:N][keyLength:2][key:N][tagLength:1][tag:N][headersLength:4][headers:N][body:rest]`
 * - `length` counts the bytes after itself; `keyLength` 0xFFFF means "no key" (as opposed to an empty key).
 * - `timestamp` is the message's own time (the producer's, or the store time when it gave none).
 *
 * Headers: Wire: `[count:2]` then per header `[nameLength:2][name:N][type:1 (0 utf-8 string, 1 bytes)][valueLength:4][value:N]`
 *
 * All u64 fields hold integers below 2^53 and are written as two u32 halves, keeping BigInt off the hot path.
 *
 * Shared batch (version 2): one copy of messages routed to several queues. The header's `reserved` field holds the
 * number of queues n (2 or more), and a trailer after the last message lists every queue with its own offsets:
 * Wire: `[header, version:1=2, reserved = n][messages][queueId:4][baseOffset:8] × n` (the first entry repeats the
 * header's queueId and baseOffset, so readers of the header alone still find one queue). The CRC covers the trailer
 * too. A shared batch never leaves the store as it is: `batchForQueue` re-frames it as a version-1 batch of one queue.
 */
export const RECORD_HEADER_BYTES = 48;
export const RECORD_VERSION = 1;
export const SHARED_RECORD_VERSION = 2;
/** Bytes of one trailer entry of a shared batch: [queueId:4][baseOffset:8]. */
export const SHARED_QUEUE_ENTRY_BYTES = 12;
/** Queues one shared batch can name (the count is a u16 in the header). */
export const MAX_QUEUES_PER_BATCH = 0xffff;
export const MAX_MESSAGES_PER_BATCH = 0xffff;
const MESSAGE_FIXED_BYTES = 4 + 8 + 1 + 2 + 1 + 4;
const NO_KEY = 0xffff;

export const RecordFlag = {
  /** A transactional (half) message: stored, but invisible until its transaction commits. */
  Transactional: 1 << 0,
  /** A control record (e.g. a transaction marker), not a user message. */
  Control: 1 << 1,
} as const;

export type HeaderValue = string | Uint8Array;
export type Headers = Readonly<Record<string, HeaderValue>>;

/** What a caller hands the store for one message. Strings are encoded as UTF-8. */
export interface MessageInput {
  /** Unique id (at most 255 bytes); the store generates a 16-byte time-ordered id when absent or null. */
  id?: Uint8Array | string | null;
  key?: Uint8Array | string | null;
  /** A short label for broker-side filtering (at most 255 bytes). */
  tag?: string | null;
  headers?: Headers | null;
  /**
   * The headers already encoded (what `encodeHeaders` returns), stored as they are instead of `headers`: for a caller
   * that holds the encoding anyway, so it is not built twice.
   */
  encodedHeaders?: Uint8Array;
  /** Milliseconds since the epoch; defaults to the store time (also when negative: "none" on the wire). */
  timestamp?: number;
  body: Uint8Array | string;
}

/** A message as read back: byte fields are views into one read buffer, valid as long as the caller keeps them. */
export interface StoredMessage {
  readonly queueId: number;
  readonly offset: number;
  /** Commit-log position of the batch that holds the message. */
  readonly position: number;
  readonly timestamp: number;
  readonly storeTimestamp: number;
  readonly id: Buffer;
  readonly key: Buffer | null;
  readonly tag: string | null;
  /** Encoded headers; decode with `decodeHeaders`. */
  readonly headers: Buffer;
  readonly body: Buffer;
  readonly flags: number;
  readonly producerId: number;
  readonly producerEpoch: number;
  /** The producer's sequence number of this message, or -1. */
  readonly sequence: number;
}

export interface BatchHeader {
  length: number;
  crc: number;
  version: number;
  flags: number;
  count: number;
  queueId: number;
  baseOffset: number;
  storeTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  /** Queues of a shared batch (version 2); 1 for a version-1 batch. */
  queueCount: number;
}

/** Producer and flag fields of a batch, as the appender provides them. */
export interface BatchAttributes {
  flags?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

/** A message with its variable fields already turned into bytes, so its size is known before encoding. */
export interface PreparedMessage {
  id: Uint8Array | null;
  key: Uint8Array | null;
  tag: Uint8Array | null;
  headers: Uint8Array | null;
  timestamp: number;
  body: Uint8Array;
  /** Encoded size of this message inside a batch, including its length field. */
  encodedBytes: number;
}

const GENERATED_ID_BYTES = 16;

/** A string's UTF-8 bytes, or a Buffer over the given bytes (no copy). */
export function toBytes(value: Uint8Array | string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** Validates and measures one message. Throws InvalidArgument for fields over their wire limits. */
export function prepareMessage(message: MessageInput): PreparedMessage {
  const id = message.id === undefined || message.id === null ? null : toBytes(message.id);
  if (id !== null && (id.byteLength === 0 || id.byteLength > 255)) {
    throw new WeirError(ErrorCode.InvalidArgument, `message id must be 1 to 255 bytes, got ${id.byteLength}`);
  }
  const key = message.key === undefined || message.key === null ? null : toBytes(message.key);
  if (key !== null && key.byteLength >= NO_KEY) {
    throw new WeirError(ErrorCode.InvalidArgument, `message key must be under ${NO_KEY} bytes, got ${key.byteLength}`);
  }
  const tag = message.tag === undefined || message.tag === null ? null : Buffer.from(message.tag, 'utf8');
  if (tag !== null && tag.byteLength > 255) {
    throw new WeirError(ErrorCode.InvalidArgument, `message tag must be at most 255 bytes, got ${tag.byteLength}`);
  }
  const headers = message.encodedHeaders ?? (message.headers ? encodeHeaders(message.headers) : null);
  const timestamp = message.timestamp === undefined || message.timestamp < 0 ? -1 : message.timestamp;
  if (!Number.isSafeInteger(timestamp)) {
    throw new WeirError(ErrorCode.InvalidArgument, `message timestamp must be an integer number of milliseconds since the epoch, got ${message.timestamp}`);
  }
  const body = toBytes(message.body);
  const encodedBytes =
    MESSAGE_FIXED_BYTES +
    (id === null ? GENERATED_ID_BYTES : id.byteLength) +
    (key?.byteLength ?? 0) +
    (tag?.byteLength ?? 0) +
    (headers?.byteLength ?? 0) +
    body.byteLength;
  return { id, key, tag, headers, timestamp, body, encodedBytes };
}

export function batchBytes(messages: readonly PreparedMessage[]): number {
  let total = RECORD_HEADER_BYTES;
  for (const message of messages) total += message.encodedBytes;
  return total;
}

/** Size of a shared batch of `messages` for `queueCount` queues (see the file comment). */
export function sharedBatchBytes(messages: readonly PreparedMessage[], queueCount: number): number {
  return batchBytes(messages) + queueCount * SHARED_QUEUE_ENTRY_BYTES;
}

/** One queue of a shared batch and the offset its first message gets there. */
export interface BatchQueue {
  queueId: number;
  baseOffset: number;
}

// Plain byte stores: Buffer's write* methods check their arguments on every call, which costs more than the store
// itself on this path (every field of every message). Callers guarantee the range is inside the buffer.
function putU16(target: Buffer, at: number, value: number): void {
  target[at] = value;
  target[at + 1] = value >>> 8;
}

function putU32(target: Buffer, at: number, value: number): void {
  target[at] = value;
  target[at + 1] = value >>> 8;
  target[at + 2] = value >>> 16;
  target[at + 3] = value >>> 24;
}

function putU32BE(target: Buffer, at: number, value: number): void {
  target[at] = value >>> 24;
  target[at + 1] = value >>> 16;
  target[at + 2] = value >>> 8;
  target[at + 3] = value;
}

function writeU64(target: Buffer, at: number, value: number): void {
  putU32(target, at, value % TWO_32);
  putU32(target, at + 4, Math.floor(value / TWO_32));
}

/**
 * Encodes a batch into `target` at `at` (which must have `batchBytes(messages)` bytes free) and returns its length;
 * callers that already measured the batch pass `length`. Generated ids are `[storeTimestamp:6][position:8][index:2]`:
 * unique (positions are), and time-ordered.
 */
export function encodeBatch(
  target: Buffer,
  at: number,
  queueId: number,
  baseOffset: number,
  storeTimestamp: number,
  position: number,
  messages: readonly PreparedMessage[],
  attributes: BatchAttributes = {},
  length: number = batchBytes(messages),
): number {
  putU32(target, at, length);
  target[at + 8] = RECORD_VERSION;
  putU16(target, at + 42, 0);
  encodeBody(target, at, queueId, baseOffset, storeTimestamp, position, messages, attributes);
  putU32(target, at + 4, crc32c(target.subarray(at + 8, at + length)));
  return length;
}

/**
 * Encodes a shared batch (version 2) for `queues` (at least two, distinct; the caller checks) into `target` at `at`,
 * which must have `sharedBatchBytes(messages, queues.length)` bytes free. Returns its length.
 */
export function encodeSharedBatch(
  target: Buffer,
  at: number,
  queues: readonly BatchQueue[],
  storeTimestamp: number,
  position: number,
  messages: readonly PreparedMessage[],
  attributes: BatchAttributes = {},
  length: number = sharedBatchBytes(messages, queues.length),
): number {
  putU32(target, at, length);
  target[at + 8] = SHARED_RECORD_VERSION;
  putU16(target, at + 42, queues.length);
  const first = queues[0]!;
  let cursor = encodeBody(target, at, first.queueId, first.baseOffset, storeTimestamp, position, messages, attributes);
  for (const queue of queues) {
    putU32(target, cursor, queue.queueId);
    writeU64(target, cursor + 4, queue.baseOffset);
    cursor += SHARED_QUEUE_ENTRY_BYTES;
  }
  putU32(target, at + 4, crc32c(target.subarray(at + 8, at + length)));
  return length;
}

/** Writes the header fields common to both versions and the messages; returns where the messages end. */
function encodeBody(
  target: Buffer,
  at: number,
  queueId: number,
  baseOffset: number,
  storeTimestamp: number,
  position: number,
  messages: readonly PreparedMessage[],
  attributes: BatchAttributes,
): number {
  target[at + 9] = attributes.flags ?? 0;
  putU16(target, at + 10, messages.length);
  putU32(target, at + 12, queueId);
  writeU64(target, at + 16, baseOffset);
  writeU64(target, at + 24, storeTimestamp);
  writeU64(target, at + 32, attributes.producerId ?? 0);
  putU16(target, at + 40, attributes.producerEpoch ?? 0);
  putU32(target, at + 44, (attributes.baseSequence ?? -1) >>> 0);
  let cursor = at + RECORD_HEADER_BYTES;
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]!;
    putU32(target, cursor, message.encodedBytes - 4);
    writeU64(target, cursor + 4, message.timestamp < 0 ? storeTimestamp : message.timestamp);
    cursor += 12;
    if (message.id === null) {
      target[cursor] = GENERATED_ID_BYTES;
      writeGeneratedId(target, cursor + 1, storeTimestamp, position, index);
      cursor += 1 + GENERATED_ID_BYTES;
    } else {
      target[cursor] = message.id.byteLength;
      target.set(message.id, cursor + 1);
      cursor += 1 + message.id.byteLength;
    }
    if (message.key === null) {
      putU16(target, cursor, NO_KEY);
      cursor += 2;
    } else {
      putU16(target, cursor, message.key.byteLength);
      target.set(message.key, cursor + 2);
      cursor += 2 + message.key.byteLength;
    }
    const tag = message.tag;
    if (tag === null) target[cursor++] = 0;
    else {
      target[cursor] = tag.byteLength;
      target.set(tag, cursor + 1);
      cursor += 1 + tag.byteLength;
    }
    const headers = message.headers;
    if (headers === null) {
      putU32(target, cursor, 0);
      cursor += 4;
    } else {
      putU32(target, cursor, headers.byteLength);
      target.set(headers, cursor + 4);
      cursor += 4 + headers.byteLength;
    }
    target.set(message.body, cursor);
    cursor += message.body.byteLength;
  }
  return cursor;
}

/**
 * A generated message id: `[storeTimestamp:6][position:8][index:2]`, big-endian so ids sort by time. It is unique
 * (no two batches share a position) and self-locating: a lookup reads the batch at the position it names.
 */
export function writeGeneratedId(target: Buffer, at: number, storeTimestamp: number, position: number, index: number): void {
  const high = Math.floor(storeTimestamp / TWO_32);
  target[at] = high >>> 8;
  target[at + 1] = high;
  putU32BE(target, at + 2, storeTimestamp % TWO_32);
  putU32BE(target, at + 6, Math.floor(position / TWO_32));
  putU32BE(target, at + 10, position % TWO_32);
  target[at + 14] = index >>> 8;
  target[at + 15] = index;
}

export function generatedMessageId(storeTimestamp: number, position: number, index: number): Buffer {
  const id = Buffer.allocUnsafe(GENERATED_ID_BYTES);
  writeGeneratedId(id, 0, storeTimestamp, position, index);
  return id;
}

/** The commit-log position a 16-byte id would name if it was generated. */
export function positionOfGeneratedId(id: Buffer): number | null {
  return id.byteLength === GENERATED_ID_BYTES ? id.readUInt32BE(6) * TWO_32 + id.readUInt32BE(10) : null;
}

/** Reads the fixed header. The caller guarantees RECORD_HEADER_BYTES are available at `at`. */
export function readBatchHeader(source: Buffer, at: number): BatchHeader {
  return {
    length: source.readUInt32LE(at),
    crc: source.readUInt32LE(at + 4),
    version: source.readUInt8(at + 8),
    flags: source.readUInt8(at + 9),
    count: source.readUInt16LE(at + 10),
    queueId: source.readUInt32LE(at + 12),
    baseOffset: readU64(source, at + 16),
    storeTimestamp: readU64(source, at + 24),
    producerId: readU64(source, at + 32),
    producerEpoch: source.readUInt16LE(at + 40),
    baseSequence: source.readInt32LE(at + 44),
    queueCount: source[at + 8] === SHARED_RECORD_VERSION ? source.readUInt16LE(at + 42) : 1,
  };
}

/** Where the messages of the batch at `at` end: its end, or the start of a shared batch's queue trailer. */
function messagesEnd(header: BatchHeader, at: number): number {
  return at + header.length - (header.version === SHARED_RECORD_VERSION ? header.queueCount * SHARED_QUEUE_ENTRY_BYTES : 0);
}

/**
 * The queues a checked batch belongs to, with each one's base offset: the header's queue for version 1, the trailer
 * for a shared batch. Throws DATA_DAMAGED when a shared batch's first entry disagrees with its header or names a
 * queue twice.
 */
export function batchQueues(source: Buffer, at: number): BatchQueue[] {
  const header = readBatchHeader(source, at);
  if (header.version !== SHARED_RECORD_VERSION) return [{ queueId: header.queueId, baseOffset: header.baseOffset }];
  const queues: BatchQueue[] = [];
  const seen = new Set<number>();
  for (let cursor = messagesEnd(header, at); cursor < at + header.length; cursor += SHARED_QUEUE_ENTRY_BYTES) {
    const queueId = source.readUInt32LE(cursor);
    if (seen.has(queueId)) throw damaged(`queue ${queueId} is named twice`);
    seen.add(queueId);
    queues.push({ queueId, baseOffset: readU64(source, cursor + 4) });
  }
  if (queues[0]!.queueId !== header.queueId || queues[0]!.baseOffset !== header.baseOffset) throw damaged('the queue trailer disagrees with the header');
  return queues;
}

/** The offset of the first message of the batch at `at` in queue `queueId`, or -1 when the batch is not that queue's. */
export function batchBaseOffset(source: Buffer, at: number, queueId: number): number {
  if (source[at + 8] !== SHARED_RECORD_VERSION) return source.readUInt32LE(at + 12) === queueId ? readU64(source, at + 16) : -1;
  const length = source.readUInt32LE(at);
  const count = source.readUInt16LE(at + 42);
  for (let cursor = at + length - count * SHARED_QUEUE_ENTRY_BYTES; cursor < at + length; cursor += SHARED_QUEUE_ENTRY_BYTES) {
    if (source.readUInt32LE(cursor) === queueId) return readU64(source, cursor + 4);
  }
  return -1;
}

/**
 * The batch at `at` as a version-1 batch of queue `queueId` alone: what a consumer of that queue is sent (the wire
 * format knows one queue per batch). A version-1 batch is returned as a view; a shared one is copied with the header
 * naming this queue and its base offset, the trailer left out and the CRC computed again. The caller checked the
 * batch and that it holds the queue.
 */
export function batchForQueue(source: Buffer, at: number, queueId: number): Buffer {
  const header = readBatchHeader(source, at);
  if (header.version !== SHARED_RECORD_VERSION) return source.subarray(at, at + header.length);
  const baseOffset = batchBaseOffset(source, at, queueId);
  const length = messagesEnd(header, at) - at;
  const single = Buffer.allocUnsafe(length);
  source.copy(single, 0, at, at + length);
  putU32(single, 0, length);
  single[8] = RECORD_VERSION;
  putU16(single, 42, 0);
  putU32(single, 12, queueId);
  writeU64(single, 16, baseOffset);
  putU32(single, 4, crc32c(single.subarray(8, length)));
  return single;
}

export const BatchCheck = {
  Valid: 0,
  /** Fewer bytes are available than the header or the declared length needs. */
  Short: 1,
  /** Length, version or count is impossible, or the CRC does not match. */
  Invalid: 2,
} as const;
export type BatchCheck = (typeof BatchCheck)[keyof typeof BatchCheck];

/** Checks only that a plausible, complete batch starts at `at` (no CRC): for bytes that never left memory. */
export function checkBatchFrame(source: Buffer, at: number, end: number, maxBatchBytes: number): BatchCheck {
  if (end - at < RECORD_HEADER_BYTES) return BatchCheck.Short;
  const length = source.readUInt32LE(at);
  if (length < RECORD_HEADER_BYTES || length > maxBatchBytes) return BatchCheck.Invalid;
  const version = source[at + 8];
  if (source.readUInt16LE(at + 10) === 0) return BatchCheck.Invalid;
  if (version === SHARED_RECORD_VERSION) {
    const queues = source.readUInt16LE(at + 42);
    if (queues < 2 || RECORD_HEADER_BYTES + queues * SHARED_QUEUE_ENTRY_BYTES > length) return BatchCheck.Invalid;
  } else if (version !== RECORD_VERSION) return BatchCheck.Invalid;
  return end - at < length ? BatchCheck.Short : BatchCheck.Valid;
}

/** Checks the batch at `at` within `source[at, end)`: plausible header, complete, CRC matching. */
export function checkBatch(source: Buffer, at: number, end: number, maxBatchBytes: number): BatchCheck {
  const frame = checkBatchFrame(source, at, end, maxBatchBytes);
  if (frame !== BatchCheck.Valid) return frame;
  const length = source.readUInt32LE(at);
  return crc32c(source.subarray(at + 8, at + length)) === source.readUInt32LE(at + 4) ? BatchCheck.Valid : BatchCheck.Invalid;
}

function damaged(reason: string): WeirError {
  return new WeirError(ErrorCode.DataDamaged, `record batch is malformed: ${reason}`);
}

/**
 * A message read from a batch. Field boundaries are checked when it is made; the byte fields are views created only
 * when asked for, so a reader that forwards or counts messages allocates one object per message.
 */
class BatchMessage implements StoredMessage {
  // The delivery path asks for headers and body several times per message: each view is made once.
  private headersView: Buffer | null = null;
  private bodyView: Buffer | null = null;

  constructor(
    private readonly source: Buffer,
    readonly queueId: number,
    readonly offset: number,
    readonly position: number,
    readonly storeTimestamp: number,
    readonly flags: number,
    readonly producerId: number,
    readonly producerEpoch: number,
    readonly sequence: number,
    /** Start of the message's timestamp field. */
    private readonly fieldsAt: number,
    private readonly keyAt: number,
    private readonly tagAt: number,
    private readonly headersAt: number,
    private readonly bodyAt: number,
    private readonly end: number,
  ) {}

  get timestamp(): number {
    return readU64(this.source, this.fieldsAt);
  }
  get id(): Buffer {
    return this.source.subarray(this.fieldsAt + 9, this.keyAt);
  }
  get key(): Buffer | null {
    const length = this.source.readUInt16LE(this.keyAt);
    return length === NO_KEY ? null : this.source.subarray(this.keyAt + 2, this.keyAt + 2 + length);
  }
  get tag(): string | null {
    const length = this.source.readUInt8(this.tagAt);
    return length === 0 ? null : this.source.toString('utf8', this.tagAt + 1, this.tagAt + 1 + length);
  }
  get headers(): Buffer {
    return (this.headersView ??= this.source.subarray(this.headersAt + 4, this.bodyAt));
  }
  get body(): Buffer {
    return (this.bodyView ??= this.source.subarray(this.bodyAt, this.end));
  }
}

/** Where the fields of one message lie in its batch. Filled by `locateMessage`; reused, so a walk allocates nothing. */
class MessageLayout {
  /** Start of the timestamp field, just past the message's length. */
  fieldsAt = 0;
  keyAt = 0;
  tagAt = 0;
  headersAt = 0;
  bodyAt = 0;
  end = 0;
}

/**
 * Locates the fields of the message at `cursor` into `layout`. Every length is checked against the message and the
 * message against `batchEnd`, so even a batch that passed its CRC by accident (or was written by a buggy writer)
 * fails with DATA_DAMAGED instead of reading outside it.
 */
function locateMessage(source: Buffer, cursor: number, batchEnd: number, layout: MessageLayout): void {
  if (cursor + 4 > batchEnd) throw damaged('message length runs past the batch');
  const end = cursor + 4 + source.readUInt32LE(cursor);
  if (end > batchEnd || end - cursor < MESSAGE_FIXED_BYTES) throw damaged('message runs past the batch');
  const fieldsAt = cursor + 4;
  const keyAt = fieldsAt + 9 + source[fieldsAt + 8]!;
  if (keyAt + 2 > end) throw damaged('id runs past the message');
  const keyLength = source.readUInt16LE(keyAt);
  const tagAt = keyAt + 2 + (keyLength === NO_KEY ? 0 : keyLength);
  if (tagAt + 1 > end) throw damaged('key runs past the message');
  const headersAt = tagAt + 1 + source[tagAt]!;
  if (headersAt + 4 > end) throw damaged('tag runs past the message');
  const bodyAt = headersAt + 4 + source.readUInt32LE(headersAt);
  if (bodyAt > end) throw damaged('headers run past the message');
  layout.fieldsAt = fieldsAt;
  layout.keyAt = keyAt;
  layout.tagAt = tagAt;
  layout.headersAt = headersAt;
  layout.bodyAt = bodyAt;
  layout.end = end;
}

/**
 * Decodes the messages of a CRC-checked batch at `at` as queue `queueId` sees them (default: the queue its header
 * names), appending those with offset >= `fromOffset` to `out` (at most `limit` of them). Throws DATA_DAMAGED when a
 * length does not fit (see locateMessage) or the batch does not hold the queue.
 */
export function decodeMessages(source: Buffer, at: number, position: number, fromOffset: number, limit: number, out: StoredMessage[], queueId?: number): number {
  const header = readBatchHeader(source, at);
  const end = messagesEnd(header, at);
  if (queueId !== undefined && queueId !== header.queueId) {
    header.baseOffset = batchBaseOffset(source, at, queueId);
    if (header.baseOffset < 0) throw damaged(`the batch does not hold queue ${queueId}`);
    header.queueId = queueId;
  }
  const layout = new MessageLayout();
  let cursor = at + RECORD_HEADER_BYTES;
  let added = 0;
  for (let index = 0; index < header.count && added < limit; index++) {
    locateMessage(source, cursor, end, layout);
    cursor = layout.end;
    const offset = header.baseOffset + index;
    if (offset < fromOffset) continue;
    out.push(
      new BatchMessage(
        source,
        header.queueId,
        offset,
        position,
        header.storeTimestamp,
        header.flags,
        header.producerId,
        header.producerEpoch,
        header.baseSequence < 0 ? -1 : header.baseSequence + index,
        layout.fieldsAt,
        layout.keyAt,
        layout.tagAt,
        layout.headersAt,
        layout.bodyAt,
        layout.end,
      ),
    );
    added++;
  }
  return added;
}

/**
 * Calls `visit` with the encoded size, id, key and tag of each message of a batch; used to rebuild indexes. The whole
 * batch is checked before the first call, so a damaged one throws DATA_DAMAGED having visited nothing.
 */
export function forEachMessageSummary(
  source: Buffer,
  at: number,
  visit: (index: number, encodedBytes: number, id: Buffer, key: Buffer | null, tag: Buffer | null) => void,
): void {
  const header = readBatchHeader(source, at);
  const end = messagesEnd(header, at);
  const layout = new MessageLayout();
  let cursor = at + RECORD_HEADER_BYTES;
  for (let index = 0; index < header.count; index++) {
    locateMessage(source, cursor, end, layout);
    cursor = layout.end;
  }
  cursor = at + RECORD_HEADER_BYTES;
  for (let index = 0; index < header.count; index++) {
    locateMessage(source, cursor, end, layout);
    const keyLength = source.readUInt16LE(layout.keyAt);
    const tagLength = source[layout.tagAt]!;
    visit(
      index,
      layout.end - cursor,
      source.subarray(layout.fieldsAt + 9, layout.keyAt),
      keyLength === NO_KEY ? null : source.subarray(layout.keyAt + 2, layout.tagAt),
      tagLength === 0 ? null : source.subarray(layout.tagAt + 1, layout.headersAt),
    );
    cursor = layout.end;
  }
}

/**
 * Encodes headers as stored. `extra` (a name and a text value) is added after them, in place of a header of that name:
 * what a copy with one header set would give, without building the copy.
 */
export function encodeHeaders(headers: Headers | null, extra?: readonly [name: string, value: string]): Uint8Array {
  // Measured, then written, with no object per header: every stored message carries headers (AMQP's three at least).
  const extraName = extra?.[0];
  let count = 0;
  let size = 2;
  for (const name in headers) {
    if (name === extraName) continue;
    size += headerSize(name, headers[name]!);
    count++;
  }
  if (extra !== undefined) {
    size += headerSize(extra[0], extra[1]);
    count++;
  }
  if (count > 0xffff) throw new WeirError(ErrorCode.InvalidArgument, 'a message may carry at most 65535 headers');
  const out = Buffer.allocUnsafe(size);
  putU16(out, 0, count);
  let cursor = 2;
  for (const name in headers) if (name !== extraName) cursor = putHeader(out, cursor, name, headers[name]!);
  if (extra !== undefined) putHeader(out, cursor, extra[0], extra[1]);
  return out;
}

function headerSize(name: string, value: HeaderValue): number {
  const nameBytes = utf8Length(name);
  if (nameBytes > 0xffff) throw new WeirError(ErrorCode.InvalidArgument, `header name "${name.slice(0, 40)}…" is over 65535 bytes`);
  return 2 + nameBytes + 1 + 4 + (typeof value === 'string' ? utf8Length(value) : value.byteLength);
}

function putHeader(out: Buffer, at: number, name: string, value: HeaderValue): number {
  const nameEnd = putText(out, at + 2, name);
  putU16(out, at, nameEnd - at - 2);
  if (typeof value === 'string') {
    out[nameEnd] = 0;
    const valueEnd = putText(out, nameEnd + 5, value);
    putU32(out, nameEnd + 1, valueEnd - nameEnd - 5);
    return valueEnd;
  }
  out[nameEnd] = 1;
  putU32(out, nameEnd + 1, value.byteLength);
  out.set(value, nameEnd + 5);
  return nameEnd + 5 + value.byteLength;
}

/** Up to this length, text is measured and copied by a loop: cheaper than a call into the runtime for short ASCII. */
const SHORT_TEXT = 64;

function utf8Length(text: string): number {
  if (text.length > SHORT_TEXT) return Buffer.byteLength(text, 'utf8');
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text, 'utf8');
  return text.length;
}

/** Writes `text` as UTF-8 at `at` (the caller measured it with utf8Length); returns where it ends. */
function putText(target: Buffer, at: number, text: string): number {
  if (text.length > SHORT_TEXT) return at + target.write(text, at, 'utf8');
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return at + target.write(text, at, 'utf8');
    target[at + i] = code;
  }
  return at + text.length;
}

/** Where one header of an encoded list lies (its value runs from `nameEnd + 5` to `valueEnd`); reused by walks. */
class HeaderLayout {
  nameAt = 0;
  nameEnd = 0;
  isString = false;
  valueEnd = 0;
}

/** The number of headers in an encoded list (0 for an empty buffer). Throws DATA_DAMAGED when it is truncated. */
function headerCount(encoded: Buffer): number {
  if (encoded.byteLength === 0) return 0;
  if (encoded.byteLength < 2) throw damaged('headers are truncated');
  return encoded.readUInt16LE(0);
}

/**
 * Locates the header at `cursor` into `layout`, checking every length against the buffer; returns where the next
 * header starts. Throws DATA_DAMAGED when a length runs past the end.
 */
function locateHeader(encoded: Buffer, cursor: number, layout: HeaderLayout): number {
  if (cursor + 2 > encoded.byteLength) throw damaged('header name length is truncated');
  const nameEnd = cursor + 2 + encoded.readUInt16LE(cursor);
  if (nameEnd + 5 > encoded.byteLength) throw damaged('header is truncated');
  const valueEnd = nameEnd + 5 + encoded.readUInt32LE(nameEnd + 1);
  if (valueEnd > encoded.byteLength) throw damaged('header value is truncated');
  layout.nameAt = cursor + 2;
  layout.nameEnd = nameEnd;
  layout.isString = encoded[nameEnd] === 0;
  layout.valueEnd = valueEnd;
  return valueEnd;
}

/** Calls `visit` with each header's bounds (see locateHeader). Throws DATA_DAMAGED on a malformed list. */
function walkHeaders(encoded: Buffer, visit: (nameAt: number, nameEnd: number, isString: boolean, valueEnd: number) => void): void {
  const count = headerCount(encoded);
  const layout = new HeaderLayout();
  let cursor = 2;
  for (let index = 0; index < count; index++) {
    cursor = locateHeader(encoded, cursor, layout);
    visit(layout.nameAt, layout.nameEnd, layout.isString, layout.valueEnd);
  }
}

/** Decodes every header; when a name repeats, the last one wins. Throws DATA_DAMAGED on a malformed list. */
/** A message's headers as a record, whether it was given them as one or already encoded. */
export function inputHeaders(input: MessageInput): Headers {
  if (input.headers) return input.headers;
  const encoded = input.encodedHeaders;
  if (encoded === undefined || encoded.byteLength === 0) return {};
  return decodeHeaders(toBytes(encoded));
}

export function decodeHeaders(encoded: Buffer): Record<string, string | Buffer> {
  const result: Record<string, string | Buffer> = {};
  walkHeaders(encoded, (nameAt, nameEnd, isString, valueEnd) => {
    const value = isString ? encoded.toString('utf8', nameEnd + 5, valueEnd) : encoded.subarray(nameEnd + 5, valueEnd);
    const name = encoded.toString('utf8', nameAt, nameEnd);
    // An assignment to "__proto__" would replace the object's prototype instead of adding the header.
    if (name === '__proto__') Object.defineProperty(result, name, { value, enumerable: true, writable: true, configurable: true });
    else result[name] = value;
  });
  return result;
}

/** UTF-8 bytes of the names looked up: callers ask for the same few names (several per message) over and over. */
const nameBytes = new Map<string, Buffer>();
const MAX_CACHED_NAMES = 256;

function bytesOfName(name: string): Buffer {
  let bytes = nameBytes.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8');
    if (nameBytes.size < MAX_CACHED_NAMES) nameBytes.set(name, bytes);
  }
  return bytes;
}

/** encodedHeader's one name and its value, as encodedHeaderValues takes them (lookups run one at a time). */
const singleName: Uint8Array[] = [new Uint8Array(0)];
const singleValue: Array<string | Buffer | undefined> = [undefined];

/**
 * The value of header `name` (the last one when it repeats, as in decodeHeaders), found by comparing name bytes
 * without decoding the other headers; undefined when absent. Bytes values are views into `encoded`. Throws
 * DATA_DAMAGED on a malformed list.
 */
export function encodedHeader(encoded: Buffer, name: string): string | Buffer | undefined {
  singleName[0] = bytesOfName(name);
  encodedHeaderValues(encoded, singleName, singleValue);
  return singleValue[0];
}

/** Most names locateHeaderValues looks up in one walk. */
const MAX_LOOKUP_NAMES = 8;
/** Per looked-up name: where its value starts (-1: absent), ends, and whether it is text. */
const lookupFound = new Int32Array(MAX_LOOKUP_NAMES * 3);

/**
 * Where several headers' values lie, in one walk: for the name whose UTF-8 bytes are `names[i]`, `found[3i]` becomes
 * where its (last) value starts in `encoded`, or -1 when absent; `found[3i + 1]` where it ends; `found[3i + 2]` 1 when
 * it is text, else 0. The delivery path's lookup (several headers of every message): bounds are read and checked
 * inline, with no object, no call per header and nothing allocated. Throws DATA_DAMAGED on a malformed list.
 */
export function locateHeaderValues(encoded: Buffer, names: readonly Uint8Array[], found: Int32Array): void {
  const wanted = names.length;
  if (wanted > MAX_LOOKUP_NAMES || found.length < 3 * wanted) throw new RangeError(`locateHeaderValues looks up at most ${MAX_LOOKUP_NAMES} names, with 3 slots each`);
  const count = headerCount(encoded);
  for (let i = 0; i < wanted; i++) found[3 * i] = -1;
  const size = encoded.byteLength;
  let cursor = 2;
  for (let index = 0; index < count; index++) {
    // The same layout and checks as locateHeader.
    if (cursor + 2 > size) throw damaged('header name length is truncated');
    const length = encoded[cursor]! | (encoded[cursor + 1]! << 8);
    const nameAt = cursor + 2;
    const nameEnd = nameAt + length;
    if (nameEnd + 5 > size) throw damaged('header is truncated');
    const valueEnd = nameEnd + 5 + (encoded[nameEnd + 1]! | (encoded[nameEnd + 2]! << 8) | (encoded[nameEnd + 3]! << 16)) + encoded[nameEnd + 4]! * 0x1000000;
    if (valueEnd > size) throw damaged('header value is truncated');
    for (let i = 0; i < wanted; i++) {
      const name = names[i]!;
      if (length !== name.byteLength) continue;
      let same = 0;
      while (same < length && encoded[nameAt + same] === name[same]) same++;
      if (same < length) continue;
      found[3 * i] = nameEnd + 5;
      found[3 * i + 1] = valueEnd;
      found[3 * i + 2] = encoded[nameEnd] === 0 ? 1 : 0;
    }
    cursor = valueEnd;
  }
}

/**
 * Several headers in one walk: `values[i]` becomes what `encodedHeader` would return for the name whose UTF-8 bytes
 * are `names[i]` (callers encode their names once). At most MAX_LOOKUP_NAMES names. Throws DATA_DAMAGED on a
 * malformed list.
 */
export function encodedHeaderValues(encoded: Buffer, names: readonly Uint8Array[], values: Array<string | Buffer | undefined>): void {
  locateHeaderValues(encoded, names, lookupFound);
  for (let i = 0; i < names.length; i++) {
    const at = lookupFound[3 * i]!;
    const end = lookupFound[3 * i + 1]!;
    values[i] = at < 0 ? undefined : lookupFound[3 * i + 2] === 1 ? (at === end ? '' : encoded.toString('utf8', at, end)) : encoded.subarray(at, end);
  }
}

/**
 * A copy of an encoded header list without the headers named `name`: what encoding the list minus that name gives,
 * made in one copy without decoding the others. The copy is the caller's (it outlives `encoded`). Throws DATA_DAMAGED
 * on a malformed list.
 */
export function encodedHeadersWithout(encoded: Buffer, name: string): Buffer {
  const count = headerCount(encoded);
  // A message stored without headers has an empty list: the same as an encoded list of none.
  if (count === 0) return Buffer.alloc(2);
  const wanted = bytesOfName(name);
  const layout = withoutLayout;
  let kept = 0;
  let size = 2;
  let cursor = 2;
  for (let index = 0; index < count; index++) {
    const start = cursor;
    cursor = locateHeader(encoded, cursor, layout);
    if (!isName(encoded, layout, wanted)) {
      kept++;
      size += cursor - start;
    }
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16LE(kept, 0);
  // Kept headers are copied in runs (one copy when the dropped header is last, as `weir.target` is).
  let at = 2;
  let run = 2;
  cursor = 2;
  for (let index = 0; index < count; index++) {
    const start = cursor;
    cursor = locateHeader(encoded, cursor, layout);
    if (!isName(encoded, layout, wanted)) continue;
    at += encoded.copy(out, at, run, start);
    run = cursor;
  }
  encoded.copy(out, at, run, cursor);
  return out;
}

/** The layout encodedHeadersWithout walks with (calls run to completion one at a time). */
const withoutLayout = new HeaderLayout();

function isName(encoded: Buffer, layout: HeaderLayout, wanted: Uint8Array): boolean {
  const length = layout.nameEnd - layout.nameAt;
  if (length !== wanted.byteLength) return false;
  for (let i = 0; i < length; i++) if (encoded[layout.nameAt + i] !== wanted[i]) return false;
  return true;
}

/** One header as stored: its value is a view into the encoded list (UTF-8 text when `isString`). */
export interface EncodedHeaderEntry {
  name: string;
  isString: boolean;
  value: Buffer;
}

const NO_HEADERS: EncodedHeaderEntry[] = Object.freeze([]) as unknown as EncodedHeaderEntry[];

/**
 * Every header in stored order, repeats included, values as views into `encoded` (no copies). A list without headers
 * gives one shared, frozen empty array: do not modify the result. Throws DATA_DAMAGED on a malformed list.
 */
export function decodeHeaderList(encoded: Buffer): EncodedHeaderEntry[] {
  let list: EncodedHeaderEntry[] | null = null;
  walkHeaders(encoded, (nameAt, nameEnd, isString, valueEnd) => {
    list ??= [];
    list.push({ name: encoded.toString('utf8', nameAt, nameEnd), isString, value: encoded.subarray(nameEnd + 5, valueEnd) });
  });
  return list ?? NO_HEADERS;
}
