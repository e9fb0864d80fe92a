/**
 * Pre-built batches for Produce requests on a bare connection (the native suite's wire producer, the queue suite's
 * backlog fill). A batch is sized by the Producer's default limits, so the broker sees what a Producer would send. Its
 * messages share one random body, so the sender spends next to nothing per message.
 */
import { randomFillSync } from 'node:crypto';
import type { Message } from 'weir-protocol';

/** Encoded size of a message without id, key, tag and headers in a Produce request (what the Producer counts). */
const MESSAGE_WIRE_OVERHEAD = 26;

/** Messages of `bodyBytes` in one batch under the Producer's default limits: 256 KiB or 10,000 messages. */
export function messagesPerBatch(bodyBytes: number): number {
  return Math.max(1, Math.min(10_000, Math.floor((256 * 1024) / (bodyBytes + MESSAGE_WIRE_OVERHEAD))));
}

/** One batch of messagesPerBatch(bodyBytes) keyless messages. */
export function prebuiltBatch(bodyBytes: number): Message[] {
  const body = randomFillSync(Buffer.allocUnsafe(bodyBytes));
  return Array.from({ length: messagesPerBatch(bodyBytes) }, () => ({ id: null, key: null, tag: null, headers: [], timestamp: -1, body }));
}
