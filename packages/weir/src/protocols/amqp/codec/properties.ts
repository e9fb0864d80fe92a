import { AmqpSyntaxError, ReplyCode } from './errors.js';
import { putTable, readTableShared, tableSize, type FieldTable } from './field-table.js';
import { BASIC_CLASS_ID } from './spec.js';
import {
  checkBytes,
  checkTimestamp,
  checkUint,
  Cursor,
  expectEnd,
  putLonglong,
  putOctet,
  putShort,
  putShortstr,
  putTimestamp,
  readLonglong,
  readOctet,
  readShort,
  readShortstr,
  readTimestamp,
  sameBytes,
  shortstrSize,
  syntaxError,
} from './wire.js';

/**
 * Content headers (spec §4.2.6.1) and the basic class's properties, the only content class left in 0-9-1.
 *
 * Header frame payload: `[class-id:short][weight:short = 0][body-size:longlong][property-flags][property-list]`.
 * Property flags are 16-bit words; bit 15 of the first word is the first property, a set bit 0 means another flags
 * word follows. Properties whose flag is clear are absent from the list; the present ones follow in flag order.
 *
 * The broker keeps `rawProperties` (flags and list, exactly as received) with the message and sends them back out
 * unchanged with `encodeContentHeaderRaw`, so a message's properties are decoded once, to validate and read them,
 * and never re-encoded.
 */

export interface BasicProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: FieldTable;
  /** 1 non-persistent, 2 persistent. */
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in milliseconds, as a decimal string (RabbitMQ's interpretation). */
  expiration?: string;
  messageId?: string;
  /** Seconds since the epoch. */
  timestamp?: bigint;
  type?: string;
  userId?: string;
  appId?: string;
  clusterId?: string;
}

export interface ContentHeader {
  classId: number;
  bodySize: number;
  /** Decoded from `rawProperties`; absent properties are `undefined`. */
  properties: BasicProperties;
  /** Property flags and list as received: a view of the frame payload (copy it to keep it beyond the frame). */
  rawProperties: Buffer;
}

/** Class id, weight and body size in front of the properties. */
export const CONTENT_HEADER_PREFIX_SIZE = 12;

// Flag bits of the first (and for basic, only) property-flags word, in spec order.
const CONTENT_TYPE = 0x8000;
const CONTENT_ENCODING = 0x4000;
const HEADERS = 0x2000;
const DELIVERY_MODE = 0x1000;
const PRIORITY = 0x0800;
const CORRELATION_ID = 0x0400;
const REPLY_TO = 0x0200;
const EXPIRATION = 0x0100;
const MESSAGE_ID = 0x0080;
const TIMESTAMP = 0x0040;
const TYPE = 0x0020;
const USER_ID = 0x0010;
const APP_ID = 0x0008;
const CLUSTER_ID = 0x0004;
/** The flag a 15th basic property would have: there is none, so a set bit cannot be decoded. */
const NO_PROPERTY = 0x0002;
const CONTINUATION = 0x0001;

/**
 * The properties in a header's property-flags/property-list bytes. Every property is a key of the result (undefined
 * when absent), so all decoded property objects share one shape.
 */
export function decodeProperties(raw: Buffer): BasicProperties {
  const c = new Cursor(raw);
  c.scope = 'properties';
  c.classId = BASIC_CLASS_ID;
  return readProperties(c);
}

function readProperties(c: Cursor): BasicProperties {
  const flags = readShort(c, 'basic properties: property flags');
  if ((flags & NO_PROPERTY) !== 0) throw syntaxError(c, 'basic properties', 'property flag bit 1 is set, but the basic class has only 14 properties');
  if ((flags & CONTINUATION) !== 0) {
    // Further flag words are allowed by the format, but every property they could flag is beyond the basic class's 14.
    let more = CONTINUATION;
    while ((more & CONTINUATION) !== 0) {
      more = readShort(c, 'basic properties: continued property flags');
      if ((more & ~CONTINUATION) !== 0) throw syntaxError(c, 'basic properties', `continued property flags 0x${more.toString(16)} name properties the basic class does not have`);
    }
  }
  const properties: BasicProperties = {
    contentType: (flags & CONTENT_TYPE) !== 0 ? readShortstr(c, 'basic properties content-type') : undefined,
    contentEncoding: (flags & CONTENT_ENCODING) !== 0 ? readShortstr(c, 'basic properties content-encoding') : undefined,
    headers: (flags & HEADERS) !== 0 ? readTableShared(c, 'basic properties headers') : undefined,
    deliveryMode: (flags & DELIVERY_MODE) !== 0 ? readOctet(c, 'basic properties delivery-mode') : undefined,
    priority: (flags & PRIORITY) !== 0 ? readOctet(c, 'basic properties priority') : undefined,
    correlationId: (flags & CORRELATION_ID) !== 0 ? readShortstr(c, 'basic properties correlation-id') : undefined,
    replyTo: (flags & REPLY_TO) !== 0 ? readShortstr(c, 'basic properties reply-to') : undefined,
    expiration: (flags & EXPIRATION) !== 0 ? readShortstr(c, 'basic properties expiration') : undefined,
    messageId: (flags & MESSAGE_ID) !== 0 ? readShortstr(c, 'basic properties message-id') : undefined,
    timestamp: (flags & TIMESTAMP) !== 0 ? readTimestamp(c, 'basic properties timestamp') : undefined,
    type: (flags & TYPE) !== 0 ? readShortstr(c, 'basic properties type') : undefined,
    userId: (flags & USER_ID) !== 0 ? readShortstr(c, 'basic properties user-id') : undefined,
    appId: (flags & APP_ID) !== 0 ? readShortstr(c, 'basic properties app-id') : undefined,
    clusterId: (flags & CLUSTER_ID) !== 0 ? readShortstr(c, 'basic properties cluster-id') : undefined,
  };
  expectEnd(c, 'basic properties');
  return properties;
}

/** Bytes the property flags and list take; validates every property on the way. */
export function propertiesSize(p: BasicProperties): number {
  let size = 2;
  if (p.contentType !== undefined) size += shortstrSize(p.contentType, 'basic properties content-type');
  if (p.contentEncoding !== undefined) size += shortstrSize(p.contentEncoding, 'basic properties content-encoding');
  if (p.headers !== undefined) size += tableSize(p.headers, 'basic properties headers');
  if (p.deliveryMode !== undefined) {
    checkUint(p.deliveryMode, 0xff, 'basic properties delivery-mode');
    size += 1;
  }
  if (p.priority !== undefined) {
    checkUint(p.priority, 0xff, 'basic properties priority');
    size += 1;
  }
  if (p.correlationId !== undefined) size += shortstrSize(p.correlationId, 'basic properties correlation-id');
  if (p.replyTo !== undefined) size += shortstrSize(p.replyTo, 'basic properties reply-to');
  if (p.expiration !== undefined) size += shortstrSize(p.expiration, 'basic properties expiration');
  if (p.messageId !== undefined) size += shortstrSize(p.messageId, 'basic properties message-id');
  if (p.timestamp !== undefined) {
    checkTimestamp(p.timestamp, 'basic properties timestamp');
    size += 8;
  }
  if (p.type !== undefined) size += shortstrSize(p.type, 'basic properties type');
  if (p.userId !== undefined) size += shortstrSize(p.userId, 'basic properties user-id');
  if (p.appId !== undefined) size += shortstrSize(p.appId, 'basic properties app-id');
  if (p.clusterId !== undefined) size += shortstrSize(p.clusterId, 'basic properties cluster-id');
  return size;
}

/** Writes properties `propertiesSize` has validated. */
export function putProperties(buf: Buffer, at: number, p: BasicProperties): number {
  const flagsAt = at;
  let flags = 0;
  at += 2;
  if (p.contentType !== undefined) {
    flags |= CONTENT_TYPE;
    at = putShortstr(buf, at, p.contentType);
  }
  if (p.contentEncoding !== undefined) {
    flags |= CONTENT_ENCODING;
    at = putShortstr(buf, at, p.contentEncoding);
  }
  if (p.headers !== undefined) {
    flags |= HEADERS;
    at = putTable(buf, at, p.headers);
  }
  if (p.deliveryMode !== undefined) {
    flags |= DELIVERY_MODE;
    at = putOctet(buf, at, p.deliveryMode);
  }
  if (p.priority !== undefined) {
    flags |= PRIORITY;
    at = putOctet(buf, at, p.priority);
  }
  if (p.correlationId !== undefined) {
    flags |= CORRELATION_ID;
    at = putShortstr(buf, at, p.correlationId);
  }
  if (p.replyTo !== undefined) {
    flags |= REPLY_TO;
    at = putShortstr(buf, at, p.replyTo);
  }
  if (p.expiration !== undefined) {
    flags |= EXPIRATION;
    at = putShortstr(buf, at, p.expiration);
  }
  if (p.messageId !== undefined) {
    flags |= MESSAGE_ID;
    at = putShortstr(buf, at, p.messageId);
  }
  if (p.timestamp !== undefined) {
    flags |= TIMESTAMP;
    at = putTimestamp(buf, at, p.timestamp);
  }
  if (p.type !== undefined) {
    flags |= TYPE;
    at = putShortstr(buf, at, p.type);
  }
  if (p.userId !== undefined) {
    flags |= USER_ID;
    at = putShortstr(buf, at, p.userId);
  }
  if (p.appId !== undefined) {
    flags |= APP_ID;
    at = putShortstr(buf, at, p.appId);
  }
  if (p.clusterId !== undefined) {
    flags |= CLUSTER_ID;
    at = putShortstr(buf, at, p.clusterId);
  }
  putShort(buf, flagsAt, flags);
  return at;
}

/** Property flags and list, as they follow the body size in a content header. */
export function encodeProperties(p: BasicProperties): Buffer {
  const buf = Buffer.allocUnsafe(propertiesSize(p));
  putProperties(buf, 0, p);
  return buf;
}

/**
 * Decodes a content header frame's payload. Only the basic class carries content in 0-9-1, so another class id is
 * answered as RabbitMQ does for a header of the wrong class: 505 UNEXPECTED_FRAME (rabbit_command_assembler,
 * "expected content header for class 60, got one for class N instead").
 */
export function decodeContentHeader(payload: Buffer): ContentHeader {
  const c = new Cursor(payload);
  const bodySize = readHeaderPrefix(c);
  const rawProperties = payload.subarray(c.at);
  c.scope = 'properties';
  return { classId: BASIC_CLASS_ID, bodySize, properties: readProperties(c), rawProperties };
}

/** Checks class-id (basic) and weight and returns the body size, leaving `c` at the property flags. */
function readHeaderPrefix(c: Cursor): number {
  const classId = readShort(c, 'content header class-id');
  if (classId !== BASIC_CLASS_ID) {
    throw new AmqpSyntaxError(`content header: class ${classId} carries no content (only basic, class ${BASIC_CLASS_ID}, does)`, ReplyCode.UNEXPECTED_FRAME, classId);
  }
  c.classId = classId;
  // "The weight field is unused and must be zero" (spec §4.2.6.1).
  const weight = readShort(c, 'content header weight');
  if (weight !== 0) throw syntaxError(c, 'content header', `weight is ${weight}, must be 0`);
  return readLonglong(c, 'content header body-size');
}

const EMPTY_PAYLOAD = Buffer.alloc(0);

/** Properties longer than this are decoded afresh each time rather than kept for comparison. */
const MAX_REPEATED_PROPERTIES = 512;

/**
 * `decodeContentHeader` for the headers of one channel, in order: properties that are the same bytes as the previous
 * header's are not decoded again, and the header shares that header's `properties` and `rawProperties` (so callers
 * must treat both as read only). A publisher's messages mostly carry the same properties (amqplib sends the same
 * bytes for every publish with the same options). `rawProperties` is always a buffer of its own, never a view of the
 * frame.
 */
export class ContentHeaderReader {
  private raw: Buffer | null = null;
  private properties: BasicProperties | null = null;
  private readonly cursor = new Cursor(EMPTY_PAYLOAD);

  /** The header frame whose payload is `buf[start, end)`. */
  read(buf: Buffer, start = 0, end = buf.length): ContentHeader {
    const c = this.cursor;
    c.reset(buf, start, end);
    const bodySize = readHeaderPrefix(c);
    const at = c.at;
    c.buf = EMPTY_PAYLOAD;
    if (this.raw !== null && sameBytes(buf, at, end, this.raw)) {
      return { classId: BASIC_CLASS_ID, bodySize, properties: this.properties!, rawProperties: this.raw };
    }
    // Decoded from the copy, so the byte strings inside a headers table (views, like every longstr) keep the copy
    // alive and not the frame's socket read, which a kept header would otherwise hold on to.
    const rawProperties = Buffer.allocUnsafe(end - at);
    buf.copy(rawProperties, 0, at, end);
    c.reset(rawProperties, 0, rawProperties.length, BASIC_CLASS_ID);
    c.scope = 'properties';
    const properties = readProperties(c);
    c.buf = EMPTY_PAYLOAD;
    if (rawProperties.length <= MAX_REPEATED_PROPERTIES) {
      this.raw = rawProperties;
      this.properties = properties;
    }
    return { classId: BASIC_CLASS_ID, bodySize, properties, rawProperties };
  }
}


/** Writes class-id, weight and body-size, which `checkHeaderPrefix` has validated. */
export function putContentHeaderPrefix(buf: Buffer, at: number, classId: number, bodySize: number): number {
  putShort(buf, at, classId);
  putShort(buf, at + 2, 0);
  return putLonglong(buf, at + 4, bodySize);
}

export function checkHeaderPrefix(classId: number, bodySize: number): void {
  checkUint(classId, 0xffff, 'content header class-id');
  checkUint(bodySize, Number.MAX_SAFE_INTEGER, 'content header body-size');
}

/** A content header frame's payload. */
export function encodeContentHeader(classId: number, bodySize: number, properties: BasicProperties): Buffer {
  checkHeaderPrefix(classId, bodySize);
  const buf = Buffer.allocUnsafe(CONTENT_HEADER_PREFIX_SIZE + propertiesSize(properties));
  putContentHeaderPrefix(buf, 0, classId, bodySize);
  putProperties(buf, CONTENT_HEADER_PREFIX_SIZE, properties);
  return buf;
}

/** A content header frame's payload around properties already encoded (e.g. `rawProperties` of a stored message). */
export function encodeContentHeaderRaw(classId: number, bodySize: number, rawProperties: Buffer): Buffer {
  checkHeaderPrefix(classId, bodySize);
  checkBytes(rawProperties, 'content header properties');
  const buf = Buffer.allocUnsafe(CONTENT_HEADER_PREFIX_SIZE + rawProperties.length);
  putContentHeaderPrefix(buf, 0, classId, bodySize);
  rawProperties.copy(buf, CONTENT_HEADER_PREFIX_SIZE);
  return buf;
}
