/**
 * Broker-side message filters. A consumer subscribes with a tag expression or an SQL-92-subset header filter; the
 * broker compiles it once (compileFilter) and asks `matches` of every message, never sending the ones that fail.
 * Every bad expression, whatever is wrong with it, is a FilterSyntaxError naming the offending position.
 *
 * - Tags (tag.ts): `*` or nothing for all messages, else `a || b`, exact and case-sensitive.
 * - SQL (grammar in sql-parser.ts): header names, 'strings', numbers, TRUE/FALSE/NULL; = <> < <= > >=, [NOT] IN,
 *   [NOT] LIKE … [ESCAPE …], [NOT] BETWEEN, IS [NOT] NULL, NOT, AND, OR, parentheses. Keywords in any case.
 *   A missing or binary header is NULL, and anything compared with NULL is UNKNOWN; a message matches only when the
 *   whole condition is TRUE. Headers are text: compared with a number literal they are read as decimal numbers,
 *   with TRUE/FALSE as `true`/`false` (any case), otherwise as strings by code unit; a header that does not read as
 *   the literal's type makes the comparison UNKNOWN. Literals of different types cannot be compared.
 * - Limits: 4096 characters, 100 levels of parentheses and NOT; LIKE runs in O(header × pattern), never backtracks.
 */
import { FilterSyntaxError } from './errors.js';
import { compileCondition, TRUE } from './sql-compile.js';
import { parseSql } from './sql-parser.js';
import { compileTagExpression } from './tag.js';
import { type CompiledFilter, type FilterInput, type FilterSpec, MAX_EXPRESSION_LENGTH } from './types.js';

export { FilterSyntaxError } from './errors.js';
export { type CompiledFilter, type FilterInput, type FilterKind, type FilterSpec, MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH } from './types.js';

export function compileFilter(spec: FilterSpec): CompiledFilter {
  // Specs come off the wire: check the shape too, so a caller only ever has FilterSyntaxError to handle.
  const expression: unknown = spec?.expression;
  if (typeof expression !== 'string') throw new FilterSyntaxError('', 0, 'expected the filter expression to be a string');
  if (expression.length > MAX_EXPRESSION_LENGTH) throw new FilterSyntaxError(expression, MAX_EXPRESSION_LENGTH, `expected at most ${MAX_EXPRESSION_LENGTH} characters`);
  const kind = spec.kind;
  let matches: (message: FilterInput) => boolean;
  if (kind === 'tag') {
    matches = compileTagExpression(expression);
  } else if (kind === 'sql') {
    const predicate = compileCondition(parseSql(expression));
    // Only TRUE passes: a condition that is UNKNOWN (say, about a missing header) does not select the message.
    matches = (message) => predicate(message) === TRUE;
  } else {
    throw new FilterSyntaxError(expression, 0, "expected the filter kind to be 'tag' or 'sql'");
  }
  return { spec: Object.freeze({ kind, expression }), matches };
}
