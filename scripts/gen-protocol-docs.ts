/**
 * Writes docs/protocol.md from the protocol schema (packages/protocol/src/schema.ts).
 * Run: node --import tsx scripts/gen-protocol-docs.ts
 * packages/protocol/src/docs.test.ts fails when the checked-in file differs from what this renders.
 */
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  apis,
  DEFAULT_MAX_FRAME_BYTES,
  errorCodes,
  FrameKind,
  murmur2,
  partitionForKey,
  PROTOCOL_VERSION,
  pushes,
  structs,
  type FieldSpec,
  type FieldType,
  type Primitive,
} from '../packages/protocol/src/index.js';

export const PROTOCOL_DOC_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'protocol.md');

/** Wire form and TypeScript value of every primitive; a `Record<Primitive, …>` so a new primitive cannot be left out. */
const primitives: Record<Primitive, { wire: string; value: string }> = {
  int8: { wire: '1 byte, signed', value: '`number`' },
  int16: { wire: '2 bytes, signed', value: '`number`' },
  int32: { wire: '4 bytes, signed', value: '`number`' },
  int64: { wire: '8 bytes, signed; values must be safe integers (\\|v\\| < 2^53), anything else is rejected', value: '`number`' },
  uint8: { wire: '1 byte, unsigned', value: '`number`' },
  uint16: { wire: '2 bytes, unsigned', value: '`number`' },
  uint32: { wire: '4 bytes, unsigned', value: '`number`' },
  bool: { wire: '1 byte, 0 or 1 (any other value is rejected)', value: '`boolean`' },
  string: { wire: '`[length:uint16][UTF-8 bytes]` (at most 65,535 bytes)', value: '`string`' },
  nullableString: { wire: '`[length:int16, -1 = null][UTF-8 bytes]` (at most 32,767 bytes)', value: '`string \\| null`' },
  bytes: { wire: '`[length:uint32][bytes]`', value: '`Uint8Array` (decoded: a view of the frame)' },
  nullableBytes: { wire: '`[length:int32, -1 = null][bytes]`', value: '`Uint8Array \\| null`' },
  records: {
    wire: '`[length:uint32][record batches back to back]`, see [Record batches](#record-batches)',
    value: 'encode: `Uint8Array \\| Uint8Array[]`; decoded: one `Buffer` view',
  },
};

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-');
}

/** A field type for a table cell, with struct names linked to their section. */
function typeCell(type: FieldType): string {
  if (typeof type === 'string') return `\`${type}\``;
  if ('array' in type) return `array of ${typeCell(type.array)}`;
  return `[${type.struct}](#${anchor(type.struct)})`;
}

/** A field type as written in one-line wire layouts: `int32`, `[Message]`, `TopicConfig`. */
function typeWire(type: FieldType): string {
  if (typeof type === 'string') return type;
  if ('array' in type) return `[${typeWire(type.array)}]`;
  return type.struct;
}

function wireLine(fields: readonly FieldSpec[]): string {
  return fields.length === 0 ? 'Wire: nothing (no fields).' : `Wire: \`${fields.map((field) => `[${field.name}:${typeWire(field.type)}]`).join('')}\``;
}

function fieldTable(fields: readonly FieldSpec[]): string[] {
  if (fields.length === 0) return ['No fields.'];
  return ['| field | type | description |', '|---|---|---|', ...fields.map((field) => `| \`${field.name}\` | ${typeCell(field.type)} | ${cell(field.doc)} |`)];
}

function bytesLabel(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/** Renders docs/protocol.md. Pure: the same schema always gives the same text. */
export function renderProtocolDoc(): string {
  const out: string[] = [];
  const line = (...lines: string[]): void => {
    out.push(...lines);
  };
  const kinds = Object.entries(FrameKind);

  line(
    '# Weir native protocol',
    '',
    '<!-- Generated from packages/protocol/src/schema.ts by scripts/gen-protocol-docs.ts; do not edit by hand. -->',
    '',
    `Protocol version ${PROTOCOL_VERSION}. This file is generated from the schema (\`packages/protocol/src/schema.ts\`), the`,
    'same data the broker and client codecs are built from, so it cannot drift from the code. Field order in the tables',
    'is the order on the wire.',
    '',
    '- [Framing](#framing)',
    '- [Connection lifecycle](#connection-lifecycle): [handshake and version negotiation](#handshake-and-version-negotiation),',
    '  [heartbeats](#heartbeats), [pipelining](#pipelining)',
    '- [Limits and bad input](#limits-and-bad-input)',
    '- [Primitive types](#primitive-types)',
    '- [APIs](#apis)',
    '- [Pushes](#pushes)',
    '- [Structs](#structs)',
    '- [Error codes](#error-codes)',
    '- [Record batches](#record-batches)',
    '- [Partitioning by key](#partitioning-by-key)',
    '',
    '## Framing',
    '',
    'A connection carries frames in both directions. All integers are little-endian.',
    '',
    '```',
    'frame:    [length:uint32][kind:uint8][...]           length = bytes after the length field',
    'request:  [length:4][kind:1=0][apiKey:int16][apiVersion:int16][correlationId:int32][request fields]',
    'response: [length:4][kind:1=1][apiKey:int16][correlationId:int32][errorCode:int16][errorMessage:nullableString]',
    '          [response fields, only when errorCode is 0]',
    '```',
    '',
    '| kind | value | meaning |',
    '|---|---|---|',
    ...kinds.map(([name, value]) => {
      const meaning: Record<string, string> = {
        Request: 'client → broker: a request',
        Response: 'broker → client: the answer to one request',
        Push: 'broker → client without a request: `[pushKey:int16][fields]`, see [Pushes](#pushes)',
      };
      return `| ${name} | ${value} | ${meaning[name] ?? ''} |`;
    }),
    '',
    '- A response echoes the request\'s `apiKey` and `correlationId`.',
    '- `errorCode` 0 means success and the response fields follow. Any other code (see [Error codes](#error-codes))',
    '  means failure: `errorMessage` says what went wrong and no response fields follow.',
    '- A frame holds exactly one message: bytes left over after the last field are an error, as is a frame that ends',
    '  early.',
    '',
    '## Connection lifecycle',
    '',
    '### Handshake and version negotiation',
    '',
    '[Handshake](#handshake) must be the first request on a connection; any other request before it is answered with',
    '`NOT_HANDSHAKEN` and the connection is closed. Handshake negotiates three things:',
    '',
    `- **Protocol version.** The client sends the range it speaks (\`minVersion\`..\`maxVersion\`); the broker answers`,
    '  with the highest version both speak, or with `UNSUPPORTED_VERSION` and closes the connection when the ranges do',
    `  not overlap. This document describes protocol version ${PROTOCOL_VERSION}.`,
    '- **Frame size.** Until the handshake completes, both sides accept frames of up to',
    `  ${bytesLabel(DEFAULT_MAX_FRAME_BYTES)} (${DEFAULT_MAX_FRAME_BYTES.toLocaleString('en-US')} bytes, counted as the value of the length field). The broker answers`,
    '  with the limit for the rest of the connection (at most what the client offered); from then on neither side',
    '  sends a larger frame.',
    '- **Heartbeat interval** (see below).',
    '',
    'Each API also has a version, sent in every request header (`apiVersion`). The versions of this protocol version',
    'are listed under [APIs](#apis); a request with any other version is answered with `UNSUPPORTED_VERSION`. A message',
    'only ever grows by fields appended at its end, together with a new API version; API keys and error codes are',
    'never reused.',
    '',
    '### Heartbeats',
    '',
    'The handshake response fixes `heartbeatMs`. The client sends something at least that often; when it has nothing',
    'else to send it sends [Ping](#ping), which also measures the round-trip time. The broker closes a connection',
    'from which nothing has arrived for 3 intervals. Consumer-group membership has its own liveness check',
    '([Heartbeat](#heartbeat), against the group session timeout), independent of the connection heartbeat.',
    '',
    '### Pipelining',
    '',
    'A client may send many requests without waiting for their responses. Responses may arrive in any order (a Fetch',
    'that long-polls does not hold back the responses behind it); each is matched to its request by `correlationId`,',
    'which the client chooses and must keep unique among its requests in flight. A [Produce](#produce) with `acks` 0',
    'gets no response at all, so a client must not wait for one.',
    '',
    '## Limits and bad input',
    '',
    '| limit | value |',
    '|---|---|',
    `| frame (value of the length field) | negotiated by Handshake; ${bytesLabel(DEFAULT_MAX_FRAME_BYTES)} before it |`,
    '| `string` | 65,535 UTF-8 bytes |',
    '| `nullableString`, error messages | 32,767 UTF-8 bytes (longer error messages are cut at a character boundary) |',
    '| `int64` | safe integers only (\\|v\\| < 2^53) |',
    '| array count | bounded by the frame: each element takes at least its smallest encoding |',
    '',
    'Decoders check every length and count against the bytes left in the frame before they allocate or slice anything,',
    'so a frame that declares a huge string, byte field or array fails at once instead of allocating. Error messages',
    'name the field and give offsets relative to the first byte after the length field, for example',
    '`Produce.messages[3].body: need 1000 bytes at offset 57, have 12`.',
    '',
    'What happens on bad input:',
    '',
    '| input | error | then |',
    '|---|---|---|',
    '| frame length 0 | `INVALID_REQUEST` | connection closed without a response (the stream cannot be resynchronised); the reason is logged |',
    '| frame length over the limit | `FRAME_TOO_LARGE` | connection closed without a response, before the frame body is read or buffered; the reason is logged |',
    '| frame too short for its header, or a kind other than a request | `INVALID_REQUEST` | connection closed; the reason is logged |',
    '| unknown API key | `UNKNOWN_API` | error response; the connection stays open (the frame boundary is still known) |',
    '| unsupported API version | `UNSUPPORTED_VERSION` | error response; the connection stays open |',
    '| a field that is truncated or malformed (bad length, bool not 0/1, int64 out of range), or trailing bytes | `INVALID_REQUEST` | error response naming the field, then the connection is closed |',
    '| a well-formed request with a value out of range (e.g. a negative partition count) | `INVALID_ARGUMENT` | error response; the connection stays open |',
    '| any request before Handshake | `NOT_HANDSHAKEN` | error response, then the connection is closed |',
    '',
    'An error response carries the reason in `errorMessage`. A client that receives a frame it cannot decode fails',
    'every request in flight on that connection and closes it.',
    '',
    '## Primitive types',
    '',
    '| type | wire | TypeScript value |',
    '|---|---|---|',
    ...(Object.entries(primitives) as [Primitive, { wire: string; value: string }][]).map(
      ([name, entry]) => `| \`${name}\` | ${entry.wire} | ${entry.value} |`,
    ),
    '| array of T | `[count:uint32][T × count]` | `readonly T[]` |',
    '| struct | the fields of the struct, in order, with nothing around them | an object with one property per field |',
    '',
    '## APIs',
    '',
    '| key | API | version | summary |',
    '|---|---|---|---|',
    ...apis.map((api) => `| ${api.key} | [${api.name}](#${anchor(api.name)}) | ${api.version} | ${cell(api.doc)} |`),
    '',
  );
  for (const api of apis) {
    line(
      `### ${api.name}`,
      '',
      `Key ${api.key}, version ${api.version}. ${api.doc}`,
      '',
      '**Request.** ' + wireLine(api.request),
      '',
      ...fieldTable(api.request),
      '',
      '**Response.** ' + wireLine(api.response),
      '',
      ...fieldTable(api.response),
      '',
    );
  }
  line(
    '## Pushes',
    '',
    'Frames the broker sends without a request: `[length:uint32][kind:uint8=2][pushKey:int16][fields]`. There is no',
    'correlation id and no answer. A client ignores push keys it does not know.',
    '',
    '| key | push | summary |',
    '|---|---|---|',
    ...pushes.map((push) => `| ${push.key} | [${push.name}](#${anchor(push.name)}) | ${cell(push.doc)} |`),
    '',
  );
  for (const push of pushes) line(`### ${push.name}`, '', `Push key ${push.key}. ${push.doc}`, '', wireLine(push.fields), '', ...fieldTable(push.fields), '');
  line('## Structs', '', 'Structs are written as their fields in order, with no length or count of their own.', '');
  for (const [name, fields] of Object.entries(structs) as [string, readonly FieldSpec[]][]) {
    line(`### ${name}`, '', wireLine(fields), '', ...fieldTable(fields), '');
  }
  line(
    '## Error codes',
    '',
    'Codes are never reused. A retriable error means the same request may succeed later; a client may retry it after',
    'a backoff.',
    '',
    '| code | name | retriable | meaning |',
    '|---|---|---|---|',
    ...errorCodes.map((entry) => `| ${entry.code} | \`${entry.name}\` | ${entry.retriable ? 'yes' : 'no'} | ${cell(entry.doc)} |`),
    '',
    '## Record batches',
    '',
    'The `records` field of a [Fetch](#fetch) response holds whole record batches back to back, exactly as the broker',
    'stores them; the format is specified in [storage.md, "Record batch"](storage.md#record-batch-record-batchts).',
    'In one line (little-endian, u64 fields below 2^53):',
    '',
    '```',
    'batch:   [length:4][crc32c:4][version:1=1][flags:1][count:2][queueId:4][baseOffset:8][storeTimestamp:8][producerId:8][producerEpoch:2][reserved:2][baseSequence:4][message × count]',
    'message: [length:4][timestamp:8][idLength:1][id][keyLength:2, 0xFFFF = no key][key][tagLength:1][tag][headersLength:4][headers][body: rest]',
    'headers: [count:2] then per header [nameLength:2][name][type:1, 0 string / 1 bytes][valueLength:4][value]',
    '```',
    '',
    '- `crc32c` (Castagnoli) covers bytes `[8, length)` of the batch; a client checks it and treats a mismatch as',
    '  `DATA_DAMAGED`.',
    '- Message `i` of a batch has offset `baseOffset + i`. The first batch may start before the requested offset; the',
    '  client skips the messages below it. A batch that does not fit completely is not sent.',
    '- `flags`: bit 0 transactional, bit 1 control record. `producerId` 0 and `baseSequence` -1 mean no idempotent',
    '  producer; otherwise message `i` has sequence `baseSequence + i`.',
    '- A message produced without an id gets a 16-byte id `[storeTimestamp:6][position:8][index:2]` (big-endian), where',
    '  `storeTimestamp` and `position` are those of the [Produce](#produce) response and `index` is the message\'s',
    '  index in the request; a client can compute the ids of what it produced without asking.',
    '',
    'The protocol package decodes them with `decodeRecordBatches(records, fromOffset)`.',
    '',
    '## Partitioning by key',
    '',
    'A [Produce](#produce) with partition -1 goes to the partition of its first message\'s key, computed exactly as',
    'Kafka\'s default partitioner does, so a key maps to the same partition number as with a Kafka client:',
    '',
    '```',
    'partition = (murmur2(key) & 0x7fffffff) % partitionCount',
    '```',
    '',
    '`murmur2` is the Java client\'s `Utils.murmur2`: MurmurHash2 (32-bit, m = 0x5bd1e995, r = 24) with seed',
    '0x9747b28c, over the key bytes read as little-endian 32-bit words, as a signed 32-bit result. Without a key the',
    'broker picks partitions round-robin. Examples:',
    '',
    '| key (UTF-8) | murmur2 | partition of 12 |',
    '|---|---|---|',
    ...['foobar', 'abc', 'customer-42', ''].map((key) => {
      const bytes = Buffer.from(key, 'utf8');
      return `| \`${JSON.stringify(key)}\` | ${murmur2(bytes)} | ${partitionForKey(bytes, 12)} |`;
    }),
    '',
  );
  return out.join('\n');
}

function isMain(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href;
}

if (isMain()) {
  writeFileSync(PROTOCOL_DOC_PATH, renderProtocolDoc());
  console.log(`wrote ${PROTOCOL_DOC_PATH}`);
}
