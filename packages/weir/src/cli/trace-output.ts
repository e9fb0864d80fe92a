import type { TraceEvent, TraceLocation, TraceProducer } from 'weir-client';

/**
 * A message's trace as a readable timeline for `weir message get`: one line per event, time, kind and what matters
 * for that kind. Fields come from the broker as JSON, so every one is read defensively: a field a newer (or older)
 * broker leaves out prints as `?` instead of failing the command.
 */

function at(where: Partial<TraceLocation> | undefined): string {
  if (where === undefined || where === null) return '?';
  return `${where.topic ?? '?'}/${where.partition ?? '?'}@${where.offset ?? '?'}`;
}

function iso(ms: unknown): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : '?';
}

function who(group: unknown, consumerId: unknown): string {
  return `${String(group ?? '?')}/${String(consumerId ?? '?')}`;
}

function producerText(producer: TraceProducer | undefined): string {
  if (producer === undefined || producer === null) return '';
  const parts: string[] = [];
  if (producer.clientId !== undefined) parts.push(producer.clientId);
  if (producer.address !== undefined) parts.push(producer.address);
  if (producer.producerId !== undefined) parts.push(`producer ${producer.producerId}`);
  if (producer.protocol !== undefined) parts.push(`over ${producer.protocol}`);
  return parts.length === 0 ? '' : ` from ${parts.join(', ')}`;
}

function withError(error: unknown): string {
  return typeof error === 'string' && error.length > 0 ? `: ${error}` : '';
}

/** What happened, without the time and kind. */
export function describeTraceEvent(event: TraceEvent): string {
  switch (event.kind) {
    case 'stored':
      return `${at(event)}${producerText(event.producer)}`;
    case 'delayed':
      return `${event.topic ?? '?'}${event.partition === undefined ? '' : `/${event.partition}`} until ${iso(event.deliverAt)}${producerText(event.producer)}`;
    case 'delivered':
      return `${at(event)} to ${who(event.group, event.consumerId)}${event.address ? ` (${event.address})` : ''}, delivery ${event.deliveryCount ?? '?'}`;
    case 'acked':
      return `${at(event)} by ${who(event.group, event.consumerId)}`;
    case 'nacked':
      return `${at(event)} by ${who(event.group, event.consumerId)}, retry in ${event.delayMs ?? '?'} ms${withError(event.error)}`;
    case 'rejected':
      return `${at(event)} by ${who(event.group, event.consumerId)}${withError(event.reason)}`;
    case 'dead-lettered':
      return `${at(event)} in ${event.group ?? '?'} → ${at(event.to)} (${event.reason ?? '?'} after ${event.deliveryCount ?? '?'} deliveries)${withError(event.error)}`;
    case 'expired':
      return `${at(event)} in ${event.group ?? '?'}, expired at ${iso(event.expiresAt)}`;
    case 'transaction': {
      const where = event.topic === undefined ? '' : ` ${event.topic}${event.partition === undefined ? '' : `/${event.partition}`}${event.offset === undefined ? '' : `@${event.offset}`}`;
      const what = event.outcome === 'unknown' ? 'check answered unknown (asked again later)' : `${event.outcome ?? '?'} by ${event.via ?? '?'}`;
      return `${what}${event.transactionId === undefined ? '' : ` (transaction ${event.transactionId})`}${where}`;
    }
    default: {
      // A kind this CLI does not know: show its fields as they came.
      const { time: _time, kind: _kind, ...fields } = event as { time: number; kind: string };
      return JSON.stringify(fields);
    }
  }
}

/** `2026-11-21T10:00:00.000Z  delivered      orders/2@17 to billing/c-1 (10.0.0.5:5123), delivery 2` */
export function formatTraceLine(event: TraceEvent): string {
  return `${iso(event.time)}  ${String(event.kind).padEnd(13)}  ${describeTraceEvent(event)}`;
}
