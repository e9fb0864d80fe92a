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
