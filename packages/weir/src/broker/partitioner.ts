import { ErrorCode } from '../core/errors.js';
import { brokerError } from './errors.js';

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`: 32-bit MurmurHash2, seed 0x9747b28c), as a signed 32-bit
 * integer. Clients that pick partitions themselves use the identical function, so both sides agree on where a key
 * goes. Strings are hashed as their UTF-8 bytes.
 */
export function murmur2(data: Uint8Array | string): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const length = bytes.byteLength;
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  // The Java switch falls through from case 3 to case 1.
  const rest = length & 3;
  if (rest === 3) h ^= bytes[whole + 2]! << 16;
  if (rest >= 2) h ^= bytes[whole + 1]! << 8;
  if (rest >= 1) {
    h ^= bytes[whole]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`. */
export function partitionForKey(key: Uint8Array | string, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/**
 * Chooses the partition of a produced batch: the one asked for; else by the key of the first message; else the next
 * one of a per-topic round robin.
 */
export class Partitioner {
  private readonly counters = new Map<string, number>();

  choose(topic: string, partitions: number, requested: number, key: Uint8Array | string | null | undefined): number {
    if (requested !== -1) {
      if (!Number.isSafeInteger(requested) || requested < 0 || requested >= partitions) {
        throw brokerError(ErrorCode.InvalidPartition, `topic "${topic}" has partitions 0 to ${partitions - 1}, not ${requested}`);
      }
      return requested;
    }
    if (key !== null && key !== undefined) return partitionForKey(key, partitions);
    const next = this.counters.get(topic) ?? 0;
    this.counters.set(topic, (next + 1) % 0x7fffffff);
    return next % partitions;
  }

  /** Drops the round-robin position of a deleted topic. */
  forget(topic: string): void {
    this.counters.delete(topic);
  }
}
