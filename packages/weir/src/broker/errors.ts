import { ErrorCode, WeirError, isWeirError } from '../core/errors.js';

/** Codes a caller may retry as they are: the same call can succeed later. */
const RETRIABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([ErrorCode.RebalanceInProgress, ErrorCode.BrokerShuttingDown, ErrorCode.StorageIo, ErrorCode.QueueFull]);

/** A WeirError whose `retriable` flag follows the code. */
export function brokerError(code: ErrorCode, message: string, cause?: unknown): WeirError {
  return new WeirError(code, message, { retriable: RETRIABLE.has(code), cause });
}

export function shuttingDown(): WeirError {
  return brokerError(ErrorCode.BrokerShuttingDown, 'the broker is shutting down');
}

/**
 * Storage errors seen through a topic: a queue that vanished under a call means its topic was deleted meanwhile, and a
 * closed store means the broker is stopping. Everything else (MESSAGE_TOO_LARGE, STORAGE_IO, DATA_DAMAGED, …) passes.
 */
export function fromStorage(error: unknown, topic: string): unknown {
  if (isWeirError(error, ErrorCode.UnknownQueue)) return brokerError(ErrorCode.UnknownTopic, `topic "${topic}" does not exist`, error);
  if (isWeirError(error, ErrorCode.StoreClosed)) return brokerError(ErrorCode.BrokerShuttingDown, 'the broker is shutting down', error);
  return error;
}

export function invalidArgument(message: string): WeirError {
  return brokerError(ErrorCode.InvalidArgument, message);
}

export function isNonNegativeInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

export type { MetadataOp } from '../storage/message-store.js';
