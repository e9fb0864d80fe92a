/** Reply codes a protocol front-end maps onto its own: AMQP 0-9-1 has a channel error of the same name for each. */
export type RoutingErrorCode = 'NOT_FOUND' | 'PRECONDITION_FAILED' | 'ACCESS_REFUSED' | 'INVALID_ARGUMENT';

/**
 * A refused routing-table operation. Messages follow RabbitMQ's wording where it has one, so clients moving over see
 * familiar text. Not a WeirError: core's ErrorCode has no NOT_FOUND, PRECONDITION_FAILED or ACCESS_REFUSED yet.
 */
export class RoutingError extends Error {
  constructor(
    readonly code: RoutingErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RoutingError';
  }
}

export function noExchange(name: string): RoutingError {
  return new RoutingError('NOT_FOUND', `no exchange '${name}'`);
}

export function defaultExchangeRefused(): RoutingError {
  return new RoutingError('ACCESS_REFUSED', 'operation not permitted on the default exchange');
}

export function invalidArgument(message: string): RoutingError {
  return new RoutingError('INVALID_ARGUMENT', message);
}
