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
 * a length that runs outside its batch (every message and header is checked here, so reading a field later never
 * fails). Batches that end below `fromOffset` are skipped without being checked.
 *
 * The messages decode their fields on first access (then keep them): a reader that looks only at some fields of
 * each message does not pay for buffer views, header objects and strings it never uses.
 */
export function decodeRecordBatches(records: Buffer, fromOffset: number, options: DecodeRecordBatchesOptions = {}): FetchedMessage[] {
  const batches = locateRecordBatches(records, fromOffset, options);
  if (batches.length === 1) return batches[0]!.messages();
  const out: FetchedMessage[] = [];
  for (const batch of batches) {
    for (let index = 0; index < batch.count; index++) out.push(new FetchedRecord(batch, index));
  }
  return out;
}

/**
 * The checking half of `decodeRecordBatches` (CRC, version, every length, every header): each batch comes back as a
 * `RecordBatchView` that knows where its messages and their bodies start, and decodes a field only when asked.
 */
function locateRecordBatches(records: Buffer, fromOffset: number, options: DecodeRecordBatchesOptions = {}): RecordBatchView[] {
  const verifyCrc = options.verifyCrc ?? true;
  const out: RecordBatchView[] = [];
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
    const first = baseOffset >= fromOffset ? 0 : fromOffset - baseOffset;
    const layout = new Int32Array(2 * (count - first));
    let slot = 0;
    let cursor = at + RECORD_BATCH_HEADER_BYTES;
    for (let index = 0; index < count; index++) {
      if (end - cursor < MESSAGE_FIXED_BYTES) throw damaged(`message ${index} of the batch at byte ${at} runs past the batch`);
      const messageEnd = cursor + 4 + loadUint32(records, cursor);
      if (messageEnd > end || messageEnd - cursor < MESSAGE_FIXED_BYTES) throw damaged(`message ${index} of the batch at byte ${at} has an impossible length`);
      if (index < first) {
        cursor = messageEnd;
        continue;
      }
      const offset = baseOffset + index;
      const keyAt = cursor + 13 + records[cursor + 12]!;
      // Each field leaves room for the fixed bytes still to come, so every read below stays inside the message.
      if (keyAt + 7 > messageEnd) throw damaged(`message at offset ${offset}: id runs past the message`);
      const keyLength = loadUint16(records, keyAt);
      const tagAt = keyAt + 2 + (keyLength === NO_KEY ? 0 : keyLength);
      if (tagAt + 5 > messageEnd) throw damaged(`message at offset ${offset}: key runs past the message`);
      const headersAt = tagAt + 1 + records[tagAt]!;
      if (headersAt + 4 > messageEnd) throw damaged(`message at offset ${offset}: tag runs past the message`);
      const headersLength = loadUint32(records, headersAt);
      const bodyAt = headersAt + 4 + headersLength;
      if (bodyAt > messageEnd) throw damaged(`message at offset ${offset}: headers run past the message`);
      if (headersLength !== 0) checkHeaders(records, headersAt + 4, bodyAt, offset);
      layout[slot++] = cursor;
      layout[slot++] = bodyAt;
      cursor = messageEnd;
    }
    if (cursor !== end) throw damaged(`batch at byte ${at} has ${end - cursor} bytes after its ${count} messages`);
    out.push(
      new RecordBatchView(
        records,
        baseOffset + first,
        loadUint64(records, at + 24),
        loadUint64(records, at + 32),
        records.readInt32LE(at + 44),
        records[at + 9]!,
        first,
        count - first,
        layout,
      ),
    );
    at = end;
  }
  return out;
}

/**
 * The messages of one record batch from `locateRecordBatches` (those at or above its `fromOffset`), checked but not
 * decoded. Messages are numbered from 0 (`firstOffset`) to `count - 1`; each accessor decodes one field of one
 * message, and byte fields are views of `records` (no copies).
 */
class RecordBatchView {
  private texts: TextCaches | null = null;

  constructor(
    /** The buffer the batch lies in. */
    readonly records: Buffer,
    /** Offset of message 0 of this view. */
    readonly firstOffset: number,
    /** When the broker appended the batch, ms since the epoch. */
    readonly storeTimestamp: number,
    /** The idempotent producer that wrote the batch, or 0. */
    readonly producerId: number,
    /** The producer's sequence number of the batch's first message, or -1. */
    readonly baseSequence: number,
    /** The batch's flags (`RecordFlag`). */
    readonly flags: number,
    /** Messages of the batch below `fromOffset` that the view leaves out. */
    private readonly skipped: number,
    /** Messages in the view. */
    readonly count: number,
    /** Per message: where it starts in `records`, where its body starts. */
    private readonly layout: Int32Array,
  ) {}

  offset(index: number): number {
    return this.firstOffset + index;
  }

  /** The message's own time (the producer's, or the store time when it gave none), ms since the epoch. */
  timestamp(index: number): number {
    return loadUint64(this.records, this.layout[2 * index]! + 4);
  }

  id(index: number): Buffer {
    const start = this.layout[2 * index]!;
    return this.records.subarray(start + 13, start + 13 + this.records[start + 12]!);
  }

  key(index: number): Buffer | null {
    const keyAt = this.keyAt(index);
    const keyLength = loadUint16(this.records, keyAt);
    return keyLength === NO_KEY ? null : this.records.subarray(keyAt + 2, keyAt + 2 + keyLength);
  }

  tag(index: number): string | null {
    const tagAt = this.tagAt(index);
    const tagLength = this.records[tagAt]!;
    return tagLength === 0 ? null : this.textCaches().tag.decode(this.records, tagAt + 1, tagAt + 1 + tagLength);
  }

  headers(index: number): Record<string, string | Buffer> {
    const tagAt = this.tagAt(index);
    const headersAt = tagAt + 1 + this.records[tagAt]!;
    const bodyAt = this.layout[2 * index + 1]!;
    return bodyAt === headersAt + 4 ? {} : readHeaders(this.records, headersAt + 4, bodyAt, this.textCaches());
  }

  body(index: number): Buffer {
    const start = this.layout[2 * index]!;
    return this.records.subarray(this.layout[2 * index + 1]!, start + 4 + loadUint32(this.records, start));
  }

  /** The producer's sequence number of the message, or -1. */
  sequence(index: number): number {
    return this.baseSequence < 0 ? -1 : this.baseSequence + this.skipped + index;
  }

  /** Every message of the view, as lazily decoded FetchedMessages. */
  messages(): FetchedMessage[] {
    const out = new Array<FetchedMessage>(this.count);
    for (let index = 0; index < this.count; index++) out[index] = new FetchedRecord(this, index);
    return out;
  }

  private keyAt(index: number): number {
    const start = this.layout[2 * index]!;
    return start + 13 + this.records[start + 12]!;
  }

  private tagAt(index: number): number {
    const keyAt = this.keyAt(index);
    const keyLength = loadUint16(this.records, keyAt);
    return keyAt + 2 + (keyLength === NO_KEY ? 0 : keyLength);
  }

  private textCaches(): TextCaches {
    return (this.texts ??= new TextCaches());
  }
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * A FetchedMessage that reads its fields from its batch when they are first asked for (and keeps what it built, so
 * a field is the same object on every read). `toJSON` and `util.inspect` show every field.
 */
class FetchedRecord implements FetchedMessage {
  readonly #batch: RecordBatchView;
  readonly #index: number;
  #id: Buffer | undefined = undefined;
  #key: Buffer | null | undefined = undefined;
  #tag: string | null | undefined = undefined;
  #headers: Record<string, string | Buffer> | undefined = undefined;
  #body: Buffer | undefined = undefined;

  constructor(batch: RecordBatchView, index: number) {
    this.#batch = batch;
    this.#index = index;
  }

  get offset(): number {
    return this.#batch.firstOffset + this.#index;
  }

  get timestamp(): number {
    return this.#batch.timestamp(this.#index);
  }

  get storeTimestamp(): number {
    return this.#batch.storeTimestamp;
  }

  get id(): Buffer {
    return (this.#id ??= this.#batch.id(this.#index));
  }

  get key(): Buffer | null {
    if (this.#key === undefined) this.#key = this.#batch.key(this.#index);
    return this.#key;
  }

  get tag(): string | null {
    if (this.#tag === undefined) this.#tag = this.#batch.tag(this.#index);
    return this.#tag;
  }

  get headers(): Record<string, string | Buffer> {
    return (this.#headers ??= this.#batch.headers(this.#index));
  }

  get body(): Buffer {
    return (this.#body ??= this.#batch.body(this.#index));
  }

  get producerId(): number {
    return this.#batch.producerId;
  }

  get sequence(): number {
    return this.#batch.sequence(this.#index);
  }

  get flags(): number {
    return this.#batch.flags;
  }

  /** Every field as a plain object. */
  toJSON(): FetchedMessage {
    return {
      offset: this.offset,
      timestamp: this.timestamp,
      storeTimestamp: this.storeTimestamp,
      id: this.id,
      key: this.key,
      tag: this.tag,
      headers: this.headers,
      body: this.body,
      producerId: this.producerId,
      sequence: this.sequence,
      flags: this.flags,
    };
  }

  [INSPECT](depth: number, options: object, inspect: (value: unknown, options: object) => string): string {
    return `FetchedMessage ${inspect(this.toJSON(), { ...options, depth })}`;
  }
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

/** Checks the headers' structure (what `readHeaders` then reads without checking), throwing DATA_DAMAGED. */
function checkHeaders(source: Buffer, start: number, end: number, offset: number): void {
  if (end - start < 2) throw damaged(`message at offset ${offset}: header count is truncated`);
  const count = loadUint16(source, start);
  let cursor = start + 2;
  for (let index = 0; index < count; index++) {
    if (end - cursor < 2) throw damaged(`message at offset ${offset}: header ${index} is truncated`);
    const nameEnd = cursor + 2 + loadUint16(source, cursor);
    if (nameEnd + 5 > end) throw damaged(`message at offset ${offset}: header ${index} is truncated`);
    const type = source[nameEnd]!;
    const valueEnd = nameEnd + 5 + loadUint32(source, nameEnd + 1);
    if (valueEnd > end) throw damaged(`message at offset ${offset}: header ${JSON.stringify(source.toString('utf8', cursor + 2, nameEnd))} runs past the headers`);
    if (type > 1) throw damaged(`message at offset ${offset}: header ${JSON.stringify(source.toString('utf8', cursor + 2, nameEnd))} has unknown type ${type}`);
    cursor = valueEnd;
  }
  if (cursor !== end) throw damaged(`message at offset ${offset}: ${end - cursor} bytes after its headers`);
}

/** Decodes headers that `checkHeaders` accepted. */
function readHeaders(source: Buffer, start: number, end: number, texts: TextCaches): Record<string, string | Buffer> {
  const headers: Record<string, string | Buffer> = {};
  const count = loadUint16(source, start);
  let cursor = start + 2;
  for (let index = 0; index < count && cursor < end; index++) {
    const nameEnd = cursor + 2 + loadUint16(source, cursor);
    const name = texts.headerName(index, source, cursor + 2, nameEnd);
    const type = source[nameEnd]!;
    const valueAt = nameEnd + 5;
    const valueEnd = valueAt + loadUint32(source, nameEnd + 1);
    const value = type === 0 ? texts.headerValue(index, source, valueAt, valueEnd) : source.subarray(valueAt, valueEnd);
    // A plain store of "__proto__" would replace the object's prototype instead of adding a header.
    if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
    else headers[name] = value;
    cursor = valueEnd;
  }
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
