import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { compileFilter, type FilterKind, type FilterSpec, FilterSyntaxError, MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH } from './index.js';
import { sqlMatches } from './test-support.js';

function syntaxError(spec: FilterSpec): FilterSyntaxError {
  try {
    compileFilter(spec);
  } catch (error) {
    assert.ok(error instanceof FilterSyntaxError, `${spec?.expression}: ${String(error)}`);
    return error;
  }
  assert.fail(`${JSON.stringify(spec?.expression)} compiled`);
}

describe('broker: filter errors', () => {
  it('broker: filter SQL errors say what was expected and where', () => {
    const cases: Array<[string, number, string]> = [
      ['a = 1 AND (b = 2', 16, "expected ')'"],
      ['(a = 1', 6, "expected ')'"],
      ['', 0, "expected a header name, a literal, NOT or '('"],
      ['   ', 3, "expected a header name, a literal, NOT or '('"],
      ['a = 1 AND', 9, "expected a header name, a literal, NOT or '('"],
      ['NOT', 3, "expected a header name, a literal, NOT or '('"],
      ['and = 1', 0, "expected a header name, a literal, NOT or '('"],
      ['a', 1, 'expected a comparison operator, IN, LIKE, BETWEEN or IS'],
      ['a AND b', 2, 'expected a comparison operator, IN, LIKE, BETWEEN or IS'],
      ['a = ', 4, 'expected a value'],
      ['a = )', 4, 'expected a value'],
      ['a = 1 b = 2', 6, 'expected AND, OR or the end of the expression'],
      ['a = 1)', 5, 'expected AND, OR or the end of the expression'],
      ["a = 'abc", 8, `expected "'" to close the string opened at position 4`],
      ['"abc = 1', 8, `expected '"' to close the name opened at position 0`],
      ['"" = 1', 1, 'expected a header name between the double quotes'],
      ["'a' = 1", 6, 'expected a string or a header name to compare with a string'],
      ["1 = 'a'", 4, 'expected a number or a header name to compare with a number'],
      ['TRUE = 1', 7, 'expected TRUE, FALSE or a header name to compare with TRUE'],
      ['a < TRUE', 4, 'expected a number, a string or a header name (TRUE and FALSE are not ordered)'],
      ['a BETWEEN FALSE AND TRUE', 10, 'expected a number, a string or a header name (TRUE and FALSE are not ordered)'],
      ["'a' BETWEEN 'a' AND 2", 20, 'expected a string or a header name to compare with a string'],
      ['a IN ()', 6, 'expected a literal'],
      ['a IN', 4, "expected '(' after IN"],
      ["a IN ('x' 'y')", 10, "expected ',' or ')'"],
      ["a IN ('x',", 10, 'expected a literal'],
      ['a IN (b)', 6, 'expected a literal (IN lists take no header names)'],
      ["'x' IN ('y', 1)", 13, 'expected a string or NULL to compare with a string'],
      ['a NOT = 1', 6, 'expected IN, LIKE or BETWEEN'],
      ['a IS 1', 5, 'expected NULL or NOT NULL'],
      ['a IS NOT TRUE', 9, 'expected NULL'],
      ['a BETWEEN 1 OR 2', 12, 'expected AND'],
      ['a LIKE b', 7, 'expected a string pattern after LIKE'],
      ['1 LIKE \'x\'', 0, 'expected a header name or a string before LIKE'],
      ["a LIKE 'x' ESCAPE 'ab'", 18, 'expected a one-character string after ESCAPE'],
      ["a LIKE 'x' ESCAPE ''", 18, 'expected a one-character string after ESCAPE'],
      ["a LIKE 'x!y' ESCAPE '!'", 10, `expected '%', '_' or "!" after the escape character`],
      ["a LIKE 'x!' ESCAPE '!'", 10, `expected '%', '_' or "!" after the escape character`],
      // Positions count the source text, so the doubled quote before the bad escape shifts it by one.
      ["a LIKE 'it''s!x' ESCAPE '!'", 14, `expected '%', '_' or "!" after the escape character`],
      ['a = 1.', 6, "expected a digit after '.'"],
      ['a = -x', 5, "expected a digit after '-'"],
      ['a = 12abc', 6, 'expected a space, operator or parenthesis after the number'],
      ['a = 1.5.5', 7, 'expected a space, operator or parenthesis after the number'],
      ['a # 1', 2, 'unexpected character "#": expected a header name, literal, operator or parenthesis'],
      ['ünï = 1', 0, 'unexpected character "ü": expected a header name, literal, operator or parenthesis'],
      ['a != 1', 2, "expected '<>' for not-equal (not '!=')"],
    ];
    for (const [expression, position, expected] of cases) {
      const error = syntaxError({ kind: 'sql', expression });
      assert.equal(error.message, `${expected} at position ${position}`, expression);
      assert.equal(error.position, position, expression);
      assert.equal(error.expression, expression);
    }
  });

  it('broker: filter errors are INVALID_ARGUMENT WeirErrors', () => {
    const error = syntaxError({ kind: 'sql', expression: 'a =' });
    assert.ok(error instanceof WeirError);
    assert.ok(error instanceof Error);
    assert.equal(error.code, ErrorCode.InvalidArgument);
    assert.equal(error.retriable, false);
    assert.equal(error.name, 'FilterSyntaxError');
  });

  it('broker: filter refuses expressions longer than 4096 characters at position 4096', () => {
    const longest = `a = '${'x'.repeat(MAX_EXPRESSION_LENGTH - 6)}'`;
    assert.equal(longest.length, MAX_EXPRESSION_LENGTH);
    assert.equal(sqlMatches(longest, { a: 'x'.repeat(MAX_EXPRESSION_LENGTH - 6) }), true);
    for (const kind of ['sql', 'tag'] as const) {
      const error = syntaxError({ kind, expression: `${longest} ` });
      assert.equal(error.position, MAX_EXPRESSION_LENGTH);
      assert.equal(error.message, `expected at most ${MAX_EXPRESSION_LENGTH} characters at position ${MAX_EXPRESSION_LENGTH}`);
    }
    assert.equal(syntaxError({ kind: 'sql', expression: '('.repeat(1_000_000) }).position, MAX_EXPRESSION_LENGTH);
  });

  it('broker: filter refuses nesting deeper than 100 levels, without running out of stack', () => {
    const nested = (depth: number): string => `${'('.repeat(depth)}a = 1${')'.repeat(depth)}`;
    assert.equal(sqlMatches(nested(MAX_NESTING_DEPTH), { a: '1' }), true);
    let error = syntaxError({ kind: 'sql', expression: nested(MAX_NESTING_DEPTH + 1) });
    assert.equal(error.position, MAX_NESTING_DEPTH);
    assert.equal(error.message, `expected at most ${MAX_NESTING_DEPTH} levels of parentheses and NOT at position ${MAX_NESTING_DEPTH}`);
    // NOT nests too, and counts with parentheses.
    assert.equal(sqlMatches(`${'NOT '.repeat(MAX_NESTING_DEPTH)}a = 1`, { a: '1' }), true);
    error = syntaxError({ kind: 'sql', expression: `${'NOT '.repeat(MAX_NESTING_DEPTH + 1)}a = 1` });
    assert.equal(error.position, 4 * MAX_NESTING_DEPTH);
    error = syntaxError({ kind: 'sql', expression: `${'NOT ('.repeat(60)}a = 1${')'.repeat(60)}` });
    assert.equal(error.position, 5 * 50);
    // As deep as the length allows: refused quickly and cleanly.
    assert.equal(syntaxError({ kind: 'sql', expression: '('.repeat(MAX_EXPRESSION_LENGTH) }).position, MAX_NESTING_DEPTH);
    assert.equal(syntaxError({ kind: 'sql', expression: 'NOT '.repeat(MAX_EXPRESSION_LENGTH / 4) }).position, 4 * MAX_NESTING_DEPTH);
  });

  it('broker: filter long flat AND/OR chains compile and evaluate without deep recursion', () => {
    const terms = Math.floor((MAX_EXPRESSION_LENGTH + 5) / 'a = 1 AND '.length);
    const chain = Array.from({ length: terms }, (_, index) => `a = ${index % 10}`).join(' OR ');
    assert.ok(chain.length <= MAX_EXPRESSION_LENGTH);
    assert.equal(sqlMatches(chain, { a: '9' }), true);
    assert.equal(sqlMatches(chain.replaceAll(' OR ', ' AND '), { a: '9' }), false);
  });

  it('broker: filter a malformed spec is a FilterSyntaxError too', () => {
    assert.equal(syntaxError({ kind: 'xml' as FilterKind, expression: 'a' }).message, "expected the filter kind to be 'tag' or 'sql' at position 0");
    assert.equal(syntaxError({ kind: 'sql', expression: 42 as unknown as string }).position, 0);
    assert.equal(syntaxError(null as unknown as FilterSpec).position, 0);
  });
});
