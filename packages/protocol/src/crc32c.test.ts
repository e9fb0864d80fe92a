import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
// Only the test uses the native implementation, to check the pure one against it.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { crc32c } from './crc32c.js';

describe('protocol: crc32c', () => {
  it('protocol: crc32c matches the standard check value', () => {
    assert.equal(crc32c(Buffer.from('123456789', 'ascii')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
  });

  it('protocol: crc32c agrees with the native implementation on random inputs', () => {
    for (let length = 0; length < 70; length++) {
      const data = randomBytes(length);
      assert.equal(crc32c(data), nativeCrc32c(data) >>> 0, `length ${length}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat({ max: 16 }), (bytes, offset) => {
        // An unaligned view, as batches inside a frame are.
        const data = Buffer.from(bytes).subarray(Math.min(offset, bytes.length));
        assert.equal(crc32c(data), nativeCrc32c(data) >>> 0);
      }),
      { numRuns: 500 },
    );
    const large = randomBytes(1 << 20);
    assert.equal(crc32c(large), nativeCrc32c(large) >>> 0);
  });

  it('protocol: crc32c gives the same result on the word path and the byte path, at every alignment', () => {
    // Lengths on both sides of where the aligned-word path starts, each at the four alignments of the memory, in
    // Buffers and plain Uint8Arrays over a larger ArrayBuffer (as batches inside a Fetch response are).
    const source = randomBytes(8192 + 8);
    for (const length of [0, 1, 63, 64, 65, 255, 256, 257, 259, 260, 1023, 1024, 1027, 4099, 8192]) {
      for (let offset = 0; offset < 4; offset++) {
        const view = source.subarray(offset, offset + length);
        const expected = nativeCrc32c(view) >>> 0;
        assert.equal(crc32c(view), expected, `Buffer, length ${length}, offset ${offset}`);
        const plain = new Uint8Array(source.buffer, source.byteOffset + offset, length);
        assert.equal(crc32c(plain), expected, `Uint8Array, length ${length}, offset ${offset}`);
        assert.equal(crc32c(view, 0x12345678), nativeCrc32c(view, 0x12345678) >>> 0, `continued, length ${length}, offset ${offset}`);
      }
    }
  });

  it('protocol: crc32c continues a checksum across pieces like the native one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (first, second) => {
        const whole = Buffer.concat([first, second]);
        assert.equal(crc32c(second, crc32c(first)), crc32c(whole));
        assert.equal(crc32c(second, crc32c(first)), nativeCrc32c(Buffer.from(second), nativeCrc32c(Buffer.from(first))) >>> 0);
      }),
      { numRuns: 300 },
    );
  });
});
