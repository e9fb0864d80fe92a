/**
 * A refusal from the vhost layer, named after the AMQP reply code the protocol layer answers it with (AMQP 0-9-1
 * §1.8.1 reply codes): channel-level problems of a definition or a request.
 */
export type VhostErrorCode = 'NOT_FOUND' | 'PRECONDITION_FAILED' | 'ACCESS_REFUSED' | 'RESOURCE_LOCKED' | 'RESOURCE_ERROR' | 'COMMAND_INVALID' | 'NOT_IMPLEMENTED';

export class VhostError extends Error {
  constructor(
    readonly code: VhostErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VhostError';
  }
}
