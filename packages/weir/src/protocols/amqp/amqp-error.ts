import { VhostError, type VhostErrorCode } from '../../broker/vhost/vhost-error.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { AmqpFrameError, AmqpSyntaxError, ReplyCode } from './codec/index.js';
import { RoutingError } from '../../broker/routing/index.js';

/**
 * An AMQP exception (AMQP 0-9-1 §1.8.1, §4.2.7): channel exceptions (403, 404, 405, 406) close the channel,
 * everything else closes the connection. The reply text always says what was wrong; RabbitMQ prefixes it with the
 * code's name, and clients show it as is.
 */
export class AmqpError extends Error {
  constructor(
    readonly replyCode: number,
    readonly text: string,
  ) {
    super(text);
    this.name = 'AmqpError';
  }

  get closesConnection(): boolean {
    return !CHANNEL_CODES.has(this.replyCode);
  }

  /** The reply text as RabbitMQ words it: `NOT_FOUND - no queue 'q' in vhost '/'`. */
  get replyText(): string {
    return `${REPLY_NAMES[this.replyCode] ?? 'ERROR'} - ${this.text}`.slice(0, 255);
  }
}

const CHANNEL_CODES: ReadonlySet<number> = new Set([ReplyCode.ACCESS_REFUSED, ReplyCode.NOT_FOUND, ReplyCode.RESOURCE_LOCKED, ReplyCode.PRECONDITION_FAILED, ReplyCode.CONTENT_TOO_LARGE, ReplyCode.NO_ROUTE, ReplyCode.NO_CONSUMERS]);

const REPLY_NAMES: Record<number, string> = {
  311: 'CONTENT_TOO_LARGE',
  312: 'NO_ROUTE',
  313: 'NO_CONSUMERS',
  320: 'CONNECTION_FORCED',
  402: 'INVALID_PATH',
  403: 'ACCESS_REFUSED',
  404: 'NOT_FOUND',
  405: 'RESOURCE_LOCKED',
  406: 'PRECONDITION_FAILED',
  501: 'FRAME_ERROR',
  502: 'SYNTAX_ERROR',
  503: 'COMMAND_INVALID',
  504: 'CHANNEL_ERROR',
  505: 'UNEXPECTED_FRAME',
  506: 'RESOURCE_ERROR',
  530: 'NOT_ALLOWED',
  540: 'NOT_IMPLEMENTED',
  541: 'INTERNAL_ERROR',
};

const VHOST_CODES: Record<VhostErrorCode, number> = {
  NOT_FOUND: ReplyCode.NOT_FOUND,
  PRECONDITION_FAILED: ReplyCode.PRECONDITION_FAILED,
  ACCESS_REFUSED: ReplyCode.ACCESS_REFUSED,
  RESOURCE_LOCKED: ReplyCode.RESOURCE_LOCKED,
  RESOURCE_ERROR: ReplyCode.RESOURCE_ERROR,
  COMMAND_INVALID: ReplyCode.COMMAND_INVALID,
  NOT_IMPLEMENTED: ReplyCode.NOT_IMPLEMENTED,
};

export const notFound = (text: string) => new AmqpError(ReplyCode.NOT_FOUND, text);
export const accessRefused = (text: string) => new AmqpError(ReplyCode.ACCESS_REFUSED, text);
export const preconditionFailed = (text: string) => new AmqpError(ReplyCode.PRECONDITION_FAILED, text);
export const commandInvalid = (text: string) => new AmqpError(ReplyCode.COMMAND_INVALID, text);
export const channelError = (text: string) => new AmqpError(ReplyCode.CHANNEL_ERROR, text);
export const unexpectedFrame = (text: string) => new AmqpError(ReplyCode.UNEXPECTED_FRAME, text);
export const notAllowed = (text: string) => new AmqpError(ReplyCode.NOT_ALLOWED, text);
export const notImplemented = (text: string) => new AmqpError(ReplyCode.NOT_IMPLEMENTED, text);

/** Any failure as the AMQP exception to answer it with; unexpected ones are INTERNAL_ERROR (and get logged). */
export function asAmqpError(error: unknown): { error: AmqpError; unexpected: boolean } {
  if (error instanceof AmqpError) return { error, unexpected: false };
  if (error instanceof AmqpFrameError || error instanceof AmqpSyntaxError) return { error: new AmqpError(error.replyCode, error.message), unexpected: false };
  if (error instanceof VhostError) return { error: new AmqpError(VHOST_CODES[error.code], error.message), unexpected: false };
  if (error instanceof RoutingError) {
    const code = error.code === 'INVALID_ARGUMENT' ? ReplyCode.PRECONDITION_FAILED : VHOST_CODES[error.code];
    return { error: new AmqpError(code, error.message), unexpected: false };
  }
  if (error instanceof WeirError) {
    switch (error.code) {
      case ErrorCode.UnknownTopic:
      case ErrorCode.UnknownQueue:
        return { error: new AmqpError(ReplyCode.NOT_FOUND, error.message), unexpected: false };
      case ErrorCode.InvalidArgument:
      case ErrorCode.MessageTooLarge:
      case ErrorCode.InvalidGroup:
        return { error: new AmqpError(ReplyCode.PRECONDITION_FAILED, error.message), unexpected: false };
      case ErrorCode.BrokerShuttingDown:
        return { error: new AmqpError(ReplyCode.CONNECTION_FORCED, 'broker is shutting down'), unexpected: false };
      default:
        return { error: new AmqpError(ReplyCode.INTERNAL_ERROR, error.message), unexpected: true };
    }
  }
  return { error: new AmqpError(ReplyCode.INTERNAL_ERROR, error instanceof Error ? error.message : String(error)), unexpected: true };
}
