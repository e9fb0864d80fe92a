import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { decodePush, decodeRequest, decodeResponse, FrameReader, isProtocolError } from 'weir-protocol';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { NativeConnection, type HandlerTable } from '../../src/protocols/native/native-connection.js';
import { countOf, defaultInput, formatSummary, fuzz, fuzzTimeoutMs, mutate, Random, split, stream, type FuzzTarget } from './engine.js';
import { handshakeRequest, sampleRequests, sampleResponses } from './native-samples.js';

/**
 * The native protocol's decoders, broker side (FrameReader + decodeRequest, and a whole NativeConnection fed through
 * a socket stand-in) and client side (FrameReader + decodeResponse / decodePush), with inputs split at random points
 * as socket reads would be. Only ProtocolError may come out of the decoders; nothing at all out of the connection.
 */

const LIMITS = [4096, 65_536];
const corpusRandom = new Random(0x2a7e);
const requests = sampleRequests(corpusRandom, 600);
const responses = sampleResponses(corpusRandom, 600);

function classifyProtocolError(error: unknown): string | null {
  return isProtocolError(error) ? error.code : null;
}

/** Cuts `input` into frames with a FrameReader at `limit`, calling `decode` on each; returns the frame count. */
function readFrames(input: Buffer, random: Random, limit: number, decode: (frame: Buffer) => void): number {
  const reader = new FrameReader(limit);
  let frames = 0;
  for (const chunk of split(input, random)) {
    reader.push(chunk);
    for (let frame = reader.next(); frame !== null; frame = reader.next()) {
      assert.ok(frame.length <= limit, `a frame of ${frame.length} bytes passed the limit of ${limit}`);
      decode(frame);
      frames++;
    }
  }
  return frames;
}

// A FrameReader copies a frame that spans chunks into one buffer of exactly its size, so at one limit nothing the
// decoders are given, or allocate, may be larger than that limit.
function requestTarget(limit: number): FuzzTarget {
  return {
    name: `native requests at a ${limit}-byte frame limit (FrameReader + decodeRequest)`,
    seed: 0x7e9e57 + limit,
    shortInputs: 60_000,
    corpus: requests,
    maxAllocationBytes: limit,
    run(input, random) {
      const frames = readFrames(input, random, limit, (frame) => void decodeRequest(frame));
      return frames > 0 ? 'decoded' : 'incomplete';
    },
    classify: classifyProtocolError,
  };
}

function responseTarget(limit: number): FuzzTarget {
  return {
    name: `native responses and pushes at a ${limit}-byte frame limit (FrameReader + decodeResponse/decodePush)`,
    seed: 0x7e59 + limit,
    shortInputs: 60_000,
    corpus: responses,
    maxAllocationBytes: limit,
    run(input, random) {
      const frames = readFrames(input, random, limit, (frame) => {
        if (frame[0] === 2) decodePush(frame);
        else decodeResponse(frame);
      });
      return frames > 0 ? 'decoded' : 'incomplete';
    },
    classify: classifyProtocolError,
  };
}

/** Just enough of net.Socket for NativeConnection: records what is written and whether the broker ended it. */
class SocketStandIn extends EventEmitter {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  destroyed = false;
  writable = true;
  writableNeedDrain = false;
  writableLength = 0;
  written = 0;
  ended = false;
  private paused = false;
  write(frame: Buffer): boolean {
    this.written += frame.length;
    return true;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  isPaused(): boolean {
    return this.paused;
  }
  end(): this {
    this.ended = true;
    this.writable = false;
    return this;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.writable = false;
      this.emit('close');
    }
    return this;
  }
}

/** Every API answers with no response, so the fuzz exercises the connection's decoding, not the broker. */
const nullHandlers = new Proxy({}, { get: () => () => null }) as HandlerTable;

const connectionTarget: FuzzTarget = {
  name: 'native connection (NativeConnection over a socket stand-in)',
  seed: 0xc0ec7,
  shortInputs: 60_000,
  corpus: requests,
  maxAllocationBytes: LIMITS[0]! + 64 * 1024,
  generate(random, n) {
    // Most streams open with a Handshake, so the requests behind it reach decodeRequest.
    const body = defaultInput(random, n, requests);
    if (n % 4 === 3) return body;
    const handshake = handshakeRequest(random.next() | 0, LIMITS[0]!);
    return Buffer.concat([n % 4 === 2 ? mutate(handshake, random) : handshake, n % 8 === 1 ? stream(random, requests, 12) : body]);
  },
  run(input, random) {
    const socket = new SocketStandIn();
    new NativeConnection(socket as unknown as Socket, nullHandlers, {
      maxFrameBytes: LIMITS[0]!,
      requestCounts: new Map(),
      heartbeatMs: 60_000,
      maxInFlight: 1024,
      maxOutputBytes: 1 << 20,
      handshakeTimeoutMs: 60_000,
      brokerVersion: 'fuzz',
      clock: systemClock,
      logger: silentLogger,
    });
    for (const chunk of split(input, random)) {
      if (socket.ended) break;
      socket.emit('data', chunk);
    }
    const outcome = socket.ended ? 'closed by broker' : 'open';
    socket.destroy();
    return outcome;
  },
  // Nothing a client sends may throw out of the connection.
  classify: () => null,
};

describe('fuzzing the native protocol decoders', () => {
  for (const target of LIMITS.flatMap((limit) => [requestTarget(limit), responseTarget(limit)])) {
    it(`${target.name}: only ProtocolError, bounded time and allocation`, { timeout: fuzzTimeoutMs() }, async (t) => {
      const summary = await fuzz(target);
      t.diagnostic(formatSummary(summary));
      assert.ok(countOf(summary, 'decoded') > summary.inputs / 10, formatSummary(summary));
      assert.ok(countOf(summary, 'error:INVALID_REQUEST') > summary.inputs / 20, formatSummary(summary));
      assert.ok(countOf(summary, 'error:FRAME_TOO_LARGE') > 0, formatSummary(summary));
    });
  }

  it(`${connectionTarget.name}: never throws, never allocates past its frame limit`, { timeout: fuzzTimeoutMs() }, async (t) => {
    const summary = await fuzz(connectionTarget);
    t.diagnostic(formatSummary(summary));
    assert.ok(countOf(summary, 'closed by broker') > summary.inputs / 10, formatSummary(summary));
    assert.ok(countOf(summary, 'open') > summary.inputs / 10, formatSummary(summary));
  });
});
