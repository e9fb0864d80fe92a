/**
 * Reply codes (amqp0-9-1.xml, the `constant` elements). A connection.close or channel.close carries one; the codes the
 * spec classes as hard errors close the connection, soft errors only the channel.
 */
export const ReplyCode = {
  REPLY_SUCCESS: 200,
  CONTENT_TOO_LARGE: 311,
  NO_ROUTE: 312,
  NO_CONSUMERS: 313,
  CONNECTION_FORCED: 320,
  INVALID_PATH: 402,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  FRAME_ERROR: 501,
  SYNTAX_ERROR: 502,
  COMMAND_INVALID: 503,
  CHANNEL_ERROR: 504,
  UNEXPECTED_FRAME: 505,
  RESOURCE_ERROR: 506,
  NOT_ALLOWED: 530,
  NOT_IMPLEMENTED: 540,
  INTERNAL_ERROR: 541,
} as const;

export type ReplyCodeName = keyof typeof ReplyCode;
export type ReplyCodeValue = (typeof ReplyCode)[ReplyCodeName];

/**
 * The byte stream cannot be cut into frames any more (bad frame-end, oversized or unknown frame): the connection must
 * be closed with `replyCode`, and nothing more can be read from it.
 */
export class AmqpFrameError extends Error {
  readonly replyCode: number;

  constructor(message: string, replyCode: number = ReplyCode.FRAME_ERROR) {
    super(message);
    this.name = 'AmqpFrameError';
    this.replyCode = replyCode;
  }
}

/**
 * A frame arrived whole but its payload does not decode: a field runs past the end, a length or type is invalid, an
 * unknown method (540), a content header for a class without content (505). The frame boundary is still known, but
 * the spec classes all these codes as hard errors (amqp0-9-1.xml, `class = "hard-error"`), so the connection is closed
 * with `replyCode`. `classId`/`methodId` name the method being decoded when known (0 otherwise), for
 * connection.close's class-id and method-id fields.
 *
 * RabbitMQ answers arguments it cannot decode with 501 FRAME_ERROR ("cannot decode"); this codec uses 502, the spec's
 * code for "a frame that contained illegal values for one or more fields".
 */
export class AmqpSyntaxError extends Error {
  readonly replyCode: number;
  readonly classId: number;
  readonly methodId: number;

  constructor(message: string, replyCode: number = ReplyCode.SYNTAX_ERROR, classId = 0, methodId = 0) {
    super(message);
    this.name = 'AmqpSyntaxError';
    this.replyCode = replyCode;
    this.classId = classId;
    this.methodId = methodId;
  }
}

export function isAmqpCodecError(error: unknown): error is AmqpFrameError | AmqpSyntaxError {
  return error instanceof AmqpFrameError || error instanceof AmqpSyntaxError;
}
