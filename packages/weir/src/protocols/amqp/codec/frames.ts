import { AmqpFrameError, ReplyCode } from './errors.js';
import { methodPayloadSize, putMethodPayload, type AmqpMethod } from './methods.generated.js';
import { checkHeaderPrefix, CONTENT_HEADER_PREFIX_SIZE, putContentHeaderPrefix } from './properties.js';
import { BASIC_CLASS_ID, methodSpecByName } from './spec.js';
import { checkBytes, checkUint, putLong, putLonglong, putOctet, putShort, putShortstr, shortstrSize } from './wire.js';

/**
 * Framing (spec §4.2.3): `[type:octet][channel:short][size:long][payload: size octets][frame-end:octet = 0xCE]`.
 */

export const FrameType = { Method: 1, Header: 2, Body: 3, Heartbeat: 8 } as const;
export const FRAME_END = 0xce;
/** Type, channel and size, in front of the payload. */
export const FRAME_HEADER_SIZE = 7;
/** Header plus frame-end: what a frame adds to its payload. */
export const FRAME_OVERHEAD = 8;
/** Smallest frame-max a peer may negotiate, and the largest frame it must accept before tuning (spec §4.2.3). */
export const FRAME_MIN_SIZE = 4096;
/** "AMQP" then protocol id 0, major 0, minor 9, revision 1 (spec §4.2.2). */
export const PROTOCOL_HEADER = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');

export interface Frame {
  type: number;
  channel: number;
  /** A view of the pushed chunk when the frame arrived inside one chunk, else a buffer of its own. */
  payload: Buffer;
}

export type ProtocolHeaderResult = { ok: true } | { ok: false; reason: string };

/**
 * Checks the 8 bytes a client sends first. On `ok: false` the server writes PROTOCOL_HEADER and closes the socket
 * (spec §4.2.2: "If the server does not recognise the header or version, it MUST write a valid protocol header to
 * the socket and then close the socket connection"). RabbitMQ also accepts the 0-9 header `AMQP 1 1 0 9`; this does
 * not, as nothing current sends it.
 */
export function parseProtocolHeader(buf: Buffer): ProtocolHeaderResult {
  if (buf.length < PROTOCOL_HEADER.length) throw new RangeError(`parseProtocolHeader needs the first ${PROTOCOL_HEADER.length} bytes, got ${buf.length}`);
  if (buf.compare(PROTOCOL_HEADER, 0, 8, 0, 8) === 0) return { ok: true };
  if (buf.toString('latin1', 0, 4) === 'AMQP') return { ok: false, reason: `protocol header asks for AMQP ${[...buf.subarray(4, 8)].join('-')}; only 0-0-9-1 is spoken` };
  return { ok: false, reason: `not an AMQP protocol header (first bytes ${buf.subarray(0, 8).toString('hex')})` };
}

function isKnownFrameType(type: number): boolean {
  return type === FrameType.Method || type === FrameType.Header || type === FrameType.Body || type === FrameType.Heartbeat;
}

/**
 * Cuts a byte stream into frames. After each `push(chunk)`, call `next()` until it returns null.
 *
 * A frame that lies inside one chunk is returned as a view of it (no copy); only a frame that spans chunks is copied,
 * once, into a buffer of exactly its size, allocated when its header has been read and its size checked. So the parser
 * itself never holds more than `maxFrameSize + 8` bytes (bufferedBytes).
 *
 * Errors are AmqpFrameError with 501 FRAME_ERROR, the code RabbitMQ's reader uses for all of them: a payload over
 * `maxFrameSize`, a frame type other than 1/2/3/8 (rabbit_reader answers analyze_frame's `error` with
 * frame_error(unknown_frame, …)), a heartbeat with a payload, a missing frame-end (spec §4.2.3). After one, the next
 * frame boundary is unknown: the parser drops its input and every later `next()` throws the same error.
 *
 * Channel rules (heartbeats on channel 0, content frames off it) and frame order belong to the connection, not here.
 */
export class FrameParser {
  private limit: number;
  private chunks: Buffer[] = [];
  private head = 0;
  /** Bytes of `chunks[head]` already consumed. */
  private pos = 0;
  /** Header bytes of a frame whose header spans chunks. */
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  private headerFilled = 0;
  /** Payload and frame-end of a frame that spans chunks, being filled. */
  private partial: Buffer | null = null;
  private partialFilled = 0;
  private type = 0;
  private channel = 0;
  /** The payload of the frame `advance` last found. */
  payloadBuf: Buffer = EMPTY;
  payloadStart = 0;
  payloadEnd = 0;
  private failure: AmqpFrameError | null = null;

  constructor(options: { maxFrameSize: number }) {
    this.limit = checkFrameLimit(options.maxFrameSize);
  }

  /**
   * The largest payload accepted; 0 means no limit (up to the 32-bit size field), which a server should never set.
   * Like RabbitMQ, this accepts payloads up to frame-max itself rather than frame-max - 8, because clients that forget
   * the 8 bytes of framing are common (rabbit_reader's FRAME_SIZE_FUDGE). Changing it applies from the next header.
   */
  get maxFrameSize(): number {
    return this.limit;
  }

  set maxFrameSize(value: number) {
    this.limit = checkFrameLimit(value);
  }

  /** Bytes the parser holds of a frame that spans chunks (not counting pushed chunks it has not reached yet). */
  get bufferedBytes(): number {
    return this.headerFilled + (this.partial === null ? 0 : this.partial.length);
  }

  push(chunk: Buffer): void {
    if (this.failure !== null || chunk.length === 0) return;
    this.chunks.push(chunk);
  }

  /** The next frame, or null until more bytes are pushed. Throws AmqpFrameError (501) on a malformed frame. */
  next(): Frame | null {
    if (!this.advance()) return null;
    return { type: this.type, channel: this.channel, payload: this.payloadBuf.subarray(this.payloadStart, this.payloadEnd) };
  }

  /**
   * `next` without an object or a view per frame, for the connection's read loop: true when a frame is ready, whose
   * type, channel and payload (`payloadBuf[payloadStart, payloadEnd)`) the getters give until the next call. The
   * payload's bytes stay as they are after that (a pushed chunk, or a buffer of the frame's own).
   */
  advance(): boolean {
    if (this.failure !== null) throw this.failure;
    for (;;) {
      if (this.partial !== null) return this.fillPartial();
      const chunk = this.chunks[this.head];
      if (chunk === undefined) return false;
      let size: number;
      if (this.headerFilled > 0) {
        const copied = this.copyInto(this.header, this.headerFilled, FRAME_HEADER_SIZE - this.headerFilled);
        this.headerFilled += copied;
        if (this.headerFilled < FRAME_HEADER_SIZE) continue;
        this.headerFilled = 0;
        size = this.readHeader(this.header, 0);
      } else if (chunk.length - this.pos >= FRAME_HEADER_SIZE) {
        size = this.readHeader(chunk, this.pos);
        this.consume(FRAME_HEADER_SIZE);
      } else {
        this.headerFilled = this.copyInto(this.header, 0, chunk.length - this.pos);
        continue;
      }
      const current = this.chunks[this.head];
      if (current !== undefined && current.length - this.pos > size) {
        const start = this.pos;
        this.consume(size + 1);
        return this.finish(current, start, size);
      }
      this.partial = Buffer.allocUnsafe(size + 1);
      this.partialFilled = 0;
    }
  }

  /** Validates a frame header at `at` and keeps its type and channel; returns the payload size. */
  private readHeader(buf: Buffer, at: number): number {
    const type = buf[at]!;
    const channel = (buf[at + 1]! << 8) | buf[at + 2]!;
    const size = buf.readUInt32BE(at + 3);
    if (!isKnownFrameType(type)) this.fail(`unknown frame type ${type} on channel ${channel}`);
    if (this.limit !== 0 && size > this.limit) this.fail(`frame of ${size} payload bytes on channel ${channel} is over frame-max ${this.limit}`);
    if (type === FrameType.Heartbeat && size !== 0) this.fail(`heartbeat frame with ${size} payload bytes (must be empty)`);
    this.type = type;
    this.channel = channel;
    return size;
  }

  get frameType(): number {
    return this.type;
  }

  get frameChannel(): number {
    return this.channel;
  }

  private fillPartial(): boolean {
    const partial = this.partial!;
    this.partialFilled += this.copyInto(partial, this.partialFilled, partial.length - this.partialFilled);
    if (this.partialFilled < partial.length) return false;
    this.partial = null;
    return this.finish(partial, 0, partial.length - 1);
  }

  /** Makes `buf[start, start + size)` the current payload, once its frame-end octet checks out. */
  private finish(buf: Buffer, start: number, size: number): true {
    const end = buf[start + size]!;
    if (end !== FRAME_END) this.fail(`frame-end octet is 0x${end.toString(16).padStart(2, '0')}, not 0xce (type ${this.type}, channel ${this.channel}, ${size} payload bytes)`);
    this.payloadBuf = buf;
    this.payloadStart = start;
    this.payloadEnd = start + size;
    return true;
  }

  /** Copies up to `wanted` unread bytes into `target` at `offset`, across chunks; returns how many it copied. */
  private copyInto(target: Buffer, offset: number, wanted: number): number {
    let copied = 0;
    while (copied < wanted) {
      const chunk = this.chunks[this.head];
      if (chunk === undefined) break;
      const n = Math.min(wanted - copied, chunk.length - this.pos);
      chunk.copy(target, offset + copied, this.pos, this.pos + n);
      copied += n;
      this.consume(n);
    }
    return copied;
  }

  /** Advances past `n` bytes of the current chunk (never more than it has left). */
  private consume(n: number): void {
    this.pos += n;
    if (this.pos === this.chunks[this.head]!.length) {
      this.chunks[this.head] = EMPTY;
      this.head++;
      this.pos = 0;
      if (this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      }
    }
  }

  private fail(message: string): never {
    this.failure = new AmqpFrameError(message, ReplyCode.FRAME_ERROR);
    this.chunks = [];
    this.head = 0;
    this.pos = 0;
    this.partial = null;
    this.headerFilled = 0;
    throw this.failure;
  }
}

const EMPTY = Buffer.alloc(0);

function checkFrameLimit(value: number): number {
  checkUint(value, 0xffff_ffff, 'FrameParser maxFrameSize');
  return value;
}

// ---- encoding ----

function putFrameHeader(buf: Buffer, at: number, type: number, channel: number, size: number): number {
  buf[at] = type;
  putShort(buf, at + 1, channel);
  return putLong(buf, at + 3, size);
}

function checkChannel(channel: number): void {
  checkUint(channel, 0xffff, 'frame channel');
}

/** Largest body slice per body frame: frame-max less the 8 bytes of framing; 0 (no limit) still fits the size field. */
function bodyChunkSize(frameMax: number): number {
  if (frameMax === 0) return 0xffff_ffff;
  if (!(Number.isInteger(frameMax) && frameMax > FRAME_OVERHEAD && frameMax <= 0xffff_ffff)) {
    throw new RangeError(`frameMax ${frameMax} must be 0 (no limit) or an integer above ${FRAME_OVERHEAD}`);
  }
  return frameMax - FRAME_OVERHEAD;
}

function checkFits(frameSize: number, frameMax: number, what: string): void {
  if (frameMax !== 0 && frameSize > frameMax) throw new RangeError(`${what} frame of ${frameSize} bytes is over frameMax ${frameMax}`);
}

export function encodeFrame(type: number, channel: number, payload: Buffer): Buffer {
  checkUint(type, 0xff, 'frame type');
  checkChannel(channel);
  checkBytes(payload, 'frame payload');
  const buf = Buffer.allocUnsafe(payload.length + FRAME_OVERHEAD);
  putFrameHeader(buf, 0, type, channel, payload.length);
  payload.copy(buf, FRAME_HEADER_SIZE);
  buf[buf.length - 1] = FRAME_END;
  return buf;
}

export function encodeMethodFrame(channel: number, method: AmqpMethod): Buffer {
  checkChannel(channel);
  const size = methodPayloadSize(method);
  const buf = Buffer.allocUnsafe(size + FRAME_OVERHEAD);
  putFrameHeader(buf, 0, FrameType.Method, channel, size);
  putMethodPayload(buf, FRAME_HEADER_SIZE, method);
  buf[buf.length - 1] = FRAME_END;
  return buf;
}

const HEARTBEAT = Buffer.from([FrameType.Heartbeat, 0, 0, 0, 0, 0, 0, FRAME_END]);

export function heartbeatFrame(): Buffer {
  return Buffer.from(HEARTBEAT);
}

/** Bytes a content header frame and its body frames take. */
function contentSize(rawProperties: Buffer, body: Buffer, chunk: number): number {
  const bodyFrames = Math.ceil(body.length / chunk);
  return FRAME_OVERHEAD + CONTENT_HEADER_PREFIX_SIZE + rawProperties.length + body.length + bodyFrames * FRAME_OVERHEAD;
}

/**
 * Writes a content header frame and body frames at `at`; returns the offset after them. An empty body gets no body
 * frame, as RabbitMQ sends it. Each frame's offset is pushed to `starts` when given.
 */
function putContent(buf: Buffer, at: number, channel: number, classId: number, rawProperties: Buffer, body: Buffer, chunk: number, starts?: number[]): number {
  starts?.push(at);
  at = putFrameHeader(buf, at, FrameType.Header, channel, CONTENT_HEADER_PREFIX_SIZE + rawProperties.length);
  at = putContentHeaderPrefix(buf, at, classId, body.length);
  at += rawProperties.copy(buf, at);
  buf[at++] = FRAME_END;
  for (let offset = 0; offset < body.length; offset += chunk) {
    const n = Math.min(chunk, body.length - offset);
    starts?.push(at);
    at = putFrameHeader(buf, at, FrameType.Body, channel, n);
    at += body.copy(buf, at, offset, offset + n);
    buf[at++] = FRAME_END;
  }
  return at;
}

function checkContent(channel: number, classId: number, rawProperties: Buffer, body: Buffer, frameMax: number): number {
  checkChannel(channel);
  checkBytes(rawProperties, 'content header properties');
  checkBytes(body, 'content body');
  checkHeaderPrefix(classId, body.length);
  const chunk = bodyChunkSize(frameMax);
  // The spec has no way to split a header: properties that do not fit one frame cannot be sent on this connection.
  checkFits(FRAME_OVERHEAD + CONTENT_HEADER_PREFIX_SIZE + rawProperties.length, frameMax, 'content header');
  return chunk;
}

/**
 * The content header frame and body frames for `body`, each frame at most `frameMax` bytes including its 8 bytes of
 * framing (0: no limit). One allocation; the frames are consecutive views of it.
 */
export function encodeContentFrames(channel: number, classId: number, rawProperties: Buffer, body: Buffer, frameMax: number): Buffer[] {
  const chunk = checkContent(channel, classId, rawProperties, body, frameMax);
  const buf = Buffer.allocUnsafe(contentSize(rawProperties, body, chunk));
  const starts: number[] = [];
  putContent(buf, 0, channel, classId, rawProperties, body, chunk, starts);
  return starts.map((start, index) => buf.subarray(start, starts[index + 1] ?? buf.length));
}

/**
 * A content-bearing method (basic.get-ok, basic.return, …) with its header and body frames, in one buffer. The
 * content's class is the method's.
 */
export function encodeMethodWithContent(channel: number, method: AmqpMethod, rawProperties: Buffer, body: Buffer, frameMax: number): Buffer {
  const spec = methodSpecByName(method.method);
  if (spec === undefined || !spec.content) throw new TypeError(`${method.method} carries no content`);
  const chunk = checkContent(channel, spec.classId, rawProperties, body, frameMax);
  const methodSize = methodPayloadSize(method);
  checkFits(methodSize + FRAME_OVERHEAD, frameMax, method.method);
  const buf = Buffer.allocUnsafe(methodSize + FRAME_OVERHEAD + contentSize(rawProperties, body, chunk));
  let at = putFrameHeader(buf, 0, FrameType.Method, channel, methodSize);
  at = putMethodPayload(buf, at, method);
  buf[at++] = FRAME_END;
  putContent(buf, at, channel, spec.classId, rawProperties, body, chunk);
  return buf;
}

const BASIC_DELIVER_KEY = 0x003c_003c;

/**
 * basic.deliver with its content header and body frames written into one buffer: the broker's per-message hot path,
 * one allocation and one socket write per delivery. `rawProperties` are the stored property flags and list.
 */
export function encodeBasicDeliver(
  channel: number,
  consumerTag: string,
  deliveryTag: number,
  redelivered: boolean,
  exchange: string,
  routingKey: string,
  rawProperties: Buffer,
  body: Buffer,
  frameMax: number,
): Buffer {
  const buf = Buffer.allocUnsafe(basicDeliverSize(channel, consumerTag, deliveryTag, exchange, routingKey, rawProperties, body, frameMax));
  putBasicDeliver(buf, 0, channel, consumerTag, deliveryTag, redelivered, exchange, routingKey, rawProperties, body, frameMax);
  return buf;
}

/** [class, method][consumer-tag][delivery-tag][redelivered][exchange][routing-key] */
function deliverMethodSize(consumerTag: string, exchange: string, routingKey: string): number {
  return 4 + shortstrSize(consumerTag, 'basic.deliver consumer-tag') + 8 + 1 + shortstrSize(exchange, 'basic.deliver exchange') + shortstrSize(routingKey, 'basic.deliver routing-key');
}

/**
 * Bytes encodeBasicDeliver would make of these arguments, checking them as it does (throws the same errors). With
 * putBasicDeliver, several deliveries go into one buffer: one allocation and one socket write for a whole dispatch.
 */
export function basicDeliverSize(
  channel: number,
  consumerTag: string,
  deliveryTag: number,
  exchange: string,
  routingKey: string,
  rawProperties: Buffer,
  body: Buffer,
  frameMax: number,
): number {
  const chunk = checkContent(channel, BASIC_CLASS_ID, rawProperties, body, frameMax);
  checkUint(deliveryTag, Number.MAX_SAFE_INTEGER, 'basic.deliver delivery-tag');
  const methodSize = deliverMethodSize(consumerTag, exchange, routingKey);
  checkFits(methodSize + FRAME_OVERHEAD, frameMax, 'basic.deliver');
  return methodSize + FRAME_OVERHEAD + contentSize(rawProperties, body, chunk);
}

/** Writes a delivery that basicDeliverSize measured (with the same arguments) at `at`; returns the offset after it. */
export function putBasicDeliver(
  buf: Buffer,
  at: number,
  channel: number,
  consumerTag: string,
  deliveryTag: number,
  redelivered: boolean,
  exchange: string,
  routingKey: string,
  rawProperties: Buffer,
  body: Buffer,
  frameMax: number,
): number {
  // The method's size is known once it is written (measuring it again would encode the strings twice).
  const frameAt = at;
  at = putLong(buf, at + FRAME_HEADER_SIZE, BASIC_DELIVER_KEY);
  at = putShortstr(buf, at, consumerTag);
  at = putLonglong(buf, at, deliveryTag);
  at = putOctet(buf, at, redelivered ? 1 : 0);
  at = putShortstr(buf, at, exchange);
  at = putShortstr(buf, at, routingKey);
  putFrameHeader(buf, frameAt, FrameType.Method, channel, at - frameAt - FRAME_HEADER_SIZE);
  buf[at++] = FRAME_END;
  return putContent(buf, at, channel, BASIC_CLASS_ID, rawProperties, body, bodyChunkSize(frameMax));
}
