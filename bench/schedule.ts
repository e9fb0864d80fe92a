/**
 * Paced sending for the latency workloads (the native suite's paced producer, the amqp suite's paced publisher): the
 * schedule itself is `weir perf`'s (packages/weir/src/perf/schedule.ts); this adds the message that starts it in
 * the client workers.
 */
import { monotonicNs } from '../packages/weir/src/perf/latency.js';

/**
 * The main thread's `go` to clients of a latency workload. Their schedule starts at t0 (monotonicNs clock), and
 * latencies count for messages due in [windowStart, windowEnd). Throughput clients get it too, with t0 = now.
 */
export interface ScheduledGo {
  type: 'go';
  t0: bigint;
  windowStart: bigint;
  windowEnd: bigint;
}

export function scheduledGo(t0 = monotonicNs(), windowStart = 0n, windowEnd = 0n): ScheduledGo {
  return { type: 'go', t0, windowStart, windowEnd };
}

export { runSchedule, type Schedule, type ScheduleOutcome, type SendLag } from '../packages/weir/src/perf/schedule.js';

/**
 * A latency probe's body: a copy of `template` (at least 12 bytes) carrying its intended send time (monotonic ns) at
 * byte 0 and its sequence number at byte 8, which the receiving side reads back.
 */
export function stampedBody(template: Buffer, intendedNs: bigint, sequence: number): Buffer {
  const body = Buffer.allocUnsafe(template.byteLength);
  template.copy(body);
  body.writeBigInt64LE(intendedNs, 0);
  body.writeUInt32LE(sequence >>> 0, 8);
  return body;
}
