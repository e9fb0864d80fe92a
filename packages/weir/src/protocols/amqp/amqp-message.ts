import { Attribute } from '../../broker/queue/message-attributes.js';
import type { DeadLetterCause, DeadLetterFormatter } from '../../broker/vhost/virtual-hosts.js';
import { decodeHeaders, encodeHeaders, locateHeaderValues, type HeaderValue, type MessageInput, type StoredMessage } from '../../storage/record-batch.js';
import { type BasicProperties, decodeProperties, encodeProperties, Field, type FieldTable, type FieldValue, fieldToJs, sameBytes, tableToJs } from './codec/index.js';

/**
 * How an AMQP message is kept as a Weir message (docs/design/amqp.md, "Messages"): the body as is, and headers with
 * the exchange, the routing key and the content header's property bytes exactly as published, so a delivery re-sends
 * them without decoding.
 */
export const StoredHeader = {
  exchange: 'amqp.exchange',
  routingKey: 'amqp.routing-key',
  properties: 'amqp.properties',
} as const;

export interface PublishedMessage {
  exchange: string;
  routingKey: string;
  rawProperties: Buffer;
  body: Buffer;
  /** Per-message TTL from `expiration` (ms), null when none. */
  ttlMs: number | null;
  /** Delay from `x-delay` on a delayed-message exchange (ms), null when none. */
  delayMs: number | null;
}

/** `expiration` is a string holding a non-negative integer of milliseconds (RabbitMQ's per-message TTL). */
export function parseExpiration(expiration: string | undefined): number | null | 'invalid' {
  if (expiration === undefined) return null;
  if (!/^\d{1,15}$/.test(expiration)) return 'invalid';
  return Number(expiration);
}

/** The Weir message stored in one destination queue; `priority` is already mapped onto Weir's 0–9. */
export function storedInput(message: PublishedMessage, priority: number): MessageInput {
  const headers: Record<string, HeaderValue> = {
    [StoredHeader.exchange]: message.exchange,
    [StoredHeader.routingKey]: message.routingKey,
    [StoredHeader.properties]: message.rawProperties,
  };
  // Weir's TTL must be at least 1 ms; RabbitMQ's 0 means "now or never", which a millisecond approximates.
  if (message.ttlMs !== null) headers[Attribute.ttlMs] = String(Math.max(1, message.ttlMs));
  if (priority > 0) headers[Attribute.priority] = String(priority);
  if (message.delayMs !== null) headers[Attribute.delayMs] = String(Math.max(0, message.delayMs));
  return { headers, body: message.body };
}

/**
 * Makes each publish's MessageInput (as `storedInput`), reusing the previous one's encoded headers while the next would
 * store the same bytes: a publisher's messages usually share exchange, routing key and properties (amqplib sends the
 * same property bytes for every publish with the same options), so a run of them encodes the headers once and makes no
 * header object per message. Messages with a TTL or a delay never share: the partition writer turns those attributes
 * into absolute times (prepareProduced), for which it needs them as plain headers.
 */
export class StoredInputs {
  private exchange = '';
  private routingKey = '';
  private priority = -1;
  private properties: Buffer | null = null;
  private encoded: Uint8Array | null = null;

  input(message: PublishedMessage, priority: number): MessageInput {
    if (message.ttlMs !== null || message.delayMs !== null) return storedInput(message, priority);
    if (
      this.encoded === null ||
      priority !== this.priority ||
      message.exchange !== this.exchange ||
      message.routingKey !== this.routingKey ||
      !message.rawProperties.equals(this.properties!)
    ) {
      this.encoded = encodeHeaders(storedInput(message, priority).headers!);
      this.exchange = message.exchange;
      this.routingKey = message.routingKey;
      this.priority = priority;
      // A copy of its own: the caller's bytes may be a view of something it reuses or that should not be kept alive.
      this.properties = Buffer.from(message.rawProperties);
    }
    return { encodedHeaders: this.encoded, body: message.body };
  }
}

/** What x-max-length-bytes counts of a stored message: its body, the AMQP body (properties are not counted). */
export function bodyBytes(input: MessageInput): number {
  return typeof input.body === 'string' ? Buffer.byteLength(input.body) : input.body.byteLength;
}

/** Shared between deliveries of alike messages: read only. */
export interface DeliveryParts {
  readonly exchange: string;
  readonly routingKey: string;
  readonly rawProperties: Buffer;
}

const EMPTY_PROPERTIES = encodeProperties({});
/** What deliveryParts looks up, as UTF-8, and where it finds them (reused: deliveries are encoded one at a time). */
const DELIVERY_HEADER_NAMES = [StoredHeader.exchange, StoredHeader.routingKey, StoredHeader.properties].map((name) => Buffer.from(name, 'utf8'));
const deliveryHeaderAt = new Int32Array(3 * DELIVERY_HEADER_NAMES.length);

/** Longest value RecentValue keeps: beyond it, comparing may cost more than decoding. */
const MAX_RECENT_BYTES = 512;

/**
 * The text or bytes last taken from a stored header, given again while the next message's bytes are the same. The
 * messages of a queue mostly share their exchange, routing key and properties, and comparing a few dozen bytes costs
 * less than a new string or Buffer view for every delivery.
 */
class RecentValue {
  private bytes = Buffer.alloc(0);
  private text = '';

  textOf(source: Buffer, at: number, end: number): string {
    if (end - at > MAX_RECENT_BYTES) return source.toString('utf8', at, end);
    if (!sameBytes(source, at, end, this.bytes)) {
      this.keep(source, at, end);
      this.text = source.toString('utf8', at, end);
    }
    return this.text;
  }

  /** The bytes as a Buffer of this object's own, so it may outlive `source`. */
  bytesOf(source: Buffer, at: number, end: number): Buffer {
    if (end - at > MAX_RECENT_BYTES) return source.subarray(at, end);
    if (!sameBytes(source, at, end, this.bytes)) this.keep(source, at, end);
    return this.bytes;
  }


  private keep(source: Buffer, at: number, end: number): void {
    this.bytes = Buffer.allocUnsafe(end - at);
    source.copy(this.bytes, 0, at, end);
  }
}

/**
 * The parts found for the last message, given again while the next message's stored headers are the same bytes: the
 * messages of a queue mostly are, and one comparison of the list costs less than finding its three values again.
 */
class RecentParts {
  private headers = Buffer.alloc(0);
  private parts: DeliveryParts | null = null;

  of(stored: Buffer): DeliveryParts | null {
    return this.parts !== null && sameBytes(stored, 0, stored.length, this.headers) ? this.parts : null;
  }

  keep(stored: Buffer, parts: DeliveryParts): void {
    if (stored.length > MAX_RECENT_BYTES) return;
    this.headers = Buffer.from(stored);
    this.parts = parts;
  }
}

const recentParts = new RecentParts();
const recentExchange = new RecentValue();
const recentRoutingKey = new RecentValue();
const recentProperties = new RecentValue();

/**
 * What a basic.deliver needs from a stored message. Messages that did not come through AMQP (a Weir producer on a
 * topic adopted as a queue) are delivered from the default exchange with their topic as routing key and their Weir
 * headers as AMQP headers.
 */
export function deliveryParts(message: StoredMessage, topic: string): DeliveryParts {
  const stored = message.headers;
  if (stored.length === 0) return { exchange: '', routingKey: topic, rawProperties: EMPTY_PROPERTIES };
  // The delivery hot path: the three headers found in place in one walk, not the whole list decoded into a record.
  const recent = recentParts.of(stored);
  if (recent !== null) return recent;
  const at = deliveryHeaderAt;
  locateHeaderValues(stored, DELIVERY_HEADER_NAMES, at);
  if (at[6]! >= 0) {
    const parts: DeliveryParts = {
      exchange: at[0]! < 0 ? '' : recentExchange.textOf(stored, at[0]!, at[1]!),
      routingKey: at[3]! < 0 ? '' : recentRoutingKey.textOf(stored, at[3]!, at[4]!),
      rawProperties: recentProperties.bytesOf(stored, at[6]!, at[7]!),
    };
    recentParts.keep(stored, parts);
    return parts;
  }
  const headers = decodeHeaders(message.headers);
  const table: FieldTable = new Map();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('weir.')) continue;
    table.set(name, typeof value === 'string' ? Field.string(value) : Field.bytes(value));
  }
  return { exchange: '', routingKey: topic, rawProperties: table.size === 0 ? EMPTY_PROPERTIES : encodeProperties({ headers: table }) };
}

function text(value: FieldValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  const plain = fieldToJs(value);
  return Buffer.isBuffer(plain) ? plain.toString('utf8') : String(plain);
}

/**
 * The dead-letter copy of a message, with RabbitMQ's x-death bookkeeping (https://www.rabbitmq.com/docs/dlx):
 * one x-death entry per (queue, reason), counted and moved to the front when it repeats; x-first-death-* set once,
 * x-last-death-* on every dead-lettering; `expiration` removed (kept as original-expiration) so the copy does not
 * expire again. A cycle of dead-lettering without any rejection is dropped, as RabbitMQ does.
 */
export const formatDeadLetter: DeadLetterFormatter = (message, context) => {
  const stored = message.headers;
  const raw = stored[StoredHeader.properties];
  const properties: BasicProperties = raw === undefined ? {} : decodeProperties(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
  const exchange = String(stored[StoredHeader.exchange] ?? '');
  const routingKey = String(stored[StoredHeader.routingKey] ?? context.queue);
  const headers: FieldTable = new Map(properties.headers ?? []);
  const deaths: FieldValue[] = headers.get('x-death')?.type === 'A' ? [...(headers.get('x-death')!.value as FieldValue[])] : [];
  const entryOf = (value: FieldValue) => (value.type === 'F' ? (value.value as FieldTable) : null);
  if (context.cause !== 'rejected') {
    const sawRejection = deaths.some((death) => text(entryOf(death)?.get('reason')) === 'rejected');
    const looped = deaths.some((death) => text(entryOf(death)?.get('queue')) === context.queue && text(entryOf(death)?.get('reason')) === context.cause);
    if (looped && !sawRejection) return null;
  }
  const index = deaths.findIndex((death) => text(entryOf(death)?.get('queue')) === context.queue && text(entryOf(death)?.get('reason')) === context.cause);
  const now = BigInt(Math.floor(Date.now() / 1000));
  let entry: FieldTable;
  if (index >= 0) {
    entry = new Map(entryOf(deaths[index]!)!);
    deaths.splice(index, 1);
    const count = entry.get('count');
    const previous = count === undefined ? 0 : Number(count.value as number | bigint);
    entry.set('count', Field.long(previous + 1));
    entry.set('time', Field.timestamp(now));
  } else {
    entry = new Map<string, FieldValue>([
      ['count', Field.long(1)],
      ['reason', Field.string(context.cause)],
      ['queue', Field.string(context.queue)],
      ['time', Field.timestamp(now)],
      ['exchange', Field.string(exchange)],
      ['routing-keys', Field.array([Field.string(routingKey)])],
    ]);
    if (properties.expiration !== undefined) entry.set('original-expiration', Field.string(properties.expiration));
  }
  deaths.unshift(Field.table(entry));
  headers.set('x-death', Field.array(deaths));
  if (!headers.has('x-first-death-reason')) {
    headers.set('x-first-death-reason', Field.string(context.cause));
    headers.set('x-first-death-queue', Field.string(context.queue));
    headers.set('x-first-death-exchange', Field.string(exchange));
  }
  headers.set('x-last-death-reason', Field.string(context.cause));
  headers.set('x-last-death-queue', Field.string(context.queue));
  headers.set('x-last-death-exchange', Field.string(exchange));
  const { expiration: _dropped, ...rest } = properties;
  const routingKeys = context.deadLetterRoutingKey !== null ? [context.deadLetterRoutingKey] : [routingKey];
  const rawProperties = encodeProperties({ ...rest, headers });
  const out: Record<string, HeaderValue> = {
    [StoredHeader.exchange]: context.deadLetterExchange,
    [StoredHeader.routingKey]: routingKeys[0]!,
    [StoredHeader.properties]: rawProperties,
  };
  const priority = stored[Attribute.priority];
  if (priority !== undefined) out[Attribute.priority] = priority;
  return {
    routingKeys,
    headers: plainHeaders(headers),
    input: { headers: out, body: message.body, timestamp: message.timestamp },
  };
};

/** Headers as the routing layer compares them (headers exchanges): plain JS values. */
export function plainHeaders(table: FieldTable | undefined): ReadonlyMap<string, unknown> | null {
  if (table === undefined || table.size === 0) return null;
  return new Map(Object.entries(tableToJs(table)));
}

export type { DeadLetterCause };
