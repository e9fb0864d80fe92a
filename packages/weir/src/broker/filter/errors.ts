import { ErrorCode, WeirError } from '../../core/errors.js';

/**
 * A filter expression that does not compile. It is an INVALID_ARGUMENT WeirError, so protocols report a bad
 * subscription like any other bad argument; `position` lets a client point at the offending character.
 */
export class FilterSyntaxError extends WeirError {
  /** 0-based offset in `expression`; its length when the expression ended too early. */
  readonly position: number;
  readonly expression: string;

  constructor(expression: string, position: number, detail: string) {
    super(ErrorCode.InvalidArgument, `${detail} at position ${position}`);
    this.name = 'FilterSyntaxError';
    this.position = position;
    this.expression = expression;
  }
}
