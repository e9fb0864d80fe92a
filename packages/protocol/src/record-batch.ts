import { crc32c } from './crc32c.js';
import { ProtocolError } from './errors.js';

/**
 * A client-side decoder for the `records` of a Fetch response: record batches back to back in the storage format
 * (docs/storage.md, "Record batch"). Written independently of the broker's `storage/record-batch.ts` so the client
 * needs nothing from the broker; a test checks the two agree. Little-endian; u64 fields hold integers below 2^53 and
 * are read as two u32 halves.
 *
 * Batch: Wire: `[length:4][crc32c:4][version:1=1][flags:1][count:2][queueId:4][baseOffset:8][storeTimestamp:8][producerId:8][producerEpoch:2][reserved:2][baseSequence:4][messages]`
 * Message: Wire: `[length:4][timestamp:8][idLength:1][id][keyLength:2, 0xFFFF = no key][key][tagLength:1][tag][headersLength:4][headers][body: rest]`
 * Headers: Wire: `[count:2]` then per header `[nameLength:2][name][type:1, 0 string / 1 bytes][valueLength:4][value]`
 */

export const RECORD_BATCH_HEADER_BYTES = 48;
export const RECORD_BATCH_VERSION = 1;
/** `[length:4][timestamp:8][idLength:1][keyLength:2][tagLength:1][headersLength:4]`: a message with empty fields. */
const MESSAGE_FIXED_BYTES = 20;
const NO_KEY = 0xffff;
const TWO_32 = 0x1_0000_0000;
const GENERATED_ID_BYTES = 16;

/** Bits of a batch's `flags` byte. */
export const RecordFlag = {
  /** A transactional (half) message: stored, but invisible until its transaction commits. */
  Transactional: 1 << 0,
  /** A control record (e.g. a transaction marker), not a user message. */
  Control: 1 << 1,
} as const;

/** One message of a Fetch response. Byte fields are views of the response frame (no copies). */
export interface FetchedMessage {
  readonly offset: number;
  /** The message's own time (the producer's, or the store time when it gave none), ms since the epoch. */
  readonly timestamp: number;
  /** When the broker appended the batch, ms since the epoch. */
  readonly storeTimestamp: number;
  readonly id: Buffer;
  readonly key: Buffer | null;
  readonly tag: string | null;
  readonly headers: Record<string, string | Buffer>;
  readonly body: Buffer;
  /** The idempotent producer that wrote the batch, or 0. */
  readonly producerId: number;
  /** The producer's sequence number of this message, or -1. */
  readonly sequence: number;
  /** The batch's flags (`RecordFlag`). */
  readonly flags: number;
}

export interface DecodeRecordBatchesOptions {
  /** Check each batch's CRC-32C before reading it (default true). */
  verifyCrc?: boolean;
}

function damaged(detail: string): ProtocolError {
  return new ProtocolError('DATA_DAMAGED', `record batch: ${detail}`);
}

function loadUint16(source: Buffer, at: number): number {
  return source[at]! | (source[at + 1]! << 8);
}

function loadUint32(source: Buffer, at: number): number {
  return (source[at]! | (source[at + 1]! << 8) | (source[at + 2]! << 16) | (source[at + 3]! << 24)) >>> 0;
}

function loadUint64(source: Buffer, at: number): number {
  return loadUint32(source, at + 4) * TWO_32 + loadUint32(source, at);
}

/**
 * Decodes the messages of `records` with offsets at or above `fromOffset`, in order. A trailing partial batch (a
 * response cut at maxBytes) is ignored. Throws ProtocolError DATA_DAMAGED for a CRC mismatch, an unknown version or
 * a length that runs outside its batch. Batches that end below `fromOffset` are skipped without being checked.
 */
export function decodeRecordBatches(records: Buffer, fromOffset: number, options: DecodeRecordBatchesOptions = {}): FetchedMessage[] {
  const verifyCrc = options.verifyCrc ?? true;
  const out: FetchedMessage[] = [];
  const texts = new TextCaches();
  const total = records.length;
  let at = 0;
  while (total - at >= RECORD_BATCH_HEADER_BYTES) {
    const length = loadUint32(records, at);
    if (length < RECORD_BATCH_HEADER_BYTES) throw damaged(`batch at byte ${at} declares length ${length}, below its ${RECORD_BATCH_HEADER_BYTES}-byte header`);
    if (length > total - at) break; // partial trailing batch
    const end = at + length;
    const version = records[at + 8]!;
    if (version !== RECORD_BATCH_VERSION) throw damaged(`batch at byte ${at} has unknown version ${version}`);
    const count = loadUint16(records, at + 10);
    if (count === 0) throw damaged(`batch at byte ${at} declares no messages`);
    const baseOffset = loadUint64(records, at + 16);
    if (baseOffset + count <= fromOffset) {
      at = end;
      continue;
    }
    if (verifyCrc) {
      const expected = loadUint32(records, at + 4);
      const actual = crc32c(records.subarray(at + 8, end));
      if (actual !== expected) throw damaged(`batch at byte ${at} (offset ${baseOffset}) fails its CRC: stored ${hex(expected)}, computed ${hex(actual)}`);
    }
    const flags = records[at + 9]!;
    const storeTimestamp = loadUint64(records, at + 24);
    const producerId = loadUint64(records, at + 32);
    const baseSequence = records.readInt32LE(at + 44);
    let cursor = at + RECORD_BATCH_HEADER_BYTES;
    for (let index = 0; index < count; index++) {
      if (end - cursor < MESSAGE_FIXED_BYTES) throw damaged(`message ${index} of the batch at byte ${at} runs past the batch`);
      const messageEnd = cursor + 4 + loadUint32(records, cursor);
      if (messageEnd > end || messageEnd - cursor < MESSAGE_FIXED_BYTES) throw damaged(`message ${index} of the batch at byte ${at} has an impossible length`);
      const offset = baseOffset + index;
      if (offset < fromOffset) {
        cursor = messageEnd;
        continue;
      }
      const timestamp = loadUint64(records, cursor + 4);
      const idAt = cursor + 13;
      const keyAt = idAt + records[cursor + 12]!;
      // Each field leaves room for the fixed bytes still to come, so every read below stays inside the message.
      if (keyAt + 7 > messageEnd) throw damaged(`message at offset ${offset}: id runs past the message`);
      const keyLength = loadUint16(records, keyAt);
      const tagAt = keyAt + 2 + (keyLength === NO_KEY ? 0 : keyLength);
      if (tagAt + 5 > messageEnd) throw damaged(`message at offset ${offset}: key runs past the message`);
      const tagLength = records[tagAt]!;
      const headersAt = tagAt + 1 + tagLength;
      if (headersAt + 4 > messageEnd) throw damaged(`message at offset ${offset}: tag runs past the message`);
      const headersLength = loadUint32(records, headersAt);
      const bodyAt = headersAt + 4 + headersLength;
      if (bodyAt > messageEnd) throw damaged(`message at offset ${offset}: headers run past the message`);
      out.push({
        offset,
        timestamp,
        storeTimestamp,
        id: records.subarray(idAt, keyAt),
        key: keyLength === NO_KEY ? null : records.subarray(keyAt + 2, tagAt),
        tag: tagLength === 0 ? null : texts.tag.decode(records, tagAt + 1, headersAt),
        headers: headersLength === 0 ? {} : decodeHeaders(records, headersAt + 4, bodyAt, offset, texts),
        body: records.subarray(bodyAt, messageEnd),
        producerId,
        sequence: baseSequence < 0 ? -1 : baseSequence + index,
        flags,
      });
      cursor = messageEnd;
    }
    if (cursor !== end) throw damaged(`batch at byte ${at} has ${end - cursor} bytes after its ${count} messages`);
    at = end;
  }
  return out;
}

/**
 * Remembers the last string decoded at one kind of place (tags, header names, header values) by the bytes it came
 * from. Consecutive messages of a batch usually repeat them (one producer, one content type), and comparing a few
 * bytes costs far less than decoding UTF-8 into a new string.
 */
class RepeatedText {
  private at = -1;
  private length = 0;
  private text = '';

  decode(source: Buffer, start: number, end: number): string {
    const length = end - start;
    if (length === this.length && this.at >= 0 && length <= MAX_REPEATED_TEXT_BYTES) {
      const previous = this.at;
      let index = 0;
      while (index < length && source[previous + index] === source[start + index]) index++;
      if (index === length) return this.text;
    }
    this.at = start;
    this.length = length;
    this.text = source.toString('utf8', start, end);
    return this.text;
  }
}

/** Longer texts are decoded every time: comparing them would cost about as much. */
const MAX_REPEATED_TEXT_BYTES = 64;

/** One RepeatedText per place: the tag, and the name and value of each of the first few headers by position. */
class TextCaches {
  readonly tag = new RepeatedText();
  private readonly headerNames: RepeatedText[] = [];
  private readonly headerValues: RepeatedText[] = [];

  headerName(index: number, source: Buffer, start: number, end: number): string {
    return this.slot(this.headerNames, index)?.decode(source, start, end) ?? source.toString('utf8', start, end);
  }

  headerValue(index: number, source: Buffer, start: number, end: number): string {
    return this.slot(this.headerValues, index)?.decode(source, start, end) ?? source.toString('utf8', start, end);
  }

  private slot(slots: RepeatedText[], index: number): RepeatedText | undefined {
    if (index >= MAX_REPEATED_HEADERS) return undefined;
    while (slots.length <= index) slots.push(new RepeatedText());
    return slots[index];
  }
}

const MAX_REPEATED_HEADERS = 8;

function decodeHeaders(source: Buffer, start: number, end: number, offset: number, texts: TextCaches): Record<string, string | Buffer> {
  const headers: Record<string, string | Buffer> = {};
  if (end - start < 2) throw damaged(`message at offset ${offset}: header count is truncated`);
  const count = loadUint16(source, start);
  let cursor = start + 2;
  for (let index = 0; index < count; index++) {
    if (end - cursor < 2) throw damaged(`message at offset ${offset}: header ${index} is truncated`);
    const nameEnd = cursor + 2 + loadUint16(source, cursor);
    if (nameEnd + 5 > end) throw damaged(`message at offset ${offset}: header ${index} is truncated`);
    const name = texts.headerName(index, source, cursor + 2, nameEnd);
    const type = source[nameEnd]!;
    const valueAt = nameEnd + 5;
    const valueEnd = valueAt + loadUint32(source, nameEnd + 1);
    if (valueEnd > end) throw damaged(`message at offset ${offset}: header ${JSON.stringify(name)} runs past the headers`);
    if (type > 1) throw damaged(`message at offset ${offset}: header ${JSON.stringify(name)} has unknown type ${type}`);
    const value = type === 0 ? texts.headerValue(index, source, valueAt, valueEnd) : source.subarray(valueAt, valueEnd);
    // A plain store of "__proto__" would replace the object's prototype instead of adding a header.
    if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
    else headers[name] = value;
    cursor = valueEnd;
  }
  if (cursor !== end) throw damaged(`message at offset ${offset}: ${end - cursor} bytes after its headers`);
  return headers;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/**
 * The id the broker generates for a message produced without one: `[storeTimestamp:6][position:8][index:2]`,
 * big-endian (so ids sort by time). `storeTimestamp` and `position` come from the Produce response, `index` is the
 * message's index in the batch.
 */
export function generatedMessageId(storeTimestamp: number, position: number, index: number): Buffer {
  if (!Number.isSafeInteger(storeTimestamp) || storeTimestamp < 0 || storeTimestamp >= 2 ** 48) {
    throw new RangeError(`storeTimestamp must be an integer from 0 to 2^48-1, got ${storeTimestamp}`);
  }
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`position must be a non-negative safe integer, got ${position}`);
  if (!Number.isInteger(index) || index < 0 || index > 0xffff) throw new RangeError(`index must be an integer from 0 to 65535, got ${index}`);
  const id = Buffer.allocUnsafe(GENERATED_ID_BYTES);
  const timeHigh = Math.floor(storeTimestamp / TWO_32);
  id.writeUInt16BE(timeHigh, 0);
  id.writeUInt32BE(storeTimestamp % TWO_32, 2);
  id.writeUInt32BE(Math.floor(position / TWO_32), 6);
  id.writeUInt32BE(position % TWO_32, 10);
  id.writeUInt16BE(index, 14);
  return id;
}
