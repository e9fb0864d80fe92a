import {
  apis,
  encodePush,
  encodeRequest,
  encodeResponse,
  encodeErrorResponse,
  pushes,
  structs,
  type ApiName,
  type FieldType,
  type FieldSpec,
  type PushName,
} from 'weir-protocol';
import { encodeBatch, prepareMessage, batchBytes, type MessageInput } from '../../src/storage/record-batch.js';
import type { Random } from './engine.js';

/**
 * Valid native-protocol encodings to start fuzzing from: requests, responses and pushes of every API in the schema,
 * with field values drawn at random (edge values included), and record batches in the storage format.
 */

const TEXT = ['', 'a', 'orders', 'billing-group', 'ünïcødé ✓', 'x'.repeat(40)];

function sampleValue(type: FieldType, random: Random): unknown {
  if (typeof type === 'object') {
    if ('array' in type) return Array.from({ length: random.below(4) }, () => sampleValue(type.array, random));
    return sampleFields(structs[type.struct as keyof typeof structs] as readonly FieldSpec[], random);
  }
  switch (type) {
    case 'int8':
      return random.pick([0, 1, -1, 127, -128]);
    case 'int16':
      return random.pick([0, 1, -1, 32_767, -32_768, 7]);
    case 'int32':
      return random.pick([0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 100]);
    case 'int64':
      return random.pick([0, 1, -1, Number.MAX_SAFE_INTEGER, 1_750_000_000_000]);
    case 'uint8':
      return random.pick([0, 1, 255]);
    case 'uint16':
      return random.pick([0, 1, 65_535]);
    case 'uint32':
      return random.pick([0, 1, 2 ** 32 - 1]);
    case 'bool':
      return random.chance(0.5);
    case 'string':
      return random.pick(TEXT);
    case 'nullableString':
      return random.chance(0.3) ? null : random.pick(TEXT);
    case 'bytes':
      return random.bytes(random.below(24));
    case 'nullableBytes':
      return random.chance(0.3) ? null : random.bytes(random.below(24));
    case 'records':
      return random.chance(0.2) ? Buffer.alloc(0) : recordBatch(random);
  }
}

function sampleFields(fields: readonly FieldSpec[], random: Random): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) out[field.name] = sampleValue(field.type, random);
  return out;
}

/** One valid record batch of 1 to 4 messages with random ids, keys, tags, headers and bodies. */
export function recordBatch(random: Random): Buffer {
  const messages = Array.from({ length: 1 + random.below(4) }, () => {
    const input: MessageInput = {
      id: random.chance(0.5) ? null : random.bytes(1 + random.below(20)),
      key: random.chance(0.4) ? null : random.bytes(random.below(12)),
      tag: random.chance(0.6) ? null : random.pick(['created', 'paid', '']),
      headers: random.chance(0.5) ? null : { source: 'fuzz', bin: random.bytes(random.below(8)), ...(random.chance(0.3) ? { '': '' } : {}) },
      timestamp: random.chance(0.5) ? -1 : 1_750_000_000_000 + random.below(1000),
      body: random.bytes(random.below(48)),
    };
    return prepareMessage(input);
  });
  const length = batchBytes(messages);
  const batch = Buffer.alloc(length);
  encodeBatch(batch, 0, random.below(100), random.below(1000), 1_750_000_000_000, random.below(1 << 20) * 64, messages, {
    flags: random.pick([0, 0, 1, 2]),
    producerId: random.chance(0.5) ? 0 : 1 + random.below(1000),
    producerEpoch: random.below(3),
    baseSequence: random.chance(0.5) ? -1 : random.below(1000),
  });
  return batch;
}

/** `count` request frames (length prefix included), cycling through every API. */
export function sampleRequests(random: Random, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const api = apis[i % apis.length]!;
    out.push(encodeRequest(api.name as ApiName, random.next() | 0, sampleFields(api.request, random) as never));
  }
  return out;
}

/** `count` response frames (success and error responses) and push frames, cycling through every API and push. */
export function sampleResponses(random: Random, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const api = apis[i % apis.length]!;
    if (i % 5 === 4) out.push(encodeErrorResponse(api.key, random.next() | 0, 1 + random.below(31), random.pick(['', 'went wrong', null])));
    else out.push(encodeResponse(api.name as ApiName, random.next() | 0, sampleFields(api.response, random) as never));
    const push = pushes[i % pushes.length]!;
    out.push(encodePush(push.name as PushName, sampleFields(push.fields, random) as never));
  }
  return out;
}

/** A Handshake request, for streams that should get past the connection's first check. */
export function handshakeRequest(correlationId: number, maxFrameBytes: number): Buffer {
  return encodeRequest('Handshake', correlationId, { minVersion: 1, maxVersion: 1, clientId: 'fuzz', clientVersion: '0', maxFrameBytes, heartbeatMs: 0 } as never);
}
