import type { TraceEvent } from './trace.js';
import type { TransactionEvent } from './transactions.js';
import type { WorkQueueTraceEvent } from './work-queues.js';

/** Maps a work-queue event onto the trace record of the message it concerns. */
export function traceOfWorkQueueEvent(event: WorkQueueTraceEvent, time: number): TraceEvent {
  const base = { messageId: event.message.id, time, topic: event.topic, partition: event.partition, offset: event.message.offset };
  switch (event.kind) {
    case 'delivered':
      return { ...base, kind: 'delivered', group: event.group, consumerId: event.consumer?.id ?? '', address: event.consumer?.options.address ?? '', deliveryCount: event.deliveries ?? 0 };
    case 'acked':
      return { ...base, kind: 'acked', group: event.group, consumerId: event.consumer?.id ?? '' };
    case 'nacked':
      return { ...base, kind: 'nacked', group: event.group, consumerId: event.consumer?.id ?? '', delayMs: event.delayMs ?? 0, ...(event.error === undefined ? {} : { error: event.error }) };
    case 'rejected':
      return { ...base, kind: 'rejected', group: event.group, consumerId: event.consumer?.id ?? '', reason: event.error ?? '' };
    case 'expired':
      return { ...base, kind: 'expired', group: event.group, expiresAt: event.expiresAt ?? time };
    case 'dead-lettered':
      return {
        ...base,
        kind: 'dead-lettered',
        group: event.group,
        reason: event.reason,
        deliveryCount: event.deliveries,
        to: event.to,
        ...(event.error === null ? {} : { error: event.error }),
      };
  }
}

/** One trace record per message of a transaction event that decided something (checks answered 'unknown' included). */
export function traceOfTransactionEvent(event: TransactionEvent): TraceEvent[] {
  if (event.kind === 'begin') return [];
  const outcome = event.outcome ?? (event.kind === 'commit' || event.kind === 'timeout-commit' ? 'commit' : event.kind === 'check' ? 'unknown' : 'rollback');
  const via = event.via ?? (event.kind === 'check' ? 'check' : event.kind.startsWith('timeout') ? 'timeout' : 'producer');
  return event.messageIds.map((hex) => ({ kind: 'transaction', messageId: Buffer.from(hex, 'hex'), time: event.time, outcome, via, transactionId: event.transactionId }));
}
