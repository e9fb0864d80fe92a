/**
 * The one base error of Weir. Every error that crosses a module boundary is a WeirError, so callers branch on
 * `code` (stable, documented in docs/errors.md) and on `retriable` (whether the same call may succeed later).
 */
export const ErrorCode = {
  /** The named queue or topic does not exist. */
  UnknownQueue: 'UNKNOWN_QUEUE',
  /** A queue or topic with that name already exists. */
  QueueExists: 'QUEUE_EXISTS',
  /** The requested offset is outside [startOffset, endOffset]. */
  OffsetOutOfRange: 'OFFSET_OUT_OF_RANGE',
  /** A message or batch is larger than the configured limit. */
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  /** An argument is malformed (bad name, negative count, …). */
  InvalidArgument: 'INVALID_ARGUMENT',
  /** Stored data failed its checksum: it is never served as good data. */
  DataDamaged: 'DATA_DAMAGED',
  /** A disk write or fsync failed; nothing of the failed call was acknowledged. */
  StorageIo: 'STORAGE_IO',
  /** The store is closed or closing. */
  StoreClosed: 'STORE_CLOSED',
  /** A file does not start with the expected magic and version. */
  BadFormat: 'BAD_FORMAT',
  /** The topic does not exist. */
  UnknownTopic: 'UNKNOWN_TOPIC',
  /** A topic with that name already exists (or is still being deleted). */
  TopicExists: 'TOPIC_EXISTS',
  /** The partition number or count is out of range. */
  InvalidPartition: 'INVALID_PARTITION',
  /** An idempotent producer skipped sequence numbers, or resent a batch that overlaps stored ones inexactly. */
  OutOfOrderSequence: 'OUT_OF_ORDER_SEQUENCE',
  /** The producer id is unknown, or the broker holds no sequence state for it on this partition: initialise again. */
  UnknownProducer: 'UNKNOWN_PRODUCER',
  /** The producer's epoch is not the current one: a newer instance of the producer exists (fenced). */
  InvalidProducerEpoch: 'INVALID_PRODUCER_EPOCH',
  /** The group does not know this member id (expired, left or never joined): join again. */
  UnknownMember: 'UNKNOWN_MEMBER',
  /** The group's generation has moved on: join again. */
  IllegalGeneration: 'ILLEGAL_GENERATION',
  /** The group is rebalancing: join again to get a new assignment (retriable). */
  RebalanceInProgress: 'REBALANCE_IN_PROGRESS',
  /** The group exists with a different mode, or the group name is invalid. */
  InvalidGroup: 'INVALID_GROUP',
  /** The broker is stopping (retriable once it is back). */
  BrokerShuttingDown: 'BROKER_SHUTTING_DOWN',
  /** A queue limit with overflow reject-publish is reached: the produce was not stored (retriable once consumers catch up). */
  QueueFull: 'QUEUE_FULL',
  /** The transaction id is unknown (committed, rolled back, or never begun). */
  UnknownTransaction: 'UNKNOWN_TRANSACTION',
  /** A subscription filter expression is malformed; the message gives the position. */
  InvalidFilter: 'INVALID_FILTER',
  /** The user does not exist. */
  UnknownUser: 'UNKNOWN_USER',
  /** A user with that name already exists. */
  UserExists: 'USER_EXISTS',
  /** The virtual host does not exist. */
  UnknownVhost: 'UNKNOWN_VHOST',
  /** A virtual host with that name already exists. */
  VhostExists: 'VHOST_EXISTS',
  /** The request is not allowed from where it came (user management over a connection that is not from loopback). */
  AccessRefused: 'ACCESS_REFUSED',
  /** A memory or disk watermark is crossed: the produce was refused, nothing was stored (retriable once it clears). */
  ResourceAlarm: 'RESOURCE_ALARM',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class WeirError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeirError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

export function isWeirError(error: unknown, code?: ErrorCode): error is WeirError {
  return error instanceof WeirError && (code === undefined || error.code === code);
}
