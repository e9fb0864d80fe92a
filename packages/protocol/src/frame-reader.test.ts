import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameReader } from './frame-reader.js';
import { encodeRequest, ProtocolError } from './index.js';

function frame(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(payload.length);
  return Buffer.concat([prefix, payload]);
}

function drain(reader: FrameReader): Buffer[] {
  const out: Buffer[] = [];
  for (let payload = reader.next(); payload !== null; payload = reader.next()) out.push(payload);
  return out;
}

describe('protocol: FrameReader', () => {
  it('protocol: FrameReader returns nothing until a frame is complete', () => {
    const reader = new FrameReader(1024);
    assert.equal(reader.next(), null);
    reader.push(Buffer.from([3, 0]));
    assert.equal(reader.next(), null);
    reader.push(Buffer.from([0, 0, 7, 8]));
    assert.equal(reader.next(), null);
    reader.push(Buffer.from([9]));
    assert.deepEqual(reader.next(), Buffer.from([7, 8, 9]));
    assert.equal(reader.next(), null);
    assert.equal(reader.bufferedBytes, 0);
  });

  it('protocol: FrameReader returns a view when the payload lies inside one chunk, a copy when it spans chunks', () => {
    // Buffer.alloc never hands out the shared pool, so `chunk.buffer` is this chunk's alone.
    const chunk = Buffer.alloc(16);
    Buffer.concat([frame(Buffer.from('abc')), frame(Buffer.from('defgh'))]).copy(chunk);
    const reader = new FrameReader(1024);
    reader.push(chunk.subarray(0, 13)); // the first frame and half of the second
    const first = reader.next();
    assert.deepEqual(first, Buffer.from('abc'));
    assert.equal(first!.buffer, chunk.buffer);
    assert.equal(reader.next(), null);
    reader.push(chunk.subarray(13));
    const second = reader.next();
    assert.deepEqual(second, Buffer.from('defgh'));
    assert.notEqual(second!.buffer, chunk.buffer);
  });

  it('protocol: FrameReader handles one-byte chunks and many frames per chunk', () => {
    const payloads = Array.from({ length: 50 }, (_, index) => Buffer.alloc(index + 1, index));
    const stream = Buffer.concat(payloads.map(frame));
    const reader = new FrameReader(1024);
    const received: Buffer[] = [];
    for (let at = 0; at < stream.length; at++) {
      reader.push(stream.subarray(at, at + 1));
      received.push(...drain(reader));
    }
    assert.deepEqual(received, payloads);
    reader.push(stream);
    assert.deepEqual(drain(reader), payloads);
  });

  it('protocol: FrameReader buffers a large frame sent in tiny chunks in linear time', () => {
    const payload = Buffer.alloc(512 * 1024, 5);
    const stream = frame(payload);
    const reader = new FrameReader(1 << 20);
    const started = performance.now();
    let received: Buffer | null = null;
    for (let at = 0; at < stream.length; at += 16) {
      reader.push(stream.subarray(at, at + 16));
      received = reader.next() ?? received;
    }
    assert.deepEqual(received, payload);
    assert.ok(performance.now() - started < 2000);
  });

  it('protocol: FrameReader rejects an oversized length as soon as the prefix arrives', () => {
    const reader = new FrameReader(100);
    reader.push(Buffer.from([101, 0]));
    assert.equal(reader.next(), null);
    reader.push(Buffer.from([0, 0]));
    assert.throws(
      () => reader.next(),
      (error: unknown) => error instanceof ProtocolError && error.code === 'FRAME_TOO_LARGE' && error.message === 'frame of 101 bytes is over the limit of 100',
    );
    const exact = new FrameReader(100);
    exact.push(frame(Buffer.alloc(100)));
    assert.equal(exact.next()!.length, 100);
  });

  it('protocol: FrameReader rejects a zero length', () => {
    const reader = new FrameReader(100);
    reader.push(Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 7]));
    assert.throws(() => reader.next(), (error: unknown) => error instanceof ProtocolError && error.code === 'INVALID_REQUEST');
    // The stream cannot be resynchronised: later calls fail the same way and nothing stays buffered.
    reader.push(Buffer.from([1, 0, 0, 0, 7]));
    assert.throws(() => reader.next(), (error: unknown) => error instanceof ProtocolError && error.code === 'INVALID_REQUEST');
    assert.equal(reader.bufferedBytes, 0);
  });

  it('protocol: FrameReader applies a new limit from the next frame on', () => {
    const reader = new FrameReader(1 << 20);
    const big = frame(encodeRequest('DeleteTopic', 1, { name: 'x'.repeat(200) }).subarray(4));
    reader.push(big.subarray(0, 10));
    assert.equal(reader.next(), null);
    reader.setMaxFrameBytes(64);
    reader.push(big.subarray(10));
    assert.equal(drain(reader).length, 1, 'a frame whose prefix was read before the change keeps the old limit');
    reader.push(big);
    assert.throws(() => reader.next(), (error: unknown) => error instanceof ProtocolError && error.code === 'FRAME_TOO_LARGE');
    assert.throws(() => new FrameReader(0), RangeError);
    assert.throws(() => reader.setMaxFrameBytes(2 ** 32), RangeError);
  });

  it('protocol: FrameReader does not allocate for a frame it rejects', () => {
    const before = process.memoryUsage().arrayBuffers;
    for (let index = 0; index < 1000; index++) {
      const reader = new FrameReader(1 << 20);
      reader.push(Buffer.from([0xff, 0xff, 0xff, 0x7f]));
      assert.throws(() => reader.next(), ProtocolError);
    }
    assert.ok(process.memoryUsage().arrayBuffers - before < 4 << 20);
  });

  it('protocol: FrameReader recovers arbitrary payloads from arbitrary chunkings', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((payload) => frame(Buffer.from(payload))));
          const boundaries = [...new Set(cuts.map((cut) => cut % (stream.length + 1))), stream.length].sort((x, y) => x - y);
          const reader = new FrameReader(300);
          const received: Buffer[] = [];
          let at = 0;
          for (const boundary of boundaries) {
            reader.push(stream.subarray(at, boundary));
            at = boundary;
            received.push(...drain(reader));
          }
          assert.deepEqual(received, payloads.map((payload) => Buffer.from(payload)));
          assert.equal(reader.bufferedBytes, 0);
        },
      ),
      { numRuns: 500 },
    );
  });
});
