import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter, FilterSyntaxError } from './index.js';
import { messageOf } from './test-support.js';

function tagMatches(expression: string, tag: string | null): boolean {
  return compileFilter({ kind: 'tag', expression }).matches(messageOf({}, tag));
}

describe('broker: filter tags', () => {
  it('broker: filter * and the empty expression take every message, tagged or not', () => {
    for (const expression of ['*', '', '   ', ' * ', '\t*\n']) {
      for (const tag of [null, '', 'a', '*']) assert.equal(tagMatches(expression, tag), true, `${JSON.stringify(expression)} on ${tag}`);
    }
  });

  it('broker: filter tag names match exactly, case-sensitively, one of the alternatives', () => {
    assert.equal(tagMatches('TagA', 'TagA'), true);
    assert.equal(tagMatches('TagA', 'taga'), false);
    assert.equal(tagMatches('TagA', 'TagAB'), false);
    assert.equal(tagMatches('TagA', null), false);
    assert.equal(tagMatches('a || b || c', 'b'), true);
    assert.equal(tagMatches('a||b||c', 'c'), true);
    assert.equal(tagMatches('a || b || c', 'd'), false);
    assert.equal(tagMatches('a || b', null), false);
    assert.equal(tagMatches('a || b', ''), false);
  });

  it('broker: filter tag names are trimmed and otherwise taken literally', () => {
    assert.equal(tagMatches('  order created  ', 'order created'), true);
    assert.equal(tagMatches('  order created  ', ' order created '), false);
    assert.equal(tagMatches('a.b* || (x) || é😀', '(x)'), true);
    assert.equal(tagMatches('a.b* || (x) || é😀', 'é😀'), true);
    assert.equal(tagMatches('a.b* || (x) || é😀', 'a.bb'), false);
    // '*' means "everything" only on its own; inside a list it is a tag like any other.
    assert.equal(tagMatches('a || *', '*'), true);
    assert.equal(tagMatches('a || *', 'b'), false);
  });

  it('broker: filter rejects empty alternatives and single bars with their position', () => {
    const cases: Array<[string, number, string]> = [
      ['a || || b', 5, 'expected a tag name'],
      ['a ||', 4, 'expected a tag name'],
      ['a ||   ', 7, 'expected a tag name'],
      ['|| a', 0, 'expected a tag name'],
      ['  || a', 2, 'expected a tag name'],
      ['a ||| b', 4, 'expected a tag name'],
      ['a | b', 2, "expected '||'"],
      ['a || b |', 7, "expected '||'"],
    ];
    for (const [expression, position, expected] of cases) {
      assert.throws(
        () => compileFilter({ kind: 'tag', expression }),
        (error: unknown) => error instanceof FilterSyntaxError && error.position === position && error.message === `${expected} at position ${position}` && error.expression === expression,
        expression,
      );
    }
  });
});
