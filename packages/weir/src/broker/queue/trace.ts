import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { MessageStore, QueueInfo, QueueSettings } from '../../storage/message-store.js';
import type { MessageInput, StoredMessage } from '../../storage/record-batch.js';
import { invalidArgument } from '../errors.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
import type { DeadLetterReason } from './shared-subscription.js';

/** The storage queue of trace records. No '/', so it can never be a topic partition's queue (`<topic>/<n>`). */
export const TRACE_QUEUE = '__trace';
export const DEFAULT_TRACE_RETENTION_MS = 3 * 86_400_000;
export const DEFAULT_TRACE_BUFFER = 65_536;
/** Most events `traceOf` returns (the newest ones): a message redelivered more often than this is an outlier. */
export const MAX_TRACE_EVENTS = 1000;
/** Events per append: one batch, bounded well under the store's batch limits (65,535 messages, 16 MiB). */
const EVENTS_PER_APPEND = 4096;
/** Free text (errors, reasons) is cut to this many characters: a trace says what happened, not the whole stack. */
const MAX_TEXT = 1024;
/** A record body larger than this is a bug upstream (huge names); it is dropped rather than failing its batch. */
const MAX_RECORD_BYTES = 16 * 1024;
/** Failed appends are logged at most this often, with the count dropped since. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

// ---- events -------------------------------------------------------------------------------------------------------

/** Where a message is, or was: what `weir message get` takes to show it. */
export interface TraceLocation {
  topic: string;
  partition: number;
  offset: number;
}

/** Who sent a message; protocols know different parts of it. */
export interface TraceProducer {
  clientId?: string;
  /** `host:port` of the connection. */
  address?: string;
  /** The idempotent producer's id, when it has one. */
  producerId?: number;
  /** The protocol it came in by (`weir`, `kafka`, `amqp`, …). */
  protocol?: string;
}

interface TraceBase {
  /** The traced message's id (client-given or generated): the key of its trace records. */
  messageId: Buffer;
  /** When it happened: broker wall clock, ms since the epoch. */
  time: number;
}

/** Appended to a partition: the first event of a message (or its arrival from the delay schedule). */
export interface StoredTrace extends TraceBase, TraceLocation {
  kind: 'stored';
  producer: TraceProducer;
}

/** Stored in the delay schedule, due at `deliverAt`; a `stored` event follows when it is moved to its partition. */
export interface DelayedTrace extends TraceBase {
  kind: 'delayed';
  topic: string;
  /** The target partition, when it was chosen at produce time. */
  partition?: number;
  deliverAt: number;
  producer: TraceProducer;
}

/** Leased to a consumer of a shared group (or pushed to a stream consumer). */
export interface DeliveredTrace extends TraceBase, TraceLocation {
  kind: 'delivered';
  group: string;
  consumerId: string;
  /** `host:port` of the consumer's connection. */
  address: string;
  /** 1 for the first delivery. */
  deliveryCount: number;
}

export interface AckedTrace extends TraceBase, TraceLocation {
  kind: 'acked';
  group: string;
  consumerId: string;
}

export interface NackedTrace extends TraceBase, TraceLocation {
  kind: 'nacked';
  group: string;
  consumerId: string;
  /** How long it waits before it is ready again. */
  delayMs: number;
  /** The error text the consumer gave, if any. */
  error?: string;
}

export interface RejectedTrace extends TraceBase, TraceLocation {
  kind: 'rejected';
  group: string;
  consumerId: string;
  reason: string;
}

/** Copied to the dead-letter topic (`to`) and settled in its group. */
export interface DeadLetteredTrace extends TraceBase, TraceLocation {
  kind: 'dead-lettered';
  group: string;
  /** As in the copy's `weir.dlq.reason` header. */
  reason: DeadLetterReason;
  deliveryCount: number;
  to: TraceLocation;
  /** The last error text a consumer gave, if any. */
  error?: string;
}

/** Reached by a group's dispatcher after its expiry: settled without delivery. */
export interface ExpiredTrace extends TraceBase, TraceLocation {
  kind: 'expired';
  group: string;
  expiresAt: number;
}

/** A transactional (half) message was decided: by its producer, by a check the broker sent, or by timing out. */
export interface TransactionTrace extends TraceBase {
  kind: 'transaction';
  /** `unknown`: a check was answered "not decided yet"; another check follows. */
  outcome: 'commit' | 'rollback' | 'unknown';
  via: 'producer' | 'check' | 'timeout';
  transactionId?: string;
  topic?: string;
  partition?: number;
  offset?: number;
}

export type TraceEvent = StoredTrace | DelayedTrace | DeliveredTrace | AckedTrace | NackedTrace | RejectedTrace | DeadLetteredTrace | ExpiredTrace | TransactionTrace;
export type TraceKind = TraceEvent['kind'];

const KINDS: ReadonlySet<string> = new Set<TraceKind>(['stored', 'delayed', 'delivered', 'acked', 'nacked', 'rejected', 'dead-lettered', 'expired', 'transaction']);

// ---- the trace ----------------------------------------------------------------------------------------------------

export interface MessageTraceOptions {
  store: MessageStore;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** How long trace records are kept (the `__trace` queue's retentionMs); default 3 days. */
  retentionMs?: number;
  /** false: `record` does nothing and no queue is created (`traceOf` still reads an existing one). */
  enabled?: boolean;
  /** Events waiting for their append; past this, `record` drops and counts. Default 65,536. */
  maxBufferedEvents?: number;
}

/**
 * The message trace: where each message went, for `weir message trace <id>`. Each event is one small record in the
 * storage queue `__trace`, keyed by the traced message's id so the store's key index finds a message's events, with
 * compact JSON of the event (without the id) as its body and the event time as its timestamp.
 *
 * Tracing must cost the hot path next to nothing, so `record` only pushes the event object onto a buffer: no
 * encoding, no allocation beyond the array slot, no promise. Encoding (JSON.stringify, by far the largest cost of an
 * event) happens one scheduler tick later, or as soon as the previous write finished, for the whole buffer at once,
 * appended in batches of at most 4,096 events. Memory is bounded by `maxBufferedEvents` waiting plus one write in
 * flight. When the buffer is full because the store falls behind, events are dropped and counted, never waited for.
 * A failed append drops its events too (logged at most once a minute). So the trace is best effort: it may miss
 * events, it never slows produces.
 *
 * The queue flushes on an interval (1 s): after a crash the last second of trace may be gone, which costs the trace
 * nothing essential and spares an fsync per batch. Records older than the retention are removed by the store's
 * retention like any queue's.
 *
 * `record` keeps the event object (and its `messageId` bytes) until the next write, so callers must not modify them
 * afterwards. Reads see events once written: `traceOf` flushes first.
 */
export class MessageTrace {
  private buffer: TraceEvent[] = [];
  private timer: TimerHandle | null = null;
  private writing: Promise<void> | null = null;
  private accepting: boolean;
  /** Events accepted into the buffer, and how many of them are done (written or dropped): `flush` waits on these. */
  private accepted = 0;
  private finished = 0;
  private recorded = 0;
  private dropped = 0;
  private droppedSinceLog = 0;
  private lastFailureLog = Number.NEGATIVE_INFINITY;

  private constructor(
    private readonly store: MessageStore,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly queueId: number | null,
    private readonly enabled: boolean,
    private readonly maxBufferedEvents: number,
  ) {
    this.accepting = enabled;
  }

  static async open(options: MessageTraceOptions): Promise<MessageTrace> {
    const retentionMs = options.retentionMs ?? DEFAULT_TRACE_RETENTION_MS;
    const maxBufferedEvents = options.maxBufferedEvents ?? DEFAULT_TRACE_BUFFER;
    const enabled = options.enabled ?? true;
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 1) throw invalidArgument(`trace retentionMs must be a positive integer, not ${retentionMs}`);
    if (!Number.isSafeInteger(maxBufferedEvents) || maxBufferedEvents < 1) throw invalidArgument(`trace maxBufferedEvents must be a positive integer, not ${maxBufferedEvents}`);
    const queue = enabled ? await traceQueue(options.store, retentionMs) : options.store.queue(TRACE_QUEUE);
    return new MessageTrace(options.store, options.clock, options.scheduler, options.logger, queue?.id ?? null, enabled, maxBufferedEvents);
  }

  /** Buffers one event. Synchronous and cheap; never throws (a malformed event is dropped when it is written). */
  record(event: TraceEvent): void {
    if (!this.accepting) {
      if (this.enabled) this.dropped++;
      return;
    }
    if (this.buffer.length >= this.maxBufferedEvents) {
      this.dropped++;
      return;
    }
    this.buffer.push(event);
    this.accepted++;
    if (this.timer === null && this.writing === null) this.timer = this.scheduler.setTimeout(this.onTimer, 0, { background: true });
  }

  /** Resolves once every event recorded before the call is written or dropped. Never rejects. */
  async flush(): Promise<void> {
    const target = this.accepted;
    while (this.finished < target) {
      if (this.writing === null) this.startWrite();
      await this.writing;
    }
  }

  /** Every trace event of a message still retained, oldest first (at most the newest MAX_TRACE_EVENTS). */
  async traceOf(messageId: Buffer): Promise<TraceEvent[]> {
    await this.flush();
    const queueId = this.queueId ?? this.store.queue(TRACE_QUEUE)?.id ?? null;
    if (queueId === null) return [];
    const found = await this.store.findByKey(messageId, { queueIds: [queueId], limit: MAX_TRACE_EVENTS });
    const events: TraceEvent[] = [];
    // findByKey answers newest first; reversed, it is append order, which breaks ties between equal times.
    for (let index = found.length - 1; index >= 0; index--) {
      const event = decodeTraceRecord(found[index]!);
      if (event !== null) events.push(event);
    }
    return events.sort((a, b) => a.time - b.time);
  }

  stats(): { recorded: number; dropped: number; buffered: number } {
    return { recorded: this.recorded, dropped: this.dropped, buffered: this.accepted - this.finished };
  }

  /** Stops accepting events (later ones are dropped and counted) and writes what is buffered. Does not close the store. */
  async close(): Promise<void> {
    this.accepting = false;
    if (this.timer !== null) {
      this.scheduler.clearTimeout(this.timer);
      this.timer = null;
    }
    await this.flush();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.writing === null && this.buffer.length > 0) this.startWrite();
  };

  private startWrite(): void {
    if (this.timer !== null) {
      this.scheduler.clearTimeout(this.timer);
      this.timer = null;
    }
    const events = this.buffer;
    this.buffer = [];
    // write() handles its own failures; the catch only guards against a throwing logger leaving flush() waiting.
    this.writing = this.write(events).catch(() => undefined).then(() => {
      this.finished += events.length;
      this.writing = null;
      // What arrived meanwhile goes at once: this runs off any caller's stack, and waiting a tick would only let the
      // buffer grow.
      if (this.buffer.length > 0) this.startWrite();
    });
  }

  private async write(events: readonly TraceEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (this.queueId === null) {
      this.lose(events.length, null);
      return;
    }
    const appends: Promise<void>[] = [];
    let chunk: MessageInput[] = [];
    for (const event of events) {
      const input = encodeTraceRecord(event);
      if (input === null) {
        this.lose(1, 'malformed event');
        continue;
      }
      chunk.push(input);
      if (chunk.length === EVENTS_PER_APPEND) {
        appends.push(this.append(this.queueId, chunk));
        chunk = [];
      }
    }
    if (chunk.length > 0) appends.push(this.append(this.queueId, chunk));
    await Promise.all(appends);
  }

  private async append(queueId: number, chunk: MessageInput[]): Promise<void> {
    try {
      await this.store.append(queueId, chunk);
      this.recorded += chunk.length;
    } catch (error) {
      this.lose(chunk.length, error);
    }
  }

  private lose(count: number, cause: unknown): void {
    this.dropped += count;
    this.droppedSinceLog += count;
    const now = this.clock.monotonic();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLog = now;
    const error = cause instanceof Error ? cause.message : cause === null ? 'no trace queue' : String(cause);
    this.logger.warn({ queue: TRACE_QUEUE, dropped: this.droppedSinceLog, error }, 'trace: events dropped');
    this.droppedSinceLog = 0;
  }
}

/** The `__trace` queue with the wanted settings: created on first use, brought in line when the config changed. */
async function traceQueue(store: MessageStore, retentionMs: number): Promise<QueueInfo> {
  const wanted: Partial<QueueSettings> = { flushPolicy: 'interval', flushIntervalMs: 1000, retentionMs };
  let queue = store.queue(TRACE_QUEUE);
  if (queue === null) {
    try {
      return await store.createQueue(TRACE_QUEUE, wanted);
    } catch (error) {
      // Another opener got there first.
      if (!isWeirError(error, ErrorCode.QueueExists)) throw error;
      queue = store.queue(TRACE_QUEUE);
      if (queue === null) throw error;
    }
  }
  const settings = queue.settings;
  if (settings.flushPolicy !== wanted.flushPolicy || settings.flushIntervalMs !== wanted.flushIntervalMs || settings.retentionMs !== retentionMs) {
    queue = await store.updateQueue(TRACE_QUEUE, wanted);
  }
  return queue;
}

// ---- records ------------------------------------------------------------------------------------------------------

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

/** One trace record: key = the message id, body = the event without it, timestamp = the event time. Null if malformed. */
export function encodeTraceRecord(event: TraceEvent): MessageInput | null {
  try {
    const { messageId, ...fields } = event;
    if (!(messageId instanceof Uint8Array) || !KINDS.has(fields.kind) || !Number.isSafeInteger(fields.time) || fields.time < 0) return null;
    if ('error' in fields && typeof fields.error === 'string') fields.error = clip(fields.error);
    if ('reason' in fields && fields.kind === 'rejected') fields.reason = clip(fields.reason);
    const body = Buffer.from(JSON.stringify(fields), 'utf8');
    if (body.byteLength > MAX_RECORD_BYTES) return null;
    return { key: messageId, body, timestamp: fields.time };
  } catch {
    // JSON.stringify throws on BigInt or cycles: a caller's mistake that must not cost the rest of the batch.
    return null;
  }
}

/** The event a trace record holds, or null when it is not one this version knows. */
export function decodeTraceRecord(message: StoredMessage): TraceEvent | null {
  if (message.key === null) return null;
  let fields: unknown;
  try {
    fields = JSON.parse(message.body.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof fields !== 'object' || fields === null) return null;
  const { kind, time } = fields as { kind?: unknown; time?: unknown };
  if (typeof kind !== 'string' || !KINDS.has(kind) || typeof time !== 'number') return null;
  // The key is a view into the read buffer: copy it so the event does not pin the buffer.
  return { messageId: Buffer.from(message.key), ...fields } as TraceEvent;
}
