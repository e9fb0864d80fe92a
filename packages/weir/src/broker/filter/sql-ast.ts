import type { CompareOp } from './sql-lexer.js';

/** A value in an SQL filter: a header (a string, or NULL when missing or binary) or a literal. */
export type Value =
  | { kind: 'header'; name: string; position: number }
  | { kind: 'string'; value: string; position: number }
  | { kind: 'number'; value: number; position: number }
  | { kind: 'boolean'; value: boolean; position: number }
  | { kind: 'null'; position: number };

export type Literal = Exclude<Value, { kind: 'header' }>;

/**
 * How a comparison compares, fixed at compile time by its literals: against a number literal a header is read as a
 * number, against TRUE/FALSE as a boolean, otherwise as a string; anything compared with NULL is UNKNOWN.
 */
export type CompareMode = 'string' | 'number' | 'boolean' | 'null';

/**
 * A type-checked condition. BETWEEN is kept as two comparisons and every NOT form (NOT IN, NOT LIKE, IS NOT NULL,
 * NOT BETWEEN) as `not`, which gives the same three-valued results.
 */
export type Condition =
  | { kind: 'or' | 'and'; operands: Condition[] }
  | { kind: 'not'; operand: Condition }
  | { kind: 'constant'; value: boolean }
  | { kind: 'compare'; op: CompareOp; mode: CompareMode; left: Value; right: Value }
  | { kind: 'in'; value: Value; list: Literal[] }
  | { kind: 'like'; value: Value; matcher: (text: string) => boolean }
  | { kind: 'isNull'; value: Value };
