import { errorCodeOf, errorNameOf, isProtocolError, isRetriable, type ErrorName } from 'weir-protocol';

/**
 * Every code a client call can fail with: the broker's error names (docs/protocol.md, "Error codes"), `UNKNOWN` for a
 * code newer than this client, and the codes below that only the client raises.
 */
export type WeirClientErrorCode =
  | ErrorName
  | 'UNKNOWN'
  /** The connection broke (or could not be made); whatever was in flight may or may not have been processed. */
  | 'CONNECTION_CLOSED'
  /** No response within the request timeout; the request may still be processed. */
  | 'TIMEOUT'
  /** The client (or the producer/consumer) was closed by the application. */
  | 'CLIENT_CLOSED'
  /** A queue message was acknowledged, nacked or rejected already: each delivery takes one outcome. */
  | 'ALREADY_SETTLED'
  /**
   * A transaction's commit (or rollback) could not be confirmed: it stays open and the broker settles it by asking the
   * producer group (onCheck). Not retriable: repeating the work would repeat the local transaction.
   */
  | 'TRANSACTION_IN_DOUBT';

/** Client-side codes and whether the same request may succeed when tried again. */
const clientCodesRetriable: Record<'UNKNOWN' | 'CONNECTION_CLOSED' | 'TIMEOUT' | 'CLIENT_CLOSED' | 'ALREADY_SETTLED' | 'TRANSACTION_IN_DOUBT', boolean> = {
  UNKNOWN: false,
  CONNECTION_CLOSED: true,
  TIMEOUT: true,
  CLIENT_CLOSED: false,
  ALREADY_SETTLED: false,
  TRANSACTION_IN_DOUBT: false,
};

export interface WeirClientErrorOptions {
  /** Overrides the retriable flag the code implies. */
  retriable?: boolean;
  cause?: unknown;
}

/** Whether a code means "try the same request again later" by default. */
export function isRetriableCode(code: WeirClientErrorCode): boolean {
  if (code in clientCodesRetriable) return clientCodesRetriable[code as keyof typeof clientCodesRetriable];
  return isRetriable(errorCodeOf(code as ErrorName));
}

/**
 * The one error type the client throws. `code` says what happened (a broker error name or a client code),
 * `retriable` whether trying again may help, `message` what to do about it (for broker errors, the broker's own
 * message).
 */
export class WeirClientError extends Error {
  readonly code: WeirClientErrorCode;
  readonly retriable: boolean;

  constructor(code: WeirClientErrorCode, message: string, options: WeirClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeirClientError';
    this.code = code;
    this.retriable = options.retriable ?? isRetriableCode(code);
  }
}

export function isWeirClientError(error: unknown, code?: WeirClientErrorCode): error is WeirClientError {
  return error instanceof WeirClientError && (code === undefined || error.code === code);
}

/** The error for a response whose errorCode is not 0. */
export function errorFromResponse(apiName: string, errorCode: number, errorMessage: string | null): WeirClientError {
  const name = errorNameOf(errorCode);
  const text = errorMessage ?? `${apiName} failed with ${name}${name === 'UNKNOWN' ? ` (code ${errorCode})` : ''}`;
  return new WeirClientError(name, text, { retriable: isRetriable(errorCode) });
}

/** Wraps anything thrown into a WeirClientError (ProtocolErrors keep their code). */
export function toClientError(error: unknown, fallback: WeirClientErrorCode = 'UNKNOWN'): WeirClientError {
  if (error instanceof WeirClientError) return error;
  if (isProtocolError(error)) return new WeirClientError(error.code, error.message, { retriable: error.retriable, cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new WeirClientError(fallback, message, { cause: error });
}

/** A fresh copy of an error (so each rejected caller gets its own stack-less object with the same facts). */
export function cloneError(error: WeirClientError): WeirClientError {
  return new WeirClientError(error.code, error.message, { retriable: error.retriable, cause: error.cause });
}

export function clientClosed(what = 'the client'): WeirClientError {
  return new WeirClientError('CLIENT_CLOSED', `${what} is closed`);
}
