/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in plain JavaScript, so the protocol package has no
 * dependencies. Slicing-by-8: eight 256-entry tables let the loop fold 8 input bytes per step with 8 table lookups
 * instead of one lookup per byte. The broker uses a native implementation for the same function.
 */
const POLYNOMIAL = 0x82f63b78;

/** `TABLE[k * 256 + b]`: the CRC contribution of byte `b` followed by `k` zero bytes. */
const TABLE = new Int32Array(8 * 256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
  TABLE[byte] = crc;
}
for (let byte = 0; byte < 256; byte++) {
  let crc = TABLE[byte]!;
  for (let slice = 1; slice < 8; slice++) {
    crc = TABLE[crc & 0xff]! ^ (crc >>> 8);
    TABLE[slice * 256 + byte] = crc;
  }
}

/**
 * CRC-32C of `data`. Pass a previous result as `initial` to continue a checksum over more data:
 * `crc32c(b, crc32c(a)) === crc32c(a ‖ b)`.
 */
export function crc32c(data: Uint8Array, initial = 0): number {
  const table = TABLE;
  let crc = ~initial;
  let at = 0;
  const length = data.length;
  const wholeBlocks = length - (length & 7);
  while (at < wholeBlocks) {
    const low = crc ^ (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24));
    const high = data[at + 4]! | (data[at + 5]! << 8) | (data[at + 6]! << 16) | (data[at + 7]! << 24);
    crc =
      table[1792 + (low & 0xff)]! ^
      table[1536 + ((low >>> 8) & 0xff)]! ^
      table[1280 + ((low >>> 16) & 0xff)]! ^
      table[1024 + (low >>> 24)]! ^
      table[768 + (high & 0xff)]! ^
      table[512 + ((high >>> 8) & 0xff)]! ^
      table[256 + ((high >>> 16) & 0xff)]! ^
      table[high >>> 24]!;
    at += 8;
  }
  while (at < length) crc = table[(crc ^ data[at++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
