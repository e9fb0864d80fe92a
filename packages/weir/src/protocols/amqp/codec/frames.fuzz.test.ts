import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { countOf, defaultInput, formatSummary, fuzz, fuzzTimeoutMs, mutate, Random, split, type FuzzTarget } from '../../../../test/fuzz/engine.js';
import {
  AmqpFrameError,
  AmqpSyntaxError,
  BASIC_ACK_KEY,
  BASIC_PUBLISH_KEY,
  BasicAckReader,
  BasicPublishReader,
  ContentHeaderReader,
  decodeMethod,
  decodeProperties,
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
  parseProtocolHeader,
  PROTOCOL_HEADER,
  type AmqpMethod,
} from './index.js';
import { anyMethodArb, fieldTableArb, propertiesArb } from './test-support.js';

/**
 * Bytes from a hostile or broken peer, through the shared fuzz engine (test/fuzz/engine.ts): random, mutated and
 * randomly split valid streams go through FrameParser and on to the decoders, read in place as the connection reads
 * them (decodeMethod, the basic.publish and basic.ack readers, ContentHeaderReader); mutated payloads go
 * straight to the method, field-table and properties decoders. Every input must end in frames or an
 * AmqpFrameError/AmqpSyntaxError, and the parser may never allocate or hold more than the frame limit allows.
 */
const SEED = 0x5eed_a3d9;
const LIMITS = [4096, 131_072];

const sampleMethods: AmqpMethod[] = fc.sample(anyMethodArb, { seed: SEED, numRuns: 300 });
const sampleTables = fc.sample(fieldTableArb, { seed: SEED + 1, numRuns: 100 }).map(encodeTable);
const sampleProperties = fc.sample(propertiesArb, { seed: SEED + 2, numRuns: 100 }).map(encodeProperties);

/** Well-formed frames to start from: methods, content headers and bodies, heartbeats. */
const frames: Buffer[] = [
  ...sampleMethods.map((method, i) => encodeMethodFrame(i % 3, method)),
  ...sampleProperties.flatMap((raw, i) => encodeContentFrames(1 + (i % 2), 60, raw, Buffer.alloc(i % 50, i), 0)),
  heartbeatFrame(),
];
/** Method and content-header payloads, mutated and then framed correctly so the mutations reach the decoders. */
const payloads: Buffer[] = [...sampleMethods.map(encodeMethod), ...sampleProperties.map((raw) => Buffer.concat([Buffer.from('003c00000000000000000007', 'hex'), raw]))];

function classify(error: unknown): string | null {
  if (error instanceof AmqpFrameError) return `frame-${error.replyCode}`;
  if (error instanceof AmqpSyntaxError) return `syntax-${error.replyCode}`;
  return null;
}

/** The parser at one frame limit: what it holds and allocates is bounded by that limit plus a frame's 8-byte overhead. */
function framesTarget(limit: number): FuzzTarget {
  return {
    name: `amqp frames at a ${limit}-byte frame limit (FrameParser, read in place)`,
    seed: SEED + limit,
    shortInputs: 60_000,
    corpus: frames,
    maxAllocationBytes: limit + 8,
    generate(random, n) {
      if (n % 5 !== 4) return defaultInput(random, n, frames);
      if (n % 10 === 4) return encodeFrame(random.pick([1, 2, 3, 8]), random.below(4), random.bytes(random.below(200)));
      const payload = mutate(random.pick(payloads), random);
      const header = payload.length >= 4 && payload.readUInt16BE(0) === 60 && payload.readUInt16BE(2) === 0;
      return encodeFrame(header ? FrameType.Header : FrameType.Method, 1, payload);
    },
    run(input, random) {
      const parser = new FrameParser({ maxFrameSize: limit });
      // Read in place, as the connection reads: the reused readers for basic.publish, basic.ack and content headers.
      const publishes = new BasicPublishReader();
      const acks = new BasicAckReader();
      const headers = new ContentHeaderReader();
      let decoded = 0;
      for (const chunk of split(input, random)) {
        parser.push(chunk);
        while (parser.advance()) {
          const { payloadBuf: buf, payloadStart: start, payloadEnd: end } = parser;
          assert.ok(end - start <= limit, `a payload of ${end - start} bytes passed the limit of ${limit}`);
          if (parser.frameType === FrameType.Method) {
            const key = end - start >= 4 ? buf.readUInt32BE(start) : 0;
            if (key === BASIC_PUBLISH_KEY) publishes.read(buf, start, end);
            else if (key === BASIC_ACK_KEY) acks.read(buf, start, end);
            else decodeMethod(buf, start, end);
          } else if (parser.frameType === FrameType.Header) headers.read(buf, start, end);
          decoded++;
        }
        assert.ok(parser.bufferedBytes <= limit + 8, `the parser holds ${parser.bufferedBytes} bytes`);
      }
      return decoded > 0 ? 'decoded' : 'incomplete';
    },
    classify,
  };
}

const fieldsTarget: FuzzTarget = {
  name: 'amqp field tables, properties and protocol headers',
  seed: SEED + 3,
  shortInputs: 60_000,
  corpus: [...sampleTables, ...sampleProperties, PROTOCOL_HEADER],
  maxAllocationBytes: 0,
  run(input, random) {
    switch (random.below(3)) {
      case 0:
        decodeTable(input);
        return 'table';
      case 1:
        decodeProperties(input);
        return 'properties';
      default:
        // The first 8 bytes a client sends (the connection only calls this once it has 8).
        return parseProtocolHeader(input.length >= 8 ? input.subarray(0, 8) : PROTOCOL_HEADER).ok ? 'header ok' : 'header refused';
    }
  },
  classify,
};

describe('amqp codec: fuzzing the frame parser and decoders', () => {
  for (const target of LIMITS.map(framesTarget)) {
    it(`${target.name}: only codec errors, bounded time and allocation`, { timeout: fuzzTimeoutMs() }, async (t) => {
      const summary = await fuzz(target);
      t.diagnostic(formatSummary(summary));
      // The mix must reach both error paths and the success path, or it is not testing much.
      assert.ok(countOf(summary, 'decoded') > summary.inputs / 10, formatSummary(summary));
      assert.ok(countOf(summary, 'error:frame-') > summary.inputs / 20, formatSummary(summary));
      assert.ok(countOf(summary, 'error:syntax-') > summary.inputs / 20, formatSummary(summary));
    });
  }

  it(`${fieldsTarget.name}: only codec errors, bounded time, no allocation`, { timeout: fuzzTimeoutMs() }, async (t) => {
    const summary = await fuzz(fieldsTarget);
    t.diagnostic(formatSummary(summary));
    assert.ok(countOf(summary, 'table') + countOf(summary, 'properties') > summary.inputs / 30, formatSummary(summary));
    assert.ok(countOf(summary, 'error:syntax-') > summary.inputs / 10, formatSummary(summary));
  });

  it('decodes split valid streams to exactly what was encoded', () => {
    const random = new Random(SEED + 7);
    for (let n = 0; n < 2000; n++) {
      const picked = Array.from({ length: 1 + random.below(5) }, () => random.pick(sampleMethods));
      const stream = Buffer.concat(picked.map((method) => encodeMethodFrame(1, method)));
      const parser = new FrameParser({ maxFrameSize: 131_072 });
      const decoded: AmqpMethod[] = [];
      for (const chunk of split(stream, random)) {
        parser.push(chunk);
        for (let frame = parser.next(); frame !== null; frame = parser.next()) decoded.push(decodeMethod(frame.payload));
      }
      assert.deepEqual(decoded, picked);
    }
  });
});
