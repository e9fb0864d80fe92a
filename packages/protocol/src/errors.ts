import { errorCodes, type ErrorName } from './schema.js';

type ErrorEntry = (typeof errorCodes)[number];

const byName = new Map<string, ErrorEntry>(errorCodes.map((entry) => [entry.name, entry]));
const byCode = new Map<number, ErrorEntry>(errorCodes.map((entry) => [entry.code, entry]));

/** The numeric wire code of an error name. */
export function errorCodeOf(name: ErrorName): number {
  const entry = byName.get(name);
  if (entry === undefined) throw new TypeError(`unknown error name ${String(name)}`);
  return entry.code;
}

/** The name of a wire error code, or `'UNKNOWN'` for a code this version of the table does not know. */
export function errorNameOf(code: number): ErrorName | 'UNKNOWN' {
  return byCode.get(code)?.name ?? 'UNKNOWN';
}

/** Whether the same request may succeed when retried later. Unknown codes are not retriable. */
export function isRetriable(code: number): boolean {
  return byCode.get(code)?.retriable ?? false;
}

export interface ProtocolErrorOptions {
  /** The request's correlation id, when the frame header was read before the failure. */
  correlationId?: number | null;
  /** The frame's API key, when it was read. */
  apiKey?: number | null;
  cause?: unknown;
}

/**
 * A frame or message that violates the protocol (or a value that cannot be encoded). `code` is a name from the
 * schema's error table; when `correlationId` and `apiKey` are known, a broker can answer with an error response
 * before closing the connection.
 */
export class ProtocolError extends Error {
  readonly code: ErrorName;
  readonly correlationId: number | null;
  readonly apiKey: number | null;

  constructor(code: ErrorName, message: string, options: ProtocolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.correlationId = options.correlationId ?? null;
    this.apiKey = options.apiKey ?? null;
  }

  /** The numeric wire code of `code`. */
  get errorCode(): number {
    return errorCodeOf(this.code);
  }

  get retriable(): boolean {
    return isRetriable(this.errorCode);
  }
}

export function isProtocolError(error: unknown, code?: ErrorName): error is ProtocolError {
  return error instanceof ProtocolError && (code === undefined || error.code === code);
}
