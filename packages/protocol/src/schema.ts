/**
 * The native protocol, described as data. The server codec, the client codec and docs/protocol.md are all derived
 * from this file; field names, types and order here ARE the wire format. Append new fields only at the end of a
 * message and bump the API's version; never reuse a retired error code or API key.
 *
 * Primitive types (all integers little-endian):
 * - int8, int16, int32: signed; uint8, uint16, uint32: unsigned
 * - int64: signed 64-bit, carried as a JS number (values must be safe integers, |v| < 2^53)
 * - bool: one byte, 0 or 1
 * - string: [length:uint16][utf-8]; nullableString: [length:int16, -1 = null][utf-8]
 * - bytes: [length:uint32][bytes]; nullableBytes: [length:int32, -1 = null][bytes]
 * - records: [length:uint32][record batches back to back, in the storage record-batch format (docs/storage.md)]
 * - { array: T }: [count:uint32][T × count]
 * - { struct: 'Name' }: the fields of `structs.Name` in order
 */
export type Primitive =
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'bool'
  | 'string'
  | 'nullableString'
  | 'bytes'
  | 'nullableBytes'
  | 'records';

export type FieldType = Primitive | { readonly array: FieldType } | { readonly struct: string };

export interface FieldSpec {
  readonly name: string;
  readonly type: FieldType;
  readonly doc: string;
}

export interface ApiSpec {
  readonly key: number;
  readonly name: string;
  readonly version: number;
  readonly doc: string;
  readonly request: readonly FieldSpec[];
  readonly response: readonly FieldSpec[];
}

/**
 * Frame kinds: the byte after the frame length.
 *
 * Frame: `[length:uint32 — bytes after this field][kind:uint8][...]`
 * Request: `[length:4][kind:1=0][apiKey:int16][apiVersion:int16][correlationId:int32][request fields]`
 * Response: `[length:4][kind:1=1][apiKey:int16][correlationId:int32][errorCode:int16][errorMessage:nullableString][response fields, only when errorCode is 0]`
 */
export const FrameKind = {
  Request: 0,
  Response: 1,
  /** A message the broker sends without a request (reserved for pushed deliveries). */
  Push: 2,
} as const;

/** The protocol version this schema describes; Handshake negotiates it. */
export const PROTOCOL_VERSION = 1;
/** Largest frame either side accepts before the handshake negotiates a limit. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export const errorCodes = [
  { code: 0, name: 'NONE', retriable: false, doc: 'Success.' },
  { code: 1, name: 'INTERNAL_ERROR', retriable: true, doc: 'The broker failed unexpectedly; the message says what happened.' },
  { code: 2, name: 'INVALID_REQUEST', retriable: false, doc: 'The request could not be decoded or violates the protocol.' },
  { code: 3, name: 'UNSUPPORTED_VERSION', retriable: false, doc: 'The API version or protocol version is not supported.' },
  { code: 4, name: 'UNKNOWN_TOPIC', retriable: false, doc: 'The topic does not exist.' },
  { code: 5, name: 'TOPIC_EXISTS', retriable: false, doc: 'A topic with that name already exists.' },
  { code: 6, name: 'INVALID_PARTITION', retriable: false, doc: 'The partition number or count is out of range.' },
  { code: 7, name: 'OFFSET_OUT_OF_RANGE', retriable: false, doc: 'The offset is below the start or past the end of the partition.' },
  { code: 8, name: 'MESSAGE_TOO_LARGE', retriable: false, doc: 'A message or batch exceeds the configured size limit.' },
  { code: 9, name: 'FRAME_TOO_LARGE', retriable: false, doc: 'A frame exceeds the negotiated maximum frame size; the connection is closed.' },
  { code: 10, name: 'OUT_OF_ORDER_SEQUENCE', retriable: false, doc: 'An idempotent producer skipped sequence numbers: a batch was lost before the broker.' },
  { code: 11, name: 'UNKNOWN_PRODUCER', retriable: false, doc: 'The producer id is unknown or expired; initialise the producer again.' },
  { code: 12, name: 'INVALID_PRODUCER_EPOCH', retriable: false, doc: 'A newer instance of this producer exists (fenced).' },
  { code: 13, name: 'UNKNOWN_MEMBER', retriable: false, doc: 'The group does not know this member id (expired or never joined); join again.' },
  { code: 14, name: 'ILLEGAL_GENERATION', retriable: false, doc: 'The group generation has moved on; join again.' },
  { code: 15, name: 'REBALANCE_IN_PROGRESS', retriable: true, doc: 'The group is rebalancing; join again to get a new assignment.' },
  { code: 16, name: 'STORAGE_ERROR', retriable: true, doc: 'Writing to disk failed (e.g. the disk is full); nothing of the request was stored.' },
  { code: 17, name: 'DATA_DAMAGED', retriable: false, doc: 'Stored data failed its checksum and is not served.' },
  { code: 18, name: 'BROKER_SHUTTING_DOWN', retriable: true, doc: 'The broker is stopping; retry against it once it is back.' },
  { code: 19, name: 'INVALID_ARGUMENT', retriable: false, doc: 'A field has a value outside its allowed range; the message names it.' },
  { code: 20, name: 'UNKNOWN_API', retriable: false, doc: 'The API key is not known to this broker.' },
  { code: 21, name: 'INVALID_GROUP', retriable: false, doc: 'The group exists with a different mode, or the group name is invalid.' },
  { code: 22, name: 'NOT_HANDSHAKEN', retriable: false, doc: 'The first request on a connection must be Handshake.' },
  { code: 23, name: 'QUEUE_FULL', retriable: true, doc: 'A shared group over the topic holds its maxLength of ready messages or its maxBytes of their bodies, and its overflow policy is reject-publish; nothing was stored.' },
  { code: 24, name: 'UNKNOWN_TRANSACTION', retriable: false, doc: 'The transaction id is unknown: already committed or rolled back, or never begun.' },
  { code: 25, name: 'INVALID_FILTER', retriable: false, doc: 'A subscription filter expression is malformed; the message gives the position of the error.' },
  { code: 26, name: 'UNKNOWN_USER', retriable: false, doc: 'The user does not exist.' },
  { code: 27, name: 'USER_EXISTS', retriable: false, doc: 'A user with that name already exists.' },
  { code: 28, name: 'UNKNOWN_VHOST', retriable: false, doc: 'The virtual host does not exist.' },
  { code: 29, name: 'VHOST_EXISTS', retriable: false, doc: 'A virtual host with that name already exists.' },
  {
    code: 30,
    name: 'ACCESS_REFUSED',
    retriable: false,
    doc: 'User management (ListUsers … ImportDefinitions) was asked for over a connection that is not from the broker\'s machine: the native protocol has no authentication yet, so these APIs answer loopback peers only.',
  },
  {
    code: 31,
    name: 'RESOURCE_ALARM',
    retriable: true,
    doc: 'The broker\'s memory or disk watermark is crossed: the produce was refused and nothing was stored; retry once the alarm clears.',
  },
  {
    code: 32,
    name: 'LIMIT_REACHED',
    retriable: false,
    doc: 'A configured broker limit is reached (maxConnections: the connection is closed after this answer; maxTopics: the topic was not created); the message names the limit.',
  },
] as const;

export type ErrorName = (typeof errorCodes)[number]['name'];

export const structs = {
  Header: [
    { name: 'name', type: 'string', doc: 'Header name.' },
    { name: 'isString', type: 'bool', doc: 'True when the value is UTF-8 text, false for raw bytes.' },
    { name: 'value', type: 'bytes', doc: 'Header value.' },
  ],
  Message: [
    { name: 'id', type: 'nullableBytes', doc: 'Client-chosen message id (1–255 bytes); null lets the broker generate a time-ordered id.' },
    { name: 'key', type: 'nullableBytes', doc: 'Partitioning and lookup key; null for none.' },
    { name: 'tag', type: 'nullableString', doc: 'Short label for filtering (at most 255 bytes).' },
    { name: 'headers', type: { array: { struct: 'Header' } }, doc: 'Application headers.' },
    { name: 'timestamp', type: 'int64', doc: 'Milliseconds since the epoch; -1 lets the broker use its append time.' },
    { name: 'body', type: 'bytes', doc: 'The payload.' },
  ],
  TopicConfig: [
    { name: 'retentionMs', type: 'int64', doc: 'Delete messages older than this; -1 keeps them.' },
    { name: 'retentionBytes', type: 'int64', doc: 'Keep at most about this many bytes per partition; -1 for no limit.' },
    { name: 'flushPolicy', type: 'string', doc: '`sync`, `interval` or `none` (see docs/storage.md).' },
    { name: 'flushIntervalMs', type: 'int32', doc: 'Sync interval for the `interval` policy.' },
    { name: 'maxMessageBytes', type: 'int32', doc: 'Largest message accepted.' },
  ],
  PartitionState: [
    { name: 'partition', type: 'int32', doc: 'Partition number.' },
    { name: 'startOffset', type: 'int64', doc: 'First readable offset.' },
    { name: 'endOffset', type: 'int64', doc: 'One past the last acknowledged message.' },
    { name: 'bytes', type: 'int64', doc: 'Bytes stored between start and end.' },
  ],
  TopicDescription: [
    { name: 'name', type: 'string', doc: 'Topic name.' },
    { name: 'config', type: { struct: 'TopicConfig' }, doc: 'Settings.' },
    { name: 'partitions', type: { array: { struct: 'PartitionState' } }, doc: 'Every partition, in order.' },
  ],
  TopicPartitions: [
    { name: 'topic', type: 'string', doc: 'Topic name.' },
    { name: 'partitions', type: { array: 'int32' }, doc: 'Partition numbers.' },
  ],
  PartitionOffset: [
    { name: 'topic', type: 'string', doc: 'Topic name.' },
    { name: 'partition', type: 'int32', doc: 'Partition number.' },
    { name: 'offset', type: 'int64', doc: 'Offset (the next one to consume); -1 when none is committed.' },
    { name: 'metadata', type: 'string', doc: 'Free text stored with a committed offset.' },
  ],
  GroupMember: [
    { name: 'memberId', type: 'string', doc: 'Broker-assigned member id.' },
    { name: 'clientId', type: 'string', doc: 'The client id the member gave in its handshake.' },
    { name: 'host', type: 'string', doc: 'The member connection remote address.' },
    { name: 'assignment', type: { array: { struct: 'TopicPartitions' } }, doc: 'Partitions owned in the current generation.' },
  ],
  GroupLag: [
    { name: 'topic', type: 'string', doc: 'Topic name.' },
    { name: 'partition', type: 'int32', doc: 'Partition number.' },
    { name: 'committedOffset', type: 'int64', doc: 'Committed offset, -1 if none.' },
    { name: 'endOffset', type: 'int64', doc: 'End of the partition.' },
    { name: 'lag', type: 'int64', doc: 'Messages between the committed offset (or the start) and the end.' },
  ],
  GroupSummary: [
    { name: 'group', type: 'string', doc: 'Group name.' },
    { name: 'mode', type: 'string', doc: '`stream` (clustering) or `broadcast`.' },
    { name: 'state', type: 'string', doc: '`Empty`, `PreparingRebalance`, `CompletingRebalance` or `Stable`.' },
    { name: 'members', type: 'int32', doc: 'Number of members.' },
  ],
  FoundMessage: [
    { name: 'topic', type: 'string', doc: 'Topic name.' },
    { name: 'partition', type: 'int32', doc: 'Partition number.' },
    { name: 'offset', type: 'int64', doc: 'Offset in the partition.' },
    { name: 'timestamp', type: 'int64', doc: 'The message timestamp.' },
    { name: 'storeTimestamp', type: 'int64', doc: 'When the broker stored it.' },
    { name: 'id', type: 'bytes', doc: 'Message id.' },
    { name: 'key', type: 'nullableBytes', doc: 'Key, or null.' },
    { name: 'tag', type: 'nullableString', doc: 'Tag, or null.' },
    { name: 'headers', type: { array: { struct: 'Header' } }, doc: 'Headers.' },
    { name: 'body', type: 'bytes', doc: 'Payload.' },
  ],
  Delivery: [
    { name: 'partition', type: 'int32', doc: 'Partition number.' },
    { name: 'offset', type: 'int64', doc: 'Offset in the partition; with the partition, what Settle and Extend name.' },
    { name: 'deliveryCount', type: 'int32', doc: '1 for the first delivery; more than 1 means redelivered.' },
    { name: 'timestamp', type: 'int64', doc: 'The message timestamp.' },
    { name: 'storeTimestamp', type: 'int64', doc: 'When the broker stored it.' },
    { name: 'id', type: 'bytes', doc: 'Message id.' },
    { name: 'key', type: 'nullableBytes', doc: 'Key, or null.' },
    { name: 'tag', type: 'nullableString', doc: 'Tag, or null.' },
    { name: 'headers', type: { array: { struct: 'Header' } }, doc: 'Headers.' },
    { name: 'body', type: 'bytes', doc: 'Payload.' },
  ],
  Outcome: [
    { name: 'partition', type: 'int32', doc: 'Partition of the delivery.' },
    { name: 'offset', type: 'int64', doc: 'Offset of the delivery.' },
    { name: 'outcome', type: 'int8', doc: '0 ack, 1 nack (redeliver after delayMs), 2 reject (dead-letter now).' },
    { name: 'delayMs', type: 'int32', doc: 'nack: wait this long before redelivering; -1: the group backoff.' },
    { name: 'error', type: 'nullableString', doc: 'nack / reject: the consumer error text, kept in the dead-letter headers.' },
  ],
  DeliveryRef: [
    { name: 'partition', type: 'int32', doc: 'Partition of the delivery.' },
    { name: 'offset', type: 'int64', doc: 'Offset of the delivery.' },
  ],
  SharedTopicState: [
    { name: 'topic', type: 'string', doc: 'Topic name.' },
    { name: 'ready', type: 'int64', doc: 'Messages read ahead and waiting for a consumer.' },
    { name: 'unread', type: 'int64', doc: 'Unsettled messages not yet read ahead.' },
    { name: 'inflight', type: 'int64', doc: 'Delivered and not yet settled.' },
    { name: 'waiting', type: 'int64', doc: 'Nacked, waiting for their redelivery time.' },
    { name: 'consumers', type: { array: { struct: 'SharedConsumer' } }, doc: 'Attached consumers.' },
  ],
  ProducerInfo: [
    { name: 'producerId', type: 'int64', doc: 'Producer id.' },
    { name: 'epoch', type: 'int16', doc: 'Highest epoch seen.' },
    { name: 'partitions', type: 'int32', doc: 'Partitions it wrote to.' },
    { name: 'batches', type: 'int64', doc: 'Batches stored.' },
    { name: 'messages', type: 'int64', doc: 'Messages stored.' },
    { name: 'duplicates', type: 'int64', doc: 'Messages in retried batches recognised as already stored (not stored again).' },
    { name: 'gaps', type: 'int64', doc: 'Batches refused because sequence numbers were skipped: something was lost before reaching the broker.' },
    { name: 'lastSeen', type: 'int64', doc: 'Time of its last batch.' },
  ],
  TraceEntry: [
    { name: 'time', type: 'int64', doc: 'When it happened (broker wall clock, ms since the epoch).' },
    { name: 'kind', type: 'string', doc: '`stored`, `delayed`, `delivered`, `acked`, `nacked`, `rejected`, `dead-lettered`, `expired` or `transaction`.' },
    { name: 'detail', type: 'string', doc: 'The event as a JSON object (fields depend on the kind).' },
  ],
  SharedConsumer: [
    { name: 'consumerId', type: 'string', doc: 'Consumer id.' },
    { name: 'clientId', type: 'string', doc: 'Client id from the handshake.' },
    { name: 'host', type: 'string', doc: 'Client address.' },
    { name: 'prefetch', type: 'int32', doc: 'Most unacknowledged deliveries (0: unlimited).' },
    { name: 'inflight', type: 'int32', doc: 'Deliveries it holds now.' },
  ],
  UserInfo: [
    { name: 'name', type: 'string', doc: 'User name.' },
    { name: 'tags', type: { array: 'string' }, doc: 'Tags, e.g. `administrator`.' },
  ],
  PermissionInfo: [
    { name: 'user', type: 'string', doc: 'User name.' },
    { name: 'vhost', type: 'string', doc: 'Virtual host.' },
    { name: 'configure', type: 'string', doc: 'Regular expression over the names of resources the user may create, delete or change.' },
    { name: 'write', type: 'string', doc: 'Regular expression over the names of resources the user may publish to.' },
    { name: 'read', type: 'string', doc: 'Regular expression over the names of resources the user may consume from.' },
  ],
  DefinitionsCount: [
    { name: 'key', type: 'string', doc: 'A top-level key of the definitions document, e.g. `users`.' },
    { name: 'count', type: 'int32', doc: 'Entries imported under it.' },
  ],
} as const satisfies Readonly<Record<string, readonly FieldSpec[]>>;

export const apis = [
  {
    key: 0,
    name: 'Handshake',
    version: 1,
    doc: 'Must be the first request on a connection. Negotiates the protocol version, frame size and heartbeat interval.',
    request: [
      { name: 'minVersion', type: 'int16', doc: 'Lowest protocol version the client speaks.' },
      { name: 'maxVersion', type: 'int16', doc: 'Highest protocol version the client speaks.' },
      { name: 'clientId', type: 'string', doc: 'A name for the client application, shown in logs and group listings.' },
      { name: 'clientVersion', type: 'string', doc: 'The client library version.' },
      { name: 'maxFrameBytes', type: 'int32', doc: 'Largest frame the client accepts.' },
      { name: 'heartbeatMs', type: 'int32', doc: 'Requested heartbeat interval; 0 lets the broker choose.' },
    ],
    response: [
      { name: 'version', type: 'int16', doc: 'The protocol version both sides use.' },
      { name: 'brokerVersion', type: 'string', doc: 'The broker version.' },
      { name: 'maxFrameBytes', type: 'int32', doc: 'Largest frame either side may send on this connection.' },
      { name: 'heartbeatMs', type: 'int32', doc: 'The client pings at least this often; the broker closes a connection silent for 3 intervals.' },
      { name: 'connectionId', type: 'string', doc: 'The broker id for this connection, as it appears in logs.' },
    ],
  },
  { key: 1, name: 'Ping', version: 1, doc: 'Heartbeat; also measures round-trip time.', request: [], response: [] },
  {
    key: 2,
    name: 'CreateTopic',
    version: 1,
    doc: 'Creates a topic with its partitions.',
    request: [
      { name: 'name', type: 'string', doc: 'Topic name: 1–249 characters of letters, digits, `.`, `_` and `-`.' },
      { name: 'partitions', type: 'int32', doc: 'Number of partitions (1–10,000).' },
      { name: 'config', type: { struct: 'TopicConfig' }, doc: 'Settings; use the defaults from ListTopics of an existing topic or from docs/protocol.md.' },
    ],
    response: [{ name: 'topic', type: { struct: 'TopicDescription' }, doc: 'The created topic.' }],
  },
  {
    key: 3,
    name: 'DeleteTopic',
    version: 1,
    doc: 'Deletes a topic, its partitions and its committed offsets.',
    request: [{ name: 'name', type: 'string', doc: 'Topic name.' }],
    response: [],
  },
  {
    key: 4,
    name: 'ListTopics',
    version: 1,
    doc: 'Lists every topic with its partitions.',
    request: [],
    response: [{ name: 'topics', type: { array: { struct: 'TopicDescription' } }, doc: 'All topics, by name.' }],
  },
  {
    key: 5,
    name: 'DescribeTopic',
    version: 1,
    doc: 'Describes one topic.',
    request: [{ name: 'name', type: 'string', doc: 'Topic name.' }],
    response: [{ name: 'topic', type: { struct: 'TopicDescription' }, doc: 'The topic.' }],
  },
  {
    key: 6,
    name: 'AlterTopic',
    version: 1,
    doc: 'Changes settings and/or increases the partition count (partitions are never removed).',
    request: [
      { name: 'name', type: 'string', doc: 'Topic name.' },
      { name: 'partitions', type: 'int32', doc: 'New partition count, or -1 to keep it.' },
      { name: 'config', type: { struct: 'TopicConfig' }, doc: 'New settings (send the current ones for fields that do not change).' },
    ],
    response: [{ name: 'topic', type: { struct: 'TopicDescription' }, doc: 'The topic after the change.' }],
  },
  {
    key: 7,
    name: 'InitProducer',
    version: 1,
    doc: 'Registers an idempotent producer: the broker assigns a producer id, or bumps the epoch of a known one (fencing older instances).',
    request: [{ name: 'producerId', type: 'int64', doc: 'An id from an earlier InitProducer to resume, or -1 for a new one.' }],
    response: [
      { name: 'producerId', type: 'int64', doc: 'The producer id.' },
      { name: 'producerEpoch', type: 'int16', doc: 'The epoch to send with every Produce.' },
    ],
  },
  {
    key: 8,
    name: 'Produce',
    version: 1,
    doc: 'Appends messages to one partition as one batch. With acks 0 the broker sends no response. RESOURCE_ALARM while a memory or disk watermark is crossed (with acks 0 the messages are dropped).',
    request: [
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'partition', type: 'int32', doc: 'Partition, or -1: by the key of the first message (murmur2, as docs/protocol.md defines), else round-robin.' },
      { name: 'acks', type: 'int8', doc: '0 none (no response), 1 written (page cache), 2 durable (after the fsync the topic flush policy requires).' },
      { name: 'producerId', type: 'int64', doc: 'From InitProducer, or -1 for a non-idempotent producer.' },
      { name: 'producerEpoch', type: 'int16', doc: 'From InitProducer, or -1.' },
      { name: 'baseSequence', type: 'int32', doc: 'Sequence number of the first message for this (producer, partition), or -1.' },
      { name: 'messages', type: { array: { struct: 'Message' } }, doc: 'The messages (at least one).' },
    ],
    response: [
      { name: 'partition', type: 'int32', doc: 'The partition the batch went to.' },
      { name: 'baseOffset', type: 'int64', doc: 'Offset of the first message.' },
      { name: 'storeTimestamp', type: 'int64', doc: 'Broker append time.' },
      { name: 'position', type: 'int64', doc: 'Commit-log position of the batch; with storeTimestamp it yields generated message ids.' },
      { name: 'duplicate', type: 'bool', doc: 'True when this batch was a retry of one already stored; the offsets are the original ones.' },
    ],
  },
  {
    key: 9,
    name: 'Fetch',
    version: 1,
    doc: 'Reads from one partition. Waits up to maxWaitMs for at least minBytes, and answers the moment enough data arrives (long polling).',
    request: [
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'partition', type: 'int32', doc: 'Partition.' },
      { name: 'offset', type: 'int64', doc: 'First offset wanted.' },
      { name: 'maxBytes', type: 'int32', doc: 'Stop adding batches past this many bytes (at least one batch is returned).' },
      { name: 'minBytes', type: 'int32', doc: 'Answer early once this many bytes are available (0 or 1: as soon as anything is).' },
      { name: 'maxWaitMs', type: 'int32', doc: 'Longest time to wait for minBytes.' },
    ],
    response: [
      { name: 'startOffset', type: 'int64', doc: 'First readable offset of the partition.' },
      { name: 'endOffset', type: 'int64', doc: 'One past the last acknowledged message (the high-water mark).' },
      { name: 'records', type: 'records', doc: 'Whole record batches; the first may start before the requested offset, and clients skip the messages below it.' },
    ],
  },
  {
    key: 10,
    name: 'ListOffsets',
    version: 1,
    doc: 'Finds an offset: the earliest, the latest, or the first at or after a time.',
    request: [
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'partition', type: 'int32', doc: 'Partition.' },
      { name: 'timestamp', type: 'int64', doc: '-2 earliest, -1 latest, otherwise milliseconds since the epoch.' },
    ],
    response: [{ name: 'offset', type: 'int64', doc: 'The offset.' }],
  },
  {
    key: 11,
    name: 'JoinGroup',
    version: 1,
    doc: 'Joins a consumer group (or rejoins after a rebalance). Answers when the rebalance round has collected its members.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'memberId', type: 'string', doc: 'The id from a previous join, or empty for a new member.' },
      { name: 'topics', type: { array: 'string' }, doc: 'Topics this member subscribes to.' },
      { name: 'strategy', type: 'string', doc: 'Assignment strategy: `range`, `round-robin` or `sticky` (the first member to join chooses).' },
      { name: 'sessionTimeoutMs', type: 'int32', doc: 'The member is removed when no heartbeat arrives for this long.' },
      { name: 'rebalanceTimeoutMs', type: 'int32', doc: 'How long the broker waits for members to rejoin during a rebalance.' },
    ],
    response: [
      { name: 'memberId', type: 'string', doc: 'This member id.' },
      { name: 'generation', type: 'int32', doc: 'The generation this join belongs to.' },
      { name: 'members', type: { array: 'string' }, doc: 'Every member id of the generation.' },
    ],
  },
  {
    key: 12,
    name: 'SyncGroup',
    version: 1,
    doc: 'Gets this member assignment for a generation. A partition is never assigned to two members of one generation.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'generation', type: 'int32', doc: 'From JoinGroup.' },
      { name: 'memberId', type: 'string', doc: 'From JoinGroup.' },
    ],
    response: [{ name: 'assignment', type: { array: { struct: 'TopicPartitions' } }, doc: 'Partitions this member owns in the generation.' }],
  },
  {
    key: 13,
    name: 'Heartbeat',
    version: 1,
    doc: 'Keeps group membership alive; REBALANCE_IN_PROGRESS tells the member to join again.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'generation', type: 'int32', doc: 'Current generation.' },
      { name: 'memberId', type: 'string', doc: 'Member id.' },
    ],
    response: [],
  },
  {
    key: 14,
    name: 'LeaveGroup',
    version: 1,
    doc: 'Leaves a group at once (instead of waiting for the session timeout).',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'memberId', type: 'string', doc: 'Member id.' },
    ],
    response: [],
  },
  {
    key: 15,
    name: 'CommitOffsets',
    version: 1,
    doc: 'Durably stores consumed offsets for a group. Group members send their generation; standalone consumers send -1.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'generation', type: 'int32', doc: 'Generation, or -1 outside group coordination.' },
      { name: 'memberId', type: 'string', doc: 'Member id, or empty outside group coordination.' },
      { name: 'offsets', type: { array: { struct: 'PartitionOffset' } }, doc: 'Offsets to store (the next offset to consume).' },
    ],
    response: [],
  },
  {
    key: 16,
    name: 'FetchOffsets',
    version: 1,
    doc: 'Reads committed offsets.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
    ],
    response: [{ name: 'offsets', type: { array: { struct: 'PartitionOffset' } }, doc: 'One per partition; offset -1 when none is committed.' }],
  },
  {
    key: 17,
    name: 'ListGroups',
    version: 1,
    doc: 'Lists consumer groups.',
    request: [],
    response: [{ name: 'groups', type: { array: { struct: 'GroupSummary' } }, doc: 'All groups.' }],
  },
  {
    key: 18,
    name: 'DescribeGroup',
    version: 1,
    doc: 'Members, assignment, committed offsets and lag of one group.',
    request: [{ name: 'group', type: 'string', doc: 'Group name.' }],
    response: [
      { name: 'summary', type: { struct: 'GroupSummary' }, doc: 'Name, mode, state, size.' },
      { name: 'generation', type: 'int32', doc: 'Current generation.' },
      { name: 'strategy', type: 'string', doc: 'Assignment strategy.' },
      { name: 'members', type: { array: { struct: 'GroupMember' } }, doc: 'Members and their partitions.' },
      { name: 'lag', type: { array: { struct: 'GroupLag' } }, doc: 'Per partition of every subscribed topic.' },
    ],
  },
  {
    key: 19,
    name: 'GetMessage',
    version: 1,
    doc: 'Looks messages up by id or by key through the storage lookup indexes.',
    request: [
      { name: 'id', type: 'nullableBytes', doc: 'Message id, or null.' },
      { name: 'key', type: 'nullableBytes', doc: 'Key, or null (one of id and key must be given).' },
      { name: 'topic', type: 'nullableString', doc: 'Restrict a key lookup to one topic, or null.' },
      { name: 'limit', type: 'int32', doc: 'Most messages to return for a key lookup.' },
    ],
    response: [{ name: 'messages', type: { array: { struct: 'FoundMessage' } }, doc: 'Matches, newest first.' }],
  },
  {
    key: 20,
    name: 'Subscribe',
    version: 1,
    doc: 'Attaches a consumer to a shared or key_shared group on one topic. The broker then pushes Deliver frames while the consumer holds fewer than `prefetch` unsettled deliveries.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name. A new group gets `mode`, `settings` and the filter; a later subscribe must use the same mode and filter.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'mode', type: 'string', doc: '`shared` or `key_shared`.' },
      { name: 'consumerId', type: 'string', doc: 'A name for this consumer, unique in the group and topic; empty lets the broker choose.' },
      { name: 'prefetch', type: 'int32', doc: 'Most unsettled deliveries held at once (0: unlimited; at most 65,535).' },
      { name: 'priority', type: 'int32', doc: 'Consumers of higher priority get messages first while they have credit.' },
      { name: 'filterKind', type: 'string', doc: 'Empty for none, `tag` (`a || b`) or `sql` (an SQL-92 subset over headers).' },
      { name: 'filter', type: 'string', doc: 'The filter expression.' },
      { name: 'settings', type: 'string', doc: 'Group settings as a JSON object (docs/design/work-queues.md), applied when the group is created; empty for the defaults.' },
    ],
    response: [{ name: 'consumerId', type: 'string', doc: 'The consumer id, as Deliver frames and Settle name it.' }],
  },
  {
    key: 21,
    name: 'Unsubscribe',
    version: 1,
    doc: 'Detaches a consumer; whatever it holds unsettled is redelivered to the others. Closing the connection does the same.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'consumerId', type: 'string', doc: 'Consumer id.' },
    ],
    response: [],
  },
  {
    key: 22,
    name: 'Settle',
    version: 1,
    doc: 'Acknowledges, nacks or rejects deliveries. Outcomes for deliveries no longer leased to this consumer (lease expired, redelivered elsewhere) are ignored.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'consumerId', type: 'string', doc: 'The consumer the deliveries went to.' },
      { name: 'outcomes', type: { array: { struct: 'Outcome' } }, doc: 'One per delivery.' },
    ],
    response: [{ name: 'applied', type: 'int32', doc: 'How many outcomes applied (the rest named deliveries this consumer no longer holds).' }],
  },
  {
    key: 23,
    name: 'Extend',
    version: 1,
    doc: 'Renews the leases of deliveries ("still working"), so they are not redelivered when the ack timeout passes.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'consumerId', type: 'string', doc: 'Consumer id.' },
      { name: 'ms', type: 'int32', doc: 'New lease, from now.' },
      { name: 'deliveries', type: { array: { struct: 'DeliveryRef' } }, doc: 'The deliveries to extend.' },
    ],
    response: [{ name: 'applied', type: 'int32', doc: 'How many leases were renewed.' }],
  },
  {
    key: 24,
    name: 'Receive',
    version: 1,
    doc: 'Pulls up to maxMessages deliveries from a shared group, waiting up to waitMs for the first (long polling). The deliveries are leased to this connection until settled.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'mode', type: 'string', doc: '`shared` or `key_shared`.' },
      { name: 'maxMessages', type: 'int32', doc: 'Most deliveries to return (1–10,000).' },
      { name: 'waitMs', type: 'int32', doc: 'Longest wait for the first message.' },
      { name: 'filterKind', type: 'string', doc: 'As in Subscribe.' },
      { name: 'filter', type: 'string', doc: 'As in Subscribe.' },
      { name: 'settings', type: 'string', doc: 'As in Subscribe.' },
    ],
    response: [
      { name: 'consumerId', type: 'string', doc: 'The pull consumer of this connection: Settle with it.' },
      { name: 'deliveries', type: { array: { struct: 'Delivery' } }, doc: 'The deliveries.' },
    ],
  },
  {
    key: 25,
    name: 'Peek',
    version: 1,
    doc: 'Shows ready messages of a shared group in dispatch order without delivering them.',
    request: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'limit', type: 'int32', doc: 'Most messages to show.' },
    ],
    response: [{ name: 'messages', type: { array: { struct: 'Delivery' } }, doc: 'Ready messages; deliveryCount is how often each was delivered before.' }],
  },
  {
    key: 26,
    name: 'DescribeSharedGroup',
    version: 1,
    doc: 'Settings, consumers and message counts of a shared or key_shared group.',
    request: [{ name: 'group', type: 'string', doc: 'Group name.' }],
    response: [
      { name: 'mode', type: 'string', doc: '`shared` or `key_shared`.' },
      { name: 'settings', type: 'string', doc: 'The group settings as JSON.' },
      { name: 'filterKind', type: 'string', doc: 'Empty, `tag` or `sql`.' },
      { name: 'filter', type: 'string', doc: 'The filter expression.' },
      { name: 'topics', type: { array: { struct: 'SharedTopicState' } }, doc: 'Per topic the group consumes.' },
    ],
  },
  {
    key: 27,
    name: 'BeginTransaction',
    version: 1,
    doc: 'Starts a transaction for a producer group. Its messages are stored but invisible until EndTransaction commits them.',
    request: [{ name: 'producerGroup', type: 'string', doc: 'The producer group (check-backs go to its live members).' }],
    response: [{ name: 'transactionId', type: 'string', doc: 'The transaction id.' }],
  },
  {
    key: 28,
    name: 'TransactionProduce',
    version: 1,
    doc: 'Stores messages in a transaction (durably, invisible to consumers until commit). RESOURCE_ALARM while a memory or disk watermark is crossed.',
    request: [
      { name: 'transactionId', type: 'string', doc: 'From BeginTransaction.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'partition', type: 'int32', doc: 'Partition, or -1 as in Produce.' },
      { name: 'messages', type: { array: { struct: 'Message' } }, doc: 'The messages.' },
    ],
    response: [
      { name: 'partition', type: 'int32', doc: 'The partition they will be appended to on commit.' },
      { name: 'ids', type: { array: 'bytes' }, doc: 'The message ids (they stay the same after commit).' },
    ],
  },
  {
    key: 29,
    name: 'EndTransaction',
    version: 1,
    doc: 'Commits or rolls back a transaction, or answers a CheckTransaction push with "unknown" (not decided yet; the broker asks again later).',
    request: [
      { name: 'transactionId', type: 'string', doc: 'The transaction id.' },
      { name: 'outcome', type: 'int8', doc: '0 commit, 1 rollback, 2 unknown.' },
    ],
    response: [],
  },
  {
    key: 30,
    name: 'JoinProducerGroup',
    version: 1,
    doc: 'Registers this connection as a live producer of a producer group: CheckTransaction pushes for the group may come to it until it closes or sends LeaveProducerGroup.',
    request: [{ name: 'producerGroup', type: 'string', doc: 'The producer group.' }],
    response: [],
  },
  {
    key: 31,
    name: 'ListProducers',
    version: 1,
    doc: 'Idempotent producers seen since the broker started, with what their sequence numbers revealed.',
    request: [],
    response: [{ name: 'producers', type: { array: { struct: 'ProducerInfo' } }, doc: 'By producer id.' }],
  },
  {
    key: 32,
    name: 'GetTrace',
    version: 1,
    doc: 'The trace of a message: where it was stored and each delivery, outcome, dead-lettering, expiry, delay and transaction step, oldest first.',
    request: [{ name: 'id', type: 'bytes', doc: 'Message id.' }],
    response: [{ name: 'events', type: { array: { struct: 'TraceEntry' } }, doc: 'Oldest first.' }],
  },
  {
    key: 33,
    name: 'ListUsers',
    version: 1,
    doc: 'Users and their tags, by name. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [],
    response: [{ name: 'users', type: { array: { struct: 'UserInfo' } }, doc: 'By name.' }],
  },
  {
    key: 34,
    name: 'AddUser',
    version: 1,
    doc: 'Creates a user; the broker keeps only a salted hash of the password. USER_EXISTS, INVALID_ARGUMENT. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'name', type: 'string', doc: 'User name (1–255 bytes, no control characters).' },
      { name: 'password', type: 'string', doc: 'Password (not empty).' },
      { name: 'tags', type: { array: 'string' }, doc: 'Tags, e.g. `administrator`.' },
    ],
    response: [],
  },
  {
    key: 35,
    name: 'DeleteUser',
    version: 1,
    doc: 'Deletes a user and its permissions. UNKNOWN_USER. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [{ name: 'name', type: 'string', doc: 'User name.' }],
    response: [],
  },
  {
    key: 36,
    name: 'ChangePassword',
    version: 1,
    doc: 'Sets a new password. UNKNOWN_USER. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'name', type: 'string', doc: 'User name.' },
      { name: 'password', type: 'string', doc: 'New password (not empty).' },
    ],
    response: [],
  },
  {
    key: 37,
    name: 'SetUserTags',
    version: 1,
    doc: 'Replaces a user\'s tags. UNKNOWN_USER. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'name', type: 'string', doc: 'User name.' },
      { name: 'tags', type: { array: 'string' }, doc: 'The new tags (empty: none).' },
    ],
    response: [],
  },
  {
    key: 38,
    name: 'ListVhosts',
    version: 1,
    doc: 'Virtual hosts, by name. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [],
    response: [{ name: 'vhosts', type: { array: 'string' }, doc: 'By name.' }],
  },
  {
    key: 39,
    name: 'AddVhost',
    version: 1,
    doc: 'Creates a virtual host. VHOST_EXISTS, INVALID_ARGUMENT. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [{ name: 'name', type: 'string', doc: 'Virtual host name (1–255 bytes, no control characters).' }],
    response: [],
  },
  {
    key: 40,
    name: 'DeleteVhost',
    version: 1,
    doc: 'Deletes a virtual host, everything in it and every permission on it. UNKNOWN_VHOST. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [{ name: 'name', type: 'string', doc: 'Virtual host name.' }],
    response: [],
  },
  {
    key: 41,
    name: 'ListPermissions',
    version: 1,
    doc: 'Permissions, by virtual host then user. UNKNOWN_USER or UNKNOWN_VHOST when a filter names one that does not exist. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'user', type: 'nullableString', doc: 'Only this user\'s, or null.' },
      { name: 'vhost', type: 'nullableString', doc: 'Only this virtual host\'s, or null.' },
    ],
    response: [{ name: 'permissions', type: { array: { struct: 'PermissionInfo' } }, doc: 'By virtual host, then user.' }],
  },
  {
    key: 42,
    name: 'SetPermissions',
    version: 1,
    doc: 'Sets a user\'s permissions on a virtual host: three regular expressions matched anywhere in resource names (anchor with `^…$`); the empty string grants nothing. INVALID_ARGUMENT names an invalid expression; UNKNOWN_USER, UNKNOWN_VHOST. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'user', type: 'string', doc: 'User name.' },
      { name: 'vhost', type: 'string', doc: 'Virtual host.' },
      { name: 'configure', type: 'string', doc: 'Resources the user may create, delete or change.' },
      { name: 'write', type: 'string', doc: 'Resources the user may publish to.' },
      { name: 'read', type: 'string', doc: 'Resources the user may consume from.' },
    ],
    response: [],
  },
  {
    key: 43,
    name: 'ClearPermissions',
    version: 1,
    doc: 'Removes a user\'s permissions on a virtual host (the user can no longer use it). UNKNOWN_USER, UNKNOWN_VHOST. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [
      { name: 'user', type: 'string', doc: 'User name.' },
      { name: 'vhost', type: 'string', doc: 'Virtual host.' },
    ],
    response: [],
  },
  {
    key: 44,
    name: 'ExportDefinitions',
    version: 1,
    doc: 'The broker\'s definitions (users with password hashes, virtual hosts, permissions, and what protocol layers add) as a JSON document in RabbitMQ\'s definitions format. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [],
    response: [{ name: 'definitions', type: 'bytes', doc: 'The JSON document, UTF-8.' }],
  },
  {
    key: 45,
    name: 'ImportDefinitions',
    version: 1,
    doc: 'Creates or updates what a definitions document (RabbitMQ\'s format, e.g. a RabbitMQ export) describes; deletes nothing. The whole document is checked first: INVALID_ARGUMENT names the bad entry (`users[2].name: must be a string`) and nothing changes. Loopback connections only: ACCESS_REFUSED from elsewhere.',
    request: [{ name: 'definitions', type: 'bytes', doc: 'The JSON document, UTF-8.' }],
    response: [
      { name: 'applied', type: { array: { struct: 'DefinitionsCount' } }, doc: 'Entries imported per key.' },
      { name: 'skipped', type: { array: 'string' }, doc: 'Top-level keys this broker ignores (e.g. `policies`, `parameters`).' },
    ],
  },
  {
    key: 46,
    name: 'LeaveProducerGroup',
    version: 1,
    doc: 'Takes back one JoinProducerGroup of this connection (a transactional producer closed while its connection stays open): CheckTransaction pushes for the group stop coming to it unless it joined more times than it left. Leaving a group the connection has not joined is not an error.',
    request: [{ name: 'producerGroup', type: 'string', doc: 'The producer group.' }],
    response: [],
  },
] as const satisfies readonly ApiSpec[];

export interface PushSpec {
  readonly key: number;
  readonly name: string;
  readonly doc: string;
  readonly fields: readonly FieldSpec[];
}

/**
 * Messages the broker sends without a request. Push frame: `[length:4][kind:1=2][pushKey:int16][fields]`. A client
 * ignores push keys it does not know.
 */
export const pushes = [
  {
    key: 0,
    name: 'Deliver',
    doc: 'Deliveries for a consumer attached with Subscribe. Each is leased to it until settled, extended or its ack timeout passes.',
    fields: [
      { name: 'group', type: 'string', doc: 'Group name.' },
      { name: 'topic', type: 'string', doc: 'Topic name.' },
      { name: 'consumerId', type: 'string', doc: 'The consumer they are for.' },
      { name: 'deliveries', type: { array: { struct: 'Delivery' } }, doc: 'The deliveries, in dispatch order.' },
    ],
  },
  {
    key: 1,
    name: 'CheckTransaction',
    doc: 'The broker asks a live producer of the group whether a transaction left open should be committed; answer with EndTransaction (commit, rollback or unknown).',
    fields: [
      { name: 'transactionId', type: 'string', doc: 'The transaction id.' },
      { name: 'producerGroup', type: 'string', doc: 'The producer group.' },
      { name: 'messages', type: { array: { struct: 'Delivery' } }, doc: 'Its messages (up to 100), for the producer to look up its local transaction.' },
    ],
  },
] as const satisfies readonly PushSpec[];
