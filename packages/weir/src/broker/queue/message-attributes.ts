import type { Headers, HeaderValue, MessageInput } from '../../storage/record-batch.js';
import { invalidArgument } from '../errors.js';

/**
 * Per-message queue attributes travel as reserved `weir.` headers (docs/design/work-queues.md, "Message
 * attributes"). The client sends relative values; the broker stores absolute times, so a message's due and expiry
 * times do not depend on when it is read.
 */
export const Attribute = {
  delayMs: 'weir.delayMs',
  deliverAt: 'weir.deliverAt',
  ttlMs: 'weir.ttlMs',
  expiresAt: 'weir.expiresAt',
  priority: 'weir.priority',
  /** Inside delay buckets and the half queue: the storage queue a message goes to when due or committed. */
  target: 'weir.target',
  /** Inside the half queue: the transaction a message belongs to. */
  transaction: 'weir.txn',
} as const;

/** Headers the broker writes itself (dead-lettering, delay buckets, transactions); clients may not send them. */
const CLIENT_ATTRIBUTES: ReadonlySet<string> = new Set([Attribute.delayMs, Attribute.deliverAt, Attribute.ttlMs, Attribute.priority]);
export const RESERVED_PREFIX = 'weir.';
export const MAX_PRIORITY = 9;
/** deliverAt may lie at most this far ahead: far enough for any schedule, near enough to catch unit mistakes (seconds vs ms). */
export const MAX_DELAY_MS = 10 * 366 * 86_400_000;

export interface ProducedAttributes {
  /** When the message becomes visible; 0 when it is not delayed (or its time has passed). */
  deliverAt: number;
}

function integerValue(name: string, value: HeaderValue, min: number, max: number): number {
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  const number = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw invalidArgument(`header ${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text.slice(0, 40))}`);
  }
  return number;
}

/**
 * Checks a produced message's reserved headers and rewrites relative times to absolute ones, returning the message
 * to store (the same object when it has no reserved header) and its due time. `now` is the broker's wall clock.
 *
 * - `weir.delayMs` ≥ 0 → `weir.deliverAt` = now + delay; `weir.deliverAt` in the past → delivered now (through the
 *   delay schedule, which appends it at once).
 * - `weir.ttlMs` ≥ 1 → `weir.expiresAt` = now + ttl (TTL 0 is an error: a message that may never be read is a mistake).
 *   A topic's `messageTtlMs` is not written into messages: the dispatcher applies it from the store time, so changing
 *   it applies to messages already stored (as a RabbitMQ policy does); the earlier of the two expiries wins.
 * - `weir.priority` 0–9.
 * - Any other `weir.` header is INVALID_ARGUMENT.
 */
export function prepareProduced(message: MessageInput, now: number): { message: MessageInput; deliverAt: number; delayed: boolean } {
  const headers = message.headers;
  let reserved = false;
  if (headers) {
    for (const name in headers) {
      if (name.startsWith(RESERVED_PREFIX)) {
        reserved = true;
        break;
      }
    }
  }
  if (!reserved) return { message, deliverAt: 0, delayed: false };
  const out: Record<string, HeaderValue> = {};
  let deliverAt = 0;
  let delayed = false;
  let ttlMs: number | null = null;
  for (const name in headers ?? {}) {
    const value = headers![name]!;
    if (!name.startsWith(RESERVED_PREFIX)) {
      out[name] = value;
      continue;
    }
    if (!CLIENT_ATTRIBUTES.has(name)) throw invalidArgument(`header names starting with "${RESERVED_PREFIX}" are reserved; ${name} is not one a producer may set`);
    if (name === Attribute.delayMs) (deliverAt = Math.max(deliverAt, now + integerValue(name, value, 0, MAX_DELAY_MS))), (delayed = true);
    else if (name === Attribute.deliverAt) (deliverAt = Math.max(deliverAt, integerValue(name, value, 0, now + MAX_DELAY_MS))), (delayed = true);
    else if (name === Attribute.ttlMs) ttlMs = integerValue(name, value, 1, Number.MAX_SAFE_INTEGER - now);
    else out[name] = String(integerValue(name, value, 0, MAX_PRIORITY));
  }
  // A message sent as delayed stays on the delayed path even when its time passed in transit (a client whose clock
  // is behind, a slow network): the schedule delivers it at once, and its batch is not refused as a mix.
  if (delayed) out[Attribute.deliverAt] = String(Math.max(deliverAt, now));
  // A delayed message's time to live starts when it becomes visible.
  if (ttlMs !== null) out[Attribute.expiresAt] = String(Math.max(deliverAt, now) + ttlMs);
  return { message: { ...message, headers: out as Headers }, deliverAt: delayed ? Math.max(deliverAt, now) : 0, delayed };
}

/** The attributes the dispatcher needs from a stored message's headers. */
export interface DeliveryAttributes {
  priority: number;
  /** ms since the epoch, or Infinity. */
  expiresAt: number;
}

const NO_ATTRIBUTES: DeliveryAttributes = Object.freeze({ priority: 0, expiresAt: Number.POSITIVE_INFINITY });

/** The headers `attributesOf` takes the values of, in its order. */
export const DELIVERY_ATTRIBUTE_HEADERS = [Attribute.priority, Attribute.expiresAt] as const;

/** The attributes given the values of their two headers (undefined when absent). */
export function attributesOf(priority: string | Buffer | undefined, expiresAt: string | Buffer | undefined): DeliveryAttributes {
  if (priority === undefined && expiresAt === undefined) return NO_ATTRIBUTES;
  return {
    priority: priority === undefined ? 0 : Math.min(MAX_PRIORITY, Math.max(0, Number(priority.toString()) || 0)),
    expiresAt: expiresAt === undefined ? Number.POSITIVE_INFINITY : Number(expiresAt.toString()) || Number.POSITIVE_INFINITY,
  };
}
