import { AmqpSyntaxError, ReplyCode } from './errors.js';

/**
 * The primitive wire types (spec §4.2.5), shared by the generated method codec, field tables, properties and frames.
 * All integers are big-endian ("network byte order", §4.2.5.1).
 *
 * Readers work on a Cursor and check every declared length against the bytes left before slicing or allocating
 * anything. `where` names what is being read (`basic.publish routing-key`) and goes into the error message as is, so
 * callers pass string literals and the success path builds no strings. Writers store into a buffer the caller has
 * sized exactly and return the offset after what they wrote.
 */

/** A read position in a buffer; reads stop at `end` (the end of the frame payload, or of an enclosing table). */
export class Cursor {
  buf: Buffer;
  at: number;
  end: number;
  /** What `end` is the end of, for error messages. */
  scope: 'frame' | 'table' | 'array' | 'properties' = 'frame';
  /** The method being decoded, for the error's class-id/method-id; 0 outside a method. */
  classId = 0;
  methodId = 0;

  constructor(buf: Buffer, at = 0, end = buf.length) {
    this.buf = buf;
    this.at = at;
    this.end = end;
  }

  /** Points a reused cursor at `buf[at, end)` of a frame, inside method `classId`/`methodId` (0 outside one). */
  reset(buf: Buffer, at: number, end: number, classId = 0, methodId = 0): void {
    this.buf = buf;
    this.at = at;
    this.end = end;
    this.scope = 'frame';
    this.classId = classId;
    this.methodId = methodId;
  }
}

export const MAX_SHORTSTR_BYTES = 255;
/** The high 32 bits of 2^53 - 1, the largest integer a number holds exactly: longlongs above it are rejected, not rounded. */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;
const TWO_32 = 0x1_0000_0000;

export function syntaxError(c: Cursor, where: string, problem: string): AmqpSyntaxError {
  return new AmqpSyntaxError(`${where}: ${problem}`, ReplyCode.SYNTAX_ERROR, c.classId, c.methodId);
}

export function pastEnd(c: Cursor, where: string, what: string): AmqpSyntaxError {
  return syntaxError(c, where, `${what} runs past the end of the ${c.scope} (${c.end - c.at} bytes left)`);
}

export function skip(c: Cursor, bytes: number, where: string, what: string): void {
  if (c.end - c.at < bytes) throw pastEnd(c, where, what);
  c.at += bytes;
}

export function readOctet(c: Cursor, where: string): number {
  if (c.at >= c.end) throw pastEnd(c, where, 'octet');
  return c.buf[c.at++]!;
}

export function readShort(c: Cursor, where: string): number {
  if (c.end - c.at < 2) throw pastEnd(c, where, 'short');
  const buf = c.buf;
  const at = c.at;
  c.at = at + 2;
  return (buf[at]! << 8) | buf[at + 1]!;
}

export function readLong(c: Cursor, where: string): number {
  if (c.end - c.at < 4) throw pastEnd(c, where, 'long');
  const buf = c.buf;
  const at = c.at;
  c.at = at + 4;
  return buf[at]! * 0x100_0000 + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}

/** A longlong as a number; values past 2^53 - 1 are a syntax error, never silently rounded. */
export function readLonglong(c: Cursor, where: string): number {
  if (c.end - c.at < 8) throw pastEnd(c, where, 'longlong');
  const buf = c.buf;
  const at = c.at;
  const high = buf[at]! * 0x100_0000 + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
  if (high > MAX_SAFE_HIGH_WORD) throw syntaxError(c, where, `longlong ${buf.readBigUInt64BE(at)} is above 2^53 - 1`);
  c.at = at + 8;
  return high * TWO_32 + (buf[at + 4]! * 0x100_0000 + ((buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!));
}

/** A timestamp: seconds since the epoch as an unsigned 64-bit integer (spec §4.2.5.4). */
export function readTimestamp(c: Cursor, where: string): bigint {
  if (c.end - c.at < 8) throw pastEnd(c, where, 'timestamp');
  const value = c.buf.readBigUInt64BE(c.at);
  c.at += 8;
  return value;
}

/**
 * A shortstr as a string. The spec calls it UTF-8; bytes that are not valid UTF-8 decode to U+FFFD rather than fail,
 * as RabbitMQ does not check them either on content-bearing methods. Short ASCII strings, nearly all names and tags,
 * skip the UTF-8 decoder.
 */
export function readShortstr(c: Cursor, where: string): string {
  const start = skipShortstr(c, where);
  return decodeText(c.buf, start, c.at);
}

/** Checks a shortstr's length against what is left and moves past the whole shortstr; returns where its bytes start. */
export function skipShortstr(c: Cursor, where: string): number {
  if (c.at >= c.end) throw pastEnd(c, where, 'shortstr length');
  const length = c.buf[c.at]!;
  const start = c.at + 1;
  if (c.end - start < length) {
    c.at = start;
    throw pastEnd(c, where, `shortstr length ${length}`);
  }
  c.at = start + length;
  return start;
}

/** A longstr as a view of the payload (no copy): it keeps the payload's memory alive while it is referenced. */
export function readLongstr(c: Cursor, where: string): Buffer {
  const length = readLong(c, where);
  if (c.end - c.at < length) throw pastEnd(c, where, `longstr length ${length}`);
  const start = c.at;
  c.at = start + length;
  return c.buf.subarray(start, start + length);
}

export function skipLongstr(c: Cursor, where: string): void {
  const length = readLong(c, where);
  if (c.end - c.at < length) throw pastEnd(c, where, `longstr length ${length}`);
  c.at += length;
}

export function expectEnd(c: Cursor, where: string): void {
  if (c.at !== c.end) throw syntaxError(c, where, `${c.end - c.at} bytes after the last field`);
}

/**
 * Whether `buf[start, end)` holds exactly the bytes of `kept`: the check of the readers that reuse what they decoded
 * last while the next message repeats it (a loop, not Buffer.compare: these runs are a few dozen bytes, shorter than
 * the cost of the native call).
 */
export function sameBytes(buf: Uint8Array, start: number, end: number, kept: Uint8Array): boolean {
  if (end - start !== kept.length) return false;
  for (let i = 0; i < kept.length; i++) if (buf[start + i] !== kept[i]) return false;
  return true;
}

const ASCII_FAST_PATH_MAX = 48;

export function decodeText(buf: Buffer, start: number, end: number): string {
  if (end - start <= ASCII_FAST_PATH_MAX) {
    let i = start;
    while (i < end && buf[i]! < 0x80) i++;
    if (i === end) return buf.toString('latin1', start, end);
  }
  return buf.toString('utf8', start, end);
}

// ---- encoding ----

/** Bytes a shortstr takes on the wire (length octet included); throws when the text is over 255 UTF-8 bytes. */
export function shortstrSize(text: string, where: string): number {
  if (typeof text !== 'string') throw new TypeError(`${where}: expected a string, got ${text === null ? 'null' : typeof text}`);
  const bytes = utf8Length(text);
  if (bytes > MAX_SHORTSTR_BYTES) throw new RangeError(`${where}: shortstr of ${bytes} UTF-8 bytes is longer than ${MAX_SHORTSTR_BYTES}`);
  return 1 + bytes;
}

export function utf8Length(text: string): number {
  const length = text.length;
  if (length <= ASCII_FAST_PATH_MAX) {
    let i = 0;
    while (i < length && text.charCodeAt(i) < 0x80) i++;
    if (i === length) return length;
  }
  return Buffer.byteLength(text, 'utf8');
}

/** Throws unless `value` is an integer in [0, max]; encoders call it while sizing, before anything is written. */
export function checkUint(value: number, max: number, where: string): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= max)) {
    throw new RangeError(`${where}: ${typeof value === 'number' ? value : typeof value} is not an integer in [0, ${max}]`);
  }
}

export function checkTimestamp(value: bigint, where: string): void {
  if (typeof value !== 'bigint' || value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`${where}: timestamp ${String(value)} is not a bigint in [0, 2^64 - 1]`);
  }
}

export function checkBytes(value: Buffer, where: string): void {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${where}: expected a Buffer, got ${typeof value}`);
}

export function putOctet(buf: Buffer, at: number, value: number): number {
  buf[at] = value;
  return at + 1;
}

export function putShort(buf: Buffer, at: number, value: number): number {
  buf[at] = value >>> 8;
  buf[at + 1] = value;
  return at + 2;
}

export function putLong(buf: Buffer, at: number, value: number): number {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
  return at + 4;
}

/** `value` is a safe non-negative integer (checked while sizing). */
export function putLonglong(buf: Buffer, at: number, value: number): number {
  const high = Math.floor(value / TWO_32);
  putLong(buf, at, high);
  return putLong(buf, at + 4, value - high * TWO_32);
}

export function putTimestamp(buf: Buffer, at: number, value: bigint): number {
  buf.writeBigUInt64BE(value, at);
  return at + 8;
}

/** Writes a shortstr whose size `shortstrSize` already checked. */
export function putShortstr(buf: Buffer, at: number, text: string): number {
  const length = text.length;
  if (length <= ASCII_FAST_PATH_MAX) {
    let i = 0;
    for (; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) break;
      buf[at + 1 + i] = code;
    }
    if (i === length) {
      buf[at] = length;
      return at + 1 + length;
    }
  }
  const written = buf.write(text, at + 1, 'utf8');
  buf[at] = written;
  return at + 1 + written;
}

export function putLongstr(buf: Buffer, at: number, bytes: Buffer): number {
  at = putLong(buf, at, bytes.length);
  bytes.copy(buf, at);
  return at + bytes.length;
}
