import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeRecordBatches, isProtocolError } from 'weir-protocol';
import { ErrorCode, isWeirError } from '../../src/core/errors.js';
import { crc32c } from '../../src/storage/crc.js';
import {
  BatchCheck,
  checkBatch,
  checkBatchFrame,
  decodeHeaderList,
  decodeHeaders,
  decodeMessages,
  encodedHeader,
  forEachMessageSummary,
  RECORD_HEADER_BYTES,
  type StoredMessage,
} from '../../src/storage/record-batch.js';
import { countOf, defaultInput, formatSummary, fuzz, fuzzTimeoutMs, Random, type FuzzTarget } from './engine.js';
import { recordBatch } from './native-samples.js';

/**
 * Record batches read back from disk (the commit log after a crash, a damaged segment) and from Fetch responses (the
 * client's decoder) must fail with DATA_DAMAGED, never read outside the batch or throw anything else. Half of the
 * mutated inputs get a CRC recomputed over the mutation, as a batch written by a buggy writer (or passing its CRC by
 * accident) would have, so the mutations reach the message and header decoders behind the CRC check.
 */

const MAX_BATCH_BYTES = 1 << 20;
const corpusRandom = new Random(0xba7c4);
const corpus = Array.from({ length: 400 }, () => recordBatch(corpusRandom));

/** Recomputes the CRC of the batch at offset 0 when its declared length fits the input. */
function fixCrc(input: Buffer): Buffer {
  if (input.length < RECORD_HEADER_BYTES) return input;
  const length = input.readUInt32LE(0);
  if (length >= RECORD_HEADER_BYTES && length <= input.length) input.writeUInt32LE(crc32c(input.subarray(8, length)), 4);
  return input;
}

function generate(random: Random, n: number): Buffer {
  const input = defaultInput(random, n, corpus);
  return n % 2 === 0 ? fixCrc(Buffer.from(input)) : input;
}

/** Reads every field of a message, as a consumer of the store would. */
function touch(message: StoredMessage): number {
  let sum = message.timestamp + message.id.length + (message.key?.length ?? 0) + (message.tag?.length ?? 0) + message.body.length;
  const headers = message.headers;
  sum += Object.keys(decodeHeaders(headers)).length + decodeHeaderList(headers).length;
  sum += encodedHeader(headers, 'source') === undefined ? 0 : 1;
  return sum;
}

const storageTarget: FuzzTarget = {
  name: 'storage record-batch',
  seed: 0x5107a6e,
  shortInputs: 60_000,
  corpus,
  maxAllocationBytes: 0,
  generate,
  run(input, random) {
    // As the commit log's recovery scan does: batch after batch while each checks out, then decode them. Bytes that
    // never left memory are checked without their CRC (checkBatchFrame), so both paths are fuzzed.
    const withCrc = random.chance(0.5);
    let at = 0;
    let batches = 0;
    for (;;) {
      const check = withCrc ? checkBatch(input, at, input.length, MAX_BATCH_BYTES) : checkBatchFrame(input, at, input.length, MAX_BATCH_BYTES);
      if (check !== BatchCheck.Valid) {
        if (batches > 0) return 'batches';
        return check === BatchCheck.Short ? 'short' : 'invalid';
      }
      const messages: StoredMessage[] = [];
      decodeMessages(input, at, at, 0, Infinity, messages);
      for (const message of messages) touch(message);
      forEachMessageSummary(input, at, (_index, size, id, key, tag) => assert.ok(size > 0 && id.length <= 255 && (key?.length ?? 0) < 0xffff && (tag?.length ?? 0) <= 255));
      at += input.readUInt32LE(at);
      batches++;
    }
  },
  classify: (error) => (isWeirError(error, ErrorCode.DataDamaged) ? error.code : null),
};

const clientTarget: FuzzTarget = {
  name: 'client record batches',
  seed: 0xc11e47,
  shortInputs: 60_000,
  corpus,
  maxAllocationBytes: 0,
  generate,
  run(input, random) {
    const messages = decodeRecordBatches(input, random.chance(0.8) ? 0 : random.below(1000), { verifyCrc: random.chance(0.5) });
    for (const message of messages) {
      void (message.offset + message.timestamp + message.id.length + (message.key?.length ?? 0) + (message.tag?.length ?? 0) + message.body.length);
      void Object.keys(message.headers).length;
    }
    return messages.length > 0 ? 'decoded' : 'empty';
  },
  classify: (error) => (isProtocolError(error, 'DATA_DAMAGED') ? error.code : null),
};

describe('fuzzing the record-batch decoders', () => {
  for (const target of [storageTarget, clientTarget]) {
    it(`${target.name}: only DATA_DAMAGED, bounded time, no allocation`, { timeout: fuzzTimeoutMs() }, async (t) => {
      const summary = await fuzz(target);
      t.diagnostic(formatSummary(summary));
      // The mix must reach the decoders behind the checks, and their error paths, or it tests little.
      assert.ok(countOf(summary, 'batches') + countOf(summary, 'decoded') > summary.inputs / 10, formatSummary(summary));
      assert.ok(countOf(summary, 'error:DATA_DAMAGED') > summary.inputs / 50, formatSummary(summary));
    });
  }
});
