/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in plain JavaScript, so the protocol package has no
 * dependencies. The broker uses a native implementation for the same function.
 *
 * Slicing-by-16: sixteen 256-entry tables let the loop fold 16 input bytes per step with 16 table lookups instead of
 * one lookup per byte. On a little-endian machine the data is read as aligned 32-bit words through an Int32Array over
 * the same memory: about 1.4 times as fast from 1 KiB up as assembling every word from single bytes. Short inputs
 * (where creating the view costs more than it saves) and big-endian machines assemble words from bytes and fold 8 per
 * step with the same table.
 */
const POLYNOMIAL = 0x82f63b78;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Below this many bytes, viewing the memory as words costs more than it saves (measured on Node 20, x64). */
const WORD_PATH_MIN_BYTES = 256;

/**
 * `TABLE[k * 256 + b]`: the CRC contribution of byte `b` followed by `k` zero bytes, for k < 16. Built eagerly: a
 * module constant keeps the lookups in the loop cheaper than a table built on first use.
 */
const TABLE = buildTable();

function buildTable(): Int32Array {
  const table = new Int32Array(16 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    table[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = table[byte]!;
    for (let slice = 1; slice < 16; slice++) {
      crc = table[crc & 0xff]! ^ (crc >>> 8);
      table[slice * 256 + byte] = crc;
    }
  }
  return table;
}

/**
 * CRC-32C of `data`. Pass a previous result as `initial` to continue a checksum over more data:
 * `crc32c(b, crc32c(a)) === crc32c(a ‖ b)`.
 */
export function crc32c(data: Uint8Array, initial = 0): number {
  const table = TABLE;
  const end = data.length;
  let crc = ~initial;
  let at = 0;
  if (LITTLE_ENDIAN && end >= WORD_PATH_MIN_BYTES) {
    // Bytes up to a 4-byte boundary of the underlying memory, then whole words, then the rest.
    const head = (4 - (data.byteOffset & 3)) & 3;
    while (at < head) crc = table[(crc ^ data[at++]!) & 0xff]! ^ (crc >>> 8);
    const wordCount = (end - at) >>> 2;
    const words = new Int32Array(data.buffer, data.byteOffset + at, wordCount);
    const blocks = wordCount - (wordCount & 3);
    let word = 0;
    while (word < blocks) {
      const a = crc ^ words[word]!;
      const b = words[word + 1]!;
      const c = words[word + 2]!;
      const d = words[word + 3]!;
      crc =
        table[3840 + (a & 0xff)]! ^
        table[3584 + ((a >>> 8) & 0xff)]! ^
        table[3328 + ((a >>> 16) & 0xff)]! ^
        table[3072 + (a >>> 24)]! ^
        table[2816 + (b & 0xff)]! ^
        table[2560 + ((b >>> 8) & 0xff)]! ^
        table[2304 + ((b >>> 16) & 0xff)]! ^
        table[2048 + (b >>> 24)]! ^
        table[1792 + (c & 0xff)]! ^
        table[1536 + ((c >>> 8) & 0xff)]! ^
        table[1280 + ((c >>> 16) & 0xff)]! ^
        table[1024 + (c >>> 24)]! ^
        table[768 + (d & 0xff)]! ^
        table[512 + ((d >>> 8) & 0xff)]! ^
        table[256 + ((d >>> 16) & 0xff)]! ^
        table[d >>> 24]!;
      word += 4;
    }
    at += word * 4;
  } else {
    const wholeBlocks = end - (end & 7);
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
  }
  while (at < end) crc = table[(crc ^ data[at++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
