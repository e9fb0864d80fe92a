/**
 * Little-endian u64 fields holding integers below 2^53, read and written as two u32 halves: exact for every value the
 * storage formats use, and it keeps BigInt off the hot paths.
 */
export const TWO_32 = 0x1_0000_0000;

export function readU64(source: Buffer, at: number): number {
  return source.readUInt32LE(at + 4) * TWO_32 + source.readUInt32LE(at);
}

export function getU64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * TWO_32 + view.getUint32(at, true);
}

export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32), true);
}
