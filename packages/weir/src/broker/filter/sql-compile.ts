import type { CompareMode, Condition, Literal, Value } from './sql-ast.js';
import type { CompareOp } from './sql-lexer.js';
import type { FilterInput } from './types.js';

/** SQL's three truth values. Numbers rather than `boolean | null` so every predicate returns one small-int type. */
export const FALSE = 0;
export const TRUE = 1;
export const UNKNOWN = 2;
export type Truth = typeof FALSE | typeof TRUE | typeof UNKNOWN;

export type Predicate = (message: FilterInput) => Truth;

/**
 * Turns a checked condition into a tree of closures. Evaluating one allocates nothing: headers are read and coerced
 * on the spot, literals are coerced here once, and conditions on literals alone are folded into constants.
 */
export function compileCondition(condition: Condition): Predicate {
  switch (condition.kind) {
    case 'or':
      return anyOf(condition.operands.map(compileCondition));
    case 'and':
      return allOf(condition.operands.map(compileCondition));
    case 'not': {
      const operand = compileCondition(condition.operand);
      return (message) => {
        const truth = operand(message);
        return truth === UNKNOWN ? UNKNOWN : truth === TRUE ? FALSE : TRUE;
      };
    }
    case 'constant':
      return constant(condition.value ? TRUE : FALSE);
    case 'compare':
      return compare(condition.op, condition.mode, condition.left, condition.right);
    case 'in':
      return inList(condition.value, condition.list);
    case 'like': {
      const { value, matcher } = condition;
      if (value.kind === 'header') {
        const name = value.name;
        return (message) => {
          const text = message.header(name);
          return typeof text !== 'string' ? UNKNOWN : matcher(text) ? TRUE : FALSE;
        };
      }
      return constant(value.kind === 'string' ? (matcher(value.value) ? TRUE : FALSE) : UNKNOWN);
    }
    case 'isNull': {
      const { value } = condition;
      if (value.kind === 'header') {
        const name = value.name;
        return (message) => (typeof message.header(name) === 'string' ? FALSE : TRUE);
      }
      return constant(value.kind === 'null' ? TRUE : FALSE);
    }
  }
}

function constant(truth: Truth): Predicate {
  return () => truth;
}

function anyOf(operands: Predicate[]): Predicate {
  return (message) => {
    let result: Truth = FALSE;
    for (let index = 0; index < operands.length; index++) {
      const truth = operands[index]!(message);
      if (truth === TRUE) return TRUE;
      if (truth === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

function allOf(operands: Predicate[]): Predicate {
  return (message) => {
    let result: Truth = TRUE;
    for (let index = 0; index < operands.length; index++) {
      const truth = operands[index]!(message);
      if (truth === FALSE) return FALSE;
      if (truth === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

/** A header's text as a number: decimal notation only (no hex, no Infinity, no surrounding spaces); else undefined. */
const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
export function toNumber(text: string): number | undefined {
  return NUMERIC.test(text) ? Number(text) : undefined;
}

/** A header's text as a boolean: `true` or `false` in any case; else undefined. */
const TRUE_TEXT = /^true$/i;
const FALSE_TEXT = /^false$/i;
export function toBoolean(text: string): boolean | undefined {
  return TRUE_TEXT.test(text) ? true : FALSE_TEXT.test(text) ? false : undefined;
}

type Scalar = string | number | boolean;
type Coerce = (text: string) => Scalar | undefined;

const COERCE: Record<Exclude<CompareMode, 'null'>, Coerce> = { string: (text) => text, number: toNumber, boolean: toBoolean };

// Both operands always have the same type (the mode's), so the casts only quiet the union: strings compare by code
// unit, numbers numerically; booleans only reach '=' and '<>'.
const TESTS: Record<CompareOp, (a: Scalar, b: Scalar) => boolean> = {
  '=': (a, b) => a === b,
  '<>': (a, b) => a !== b,
  '<': (a, b) => (a as number) < (b as number),
  '<=': (a, b) => (a as number) <= (b as number),
  '>': (a, b) => (a as number) > (b as number),
  '>=': (a, b) => (a as number) >= (b as number),
};

/** The operator with its operands swapped: `1 < price` is `price > 1`. */
const FLIPPED: Record<CompareOp, CompareOp> = { '=': '=', '<>': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

function literalScalar(value: Literal): Scalar | null {
  return value.kind === 'null' ? null : value.value;
}

function compare(op: CompareOp, mode: CompareMode, left: Value, right: Value): Predicate {
  if (mode === 'null') return constant(UNKNOWN);
  const test = TESTS[op];
  if (left.kind !== 'header') {
    if (right.kind === 'header') return compare(FLIPPED[op], mode, right, left);
    return constant(test(literalScalar(left)!, literalScalar(right)!) ? TRUE : FALSE);
  }
  const coerce = COERCE[mode];
  const name = left.name;
  if (right.kind !== 'header') {
    const other = literalScalar(right)!;
    return (message) => {
      const text = message.header(name);
      if (typeof text !== 'string') return UNKNOWN;
      const value = coerce(text);
      return value === undefined ? UNKNOWN : test(value, other) ? TRUE : FALSE;
    };
  }
  const otherName = right.name;
  return (message) => {
    const text = message.header(name);
    if (typeof text !== 'string') return UNKNOWN;
    const otherText = message.header(otherName);
    if (typeof otherText !== 'string') return UNKNOWN;
    const value = coerce(text);
    const other = coerce(otherText);
    return value === undefined || other === undefined ? UNKNOWN : test(value, other) ? TRUE : FALSE;
  };
}

/** `x IN (a, b)` is `x = a OR x = b`; a header is looked up in sets of the list's strings and numbers instead. */
function inList(value: Value, list: Literal[]): Predicate {
  if (value.kind !== 'header') {
    const equals = list.map((element) => compare('=', element.kind === 'null' || value.kind === 'null' ? 'null' : modeOf(value, element), value, element));
    return constant(anyOf(equals)(NO_MESSAGE));
  }
  const name = value.name;
  const strings = new Set<string>();
  const numbers = new Set<number>();
  let hasNull = false;
  let hasTrue = false;
  let hasFalse = false;
  for (const element of list) {
    if (element.kind === 'string') strings.add(element.value);
    else if (element.kind === 'number') numbers.add(element.value);
    else if (element.kind === 'null') hasNull = true;
    else if (element.value) hasTrue = true;
    else hasFalse = true;
  }
  const anyNumbers = numbers.size > 0;
  const anyBooleans = hasTrue || hasFalse;
  return (message) => {
    const text = message.header(name);
    if (typeof text !== 'string') return UNKNOWN;
    if (strings.has(text)) return TRUE;
    // A list element the header cannot be compared with makes the answer UNKNOWN unless another element matches.
    let unknown = hasNull;
    if (anyNumbers) {
      const number = toNumber(text);
      if (number === undefined) unknown = true;
      else if (numbers.has(number)) return TRUE;
    }
    if (anyBooleans) {
      const flag = toBoolean(text);
      if (flag === undefined) unknown = true;
      else if (flag ? hasTrue : hasFalse) return TRUE;
    }
    return unknown ? UNKNOWN : FALSE;
  };
}

function modeOf(left: Literal, right: Literal): CompareMode {
  return left.kind === 'number' || right.kind === 'number' ? 'number' : left.kind === 'boolean' || right.kind === 'boolean' ? 'boolean' : 'string';
}

/** Folding a condition on literals alone never reads the message. */
const NO_MESSAGE: FilterInput = { tag: null, header: () => undefined };
