import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileLike } from './like.js';
import { truthOf } from './test-support.js';

function like(text: string, pattern: string, escape: string | null = null): boolean {
  return compileLike(pattern, escape, (index, detail) => assert.fail(`${detail} at ${index}`))(text);
}

/** The reference: a pattern as a list of items, matched by dynamic programming over code points. */
type Item = { literal: string } | 'one' | 'any';

function referenceLike(text: string, items: readonly Item[]): boolean {
  const chars = [...text];
  // reachable[j]: the items so far can match exactly chars[0, j).
  let reachable = chars.map(() => false).concat(false);
  reachable[0] = true;
  for (const item of items) {
    const next = reachable.map(() => false);
    for (let j = 0; j <= chars.length; j++) {
      if (item === 'any') next[j] = reachable[j]! || (j > 0 && next[j - 1]!);
      else if (j > 0 && reachable[j - 1]!) next[j] = item === 'one' || chars[j - 1] === item.literal;
    }
    reachable = next;
  }
  return reachable[chars.length]!;
}

/**
 * The items as the matcher will read them back from the pattern text: adjacent literal halves of a surrogate pair
 * become one character there, so they must be one item here.
 */
function asRead(items: readonly Item[], escape: string | null): Item[] {
  const read: Item[] = [];
  let run = '';
  const flush = (): void => {
    for (const literal of run) read.push({ literal });
    run = '';
  };
  for (const item of items) {
    if (typeof item === 'object' && item.literal !== '%' && item.literal !== '_' && item.literal !== escape) run += item.literal;
    else {
      flush();
      read.push(item);
    }
  }
  flush();
  return read;
}

function patternOf(items: readonly Item[], escape: string | null): string {
  return items
    .map((item) => {
      if (item === 'any') return '%';
      if (item === 'one') return '_';
      const special = item.literal === '%' || item.literal === '_' || item.literal === escape;
      return special ? `${escape}${item.literal}` : item.literal;
    })
    .join('');
}

const METACHARACTERS = ['.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '^', '$', '\\', '/', '-'];

describe('broker: filter LIKE', () => {
  it('broker: filter LIKE matches % as any run and _ as one character', () => {
    const cases: Array<[string, string, boolean]> = [
      ['abc', 'abc', true],
      ['abc', 'ab', false],
      ['abc', 'ABC', false],
      ['abc', 'a%', true],
      ['abc', '%c', true],
      ['abc', '%b%', true],
      ['abc', '%', true],
      ['', '%', true],
      ['', '', true],
      ['', '_', false],
      ['abc', 'a_c', true],
      ['abc', '___', true],
      ['abc', '____', false],
      ['abc', '__', false],
      ['abc', 'a%%c', true],
      ['abc', '%%%', true],
      ['abba', 'ab%ba', true],
      ['aba', 'ab%ba', false],
      ['xaybzc', '%a%b%c', true],
      ['xaybzc', '%a%c%b', false],
      ['banana', '%ana', true],
      ['banana', 'b%an_', true],
      ['banana', '_an%an_', true],
      ['a\nb', 'a%', true],
      ['a\nb', 'a_b', true],
      // '_' is one code point: an emoji is one character, not two.
      ['a😀b', 'a_b', true],
      ['😀', '__', false],
      ['😀', '_', true],
      ['😀x', '%x', true],
      // Surrogates: a pair in the pattern is one character; a lone one never matches half of a pair.
      ['😀', '\uD83D\uDE00', true],
      ['😀', '\uD83D%', false],
      ['\uD83Dx', '\uD83D%', true],
      ['\uD83D', '_', true],
      ['x😀', '%\uDE00', false],
      ['😀\uDE00', '%\uDE00', true],
    ];
    for (const [text, pattern, expected] of cases) assert.equal(like(text, pattern), expected, `'${text}' LIKE '${pattern}'`);
  });

  it('broker: filter LIKE takes regex metacharacters literally', () => {
    for (const char of METACHARACTERS) {
      // Without '_' (plain text search) and with it (a RegExp), at the start, middle and end.
      for (const pattern of [`x${char}y`, `x${char}_`, `%${char}%`, `%${char}_`, `_${char}%`, `x${char}%`, `%${char}y`]) {
        assert.equal(like(`x${char}y`, pattern), true, `'x${char}y' LIKE '${pattern}'`);
        assert.equal(like('xzy', pattern), false, `'xzy' LIKE '${pattern}'`);
      }
    }
    assert.equal(like('a.c', 'a.c'), true);
    assert.equal(like('abc', 'a.c'), false);
    assert.equal(like('aaa', 'a*'), false);
    assert.equal(like('a*', 'a*'), true);
    assert.equal(like('ab', '[ab]_'), false);
    assert.equal(like('[ab]c', '[ab]_'), true);
    assert.equal(like('x(y', '_(_'), true);
    assert.equal(like('a\\b', 'a\\_'), true);
  });

  it('broker: filter LIKE ESCAPE makes %, _ and itself literal', () => {
    assert.equal(like('100%', '100!%', '!'), true);
    assert.equal(like('1000', '100!%', '!'), false);
    assert.equal(like('a_b', 'a!_b', '!'), true);
    assert.equal(like('axb', 'a!_b', '!'), false);
    assert.equal(like('a!b', 'a!!b', '!'), true);
    assert.equal(like('50% off', '%!%%', '!'), true);
    assert.equal(like('50 off', '%!%%', '!'), false);
    // Backslash, a regex metacharacter, and an astral character as the escape.
    assert.equal(like('a%', 'a\\%', '\\'), true);
    assert.equal(like('ab', 'a\\%', '\\'), false);
    assert.equal(like('a%b', 'a.%_', '.'), true);
    assert.equal(like('a.b', 'a.%_', '.'), false);
    assert.equal(like('x_', 'x😀_', '😀'), true);
    assert.equal(like('xy', 'x😀_', '😀'), false);
    // The escape character may be % itself: then % is never a wildcard.
    assert.equal(like('a%', 'a%%', '%'), true);
    assert.equal(like('ab', 'a%%', '%'), false);
    // Through the SQL syntax, with NOT and a missing header.
    assert.equal(truthOf("d LIKE '10!%' ESCAPE '!'", { d: '10%' }), 'TRUE');
    assert.equal(truthOf("d NOT LIKE '10!%' ESCAPE '!'", { d: '10%' }), 'FALSE');
    assert.equal(truthOf("d not like '10#%' escape '#'", { d: '100' }), 'TRUE');
    assert.equal(truthOf("d LIKE 'it''s%'", { d: "it's me" }), 'TRUE');
    assert.equal(truthOf("d LIKE '%'", {}), 'UNKNOWN');
    assert.equal(truthOf("d NOT LIKE '%'", {}), 'UNKNOWN');
  });

  it('broker: filter LIKE stays fast on patterns that make backtracking regexes explode', () => {
    const text = 'a'.repeat(50_000);
    const started = performance.now();
    assert.equal(like(text, `${'%a'.repeat(30)}%b`), false);
    assert.equal(like(text, `${'%a_'.repeat(30)}%b`), false);
    assert.equal(like(text, `${'%a'.repeat(30)}%`), true);
    assert.equal(like(`${text}b`, `${'%a_'.repeat(30)}%b`), true);
    assert.ok(performance.now() - started < 2000, `took ${performance.now() - started} ms`);
  });

  it('broker: filter LIKE agrees with a reference matcher (property)', () => {
    const alphabet = ['a', 'b', '.', '*', '\\', '(', '[', '$', '^', '|', '?', '+', '{', '/', '-', '\n', '😀', '\uD83D', '\uDE00', '%', '_', '!'];
    const itemArb: fc.Arbitrary<Item> = fc.oneof(fc.constant<Item>('any'), fc.constant<Item>('one'), fc.constantFrom(...alphabet).map((literal): Item => ({ literal })));
    fc.assert(
      fc.property(
        fc.array(itemArb, { maxLength: 8 }),
        fc.constantFrom(null, '!', '\\', '%', '_', '😀'),
        fc.array(fc.constantFrom(...alphabet), { maxLength: 12 }),
        (rawItems, escape, chars) => {
          // Without an escape character, % and _ cannot be literals; with one, the escape char itself is escaped.
          const items = rawItems.filter((item) => escape !== null || typeof item !== 'object' || (item.literal !== '%' && item.literal !== '_'));
          // A wildcard spelled like the escape character would be escaped instead; drop it.
          const usable = asRead(
            items.filter((item) => !((item === 'any' && escape === '%') || (item === 'one' && escape === '_'))),
            escape,
          );
          const text = chars.join('');
          assert.equal(like(text, patternOf(usable, escape), escape), referenceLike(text, usable), `${JSON.stringify(text)} LIKE ${JSON.stringify(patternOf(usable, escape))}`);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
