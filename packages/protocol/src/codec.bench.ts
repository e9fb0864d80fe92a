/**
 * Micro-benchmark of the hot protocol paths. Run: node --conditions=development --import tsx packages/protocol/src/codec.bench.ts
 * Prints ns per message for Produce (100 messages × 100 B bodies) and Fetch (the same messages as one stored batch).
 */
import { performance } from 'node:perf_hooks';
import { crc32c } from './crc32c.js';
import { decodeRecordBatches } from './record-batch.js';
import { FrameReader } from './frame-reader.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from './codec.js';
import type { Message } from './types.js';

const MESSAGES = 100;
const BODY_BYTES = 100;

function bench(label: string, perCall: number, unit: string, run: () => unknown): void {
  // Warm up, then time enough calls for ~300 ms.
  let sink: unknown;
  for (let index = 0; index < 2000; index++) sink = run();
  let calls = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < 300) {
    for (let index = 0; index < 200; index++) sink = run();
    calls += 200;
    elapsed = performance.now() - started;
  }
  const nsPerUnit = (elapsed * 1e6) / (calls * perCall);
  console.log(`${label.padEnd(58)} ${nsPerUnit.toFixed(1).padStart(8)} ns/${unit}`);
  if (sink === Symbol.for('never')) console.log('');
}

function messages(withExtras: boolean): Message[] {
  return Array.from({ length: MESSAGES }, (_, index) => ({
    id: null,
    key: Buffer.from(`customer-${index % 997}`),
    tag: withExtras ? 'created' : null,
    headers: withExtras ? [{ name: 'content-type', isString: true, value: Buffer.from('application/json') }] : [],
    timestamp: 1_700_000_000_000 + index,
    body: Buffer.alloc(BODY_BYTES, index),
  }));
}

for (const withExtras of [false, true]) {
  const label = withExtras ? 'key+tag+1 header' : 'key only';
  const body = { topic: 'orders', partition: -1, acks: 1, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: messages(withExtras) };
  const frame = encodeRequest('Produce', 1, body);
  const payload = frame.subarray(4);
  bench(`encodeRequest Produce ${MESSAGES}×${BODY_BYTES} B (${label})`, MESSAGES, 'message', () => encodeRequest('Produce', 1, body));
  bench(`decodeRequest Produce ${MESSAGES}×${BODY_BYTES} B (${label})`, MESSAGES, 'message', () => decodeRequest(payload));
}

/**
 * One stored batch of `messages` in the storage format (docs/storage.md), written here so this file needs nothing
 * outside the package; record-batch.test.ts checks the decoder against the broker's own encoder.
 */
function storedBatch(baseOffset: number, storeTimestamp: number, batchMessages: readonly Message[]): Buffer {
  const parts: Buffer[] = [];
  const u16 = (value: number): Buffer => Buffer.from([value & 0xff, value >>> 8]);
  const u32 = (value: number): Buffer => {
    const out = Buffer.alloc(4);
    out.writeUInt32LE(value);
    return out;
  };
  const u64 = (value: number): Buffer => Buffer.concat([u32(value % 2 ** 32), u32(Math.floor(value / 2 ** 32))]);
  batchMessages.forEach((message, index) => {
    const headers = Buffer.concat([
      u16(message.headers.length),
      ...message.headers.flatMap((header) => [u16(header.name.length), Buffer.from(header.name), Buffer.from([header.isString ? 0 : 1]), u32(header.value.length), header.value]),
    ]);
    const id = Buffer.alloc(16, index); // stands in for a generated id
    const tag = message.tag === null ? Buffer.alloc(0) : Buffer.from(message.tag);
    const fields = Buffer.concat([
      u64(message.timestamp),
      Buffer.from([id.length]),
      id,
      message.key === null ? u16(0xffff) : Buffer.concat([u16(message.key.length), message.key]),
      Buffer.from([tag.length]),
      tag,
      u32(headers.length),
      headers,
      message.body,
    ]);
    parts.push(u32(fields.length), fields);
  });
  const body = Buffer.concat(parts);
  const header = Buffer.concat([
    u32(48 + body.length),
    u32(0),
    Buffer.from([1, 0]),
    u16(batchMessages.length),
    u32(1),
    u64(baseOffset),
    u64(storeTimestamp),
    u64(0),
    u16(0),
    u16(0),
    u32(0xffffffff),
  ]);
  const batch = Buffer.concat([header, body]);
  batch.writeUInt32LE(crc32c(batch.subarray(8)), 4);
  return batch;
}

const batch = storedBatch(1000, 1_700_000_000_000, messages(true));
const fetchFrame = encodeResponse('Fetch', 2, { startOffset: 0, endOffset: 1100, records: [batch] });
const fetchPayload = fetchFrame.subarray(4);
bench(`encodeResponse Fetch, 1 batch of ${MESSAGES} (${batch.length} B)`, MESSAGES, 'message', () =>
  encodeResponse('Fetch', 2, { startOffset: 0, endOffset: 1100, records: [batch] }),
);
bench(`decodeResponse Fetch + decodeRecordBatches (CRC checked)`, MESSAGES, 'message', () => {
  const response = decodeResponse(fetchPayload);
  return response.name === 'Fetch' && response.body !== null ? decodeRecordBatches(response.body.records, 0) : null;
});
bench(`decodeResponse Fetch + decodeRecordBatches (no CRC)`, MESSAGES, 'message', () => {
  const response = decodeResponse(fetchPayload);
  return response.name === 'Fetch' && response.body !== null ? decodeRecordBatches(response.body.records, 0, { verifyCrc: false }) : null;
});

const block = Buffer.alloc(64 * 1024, 7);
bench('crc32c (pure JS, slicing-by-16), 64 KiB', block.length, 'byte', () => crc32c(block));

// A stream of 100 Produce frames cut into 1500-byte chunks, as a socket might deliver them.
const produceFrame = encodeRequest('Produce', 1, {
  topic: 'orders',
  partition: -1,
  acks: 1,
  producerId: -1,
  producerEpoch: -1,
  baseSequence: -1,
  messages: messages(false),
});
const stream = Buffer.concat(Array.from({ length: 100 }, () => produceFrame));
const chunks: Buffer[] = [];
for (let at = 0; at < stream.length; at += 1500) chunks.push(stream.subarray(at, at + 1500));
bench(`FrameReader, 100 Produce frames in 1500 B chunks`, stream.length, 'byte', () => {
  const reader = new FrameReader(1 << 24);
  let frames = 0;
  for (const chunk of chunks) {
    reader.push(chunk);
    while (reader.next() !== null) frames++;
  }
  return frames;
});
