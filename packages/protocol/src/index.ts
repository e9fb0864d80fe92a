export * from './schema.js';
export type {
  ApiName,
  StructName,
  Direction,
  StructOf,
  RequestOf,
  ResponseOf,
  DecodedRequestOf,
  DecodedResponseOf,
  DecodedRequest,
  DecodedResponse,
  Header,
  Message,
  TopicConfig,
  PartitionState,
  TopicDescription,
  TopicPartitions,
  PartitionOffset,
  GroupMember,
  GroupLag,
  GroupSummary,
  FoundMessage,
} from './types.js';
export { ProtocolError, errorCodeOf, errorNameOf, isRetriable, isProtocolError, type ProtocolErrorOptions } from './errors.js';
export {
  encodeRequest,
  encodeResponse,
  encodeResponseParts,
  encodeErrorResponse,
  decodeRequest,
  decodeResponse,
  apiKeyOf,
  apiNameOf,
  LENGTH_PREFIX_BYTES,
  REQUEST_HEADER_BYTES,
  RESPONSE_HEADER_BYTES,
  MAX_ERROR_MESSAGE_BYTES,
} from './codec.js';
export { FrameReader } from './frame-reader.js';
export { murmur2, partitionForKey } from './murmur2.js';
export { crc32c } from './crc32c.js';
export {
  decodeRecordBatches,
  generatedMessageId,
  RecordFlag,
  RECORD_BATCH_HEADER_BYTES,
  RECORD_BATCH_VERSION,
  type FetchedMessage,
  type DecodeRecordBatchesOptions,
} from './record-batch.js';
