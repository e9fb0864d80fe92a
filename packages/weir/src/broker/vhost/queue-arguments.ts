import type { SharedGroupSettings } from '../queue/shared-subscription.js';
import { VhostError } from './vhost-error.js';

/**
 * RabbitMQ's queue arguments (https://www.rabbitmq.com/docs/queues#optional-arguments), checked and turned into a
 * shared group's settings plus what the vhost layer enforces itself.
 */
export type QueueType = 'classic' | 'quorum' | 'stream';
export type Overflow = 'drop-head' | 'reject-publish' | 'reject-publish-dlx';

export interface QueueOptions {
  type: QueueType;
  messageTtlMs: number | null;
  /** Unused for this long (no consumer, no get, no redeclare), the queue is deleted. */
  expiresMs: number | null;
  maxLength: number | null;
  maxLengthBytes: number | null;
  overflow: Overflow;
  deadLetterExchange: string | null;
  deadLetterRoutingKey: string | null;
  maxPriority: number | null;
  singleActiveConsumer: boolean;
  /** Failed deliveries allowed before a message is dead-lettered (quorum queues' x-delivery-limit). */
  deliveryLimit: number | null;
  /** A stream queue's retention (null for classic and quorum queues). */
  stream: StreamRetention | null;
}

/** What a stream queue keeps (https://www.rabbitmq.com/docs/streams#retention); null: no limit of that kind. */
export interface StreamRetention {
  /** x-max-length-bytes: the oldest messages go once the stream holds more. */
  maxLengthBytes: number | null;
  /** x-max-age: messages stored longer ago than this go. */
  maxAgeMs: number | null;
}

/**
 * Arguments of classic and quorum queues that a stream does not take: RabbitMQ refuses them for queue type stream
 * (its queue-type capabilities list what each type accepts).
 */
const NOT_FOR_STREAMS: readonly string[] = [
  'x-message-ttl',
  'x-expires',
  'x-max-length',
  'x-overflow',
  'x-dead-letter-exchange',
  'x-dead-letter-routing-key',
  'x-dead-letter-strategy',
  'x-max-priority',
  'x-delivery-limit',
  'x-single-active-consumer',
  'x-max-in-memory-length',
  'x-max-in-memory-bytes',
  'x-queue-mode',
  'x-queue-version',
  'x-quorum-initial-group-size',
];

/** RabbitMQ's largest x-stream-max-segment-size-bytes. */
const MAX_STREAM_SEGMENT_BYTES = 3_000_000_000;

const MS_PER_UNIT: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, D: 86_400_000, M: 30 * 86_400_000, Y: 365 * 86_400_000 };

/**
 * RabbitMQ's duration strings (x-max-age, and x-stream-offset intervals): a positive integer and one unit of Y
 * (365 days), M (30 days), D, h, m or s, e.g. "7D" or "30m". Null when the text is not one.
 */
export function parseStreamDuration(text: string): number | null {
  const match = /^([0-9]+)(Y|M|D|h|m|s)$/.exec(text);
  if (match === null) return null;
  const ms = Number(match[1]) * MS_PER_UNIT[match[2]!]!;
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}

/** RabbitMQ's consumer_timeout default: an unacknowledged delivery older than this is redelivered. */
export const DELIVERY_ACK_TIMEOUT_MS = 1_800_000;

function invalid(name: string, queue: string, vhost: string, why: string): VhostError {
  return new VhostError('PRECONDITION_FAILED', `invalid arg '${name}' for queue '${queue}' in vhost '${vhost}': ${why}`);
}

export function parseQueueArguments(args: Record<string, unknown>, queue: string, vhost: string): QueueOptions {
  const integer = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null => {
    const value = args[name];
    if (value === undefined || value === null) return null;
    const number = typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number)) throw invalid(name, queue, vhost, `expected an integer, got ${describe(value)}`);
    if (number < min || number > max) throw invalid(name, queue, vhost, `${number} is outside ${min}..${max}`);
    return number;
  };
  const text = (name: string): string | null => {
    const value = args[name];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') throw invalid(name, queue, vhost, `expected a string, got ${describe(value)}`);
    return value;
  };
  const type = (text('x-queue-type') ?? 'classic') as QueueType;
  if (!['classic', 'quorum', 'stream'].includes(type)) throw invalid('x-queue-type', queue, vhost, `unknown queue type '${String(type)}' (classic, quorum or stream)`);
  if (type === 'stream') return streamOptions(args, queue, vhost, integer, text);
  const overflow = (text('x-overflow') ?? 'drop-head') as Overflow;
  if (!['drop-head', 'reject-publish', 'reject-publish-dlx'].includes(overflow)) {
    throw invalid('x-overflow', queue, vhost, `'${String(overflow)}' is not drop-head, reject-publish or reject-publish-dlx`);
  }
  const sac = args['x-single-active-consumer'];
  if (sac !== undefined && sac !== null && typeof sac !== 'boolean') throw invalid('x-single-active-consumer', queue, vhost, `expected a boolean, got ${describe(sac)}`);
  return {
    type,
    messageTtlMs: integer('x-message-ttl', 0),
    expiresMs: integer('x-expires', 1),
    maxLength: integer('x-max-length', 0),
    maxLengthBytes: integer('x-max-length-bytes', 0),
    overflow,
    deadLetterExchange: text('x-dead-letter-exchange'),
    deadLetterRoutingKey: text('x-dead-letter-routing-key'),
    maxPriority: integer('x-max-priority', 1, 255),
    singleActiveConsumer: sac === true,
    deliveryLimit: integer('x-delivery-limit', 0, 1_000_000 - 1),
    stream: null,
  };
}

/**
 * A stream queue's arguments: retention by size and age. x-stream-max-segment-size-bytes is checked and otherwise
 * ignored: every queue's messages share Weir's commit log, whose segment size is the broker's. x-initial-cluster-size
 * and x-queue-leader-locator (placement in a cluster) and x-stream-filter-size-bytes are accepted for the same reason.
 */
function streamOptions(
  args: Record<string, unknown>,
  queue: string,
  vhost: string,
  integer: (name: string, min: number, max?: number) => number | null,
  text: (name: string) => string | null,
): QueueOptions {
  for (const name of NOT_FOR_STREAMS) {
    if (args[name] !== undefined) throw new VhostError('PRECONDITION_FAILED', `invalid arg '${name}' for queue '${queue}' in vhost '${vhost}' of queue type stream`);
  }
  const maxAge = text('x-max-age');
  const maxAgeMs = maxAge === null ? null : parseStreamDuration(maxAge);
  if (maxAge !== null && maxAgeMs === null) throw invalid('x-max-age', queue, vhost, `'${maxAge}' is not a positive integer followed by one unit of Y, M, D, h, m or s (e.g. 7D)`);
  const segmentBytes = integer('x-stream-max-segment-size-bytes', 0, Number.MAX_SAFE_INTEGER);
  if (segmentBytes !== null && segmentBytes > MAX_STREAM_SEGMENT_BYTES) {
    throw new VhostError('PRECONDITION_FAILED', `invalid arg 'x-stream-max-segment-size-bytes' for queue '${queue}' in vhost '${vhost}': exceeded max value ${MAX_STREAM_SEGMENT_BYTES}`);
  }
  integer('x-stream-filter-size-bytes', 16, 255);
  integer('x-initial-cluster-size', 1);
  text('x-queue-leader-locator');
  return {
    type: 'stream',
    messageTtlMs: null,
    expiresMs: null,
    maxLength: null,
    maxLengthBytes: null,
    overflow: 'drop-head',
    deadLetterExchange: null,
    deadLetterRoutingKey: null,
    maxPriority: null,
    singleActiveConsumer: false,
    deliveryLimit: null,
    stream: { maxLengthBytes: integer('x-max-length-bytes', 0), maxAgeMs },
  };
}

/** The shared group behind the queue. */
export function groupSettingsOf(options: QueueOptions, ownsTopic: boolean): Partial<SharedGroupSettings> {
  const hasDeadLetterExchange = options.deadLetterExchange !== null;
  return {
    ackTimeoutMs: DELIVERY_ACK_TIMEOUT_MS,
    // RabbitMQ dead-letters a message delivered more than `limit` times without success: the (limit + 1)-th failure.
    maxDeliveries: options.deliveryLimit === null ? 0 : options.deliveryLimit + 1,
    backoffInitialMs: 0,
    backoffMaxMs: 0,
    // x-message-ttl 0 means "unless it can be delivered at once"; a millisecond is as close as a lease-based queue gets.
    messageTtlMs: options.messageTtlMs === null ? null : Math.max(1, options.messageTtlMs),
    deadLetterExpired: hasDeadLetterExchange,
    externalDeadLetters: true,
    maxLength: options.maxLength,
    maxBytes: options.maxLengthBytes,
    overflow: options.overflow === 'drop-head' ? (hasDeadLetterExchange ? 'dead-letter' : 'drop-head') : 'reject-publish',
    start: 'earliest',
    discardAcked: ownsTopic,
  };
}

/** Weir's priorities are 0–9; an AMQP priority is clamped to the queue's maximum and scaled onto them. */
export function weirPriority(priority: number | undefined, maxPriority: number | null): number {
  if (maxPriority === null || priority === undefined || priority <= 0) return 0;
  const clamped = Math.min(priority, maxPriority);
  return maxPriority <= 9 ? clamped : Math.round((clamped * 9) / maxPriority);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `the string '${value}'`;
  if (Buffer.isBuffer(value)) return 'a byte array';
  if (Array.isArray(value)) return 'an array';
  return `${typeof value} ${String(value)}`;
}
