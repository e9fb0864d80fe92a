import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  apis,
  apiKeyOf,
  apiNameOf,
  decodeRequest,
  decodeResponse,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  encodeResponseParts,
  errorCodeOf,
  FrameReader,
  MAX_ERROR_MESSAGE_BYTES,
  ProtocolError,
  structs,
  type ApiName,
  type FieldSpec,
  type FieldType,
  type RequestOf,
  type ResponseOf,
} from './index.js';
import { codecsGenerated } from './codec.js';

const b = (text: string): Buffer => Buffer.from(text, 'utf8');

const topicConfig = { retentionMs: 604_800_000, retentionBytes: -1, flushPolicy: 'sync', flushIntervalMs: 1000, maxMessageBytes: 1_048_576 };
const topicDescription = {
  name: 'orders',
  config: topicConfig,
  partitions: [
    { partition: 0, startOffset: 0, endOffset: 120, bytes: 64_000 },
    { partition: 1, startOffset: 7, endOffset: 2 ** 40, bytes: 2 ** 50 },
  ],
};
const header = { name: 'content-type', isString: true, value: b('application/json') };
const delivery = {
  partition: 3,
  offset: 99,
  deliveryCount: 2,
  timestamp: 1_700_000_000_000,
  storeTimestamp: 1_700_000_000_001,
  id: b('0123456789abcdef'),
  key: null,
  tag: 'created',
  headers: [header],
  body: b('{"job":1}'),
};

/** One request and one response with sample values for every API; the mapped type makes it exhaustive. */
const samples: { [N in ApiName]: { request: RequestOf<N>; response: ResponseOf<N> } } = {
  Handshake: {
    request: { minVersion: 1, maxVersion: 1, clientId: 'billing', clientVersion: '0.1.0', maxFrameBytes: 8 << 20, heartbeatMs: 0 },
    response: { version: 1, brokerVersion: '0.1.0', maxFrameBytes: 8 << 20, heartbeatMs: 3000, connectionId: 'c-17' },
  },
  Ping: { request: {}, response: {} },
  CreateTopic: { request: { name: 'orders', partitions: 2, config: topicConfig }, response: { topic: topicDescription } },
  DeleteTopic: { request: { name: 'orders' }, response: {} },
  ListTopics: { request: {}, response: { topics: [topicDescription, { ...topicDescription, name: 'empty', partitions: [] }] } },
  DescribeTopic: { request: { name: 'orders' }, response: { topic: topicDescription } },
  AlterTopic: { request: { name: 'orders', partitions: -1, config: topicConfig }, response: { topic: topicDescription } },
  InitProducer: { request: { producerId: -1 }, response: { producerId: 91, producerEpoch: 3 } },
  Produce: {
    request: {
      topic: 'orders',
      partition: -1,
      acks: 2,
      producerId: 91,
      producerEpoch: 3,
      baseSequence: 40,
      messages: [
        { id: null, key: b('customer-42'), tag: 'created', headers: [header], timestamp: -1, body: b('{"total":12}') },
        { id: b('my-id'), key: null, tag: null, headers: [], timestamp: 1_700_000_000_000, body: new Uint8Array(0) },
        { id: null, key: new Uint8Array(0), tag: 'ünïcødé ✓', headers: [{ name: 'raw', isString: false, value: Uint8Array.of(0, 255) }], timestamp: 0, body: b('x') },
      ],
    },
    response: { partition: 1, baseOffset: 120, storeTimestamp: 1_700_000_000_123, position: 2 ** 33 + 5, duplicate: false },
  },
  Fetch: {
    request: { topic: 'orders', partition: 1, offset: 100, maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 500 },
    response: { startOffset: 0, endOffset: 120, records: [b('batch-one'), b('batch-two')] },
  },
  ListOffsets: { request: { topic: 'orders', partition: 0, timestamp: -2 }, response: { offset: 0 } },
  JoinGroup: {
    request: { group: 'g', memberId: '', topics: ['orders', 'refunds'], strategy: 'range', sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 30_000 },
    response: { memberId: 'm-1', generation: 4, members: ['m-1', 'm-2'] },
  },
  SyncGroup: {
    request: { group: 'g', generation: 4, memberId: 'm-1' },
    response: { assignment: [{ topic: 'orders', partitions: [0, 1] }, { topic: 'refunds', partitions: [] }] },
  },
  Heartbeat: { request: { group: 'g', generation: 4, memberId: 'm-1' }, response: {} },
  LeaveGroup: { request: { group: 'g', memberId: 'm-1' }, response: {} },
  CommitOffsets: {
    request: { group: 'g', generation: -1, memberId: '', offsets: [{ topic: 'orders', partition: 0, offset: 120, metadata: 'host-a' }] },
    response: {},
  },
  FetchOffsets: {
    request: { group: 'g', topic: 'orders' },
    response: {
      offsets: [
        { topic: 'orders', partition: 0, offset: 120, metadata: '' },
        { topic: 'orders', partition: 1, offset: -1, metadata: '' },
      ],
    },
  },
  ListGroups: { request: {}, response: { groups: [{ group: 'g', mode: 'stream', state: 'Stable', members: 2 }] } },
  DescribeGroup: {
    request: { group: 'g' },
    response: {
      summary: { group: 'g', mode: 'stream', state: 'Stable', members: 1 },
      generation: 4,
      strategy: 'range',
      members: [{ memberId: 'm-1', clientId: 'billing', host: '10.0.0.7', assignment: [{ topic: 'orders', partitions: [0, 1] }] }],
      lag: [{ topic: 'orders', partition: 0, committedOffset: 100, endOffset: 120, lag: 20 }],
    },
  },
  GetMessage: {
    request: { id: null, key: b('customer-42'), topic: 'orders', limit: 10 },
    response: {
      messages: [
        {
          topic: 'orders',
          partition: 0,
          offset: 5,
          timestamp: 1_700_000_000_000,
          storeTimestamp: 1_700_000_000_001,
          id: b('0123456789abcdef'),
          key: b('customer-42'),
          tag: null,
          headers: [header],
          body: b('{}'),
        },
      ],
    },
  },
  Subscribe: {
    request: { group: 'workers', topic: 'jobs', mode: 'shared', consumerId: '', prefetch: 100, priority: 0, filterKind: 'sql', filter: "region = 'eu'", settings: '{"maxDeliveries":5}' },
    response: { consumerId: 'c-17-1' },
  },
  Unsubscribe: { request: { group: 'workers', topic: 'jobs', consumerId: 'c-17-1' }, response: {} },
  Settle: {
    request: {
      group: 'workers',
      topic: 'jobs',
      consumerId: 'c-17-1',
      outcomes: [
        { partition: 0, offset: 12, outcome: 0, delayMs: -1, error: null },
        { partition: 1, offset: 2 ** 40, outcome: 1, delayMs: 5000, error: 'database busy' },
      ],
    },
    response: { applied: 2 },
  },
  Extend: { request: { group: 'workers', topic: 'jobs', consumerId: 'c-17-1', ms: 30_000, deliveries: [{ partition: 0, offset: 12 }] }, response: { applied: 1 } },
  Receive: {
    request: { group: 'workers', topic: 'jobs', mode: 'key_shared', maxMessages: 10, waitMs: 500, filterKind: '', filter: '', settings: '' },
    response: { consumerId: 'pull-c-17', deliveries: [delivery] },
  },
  Peek: { request: { group: 'workers', topic: 'jobs', limit: 5 }, response: { messages: [delivery] } },
  BeginTransaction: { request: { producerGroup: 'orders' }, response: { transactionId: '3f1c…' } },
  TransactionProduce: { request: { transactionId: 't1', topic: 'orders', partition: -1, messages: [] }, response: { partition: 2, ids: [b('0123456789abcdef')] } },
  EndTransaction: { request: { transactionId: 't1', outcome: 0 }, response: {} },
  JoinProducerGroup: { request: { producerGroup: 'orders' }, response: {} },
  LeaveProducerGroup: { request: { producerGroup: 'orders' }, response: {} },
  ListProducers: { request: {}, response: { producers: [{ producerId: 7, epoch: 1, partitions: 3, batches: 10, messages: 100, duplicates: 2, gaps: 0, lastSeen: 1_700_000_000_000 }] } },
  GetTrace: { request: { id: b('0123456789abcdef') }, response: { events: [{ time: 1_700_000_000_000, kind: 'acked', detail: '{"group":"g"}' }] } },
  ListUsers: { request: {}, response: { users: [{ name: 'guest', tags: ['administrator'] }, { name: 'orders-app', tags: [] }] } },
  AddUser: { request: { name: 'orders-app', password: 's3cret', tags: ['monitoring', 'management'] }, response: {} },
  DeleteUser: { request: { name: 'orders-app' }, response: {} },
  ChangePassword: { request: { name: 'orders-app', password: 'n3w s3cret ✓' }, response: {} },
  SetUserTags: { request: { name: 'orders-app', tags: [] }, response: {} },
  ListVhosts: { request: {}, response: { vhosts: ['/', 'orders'] } },
  AddVhost: { request: { name: 'orders' }, response: {} },
  DeleteVhost: { request: { name: 'orders' }, response: {} },
  ListPermissions: {
    request: { user: null, vhost: '/' },
    response: { permissions: [{ user: 'guest', vhost: '/', configure: '.*', write: '.*', read: '.*' }, { user: 'reader', vhost: '/', configure: '', write: '', read: '^orders\\.' }] },
  },
  SetPermissions: { request: { user: 'reader', vhost: '/', configure: '', write: '', read: '^orders\\.' }, response: {} },
  ClearPermissions: { request: { user: 'reader', vhost: '/' }, response: {} },
  ExportDefinitions: { request: {}, response: { definitions: b('{"users":[],"vhosts":[{"name":"/"}],"permissions":[]}') } },
  ImportDefinitions: {
    request: { definitions: b('{"vhosts":[{"name":"/"}],"policies":[]}') },
    response: { applied: [{ key: 'vhosts', count: 1 }], skipped: ['policies'] },
  },
  DescribeSharedGroup: {
    request: { group: 'workers' },
    response: {
      mode: 'shared',
      settings: '{}',
      filterKind: '',
      filter: '',
      topics: [{ topic: 'jobs', ready: 3, unread: 100, inflight: 7, waiting: 1, consumers: [{ consumerId: 'c-17-1', clientId: 'worker', host: '127.0.0.1:5000', prefetch: 100, inflight: 7 }] }],
    },
  },
};

const apiNames = apis.map((api) => api.name);
const structTable = structs as Readonly<Record<string, readonly FieldSpec[]>>;

/** What the decoder should return for `value` of `type`: byte fields as Buffers, records concatenated. */
function expectedDecoded(type: FieldType, value: unknown): unknown {
  if (typeof type === 'string') {
    if (value === null) return null;
    if (type === 'bytes' || type === 'nullableBytes') return Buffer.from(value as Uint8Array);
    if (type === 'records') return Buffer.concat(value instanceof Uint8Array ? [value] : (value as Uint8Array[]));
    return value;
  }
  if ('array' in type) return (value as unknown[]).map((item) => expectedDecoded(type.array, item));
  return expectedFields(structTable[type.struct]!, value);
}

function expectedFields(fields: readonly FieldSpec[], value: unknown): Record<string, unknown> {
  const object = value as Record<string, unknown>;
  return Object.fromEntries(fields.map((field) => [field.name, expectedDecoded(field.type, object[field.name])]));
}

function specOf(name: ApiName): (typeof apis)[number] {
  return apis.find((api) => api.name === name)!;
}

function encodeSampleRequest(name: ApiName, correlationId: number, body: unknown): Buffer {
  return encodeRequest(name, correlationId, body as never);
}

function encodeSampleResponse(name: ApiName, correlationId: number, body: unknown): Buffer {
  return encodeResponse(name, correlationId, body as never);
}

function payloadOf(frame: Buffer): Buffer {
  assert.equal(frame.readUInt32LE(0), frame.length - 4, 'length prefix counts the bytes after it');
  return frame.subarray(4);
}

function assertProtocolError(run: () => unknown, check?: (error: ProtocolError) => void): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof ProtocolError, `expected a ProtocolError, got ${thrown instanceof Error ? thrown.stack : String(thrown)}`);
  check?.(thrown);
}

/** Decodes `payload` as whichever kind it claims; a thrown error must be a ProtocolError. Returns whether it decoded. */
function decodeAny(payload: Buffer): boolean {
  try {
    if (payload[0] === 1) decodeResponse(payload);
    else decodeRequest(payload);
    return true;
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return false;
  }
}

function sampleFrames(): Buffer[] {
  return apiNames.flatMap((name, index) => [
    encodeSampleRequest(name, index + 1, samples[name].request),
    encodeSampleResponse(name, index + 1, samples[name].response),
  ]);
}

describe('protocol: codec', () => {
  it(`protocol: struct and array codecs are ${process.execArgv.includes('--disallow-code-generation-from-strings') ? 'generic closures' : 'generated'} in this process`, () => {
    assert.equal(codecsGenerated, !process.execArgv.includes('--disallow-code-generation-from-strings'));
  });

  for (const name of apiNames) {
    it(`protocol: ${name} request and response round trip`, () => {
      const spec = specOf(name);
      const { request, response } = samples[name];
      const decodedRequest = decodeRequest(payloadOf(encodeSampleRequest(name, 0x7fff_fff0, request)));
      assert.deepEqual(
        { ...decodedRequest },
        { apiKey: spec.key, name, apiVersion: spec.version, correlationId: 0x7fff_fff0, body: expectedFields(spec.request, request) },
      );
      const decodedResponse = decodeResponse(payloadOf(encodeSampleResponse(name, -5, response)));
      assert.deepEqual(
        { ...decodedResponse },
        { apiKey: spec.key, name, correlationId: -5, errorCode: 0, errorMessage: null, body: expectedFields(spec.response, response) },
      );
    });
  }

  it('protocol: decoded byte fields are views of the frame, not copies', () => {
    const frame = encodeSampleRequest('Produce', 1, samples.Produce.request);
    const decoded = decodeRequest(frame.subarray(4));
    assert.equal(decoded.name, 'Produce');
    if (decoded.name !== 'Produce') return;
    const body = decoded.body.messages[0]!.body as Buffer;
    assert.equal(body.buffer, frame.buffer);
    const response = decodeResponse(payloadOf(encodeSampleResponse('Fetch', 1, samples.Fetch.response)));
    assert.ok(response.name === 'Fetch' && response.body !== null);
    if (response.name === 'Fetch' && response.body !== null) assert.ok(Buffer.isBuffer(response.body.records));
  });

  it('protocol: Handshake request exact bytes', () => {
    const frame = encodeRequest('Handshake', 7, {
      minVersion: 1,
      maxVersion: 1,
      clientId: 'app',
      clientVersion: '1.0',
      maxFrameBytes: 1_048_576,
      heartbeatMs: 0,
    });
    // prettier-ignore
    const expected = Buffer.from([
      31, 0, 0, 0, // length: 9 header bytes + 22 field bytes
      0, // kind: request
      0, 0, // apiKey 0 (Handshake)
      1, 0, // apiVersion 1
      7, 0, 0, 0, // correlationId 7
      1, 0, // minVersion
      1, 0, // maxVersion
      3, 0, 0x61, 0x70, 0x70, // clientId "app"
      3, 0, 0x31, 0x2e, 0x30, // clientVersion "1.0"
      0x00, 0x00, 0x10, 0x00, // maxFrameBytes 1 MiB
      0, 0, 0, 0, // heartbeatMs 0
    ]);
    assert.deepEqual(frame, expected);
  });

  it('protocol: Produce request exact bytes', () => {
    const frame = encodeRequest('Produce', 7, {
      topic: 'ab',
      partition: 3,
      acks: 1,
      producerId: 5,
      producerEpoch: 2,
      baseSequence: 0,
      messages: [{ id: null, key: b('k'), tag: 't', headers: [{ name: 'h', isString: true, value: b('v') }], timestamp: 0x01_0203_0405, body: b('hi') }],
    });
    // prettier-ignore
    const expected = Buffer.from([
      75, 0, 0, 0, // length
      0, // kind: request
      8, 0, // apiKey 8 (Produce)
      1, 0, // apiVersion 1
      7, 0, 0, 0, // correlationId
      2, 0, 0x61, 0x62, // topic "ab"
      3, 0, 0, 0, // partition 3
      1, // acks 1
      5, 0, 0, 0, 0, 0, 0, 0, // producerId 5
      2, 0, // producerEpoch 2
      0, 0, 0, 0, // baseSequence 0
      1, 0, 0, 0, // messages: count 1
      0xff, 0xff, 0xff, 0xff, //   id: null
      1, 0, 0, 0, 0x6b, //   key: "k"
      1, 0, 0x74, //   tag: "t"
      1, 0, 0, 0, //   headers: count 1
      1, 0, 0x68, //     name "h"
      1, //     isString true
      1, 0, 0, 0, 0x76, //     value "v"
      0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, //   timestamp 0x0102030405
      2, 0, 0, 0, 0x68, 0x69, //   body "hi"
    ]);
    assert.deepEqual(frame, expected);
  });

  it('protocol: Ping response and error response exact bytes', () => {
    // prettier-ignore
    assert.deepEqual(encodeResponse('Ping', 9, {}), Buffer.from([11, 0, 0, 0, 1, 1, 0, 9, 0, 0, 0, 0, 0, 0xff, 0xff]));
    // prettier-ignore
    assert.deepEqual(
      encodeErrorResponse(4, 9, errorCodeOf('UNKNOWN_TOPIC'), 'no'),
      Buffer.from([13, 0, 0, 0, 1, 4, 0, 9, 0, 0, 0, 4, 0, 2, 0, 0x6e, 0x6f]),
    );
  });

  it('protocol: error responses decode with a null body', () => {
    const decoded = decodeResponse(payloadOf(encodeErrorResponse(apiKeyOf('Fetch'), 12, errorCodeOf('OFFSET_OUT_OF_RANGE'), 'offset 900 is past the end 120')));
    assert.deepEqual(
      { ...decoded },
      { apiKey: 9, name: 'Fetch', correlationId: 12, errorCode: 7, errorMessage: 'offset 900 is past the end 120', body: null },
    );
    const withoutMessage = decodeResponse(payloadOf(encodeErrorResponse(1, 1, 1, null)));
    assert.equal(withoutMessage.errorMessage, null);
    assert.equal(withoutMessage.body, null);
  });

  it('protocol: long error messages are cut to 32767 bytes at a character boundary', () => {
    const message = 'é'.repeat(20_000); // 40,000 bytes of 2-byte characters
    const decoded = decodeResponse(payloadOf(encodeErrorResponse(0, 1, 2, message)));
    assert.ok(decoded.errorMessage !== null && Buffer.byteLength(decoded.errorMessage) <= MAX_ERROR_MESSAGE_BYTES);
    assert.equal(decoded.errorMessage, 'é'.repeat(16_383));
    assert.throws(() => encodeErrorResponse(0, 1, 0, 'success is not an error'), ProtocolError);
  });

  it('protocol: every strict prefix of every sample payload fails with ProtocolError', () => {
    for (const frame of sampleFrames()) {
      const payload = payloadOf(frame);
      assert.ok(decodeAny(payload));
      for (let length = 0; length < payload.length; length++) {
        assertProtocolError(
          () => (payload[0] === 1 ? decodeResponse(payload.subarray(0, length)) : decodeRequest(payload.subarray(0, length))),
          (error) => assert.equal(error.code, 'INVALID_REQUEST'),
        );
      }
    }
  });

  it('protocol: a short field names its path, offset, bytes needed and bytes available', () => {
    const message = { id: null, key: null, tag: null, headers: [], timestamp: 1, body: Buffer.alloc(1000, 1) };
    const payload = payloadOf(encodeRequest('Produce', 3, { ...samples.Produce.request, messages: [message, message, message, message] }));
    const cut = payload.subarray(0, payload.length - 988);
    assertProtocolError(
      () => decodeRequest(cut),
      (error) => {
        assert.equal(error.code, 'INVALID_REQUEST');
        assert.equal(error.correlationId, 3);
        assert.equal(error.apiKey, 8);
        assert.equal(error.message, `Produce.messages[3].body: need 1000 bytes at offset ${cut.length - 12}, have 12`);
      },
    );
  });

  it('protocol: trailing bytes, bad bools, bad lengths and unsafe int64 are rejected', () => {
    const payload = payloadOf(encodeRequest('Produce', 3, samples.Produce.request));
    assertProtocolError(
      () => decodeRequest(Buffer.concat([payload, Buffer.from([0])])),
      (error) => assert.match(error.message, /^Produce: 1 trailing bytes at offset \d+$/),
    );
    const response = payloadOf(encodeResponse('Produce', 3, samples.Produce.response));
    const badBool = Buffer.from(response);
    badBool[badBool.length - 1] = 2;
    assertProtocolError(
      () => decodeResponse(badBool),
      (error) => assert.match(error.message, /^Produce response\.duplicate: invalid bool 2 at offset \d+/),
    );
    const unsafe = Buffer.from(payloadOf(encodeRequest('InitProducer', 1, { producerId: 0 })));
    unsafe.writeInt32LE(0x0020_0000, unsafe.length - 4); // high half 2^21: the value is 2^53
    assertProtocolError(
      () => decodeRequest(unsafe),
      (error) => assert.match(error.message, /^InitProducer\.producerId: int64 at offset 9 is outside the safe integer range/),
    );
    unsafe.writeInt32LE(-0x0020_0000, unsafe.length - 4); // -2^53 is not safe either
    assertProtocolError(() => decodeRequest(unsafe));
    unsafe.writeInt32LE(-0x0020_0000, unsafe.length - 4);
    unsafe.writeUInt32LE(1, unsafe.length - 8); // -2^53 + 1 is
    assert.deepEqual(decodeRequest(unsafe).body, { producerId: -(2 ** 53) + 1 });
    const badNullable = Buffer.from(payloadOf(encodeRequest('GetMessage', 1, { id: null, key: null, topic: null, limit: 1 })));
    badNullable.writeInt32LE(-2, 9);
    assertProtocolError(
      () => decodeRequest(badNullable),
      (error) => assert.match(error.message, /^GetMessage\.id: invalid nullable bytes length -2 at offset 9$/),
    );
  });

  it('protocol: wrong kind, unknown API and unsupported version carry what the header told', () => {
    const payload = Buffer.from(payloadOf(encodeRequest('Ping', 44, {})));
    assertProtocolError(
      () => decodeResponse(payload),
      (error) => assert.equal(error.message, 'response.kind: expected 1, got 0 (Request)'),
    );
    assertProtocolError(
      () => decodeRequest(Buffer.from([9, 0, 0])),
      (error) => assert.equal(error.message, 'request.kind: expected 0, got 9 (unknown kind)'),
    );
    assertProtocolError(
      () => decodeRequest(Buffer.from([2])),
      (error) => assert.equal(error.message, 'request.kind: expected 0, got 2 (Push)'),
    );
    const unknownApi = Buffer.from(payload);
    unknownApi.writeInt16LE(999, 1);
    assertProtocolError(
      () => decodeRequest(unknownApi),
      (error) => {
        assert.equal(error.code, 'UNKNOWN_API');
        assert.equal(error.correlationId, 44);
        assert.equal(error.apiKey, 999);
      },
    );
    const newer = Buffer.from(payload);
    newer.writeInt16LE(2, 3);
    assertProtocolError(
      () => decodeRequest(newer),
      (error) => {
        assert.equal(error.code, 'UNSUPPORTED_VERSION');
        assert.equal(error.correlationId, 44);
        assert.equal(error.apiKey, 1);
        assert.equal(error.message, 'Ping version 2 is not supported (this side speaks version 1)');
      },
    );
    assert.equal(apiNameOf(999), undefined);
    assert.equal(apiNameOf(8), 'Produce');
  });

  it('protocol: encoders reject values that do not fit their types, naming the field', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => encodeRequest('Produce', 1, { ...samples.Produce.request, acks: 128 }), /^Produce\.acks: expected int8, got 128$/],
      [() => encodeRequest('Produce', 1, { ...samples.Produce.request, producerId: 2 ** 53 }), /^Produce\.producerId: expected int64/],
      [() => encodeRequest('Produce', 1, { ...samples.Produce.request, partition: 1.5 }), /^Produce\.partition: expected int32, got 1.5$/],
      [
        () => encodeRequest('Produce', 1, { ...samples.Produce.request, messages: [{ ...samples.Produce.request.messages[0]!, key: 'text' as never }] }),
        /^Produce\.messages\[0\]\.key: expected Uint8Array or null, got "text"$/,
      ],
      [
        () =>
          encodeRequest('Produce', 1, {
            ...samples.Produce.request,
            messages: [{ ...samples.Produce.request.messages[0]!, headers: [{ ...header, isString: 1 as never }] }],
          }),
        /^Produce\.messages\[0\]\.headers\[0\]\.isString: expected boolean, got 1$/,
      ],
      [() => encodeRequest('DeleteTopic', 1, { name: 'x'.repeat(65_536) }), /^DeleteTopic\.name: string of 65536 UTF-8 bytes is over the limit of 65535$/],
      [() => encodeRequest('DeleteTopic', 1, {} as never), /^DeleteTopic\.name: expected string, got undefined$/],
      [() => encodeRequest('Ping', 1.5, {}), /correlation id must be an int32/],
      [() => encodeResponse('Fetch', 1, { ...samples.Fetch.response, records: [b('a'), 'b' as never] }), /^Fetch response\.records\[1\]: expected Uint8Array, got "b"$/],
      [() => encodeRequest('Nope' as never, 1, {}), /^unknown API "Nope"$/],
    ];
    for (const [run, pattern] of cases) {
      assertProtocolError(run, (error) => assert.match(error.message, pattern));
    }
    assert.equal(encodeRequest('DeleteTopic', 1, { name: 'x'.repeat(65_535) }).length, 4 + 9 + 2 + 65_535);
  });

  it('protocol: strings with lone surrogates encode as U+FFFD with consistent sizes', () => {
    for (const name of ['\ud800', 'a\udc00b', 'x'.repeat(40) + '\ud800']) {
      const decoded = decodeRequest(payloadOf(encodeRequest('DeleteTopic', 1, { name })));
      assert.deepEqual(decoded.body, { name: name.replace(/[\ud800-\udfff]/g, '\ufffd') });
    }
  });

  it('protocol: huge declared counts and lengths fail fast without allocating', () => {
    const before = process.memoryUsage().arrayBuffers;
    const started = performance.now();
    // Produce header and fixed fields, then a message count of 2^32-1 and 30 bytes.
    const produce = Buffer.from(payloadOf(encodeRequest('Produce', 1, { ...samples.Produce.request, messages: [] })));
    const hugeCount = Buffer.concat([produce.subarray(0, produce.length - 4), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(30)]);
    assertProtocolError(
      () => decodeRequest(hugeCount),
      (error) => assert.match(error.message, /^Produce\.messages: array count 4294967295 needs at least \d+ bytes at offset \d+, have 30$/),
    );
    const halfCount = Buffer.from(hugeCount);
    halfCount.writeUInt32LE(2 ** 31, produce.length - 4);
    assertProtocolError(() => decodeRequest(halfCount));
    // A JoinGroup whose topic list claims 2^31 strings: strings need at least 2 bytes each.
    const join = Buffer.from(payloadOf(encodeRequest('JoinGroup', 1, { ...samples.JoinGroup.request, topics: [] })));
    const topicsAt = 9 + 2 + 1 + 2 + 0; // header, group "g", memberId ""
    join.writeUInt32LE(2 ** 31, topicsAt);
    assertProtocolError(() => decodeRequest(join), (error) => assert.match(error.message, /^JoinGroup\.topics: array count 2147483648/));
    // A body claiming 4 GiB, and Fetch records claiming 4 GiB.
    const hugeBody = Buffer.from(payloadOf(encodeRequest('Produce', 1, samples.Produce.request)));
    const bodyAt = hugeBody.length - 1 - 4; // the last message's body is "x"
    hugeBody.writeUInt32LE(0xffff_ffff, bodyAt);
    assertProtocolError(
      () => decodeRequest(hugeBody),
      (error) => assert.equal(error.message, `Produce.messages[2].body: need 4294967295 bytes at offset ${bodyAt + 4}, have 1`),
    );
    const fetch = Buffer.from(payloadOf(encodeResponse('Fetch', 1, { ...samples.Fetch.response, records: new Uint8Array(0) })));
    fetch.writeUInt32LE(0xffff_ffff, fetch.length - 4);
    assertProtocolError(() => decodeResponse(fetch), (error) => assert.match(error.message, /^Fetch response\.records: need 4294967295 bytes/));
    const reader = new FrameReader(16 << 20);
    reader.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0]));
    assertProtocolError(() => reader.next(), (error) => assert.equal(error.code, 'FRAME_TOO_LARGE'));
    const elapsed = performance.now() - started;
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 4 << 20, `array buffers grew by ${grown} bytes`);
    assert.ok(elapsed < 250, `took ${elapsed} ms`);
  });
});

// ---- property-based tests: arbitraries derived from the schema ----

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 12 }));
const byteArrays = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
);

function arbitraryOf(type: FieldType): fc.Arbitrary<unknown> {
  if (typeof type !== 'string') {
    if ('array' in type) return fc.array(arbitraryOf(type.array), { maxLength: 4 });
    return arbitraryFields(structTable[type.struct]!);
  }
  switch (type) {
    case 'int8':
      return fc.integer({ min: -128, max: 127 });
    case 'int16':
      return fc.integer({ min: -32_768, max: 32_767 });
    case 'int32':
      return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
    case 'int64':
      return fc.oneof(fc.maxSafeInteger(), fc.integer({ min: -2, max: 2 }));
    case 'uint8':
      return fc.integer({ min: 0, max: 255 });
    case 'uint16':
      return fc.integer({ min: 0, max: 65_535 });
    case 'uint32':
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case 'bool':
      return fc.boolean();
    case 'string':
      return text;
    case 'nullableString':
      return fc.option(text, { nil: null });
    case 'bytes':
      return byteArrays;
    case 'nullableBytes':
      return fc.option(byteArrays, { nil: null });
    case 'records':
      return fc.oneof(byteArrays, fc.array(byteArrays, { maxLength: 3 }));
  }
}

function arbitraryFields(fields: readonly FieldSpec[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(Object.fromEntries(fields.map((field) => [field.name, arbitraryOf(field.type)])));
}

describe('protocol: codec properties', () => {
  for (const spec of apis) {
    it(`protocol: ${spec.name} request and response round trip for arbitrary values`, () => {
      fc.assert(
        fc.property(arbitraryFields(spec.request), arbitraryFields(spec.response), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (request, response, id) => {
          const decodedRequest = decodeRequest(payloadOf(encodeSampleRequest(spec.name, id, request)));
          assert.equal(decodedRequest.correlationId, id);
          assert.deepEqual(decodedRequest.body, expectedFields(spec.request, request));
          const decodedResponse = decodeResponse(payloadOf(encodeSampleResponse(spec.name, id, response)));
          assert.deepEqual(decodedResponse.body, expectedFields(spec.response, response));
        }),
        { numRuns: 150 },
      );
    });
  }

  it('protocol: fuzz: random payloads only ever fail with ProtocolError', () => {
    const apiKeys = apis.map((api) => api.key);
    const payloads = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // A plausible header so the body decoders are reached.
      fc
        .tuple(fc.constantFrom(0, 1), fc.constantFrom(...apiKeys), fc.uint8Array({ maxLength: 96 }))
        .map(([kind, key, rest]) => Buffer.concat([Buffer.from([kind, key, 0, 1, 0]), Buffer.from([1, 0, 0, 0].slice(0, kind === 0 ? 4 : 2)), rest])),
    );
    fc.assert(
      fc.property(payloads, (payload) => {
        decodeAny(Buffer.from(payload));
      }),
      { numRuns: 3000 },
    );
  });

  it('protocol: fuzz: mutated sample frames only ever fail with ProtocolError', () => {
    const frames = sampleFrames().map(payloadOf);
    const mutation = fc.record({
      frame: fc.nat({ max: frames.length - 1 }),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      cut: fc.option(fc.nat(), { nil: null }),
      extra: fc.uint8Array({ maxLength: 8 }),
    });
    fc.assert(
      fc.property(mutation, ({ frame, edits, cut, extra }) => {
        const original = frames[frame]!;
        let payload = Buffer.from(original);
        for (const [at, value] of edits) payload[at % payload.length] = value;
        if (cut !== null) payload = payload.subarray(0, cut % (payload.length + 1));
        decodeAny(payload);
        decodeAny(Buffer.concat([payload, extra]));
      }),
      { numRuns: 5000 },
    );
  });

  it('protocol: fuzz: valid streams split at random chunk boundaries are recovered frame by frame', () => {
    const frames = sampleFrames();
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: frames.length - 1 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (picks, cuts) => {
          const chosen = picks.map((index) => frames[index]!);
          const stream = Buffer.concat(chosen);
          const boundaries = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((x, y) => x - y);
          const reader = new FrameReader(1 << 20);
          const received: Buffer[] = [];
          let at = 0;
          for (const boundary of [...boundaries, stream.length]) {
            reader.push(stream.subarray(at, boundary));
            at = boundary;
            for (let payload = reader.next(); payload !== null; payload = reader.next()) received.push(payload);
          }
          assert.equal(reader.bufferedBytes, 0);
          assert.deepEqual(received, chosen.map(payloadOf));
          for (const payload of received) assert.ok(decodeAny(payload));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('protocol: fuzz: mutated streams through FrameReader only ever fail with ProtocolError', () => {
    const frames = sampleFrames();
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: frames.length - 1 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (picks, edits, cuts) => {
          const stream = Buffer.concat(picks.map((index) => frames[index]!));
          for (const [at, value] of edits) stream[at % stream.length] = value;
          const boundaries = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((x, y) => x - y);
          const reader = new FrameReader(4096);
          let at = 0;
          try {
            for (const boundary of [...boundaries, stream.length]) {
              reader.push(stream.subarray(at, boundary));
              at = boundary;
              for (let payload = reader.next(); payload !== null; payload = reader.next()) decodeAny(payload);
            }
          } catch (error) {
            if (!(error instanceof ProtocolError)) throw error;
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('protocol: codec without code generation', () => {
  // The same tests, in a process where `new Function` is disabled, so the generic closures are covered too.
  it('protocol: codec tests pass with --disallow-code-generation-from-strings', { skip: process.execArgv.includes('--disallow-code-generation-from-strings') }, () => {
    // Without NODE_TEST_CONTEXT the child runs its tests itself instead of deferring to this runner.
    const env = { ...process.env };
    delete env['NODE_TEST_CONTEXT'];
    const result = spawnSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--conditions=development', '--import', 'tsx', '--test-reporter=tap', fileURLToPath(import.meta.url)],
      { encoding: 'utf8', env },
    );
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^# pass \d+/m);
    assert.match(result.stdout, /^# fail 0$/m);
  });
});

describe('protocol: response parts', () => {
  it('protocol: a Fetch response in parts decodes exactly like the one-buffer encoding', () => {
    const batches = [Buffer.from('first batch bytes'), Buffer.from('second')];
    const body = { startOffset: 3, endOffset: 99, records: batches };
    const parts = encodeResponseParts('Fetch', 42, body);
    assert.equal(parts.length, 3);
    assert.equal(parts[1], batches[0], 'the batches themselves, not copies');
    const joined = Buffer.concat(parts);
    assert.deepEqual(joined, encodeResponse('Fetch', 42, body));
    assert.deepEqual(encodeResponseParts('Ping', 1, {}), [encodeResponse('Ping', 1, {})]);
  });
});
