import { partitionForKey } from 'weir-protocol';
import { ErrorCode } from '../core/errors.js';
import { brokerError } from './errors.js';

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
    // The client's own murmur2 (weir-protocol), so a key lands where a client that partitions itself would put it.
    if (key !== null && key !== undefined) return partitionForKey(typeof key === 'string' ? Buffer.from(key, 'utf8') : key, partitions);
    const next = this.counters.get(topic) ?? 0;
    this.counters.set(topic, (next + 1) % 0x7fffffff);
    return next % partitions;
  }

  /** Drops the round-robin position of a deleted topic. */
  forget(topic: string): void {
    this.counters.delete(topic);
  }
}
