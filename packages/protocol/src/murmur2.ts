/**
 * Kafka's default partitioner for keyed messages: murmur2 (seed 0x9747b28c, as in the Java client's
 * `Utils.murmur2`) of the key bytes, made non-negative with `& 0x7fffffff`, modulo the partition count. Weir uses the
 * same function, so a key lands on the same partition number as it would with a Kafka client.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** murmur2 of `key` as the Java client computes it: a signed 32-bit integer. */
export function murmur2(key: Uint8Array): number {
  const length = key.length;
  let hash = SEED ^ length;
  const wholeWords = length & ~3;
  for (let at = 0; at < wholeWords; at += 4) {
    let k = key[at]! | (key[at + 1]! << 8) | (key[at + 2]! << 16) | (key[at + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    hash = Math.imul(hash, M) ^ k;
  }
  // The Java switch falls through from case 3 to case 1; spelled out here as ifs.
  const tail = length & 3;
  if (tail === 3) hash ^= key[wholeWords + 2]! << 16;
  if (tail >= 2) hash ^= key[wholeWords + 1]! << 8;
  if (tail >= 1) {
    hash ^= key[wholeWords]!;
    hash = Math.imul(hash, M);
  }
  hash ^= hash >>> 13;
  hash = Math.imul(hash, M);
  hash ^= hash >>> 15;
  return hash | 0;
}

/** The partition Kafka's default partitioner picks for a key: `(murmur2(key) & 0x7fffffff) % partitionCount`. */
export function partitionForKey(key: Uint8Array, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new RangeError(`partitionCount must be a positive integer, got ${partitionCount}`);
  }
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}
