import type { StructOf } from 'weir-protocol';

/**
 * The message trace as `Admin.trace` returns it: GetTrace's entries, each `{ time, kind }` plus the fields of its
 * `detail` JSON. The kinds and fields mirror the broker's trace records (docs/design/work-queues.md, "Trace").
 */

/** Where a message is, or was. */
export interface TraceLocation {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** Who sent a message, as far as the broker knows. */
export interface TraceProducer {
  readonly clientId?: string;
  /** `host:port` of the producer's connection. */
  readonly address?: string;
  /** The idempotent producer's id, when it had one. */
  readonly producerId?: number;
  /** The protocol it came in by. */
  readonly protocol?: string;
}

interface TraceBase {
  /** When it happened: broker wall clock, ms since the epoch. */
  readonly time: number;
}

/** Appended to its partition (first event of a message, or its arrival from the delay schedule). */
export interface StoredTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'stored';
  readonly producer: TraceProducer;
}

/** Held in the delay schedule until `deliverAt`. */
export interface DelayedTraceEvent extends TraceBase {
  readonly kind: 'delayed';
  readonly topic: string;
  readonly partition?: number;
  readonly deliverAt: number;
  readonly producer: TraceProducer;
}

/** Leased to a consumer of a shared group. */
export interface DeliveredTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'delivered';
  readonly group: string;
  readonly consumerId: string;
  /** `host:port` of the consumer's connection. */
  readonly address: string;
  /** 1 for the first delivery. */
  readonly deliveryCount: number;
}

export interface AckedTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'acked';
  readonly group: string;
  readonly consumerId: string;
}

export interface NackedTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'nacked';
  readonly group: string;
  readonly consumerId: string;
  /** How long it waits before it is ready again. */
  readonly delayMs: number;
  readonly error?: string;
}

export interface RejectedTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'rejected';
  readonly group: string;
  readonly consumerId: string;
  readonly reason: string;
}

/** Copied to the dead-letter topic (`to`). */
export interface DeadLetteredTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'dead-lettered';
  readonly group: string;
  readonly reason: 'rejected' | 'max-deliveries' | 'expired' | 'overflow';
  readonly deliveryCount: number;
  readonly to: TraceLocation;
  readonly error?: string;
}

/** Reached by a group's dispatcher after its expiry: settled without delivery. */
export interface ExpiredTraceEvent extends TraceBase, TraceLocation {
  readonly kind: 'expired';
  readonly group: string;
  readonly expiresAt: number;
}

/** A transaction step: decided by its producer, by a check-back, or by timing out (`unknown`: a check was inconclusive). */
export interface TransactionTraceEvent extends TraceBase {
  readonly kind: 'transaction';
  readonly outcome: 'commit' | 'rollback' | 'unknown';
  readonly via: 'producer' | 'check' | 'timeout';
  readonly transactionId?: string;
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: number;
}

/**
 * One event of a message's trace. A newer broker may send kinds (or fields) this client does not know: they come
 * through as sent, so check `kind` before relying on fields.
 */
export type TraceEvent =
  | StoredTraceEvent
  | DelayedTraceEvent
  | DeliveredTraceEvent
  | AckedTraceEvent
  | NackedTraceEvent
  | RejectedTraceEvent
  | DeadLetteredTraceEvent
  | ExpiredTraceEvent
  | TransactionTraceEvent;

export type TraceKind = TraceEvent['kind'];

/** A GetTrace entry as an event: its detail's fields, with the entry's own time and kind (a detail that is not a JSON object is kept as `detail`). */
export function parseTraceEntry(entry: StructOf<'TraceEntry', 'decode'>): TraceEvent {
  let fields: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(entry.detail);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) fields = parsed as Record<string, unknown>;
    else fields = { detail: entry.detail };
  } catch {
    fields = { detail: entry.detail };
  }
  return { ...fields, time: entry.time, kind: entry.kind } as TraceEvent;
}
