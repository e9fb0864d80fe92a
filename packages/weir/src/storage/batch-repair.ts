import { BatchCheck, checkBatch, RECORD_HEADER_BYTES } from './record-batch.js';
import { crc32c } from './crc.js';

/**
 * Locating a single flipped bit in a damaged batch, so recovery learns which queue offsets the batch held.
 *
 * Bit rot in fsynced data usually flips one bit. Recovery never serves such a batch, but it must know the batch's
 * header (queue, base offset, count): without it, the offsets of the last batch of a queue would be handed out again
 * after a restart, under messages that consumers may already have read and committed past, and a rotten last batch of
 * the log would look like a torn tail. A torn write (power loss) leaves whole sectors stale or zeroed, never one bit.
 *
 * CRC-32C is linear: for two messages of one length, crc(a) ^ crc(b) depends only on a ^ b. The difference between
 * the stored and the computed CRC (the syndrome) of a message with one flipped bit is the CRC register that bit alone
 * leaves after the remaining bytes, and walking the register backwards one zero byte at a time from the syndrome
 * finds where it started. CRC-32C keeps Hamming distance 4 up to 2^31 bits (Koopman), far beyond `maxBatchBytes`,
 * so two or three flipped bits never share a syndrome with one: a match is the one bit, or nothing is reported.
 */

/** CRC-32C's reflected polynomial (Castagnoli, RFC 3720 §12.1). */
const POLYNOMIAL = 0x82f63b78;
const TABLE = new Uint32Array(256);
/** Which table entry has a given top byte: the top bytes of a reflected CRC table are a permutation of 0..255. */
const ENTRY_OF_TOP_BYTE = new Uint8Array(256);
/** The register one set bit (0..7) of a byte leaves: TABLE[1 << bit]. */
const SINGLE_BIT_REGISTER = new Map<number, number>();

for (let index = 0; index < 256; index++) {
  let value = index;
  for (let bit = 0; bit < 8; bit++) value = value & 1 ? (value >>> 1) ^ POLYNOMIAL : value >>> 1;
  TABLE[index] = value >>> 0;
  ENTRY_OF_TOP_BYTE[TABLE[index]! >>> 24] = index;
}
for (let bit = 0; bit < 8; bit++) SINGLE_BIT_REGISTER.set(TABLE[1 << bit]!, bit);

/**
 * The bit (byte index × 8 + bit, bit 0 the least significant) of a `length`-byte message whose flip explains
 * `syndrome`, the stored CRC-32C xor the computed one; -1 when no single bit does (or the syndrome is 0).
 */
export function locateFlippedBit(length: number, syndrome: number): number {
  let register = syndrome >>> 0;
  if (register === 0) return -1;
  // Step k undoes one zero byte: after it, `register` is what a flip in byte (length - 1 - k) must have produced.
  for (let trailing = 0; trailing < length; trailing++) {
    const bit = SINGLE_BIT_REGISTER.get(register);
    if (bit !== undefined) return (length - 1 - trailing) * 8 + bit;
    const low = ENTRY_OF_TOP_BYTE[register >>> 24]!;
    register = (((register ^ TABLE[low]!) << 8) | low) >>> 0;
  }
  return -1;
}

function bitsSet(value: number): number {
  let count = 0;
  for (let rest = value >>> 0; rest !== 0; rest &= rest - 1) count++;
  return count;
}

/**
 * A copy of the batch at the start of `bytes`, `length` bytes long, with the one flipped bit that made it fail its
 * check undone; null when no single flip explains it. `length` is where the batch must end (the next valid batch, or
 * the end of its segment): a header that claims another length is accepted only when the two differ in one bit (the
 * length field is outside the CRC, so that one flip and one more under the CRC are both undone).
 */
export function repairSingleBitFlip(bytes: Buffer, length: number, maxBatchBytes: number): Buffer | null {
  if (length < RECORD_HEADER_BYTES || length > maxBatchBytes || length > bytes.byteLength) return null;
  const batch = Buffer.from(bytes.subarray(0, length));
  const claimed = batch.readUInt32LE(0);
  if (claimed !== length) {
    if (bitsSet(claimed ^ length) !== 1) return null;
    batch.writeUInt32LE(length, 0);
  }
  const stored = batch.readUInt32LE(4);
  const covered = batch.subarray(8);
  const computed = crc32c(covered);
  if (computed !== stored) {
    if (bitsSet(computed ^ stored) === 1) {
      batch.writeUInt32LE(computed, 4);
    } else {
      const flipped = locateFlippedBit(covered.byteLength, computed ^ stored);
      if (flipped < 0) return null;
      covered[flipped >>> 3]! ^= 1 << (flipped & 7);
    }
  }
  return checkBatch(batch, 0, length, maxBatchBytes) === BatchCheck.Valid ? batch : null;
}
