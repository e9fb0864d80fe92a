import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileFilter, type FilterKind, FilterSyntaxError } from './index.js';
import { type Headers, messageOf } from './test-support.js';

// ---------------------------------------------------------------------------------------------------------------
// A model of the SQL language, printed to text and evaluated directly, independently of the parser and compiler.
// ---------------------------------------------------------------------------------------------------------------

type Op = '=' | '<>' | '<' | '<=' | '>' | '>=';
type Val = { k: 'header'; name: string; quoted: boolean } | { k: 'string'; v: string } | { k: 'number'; v: number } | { k: 'boolean'; v: boolean } | { k: 'null' };
type Item = { literal: string } | 'one' | 'any';
type Cond =
  | { k: 'and' | 'or'; left: Cond; right: Cond }
  | { k: 'not'; operand: Cond }
  | { k: 'paren'; operand: Cond }
  | { k: 'constant'; v: boolean }
  | { k: 'compare'; op: Op; left: Val; right: Val }
  | { k: 'in'; not: boolean; value: Val; list: Val[] }
  | { k: 'like'; not: boolean; value: Val; items: Item[]; escape: string | null }
  | { k: 'between'; not: boolean; value: Val; low: Val; high: Val }
  | { k: 'isNull'; not: boolean; value: Val };

// Few names and values, so generated conditions often meet headers that are present and comparable.
const HEADER_NAMES = ['a', 'b', 'x.y-z', 'with space', 'and', 'say "hi"'];
const ALPHABET = ['a', 'b', 'B', '1', '.', '%', '_', '*', '(', '[', '$', '\\', "'", '"', '\n', '😀', '\uD83D', '!'];
const TEXT_VALUES = ['', 'a', 'ab', 'abc', 'B', "it's", 'a%b', 'a_b', 'true', 'FALSE', 'yes', '😀', '\uD83D'];
const NUMERIC_TEXTS = ['0', '1', '-1', '2.5', '-2.5', '10', '100', '3', '0.5', '010', '1e1', '+3', '.5', '5.', '1.0', '2.50', '-0', ' 1', '0x10', 'Infinity', 'NaN'];
const NUMBERS = [0, 1, -1, 2.5, -2.5, 10, 100, 0.5, 3];
const OPS: Op[] = ['=', '<>', '<', '<=', '>', '>='];

const textArb = fc.oneof(fc.constantFrom(...TEXT_VALUES, ...NUMERIC_TEXTS), fc.array(fc.constantFrom(...ALPHABET), { maxLength: 6 }).map((chars) => chars.join('')));
const headerArb: fc.Arbitrary<Val> = fc.record({ k: fc.constant('header' as const), name: fc.constantFrom(...HEADER_NAMES), quoted: fc.boolean() });
const stringArb: fc.Arbitrary<Val> = textArb.map((v) => ({ k: 'string', v }));
const numberArb: fc.Arbitrary<Val> = fc.constantFrom(...NUMBERS).map((v) => ({ k: 'number', v }));
const booleanArb: fc.Arbitrary<Val> = fc.boolean().map((v) => ({ k: 'boolean', v }));
const nullArb: fc.Arbitrary<Val> = fc.constant({ k: 'null' });
const literalArb = fc.oneof(stringArb, numberArb, booleanArb, nullArb);
const anyValueArb = fc.oneof(headerArb, literalArb);
const opArb = fc.constantFrom(...OPS);
const swap = (pair: [Val, Val], swapped: boolean): [Val, Val] => (swapped ? [pair[1], pair[0]] : pair);

/** Only comparisons that type-check: same-typed literals, or a header against anything but a mismatched literal. */
const compareArb: fc.Arbitrary<Cond> = fc
  .tuple(
    fc.oneof(
      fc.tuple(opArb, fc.oneof(headerArb, stringArb), fc.oneof(headerArb, stringArb)),
      fc.tuple(opArb, headerArb, numberArb),
      fc.tuple(opArb, numberArb, numberArb),
      fc.tuple(fc.constantFrom<Op>('=', '<>'), fc.oneof(headerArb, booleanArb), booleanArb),
      fc.tuple(opArb, anyValueArb, nullArb),
    ),
    fc.boolean(),
  )
  .map(([[op, left, right], swapped]) => {
    const [l, r] = swap([left, right], swapped);
    return { k: 'compare', op, left: l, right: r };
  });

const inArb: fc.Arbitrary<Cond> = fc.oneof(
  fc.record({ k: fc.constant('in' as const), not: fc.boolean(), value: headerArb, list: fc.array(literalArb, { minLength: 1, maxLength: 4 }) }),
  fc.record({ k: fc.constant('in' as const), not: fc.boolean(), value: stringArb, list: fc.array(fc.oneof(stringArb, nullArb), { minLength: 1, maxLength: 3 }) }),
  fc.record({ k: fc.constant('in' as const), not: fc.boolean(), value: numberArb, list: fc.array(fc.oneof(numberArb, nullArb), { minLength: 1, maxLength: 3 }) }),
);

const itemArb: fc.Arbitrary<Item> = fc.oneof(fc.constant<Item>('any'), fc.constant<Item>('one'), fc.constantFrom(...ALPHABET).map((literal): Item => ({ literal })));
const likeArb: fc.Arbitrary<Cond> = fc
  .record({ not: fc.boolean(), value: fc.oneof(headerArb, headerArb, stringArb, nullArb), items: fc.array(itemArb, { maxLength: 6 }), escape: fc.constantFrom(null, '!', '\\', '😀') })
  .map(({ not, value, items, escape }) => ({
    k: 'like',
    not,
    value,
    // Without an escape character, % and _ cannot be literals.
    items: normalizeItems(items.filter((item) => escape !== null || typeof item !== 'object' || (item.literal !== '%' && item.literal !== '_')), escape),
    escape,
  }));

const betweenArb: fc.Arbitrary<Cond> = fc.oneof(
  fc.record({ k: fc.constant('between' as const), not: fc.boolean(), value: headerArb, low: fc.oneof(headerArb, stringArb, numberArb, nullArb), high: fc.oneof(headerArb, stringArb, numberArb, nullArb) }),
  fc.record({ k: fc.constant('between' as const), not: fc.boolean(), value: numberArb, low: fc.oneof(headerArb, numberArb), high: fc.oneof(headerArb, numberArb) }),
  fc.record({ k: fc.constant('between' as const), not: fc.boolean(), value: stringArb, low: fc.oneof(headerArb, stringArb), high: fc.oneof(headerArb, stringArb) }),
);

const isNullArb: fc.Arbitrary<Cond> = fc.record({ k: fc.constant('isNull' as const), not: fc.boolean(), value: anyValueArb });
const constantArb: fc.Arbitrary<Cond> = fc.boolean().map((v) => ({ k: 'constant', v }));
const predicateArb = fc.oneof({ weight: 4, arbitrary: compareArb }, inArb, likeArb, betweenArb, isNullArb, constantArb);

const conditionArb: fc.Memo<Cond> = fc.memo<Cond>((depth): fc.Arbitrary<Cond> =>
  depth <= 1
    ? predicateArb
    : fc.oneof(
        { weight: 2, arbitrary: predicateArb },
        fc.record({ k: fc.constantFrom('and' as const, 'or' as const), left: conditionArb(depth - 1), right: conditionArb(depth - 1) }),
        fc.record({ k: fc.constant('not' as const), operand: conditionArb(depth - 1) }),
        fc.record({ k: fc.constant('paren' as const), operand: conditionArb(depth - 1) }),
      ),
);

/** Adjacent literal halves of a surrogate pair are one character once printed, so they are one item here. */
function normalizeItems(items: readonly Item[], escape: string | null): Item[] {
  const out: Item[] = [];
  let run = '';
  const flush = (): void => {
    for (const literal of run) out.push({ literal });
    run = '';
  };
  for (const item of items) {
    if (typeof item === 'object' && item.literal !== '%' && item.literal !== '_' && item.literal !== escape) run += item.literal;
    else {
      flush();
      out.push(item);
    }
  }
  flush();
  return out;
}

interface Style {
  /** How keywords are spelled. */
  keyword: (word: string) => string;
  /** Spaces around operators and commas ('' where the lexer allows none). */
  space: string;
}

function printValue(value: Val, style: Style): string {
  switch (value.k) {
    case 'header':
      return value.quoted || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(value.name) || /^(and|or|not|in|like|escape|is|null|between|true|false)$/i.test(value.name) ? `"${value.name.replaceAll('"', '""')}"` : value.name;
    case 'string':
      return `'${value.v.replaceAll("'", "''")}'`;
    case 'number':
      return String(value.v);
    case 'boolean':
      return style.keyword(value.v ? 'TRUE' : 'FALSE');
    case 'null':
      return style.keyword('NULL');
  }
}

/** Prints with as few parentheses as precedence allows (OR 1, AND 2, NOT 3, predicates 4), plus the model's own. */
function printCondition(condition: Cond, style: Style, context = 0): string {
  const kw = style.keyword;
  const s = style.space;
  const not = (negated: boolean): string => (negated ? `${kw('NOT')} ` : '');
  const value = (v: Val): string => printValue(v, style);
  switch (condition.k) {
    case 'or':
    case 'and': {
      const level = condition.k === 'or' ? 1 : 2;
      const text = `${printCondition(condition.left, style, level)} ${kw(condition.k.toUpperCase())} ${printCondition(condition.right, style, level)}`;
      return context > level ? `(${text})` : text;
    }
    case 'not': {
      const text = `${kw('NOT')} ${printCondition(condition.operand, style, 3)}`;
      return context > 3 ? `(${text})` : text;
    }
    case 'paren':
      return `(${s}${printCondition(condition.operand, style, 0)}${s})`;
    case 'constant':
      return kw(condition.v ? 'TRUE' : 'FALSE');
    case 'compare':
      return `${value(condition.left)}${s}${condition.op}${s}${value(condition.right)}`;
    case 'in':
      return `${value(condition.value)} ${not(condition.not)}${kw('IN')}${s}(${condition.list.map(value).join(`,${s}`)})`;
    case 'like': {
      const { escape } = condition;
      const pattern = condition.items
        .map((item) => (item === 'any' ? '%' : item === 'one' ? '_' : item.literal === '%' || item.literal === '_' || item.literal === escape ? `${escape}${item.literal}` : item.literal))
        .join('');
      const escapeText = escape === null ? '' : ` ${kw('ESCAPE')} ${printValue({ k: 'string', v: escape }, style)}`;
      return `${value(condition.value)} ${not(condition.not)}${kw('LIKE')} ${printValue({ k: 'string', v: pattern }, style)}${escapeText}`;
    }
    case 'between':
      return `${value(condition.value)} ${not(condition.not)}${kw('BETWEEN')} ${value(condition.low)} ${kw('AND')} ${value(condition.high)}`;
    case 'isNull':
      return `${value(condition.value)} ${kw('IS')} ${not(condition.not)}${kw('NULL')}`;
  }
}

// The reference evaluator: true, false, or null for UNKNOWN.
type R = boolean | null;

function referenceNumber(text: string): number | null {
  const parts = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE][+-]?\d+)?$/.exec(text);
  if (parts === null || (parts[2] === '' && (parts[3] ?? '') === '')) return null;
  return Number(text);
}

function referenceBoolean(text: string): boolean | null {
  const lower = text.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : null;
}

function raw(value: Val, headers: Headers): string | number | boolean | null {
  if (value.k === 'header') {
    const text = headers[value.name];
    return typeof text === 'string' ? text : null;
  }
  return value.k === 'null' ? null : value.v;
}

function referenceCompare(op: Op, left: Val, right: Val, headers: Headers): R {
  const kinds = [left.k, right.k];
  const mode = kinds.includes('number') ? 'number' : kinds.includes('boolean') ? 'boolean' : 'string';
  const coerce = (value: Val): string | number | boolean | null => {
    const x = raw(value, headers);
    if (x === null || value.k !== 'header') return x;
    return mode === 'number' ? referenceNumber(x as string) : mode === 'boolean' ? referenceBoolean(x as string) : x;
  };
  const a = coerce(left);
  const b = coerce(right);
  if (a === null || b === null) return null;
  switch (op) {
    case '=':
      return a === b;
    case '<>':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}

function referenceLike(text: string, items: readonly Item[]): boolean {
  const chars = [...text];
  const memo = new Map<string, boolean>();
  const match = (i: number, j: number): boolean => {
    if (i === items.length) return j === chars.length;
    const key = `${i},${j}`;
    if (memo.has(key)) return memo.get(key)!;
    const item = items[i]!;
    let result: boolean;
    if (item === 'any') result = match(i + 1, j) || (j < chars.length && match(i, j + 1));
    else result = j < chars.length && (item === 'one' || chars[j] === item.literal) && match(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}

const rNot = (r: R): R => (r === null ? null : !r);
const rAnd = (a: R, b: R): R => (a === false || b === false ? false : a === null || b === null ? null : true);
const rOr = (a: R, b: R): R => (a === true || b === true ? true : a === null || b === null ? null : false);

function reference(condition: Cond, headers: Headers): R {
  switch (condition.k) {
    case 'and':
      return rAnd(reference(condition.left, headers), reference(condition.right, headers));
    case 'or':
      return rOr(reference(condition.left, headers), reference(condition.right, headers));
    case 'not':
      return rNot(reference(condition.operand, headers));
    case 'paren':
      return reference(condition.operand, headers);
    case 'constant':
      return condition.v;
    case 'compare':
      return referenceCompare(condition.op, condition.left, condition.right, headers);
    case 'in': {
      const found = condition.list.reduce<R>((any, element) => rOr(any, referenceCompare('=', condition.value, element, headers)), false);
      return condition.not ? rNot(found) : found;
    }
    case 'like': {
      const text = raw(condition.value, headers);
      const found = typeof text === 'string' ? referenceLike(text, condition.items) : null;
      return condition.not ? rNot(found) : found;
    }
    case 'between': {
      const inside = rAnd(referenceCompare('>=', condition.value, condition.low, headers), referenceCompare('<=', condition.value, condition.high, headers));
      return condition.not ? rNot(inside) : inside;
    }
    case 'isNull': {
      const isNull = raw(condition.value, headers) === null;
      return condition.not ? !isNull : isNull;
    }
  }
}

const headersArb: fc.Arbitrary<Headers> = fc
  .tuple(...HEADER_NAMES.map((name) => fc.option(fc.oneof({ weight: 8, arbitrary: textArb }, fc.constant(new Uint8Array([97]))), { nil: undefined, freq: 5 }).map((value) => [name, value] as const)))
  .map((entries) => Object.fromEntries(entries.filter(([, value]) => value !== undefined)));

const styleArb: fc.Arbitrary<Style> = fc.record({
  keyword: fc.constantFrom(
    (word: string) => word,
    (word: string) => word.toLowerCase(),
    (word: string) => [...word].map((char, index) => (index % 2 === 0 ? char.toLowerCase() : char)).join(''),
  ),
  space: fc.constantFrom(' ', '', '\n\t'),
});

// ---------------------------------------------------------------------------------------------------------------

const TOKENS = ['a', 'b', 'x.y', '"q q"', '""', '"', "'s'", "'it''s'", "'", '1', '-2.5', '1.', '-', '=', '<>', '<', '<=', '>', '>=', '!=', 'AND', 'or', 'NOT', 'IN', 'like', 'ESCAPE', "'!'", 'IS', 'NULL', 'BETWEEN', 'TRUE', 'false', '(', ')', ',', '%', '|', '||', '*', ' ', '\n', '#', 'é', '😀'];

function isExpectedFailure(error: unknown, expression: string): boolean {
  return error instanceof FilterSyntaxError && error.position >= 0 && error.position <= Math.min(expression.length, 4096) && error.message.endsWith(` at position ${error.position}`);
}

describe('broker: filter properties', () => {
  it('broker: filter compileFilter returns or throws FilterSyntaxError on any input, and matches never throws (property)', () => {
    const expressionArb = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.array(fc.constantFrom(...TOKENS), { maxLength: 25 }).map((tokens) => tokens.join(' ')),
      fc.array(fc.constantFrom(...TOKENS), { maxLength: 25 }).map((tokens) => tokens.join('')),
    );
    const message = messageOf({ a: '1', b: 'x', 'x.y': '2.5', 'q q': 'it', c: new Uint8Array(1) }, 'a');
    fc.assert(
      fc.property(fc.constantFrom<FilterKind>('sql', 'tag'), expressionArb, (kind, expression) => {
        let filter;
        try {
          filter = compileFilter({ kind, expression });
        } catch (error) {
          assert.ok(isExpectedFailure(error, expression), `${JSON.stringify(expression)} threw ${String(error)}`);
          return;
        }
        assert.equal(typeof filter.matches(message), 'boolean');
        assert.equal(typeof filter.matches(messageOf({})), 'boolean');
      }),
      { numRuns: 5000 },
    );
  });

  it('broker: filter compiled SQL agrees with a reference evaluator on random valid conditions (property)', () => {
    let selected = 0;
    let runs = 0;
    fc.assert(
      fc.property(conditionArb(5), styleArb, fc.array(headersArb, { minLength: 1, maxLength: 8 }), (condition, style, messages) => {
        const expression = printCondition(condition, style);
        const filter = compileFilter({ kind: 'sql', expression });
        for (const headers of messages) {
          const expected = reference(condition, headers) === true;
          runs++;
          if (expected) selected++;
          assert.equal(filter.matches(messageOf(headers)), expected, `${expression} on ${JSON.stringify(headers)}`);
        }
      }),
      { numRuns: 4000 },
    );
    // The generator is only useful if both answers are common.
    assert.ok(selected > runs / 10 && selected < (runs * 9) / 10, `${selected} of ${runs} selected`);
  });

  it('broker: filter tag expressions agree with a set of names (property)', () => {
    const nameArb = fc.constantFrom('a', 'b', 'TagA', 'taga', 'x y', '*', 'é', '😀');
    fc.assert(
      fc.property(fc.array(nameArb, { minLength: 1, maxLength: 4 }), fc.constantFrom('', ' ', '  \t'), fc.option(nameArb, { nil: null }), (names, pad, tag) => {
        const expression = names.map((name) => `${pad}${name}${pad}`).join('||');
        const filter = compileFilter({ kind: 'tag', expression });
        const all = names.length === 1 && names[0] === '*';
        assert.equal(filter.matches(messageOf({}, tag)), all || (tag !== null && names.includes(tag)));
      }),
    );
  });
});
