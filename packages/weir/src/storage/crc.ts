import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC-32C (Castagnoli), the checksum on every stored record and file header. */
export function crc32c(data: Uint8Array, initial = 0): number {
  return nativeCrc32c(data as Buffer, initial) >>> 0;
}
