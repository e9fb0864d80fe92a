import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter } from './index.js';
import { type Headers, messageOf, sqlMatches, truthOf, type TruthName } from './test-support.js';

const headers: Headers = { price: '12.5', qty: '3', name: 'widget', empty: '', word: 'abc', flag: 'true', bin: new Uint8Array([49]) };

function expectTruths(cases: ReadonlyArray<readonly [string, TruthName]>, values: Headers = headers): void {
  for (const [expression, expected] of cases) assert.equal(truthOf(expression, values), expected, expression);
}

describe('broker: filter sql', () => {
  it('broker: filter compares headers with numbers numerically', () => {
    expectTruths([
      ['price = 12.5', 'TRUE'],
      ['price <> 12.5', 'FALSE'],
      ['price > 12', 'TRUE'],
      ['price >= 12.5', 'TRUE'],
      ['price < 12.5', 'FALSE'],
      ['price <= 12.5', 'TRUE'],
      ['qty = 3.0', 'TRUE'],
      ['qty > -1', 'TRUE'],
      ['qty < -1.5', 'FALSE'],
      // The literal may come first.
      ['12 < price', 'TRUE'],
      ['13 <= price', 'FALSE'],
      ['3 = qty', 'TRUE'],
    ]);
    // Numerically, not as text: '10' > 9 although '10' < '9' as strings.
    expectTruths([['n > 9', 'TRUE'], ["n < '9'", 'TRUE']], { n: '10' });
    expectTruths(
      [
        ['a = 1', 'TRUE'],
        ['b = 10', 'TRUE'],
        ['c = 3', 'TRUE'],
        ['d = 0.5', 'TRUE'],
        ['e = 0', 'TRUE'],
      ],
      { a: '01', b: '1e1', c: '+3', d: '.5', e: '-0' },
    );
  });

  it('broker: filter treats a header that is not a number as UNKNOWN against a number', () => {
    for (const text of ['abc', '', ' 1', '1 ', '0x10', 'Infinity', 'NaN', '1,5', '.', '1e']) {
      expectTruths(
        [
          ['price > 10', 'UNKNOWN'],
          ['price = 10', 'UNKNOWN'],
          ['price <> 10', 'UNKNOWN'],
        ],
        { price: text },
      );
    }
  });

  it('broker: filter compares strings exactly and by code unit', () => {
    expectTruths([
      ["name = 'widget'", 'TRUE'],
      ["name = 'Widget'", 'FALSE'],
      ["name <> 'gadget'", 'TRUE'],
      ["word < 'abd'", 'TRUE'],
      ["word > 'ab'", 'TRUE'],
      ["word >= 'abc'", 'TRUE'],
      ["word <= 'abb'", 'FALSE'],
      ["empty = ''", 'TRUE'],
      ["'abc' < word", 'FALSE'],
    ]);
    // By code unit: 'B' (0x42) < 'a' (0x61), '10' < '9', and an emoji (high surrogate 0xD83D) < U+FF5E although its
    // code point is larger.
    expectTruths(
      [
        ["upper < 'a'", 'TRUE'],
        ["digits < '9'", 'TRUE'],
        ["emoji < '\uFF5E'", 'TRUE'],
      ],
      { upper: 'B', digits: '10', emoji: '😀' },
    );
    expectTruths([["quote = 'it''s'", 'TRUE']], { quote: "it's" });
  });

  it('broker: filter compares two headers as strings', () => {
    expectTruths(
      [
        ['a = b', 'TRUE'],
        ['a < c', 'TRUE'],
        ['c > a', 'TRUE'],
        ['a <> c', 'TRUE'],
        ['a = missing', 'UNKNOWN'],
        ['missing = a', 'UNKNOWN'],
        ['a = bin', 'UNKNOWN'],
      ],
      { a: '10', b: '10', c: '9', bin: new Uint8Array(0) },
    );
  });

  it('broker: filter compares headers with TRUE and FALSE in any case', () => {
    expectTruths([
      ['flag = TRUE', 'TRUE'],
      ['flag <> FALSE', 'TRUE'],
      ['FALSE = flag', 'FALSE'],
    ]);
    expectTruths([['flag = true', 'TRUE']], { flag: 'TRUE' });
    expectTruths([['flag = FALSE', 'TRUE']], { flag: 'False' });
    expectTruths([['flag = TRUE', 'UNKNOWN'], ['flag = FALSE', 'UNKNOWN']], { flag: 'yes' });
  });

  it('broker: filter folds conditions on literals alone', () => {
    expectTruths([
      ['1 < 2', 'TRUE'],
      ['2.0 = 2', 'TRUE'],
      ["'a' = 'a'", 'TRUE'],
      ["'b' < 'a'", 'FALSE'],
      ['TRUE <> FALSE', 'TRUE'],
      ['TRUE', 'TRUE'],
      ['FALSE', 'FALSE'],
      ['NOT FALSE', 'TRUE'],
      ['NULL = 1', 'UNKNOWN'],
      ['NULL = NULL', 'UNKNOWN'],
      ["'x' IN ('y', 'x')", 'TRUE'],
      ['1 IN (2, NULL)', 'UNKNOWN'],
      ["'abc' LIKE 'a%'", 'TRUE'],
      ['NULL LIKE \'a%\'', 'UNKNOWN'],
      ['2 BETWEEN 1 AND 3', 'TRUE'],
      ["'x' IS NULL", 'FALSE'],
      ['NULL IS NULL', 'TRUE'],
    ]);
  });

  it('broker: filter IN and NOT IN follow OR of equalities, NULLs included', () => {
    expectTruths([
      ["name IN ('gadget', 'widget')", 'TRUE'],
      ["name IN ('gadget')", 'FALSE'],
      ["name NOT IN ('gadget')", 'TRUE'],
      ["name NOT IN ('widget', 'gadget')", 'FALSE'],
      // Mixed lists: strings compare as text, numbers numerically.
      ["qty IN ('a', 'b', 3)", 'TRUE'],
      ["qty IN ('a', 3.0)", 'TRUE'],
      ["qty IN ('3')", 'TRUE'],
      ["qty IN ('03')", 'FALSE'],
      ['qty IN (1, 2)', 'FALSE'],
      // A word never equals a number: UNKNOWN unless a string matches.
      ["word IN ('x', 1)", 'UNKNOWN'],
      ["word IN ('abc', 1)", 'TRUE'],
      ["word NOT IN ('x', 1)", 'UNKNOWN'],
      // NULL in the list: UNKNOWN unless something matches.
      ["name IN ('x', NULL)", 'UNKNOWN'],
      ["name IN ('widget', NULL)", 'TRUE'],
      ["name NOT IN ('x', NULL)", 'UNKNOWN'],
      ["name NOT IN ('widget', NULL)", 'FALSE'],
      // Booleans.
      ['flag IN (TRUE)', 'TRUE'],
      ['flag IN (FALSE)', 'FALSE'],
      ['name IN (FALSE)', 'UNKNOWN'],
      // A missing or binary header is NULL.
      ["missing IN ('x')", 'UNKNOWN'],
      ["missing NOT IN ('x')", 'UNKNOWN'],
      ["bin IN ('1')", 'UNKNOWN'],
    ]);
  });

  it('broker: filter BETWEEN is inclusive and NOT BETWEEN its negation', () => {
    expectTruths([
      ['qty BETWEEN 3 AND 5', 'TRUE'],
      ['qty BETWEEN 1 AND 3', 'TRUE'],
      ['qty BETWEEN 4 AND 5', 'FALSE'],
      ['qty BETWEEN 5 AND 1', 'FALSE'],
      ['qty NOT BETWEEN 4 AND 5', 'TRUE'],
      ['qty NOT BETWEEN 3 AND 3', 'FALSE'],
      ['price BETWEEN 12.4 AND 12.6', 'TRUE'],
      ["name BETWEEN 'a' AND 'x'", 'TRUE'],
      ["name BETWEEN 'x' AND 'z'", 'FALSE'],
      ['missing BETWEEN 1 AND 2', 'UNKNOWN'],
      ['missing NOT BETWEEN 1 AND 2', 'UNKNOWN'],
      ['word BETWEEN 1 AND 2', 'UNKNOWN'],
      // One bound NULL: UNKNOWN unless the other bound already fails.
      ['qty BETWEEN NULL AND 5', 'UNKNOWN'],
      ['qty BETWEEN NULL AND 1', 'FALSE'],
      ['qty NOT BETWEEN NULL AND 1', 'TRUE'],
      // The bounds may be headers.
      ['qty BETWEEN qty AND qty', 'TRUE'],
      // BETWEEN takes the first AND; the next one is logical.
      ["qty BETWEEN 1 AND 5 AND name = 'widget'", 'TRUE'],
      ["qty BETWEEN 1 AND 5 AND name = 'gadget'", 'FALSE'],
    ]);
  });

  it('broker: filter IS NULL is true for missing and binary headers only', () => {
    expectTruths([
      ['missing IS NULL', 'TRUE'],
      ['missing IS NOT NULL', 'FALSE'],
      ['bin IS NULL', 'TRUE'],
      ['empty IS NULL', 'FALSE'],
      ['empty IS NOT NULL', 'TRUE'],
      ['name IS NOT NULL', 'TRUE'],
      ['NOT missing IS NULL', 'FALSE'],
    ]);
  });

  it('broker: filter comparisons with NULL are UNKNOWN, and binary headers are NULL', () => {
    expectTruths([
      ['missing = 1', 'UNKNOWN'],
      ["missing <> 'x'", 'UNKNOWN'],
      ['missing < 1', 'UNKNOWN'],
      ['name = NULL', 'UNKNOWN'],
      ['name <> NULL', 'UNKNOWN'],
      ["bin = '1'", 'UNKNOWN'],
      ['bin = 1', 'UNKNOWN'],
      ["bin LIKE '%'", 'UNKNOWN'],
    ]);
  });

  it('broker: filter AND, OR and NOT follow three-valued logic', () => {
    const truths: Record<TruthName, string> = { TRUE: '1 = 1', FALSE: '1 = 2', UNKNOWN: 'missing = 1' };
    const names: TruthName[] = ['TRUE', 'FALSE', 'UNKNOWN'];
    const not: Record<TruthName, TruthName> = { TRUE: 'FALSE', FALSE: 'TRUE', UNKNOWN: 'UNKNOWN' };
    const rank: Record<TruthName, number> = { FALSE: 0, UNKNOWN: 1, TRUE: 2 };
    const byRank: TruthName[] = ['FALSE', 'UNKNOWN', 'TRUE'];
    for (const a of names) {
      assert.equal(truthOf(`NOT ${truths[a]}`, headers), not[a], `NOT ${a}`);
      for (const b of names) {
        // AND is the minimum and OR the maximum in the order FALSE < UNKNOWN < TRUE.
        assert.equal(truthOf(`${truths[a]} AND ${truths[b]}`, headers), byRank[Math.min(rank[a], rank[b])], `${a} AND ${b}`);
        assert.equal(truthOf(`${truths[a]} OR ${truths[b]}`, headers), byRank[Math.max(rank[a], rank[b])], `${a} OR ${b}`);
      }
    }
    // The named cases, spelled out.
    expectTruths([
      ['NOT (missing = 1)', 'UNKNOWN'],
      ['missing = 1 OR TRUE', 'TRUE'],
      ['missing = 1 AND FALSE', 'FALSE'],
      ['missing = 1 OR FALSE', 'UNKNOWN'],
      ['missing = 1 AND TRUE', 'UNKNOWN'],
      ['NOT NOT (missing = 1)', 'UNKNOWN'],
    ]);
  });

  it('broker: filter precedence is comparisons, then NOT, then AND, then OR', () => {
    expectTruths([
      // AND before OR: TRUE OR (TRUE AND FALSE).
      ['TRUE OR TRUE AND FALSE', 'TRUE'],
      ['(TRUE OR TRUE) AND FALSE', 'FALSE'],
      ['FALSE AND TRUE OR TRUE', 'TRUE'],
      ['FALSE AND (TRUE OR TRUE)', 'FALSE'],
      // NOT before AND: (NOT TRUE) AND FALSE, (NOT FALSE) OR FALSE.
      ['NOT TRUE AND FALSE', 'FALSE'],
      ['NOT (TRUE AND FALSE)', 'TRUE'],
      ['NOT FALSE OR FALSE', 'TRUE'],
      ['NOT FALSE AND FALSE', 'FALSE'],
      // Comparisons before NOT: NOT (qty = 3).
      ['NOT qty = 3', 'FALSE'],
      ['NOT qty = 4 AND NOT qty = 5', 'TRUE'],
      // Long chains.
      ['FALSE OR FALSE OR FALSE OR TRUE', 'TRUE'],
      ['TRUE AND TRUE AND TRUE AND FALSE', 'FALSE'],
      ['((((qty = 3))))', 'TRUE'],
    ]);
  });

  it('broker: filter keywords are case-insensitive; header names are not', () => {
    expectTruths([
      ["qty BeTwEeN 1 aNd 5 and name like 'w%' Or missing is null", 'TRUE'],
      ["not qty in (1, 2) and name not like 'x%' and missing is not null", 'FALSE'],
      ['true AND NOT false', 'TRUE'],
      ['QTY = 3', 'UNKNOWN'],
    ]);
  });

  it('broker: filter header names may have dots and dashes, or any characters in double quotes', () => {
    const values: Headers = {
      'weir.priority': '7',
      'x-trace-id': 'abc',
      'a-1': 'dash',
      'with space': 'yes',
      and: 'keyword',
      'say "hi"': 'quoted',
      'ünï': 'code',
      'a"': 'q',
      _under: 'u',
    };
    expectTruths(
      [
        ['weir.priority > 5', 'TRUE'],
        ["x-trace-id = 'abc'", 'TRUE'],
        // No arithmetic: a-1 is a name.
        ["a-1 = 'dash'", 'TRUE'],
        ['"with space" = \'yes\'', 'TRUE'],
        ['"and" = \'keyword\'', 'TRUE'],
        ['"say ""hi""" = \'quoted\'', 'TRUE'],
        ['"ünï" = \'code\'', 'TRUE'],
        ['"a""" = \'q\'', 'TRUE'],
        ['"weir.priority" = 7', 'TRUE'],
        ["_under = 'u'", 'TRUE'],
      ],
      values,
    );
  });

  it('broker: filter numbers take a leading minus and decimals', () => {
    expectTruths(
      [
        ['t = -1.5', 'TRUE'],
        ['t=-1.5', 'TRUE'],
        ['t < -1', 'TRUE'],
        ['t > -2', 'TRUE'],
        ['t BETWEEN -2 AND -1', 'TRUE'],
        ['t IN (-1.50)', 'TRUE'],
      ],
      { t: '-1.5' },
    );
  });

  it('broker: filter matches only when the whole condition is TRUE, and keeps its spec', () => {
    const spec = { kind: 'sql' as const, expression: 'price > 10' };
    const filter = compileFilter(spec);
    assert.equal(filter.matches(messageOf({ price: '11' })), true);
    assert.equal(filter.matches(messageOf({ price: '9' })), false);
    assert.equal(filter.matches(messageOf({})), false);
    assert.equal(filter.matches(messageOf({ price: 'abc' })), false);
    spec.expression = 'changed';
    assert.deepEqual(filter.spec, { kind: 'sql', expression: 'price > 10' });
    assert.ok(Object.isFrozen(filter.spec));
    // Whitespace of any kind separates tokens.
    assert.equal(sqlMatches('\n\tprice\r\n>\t10  ', { price: '11' }), true);
  });

  it('broker: filter reads each header when it needs it and stops at a FALSE operand of AND', () => {
    const filter = compileFilter({ kind: 'sql', expression: "a = 'x' AND b = 'y'" });
    const asked: string[] = [];
    const message = { tag: null, header: (name: string) => (asked.push(name), name === 'a' ? 'x' : 'y') };
    assert.equal(filter.matches(message), true);
    assert.deepEqual(asked, ['a', 'b']);
    // FALSE on the left of AND decides it: the right side is not read.
    asked.length = 0;
    assert.equal(filter.matches({ tag: null, header: (name: string) => (asked.push(name), 'z') }), false);
    assert.deepEqual(asked, ['a']);
  });
});
