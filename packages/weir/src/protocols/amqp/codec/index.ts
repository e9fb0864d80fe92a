/** AMQP 0-9-1 wire codec: pure encoding and decoding, no broker state. See spec.ts for the schema. */
export { AmqpFrameError, AmqpSyntaxError, isAmqpCodecError, ReplyCode, type ReplyCodeName, type ReplyCodeValue } from './errors.js';
export {
  decodeTable,
  encodeTable,
  Field,
  fieldToJs,
  MAX_FIELD_NESTING,
  tableBoolean,
  tableFromJs,
  tableNumber,
  tableString,
  tableToJs,
  type FieldTable,
  type FieldType,
  type FieldValue,
  type FieldValueOf,
  type JsFieldObject,
  type JsFieldValue,
} from './field-table.js';
export {
  basicDeliverSize,
  encodeBasicDeliver,
  encodeContentFrames,
  encodeFrame,
  encodeMethodFrame,
  encodeMethodWithContent,
  FRAME_END,
  FRAME_HEADER_SIZE,
  FRAME_MIN_SIZE,
  FRAME_OVERHEAD,
  FrameParser,
  FrameType,
  heartbeatFrame,
  parseProtocolHeader,
  PROTOCOL_HEADER,
  putBasicDeliver,
  type Frame,
  type ProtocolHeaderResult,
} from './frames.js';
export { BASIC_ACK_KEY, BASIC_PUBLISH_KEY, BasicAckReader, BasicPublishReader } from './method-readers.js';
export { sameBytes } from './wire.js';
export * from './methods.generated.js';
export {
  CONTENT_HEADER_PREFIX_SIZE,
  ContentHeaderReader,
  decodeContentHeader,
  decodeProperties,
  encodeContentHeader,
  encodeContentHeaderRaw,
  encodeProperties,
  type BasicProperties,
  type ContentHeader,
} from './properties.js';
export {
  BASIC_CLASS_ID,
  basicProperties,
  classes,
  classSpecById,
  methodKey,
  methods,
  methodSpecById,
  methodSpecByName,
  type ClassSpec,
  type FieldSpec,
  type MethodSpec,
  type Peer,
} from './spec.js';
