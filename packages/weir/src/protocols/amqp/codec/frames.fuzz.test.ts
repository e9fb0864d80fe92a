import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AmqpFrameError,
  AmqpSyntaxError,
  decodeContentHeader,
  decodeMethod,
  decodeTable,
  encodeContentFrames,
  encodeFrame,
  encodeMethod,
  encodeMethodFrame,
  encodeProperties,
  encodeTable,
  FrameParser,
  FrameType,
  heartbeatFrame,
  type AmqpMethod,
} from './index.js';
import { anyMethodArb, fieldTableArb, propertiesArb } from './test-support.js';

/**
 * Bytes from a hostile or broken peer: random, mutated (bit flips, truncation, corrupted length fields, inserted and
 * deleted bytes) and randomly split valid streams go through FrameParser and on to decodeMethod/decodeContentHeader.
 * Every input must end in frames or an AmqpFrameError/AmqpSyntaxError, never another exception, and the parser may
 * never allocate or hold more than the frame limit allows. Deterministic: the seed and input number reproduce a case.
 *
 * WEIR_CHAOS=1 runs WEIR_FUZZ_INPUTS inputs (10 million by default) instead of 20,000.
 */
const INPUTS = process.env.WEIR_CHAOS ? Number(process.env.WEIR_FUZZ_INPUTS ?? 10_000_000) : 20_000;
const SEED = 0x5eed_a3d9;

/** xorshift32: fast, deterministic, good enough to pick mutations. */
class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

const sampleMethods: AmqpMethod[] = fc.sample(anyMethodArb, { seed: SEED, numRuns: 300 });
const sampleTables = fc.sample(fieldTableArb, { seed: SEED + 1, numRuns: 100 }).map(encodeTable);
const sampleProperties = fc.sample(propertiesArb, { seed: SEED + 2, numRuns: 100 }).map(encodeProperties);

/** Well-formed frames to start from: methods, content headers and bodies, heartbeats. */
const corpus: Buffer[] = [
  ...sampleMethods.map((method, i) => encodeMethodFrame(i % 3, method)),
  ...sampleProperties.flatMap((raw, i) => encodeContentFrames(1 + (i % 2), 60, raw, Buffer.alloc(i % 50, i), 0)),
  heartbeatFrame(),
];
/** Method and header payloads, to mutate and then frame correctly, so the mutations reach the decoders. */
const payloads: Buffer[] = [...sampleMethods.map(encodeMethod), ...sampleProperties.map((raw) => Buffer.concat([Buffer.from('003c00000000000000000007', 'hex'), raw]))];

const LIMITS = [4096, 131_072];
const interesting = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xfff8, 0xffff, 0x1_0000, 0x7fff_ffff, 0xffff_ffff];

function mutate(input: Buffer, random: Random): Buffer {
  let bytes = Buffer.from(input);
  const rounds = 1 + random.below(4);
  for (let round = 0; round < rounds && bytes.length > 0; round++) {
    switch (random.below(6)) {
      case 0: {
        // bit flips
        const flips = 1 + random.below(8);
        for (let i = 0; i < flips; i++) bytes[random.below(bytes.length)]! ^= 1 << random.below(8);
        break;
      }
      case 1: // truncation
        bytes = bytes.subarray(0, random.below(bytes.length));
        break;
      case 2: {
        // a length field (or anything 4 bytes wide) set to an interesting or random value
        if (bytes.length < 4) break;
        const at = random.below(bytes.length - 3);
        bytes.writeUInt32BE(random.below(2) === 0 ? random.pick(interesting) : random.next(), at);
        break;
      }
      case 3: // a one-byte length (shortstr, type tag) corrupted
        bytes[random.below(bytes.length)] = random.below(2) === 0 ? random.pick(interesting) & 0xff : random.next() & 0xff;
        break;
      case 4: {
        // insertion
        const at = random.below(bytes.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), random.bytes(1 + random.below(8)), bytes.subarray(at)]);
        break;
      }
      default: {
        // deletion
        const at = random.below(bytes.length);
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + random.below(8))]);
      }
    }
  }
  return bytes;
}

function validStream(random: Random): Buffer {
  const count = 1 + random.below(6);
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) frames.push(random.pick(corpus));
  return Buffer.concat(frames);
}

/** One input: what is fed to the parser, or a payload fed straight to one decoder. */
function makeInput(n: number, random: Random): Buffer {
  switch (n % 6) {
    case 0: // random bytes
      return random.bytes(random.below(300));
    case 1: {
      // random payload behind a plausible frame header
      const payload = random.bytes(random.below(200));
      return Buffer.concat([encodeFrame(random.pick([1, 2, 3, 8]), random.below(4), payload), random.bytes(random.below(4))]);
    }
    case 2: // a mutated valid stream
      return mutate(validStream(random), random);
    case 3: // a valid stream (split at random below)
      return validStream(random);
    default: {
      // a mutated payload, framed correctly so it reaches the decoder
      const payload = mutate(random.pick(payloads), random);
      const header = payload.length >= 4 && payload.readUInt16BE(0) === 60 && payload.readUInt16BE(2) === 0;
      return encodeFrame(header ? FrameType.Header : FrameType.Method, 1, payload);
    }
  }
}

function isCodecError(error: unknown): boolean {
  return error instanceof AmqpFrameError || error instanceof AmqpSyntaxError;
}

describe('amqp codec: fuzzing the frame parser and decoders', () => {
  it(`survives ${INPUTS.toLocaleString('en-US')} random, mutated and split inputs`, { timeout: process.env.WEIR_CHAOS ? 0 : 120_000 }, (t) => {
    const random = new Random(SEED);
    const allocUnsafe = Buffer.allocUnsafe;
    let largestAllocation = 0;
    const stats = { frames: 0, decoded: 0, frameErrors: 0, syntaxErrors: 0 };
    // Every buffer the parser allocates goes through allocUnsafe; record the largest request.
    Buffer.allocUnsafe = (size: number) => {
      if (size > largestAllocation) largestAllocation = size;
      return allocUnsafe(size);
    };
    const started = performance.now();
    try {
      for (let n = 0; n < INPUTS; n++) {
        const input = makeInput(n, random);
        const limit = LIMITS[n & 1]!;
        const parser = new FrameParser({ maxFrameSize: limit });
        largestAllocation = 0;
        try {
          let at = 0;
          while (at < input.length) {
            const size = 1 + random.below(n % 3 === 0 ? input.length : 16);
            parser.push(input.subarray(at, at + size));
            at += size;
            for (let frame = parser.next(); frame !== null; frame = parser.next()) {
              stats.frames++;
              assert.ok(frame.payload.length <= limit);
              if (frame.type === FrameType.Method) decodeMethod(frame.payload);
              else if (frame.type === FrameType.Header) decodeContentHeader(frame.payload);
              stats.decoded++;
            }
            assert.ok(parser.bufferedBytes <= limit + 8, `input ${n}: parser holds ${parser.bufferedBytes} bytes`);
          }
        } catch (error) {
          if (!isCodecError(error)) {
            throw new Error(`input ${n} (seed ${SEED}) threw ${String(error)}; input ${input.toString('hex')}`, { cause: error });
          }
          if (error instanceof AmqpFrameError) stats.frameErrors++;
          else stats.syntaxErrors++;
        }
        assert.ok(largestAllocation <= limit + 8, `input ${n}: allocated ${largestAllocation} bytes`);
        if (n % 6 === 5) {
          // The same mutated bytes straight into the table decoder.
          try {
            decodeTable(mutate(random.pick(sampleTables), random));
          } catch (error) {
            if (!isCodecError(error)) throw new Error(`table input ${n} threw ${String(error)}`, { cause: error });
          }
        }
      }
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(
      `${INPUTS} inputs in ${seconds.toFixed(2)} s (${Math.round(INPUTS / seconds).toLocaleString('en-US')} inputs/s): ` +
        `${stats.frames} frames, ${stats.decoded} decoded, ${stats.frameErrors} frame errors, ${stats.syntaxErrors} syntax errors`,
    );
    // The mix must reach both error paths and the success path, or it is not testing much.
    assert.ok(stats.decoded > INPUTS / 10);
    assert.ok(stats.frameErrors > INPUTS / 20);
    assert.ok(stats.syntaxErrors > INPUTS / 20);
  });

  it('decodes split valid streams to exactly what was encoded', () => {
    const random = new Random(SEED + 7);
    for (let n = 0; n < 2000; n++) {
      const picked = Array.from({ length: 1 + random.below(5) }, () => random.pick(sampleMethods));
      const stream = Buffer.concat(picked.map((method) => encodeMethodFrame(1, method)));
      const parser = new FrameParser({ maxFrameSize: 131_072 });
      const decoded: AmqpMethod[] = [];
      for (let at = 0; at < stream.length; ) {
        const size = 1 + random.below(64);
        parser.push(stream.subarray(at, at + size));
        at += size;
        for (let frame = parser.next(); frame !== null; frame = parser.next()) decoded.push(decodeMethod(frame.payload));
      }
      assert.deepEqual(decoded, picked);
    }
  });
});
