import { type ErrorName, errorCodes, isProtocolError } from 'weir-protocol';
import { isWeirError } from '../../core/errors.js';

const protocolNames = new Set<string>(errorCodes.map((entry) => entry.name));

/** Domain error codes whose protocol name differs; every other WeirError code is its own protocol name. */
const renamed: Readonly<Record<string, ErrorName>> = {
  UNKNOWN_QUEUE: 'UNKNOWN_TOPIC',
  QUEUE_EXISTS: 'TOPIC_EXISTS',
  STORAGE_IO: 'STORAGE_ERROR',
  STORE_CLOSED: 'BROKER_SHUTTING_DOWN',
  BAD_FORMAT: 'INTERNAL_ERROR',
};

/** The protocol error for anything a handler threw; unexpected errors become INTERNAL_ERROR. */
export function protocolErrorOf(error: unknown): { name: ErrorName; message: string; unexpected: boolean } {
  if (isProtocolError(error)) return { name: error.code, message: error.message, unexpected: false };
  if (isWeirError(error)) {
    const name = renamed[error.code] ?? (protocolNames.has(error.code) ? (error.code as ErrorName) : 'INTERNAL_ERROR');
    return { name, message: error.message, unexpected: name === 'INTERNAL_ERROR' };
  }
  return { name: 'INTERNAL_ERROR', message: `internal error: ${(error as Error)?.message ?? String(error)}`, unexpected: true };
}
