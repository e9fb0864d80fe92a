import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RoutingError } from './errors.js';
import { referenceTopicMatch } from './test-support.js';
import { checkTopicBindingKey, TopicTrie } from './topic-trie.js';

function matched(trie: TopicTrie<string>, key: string): string[] {
  const out: string[] = [];
  trie.collect(key, out);
  return [...new Set(out)].sort();
}

const PATTERNS = ['a.b.c', 'a.*.c', 'a.#.b', '#', '#.#', '#.b', '*.*', 'a.*', 'a.#', '', '*', '*.#', '#.*.#', '*.*.*', 'a..b', '.#', '.*', 'a.', '#.b.#', 'a*', 'x.#y'];

const CASES: Record<string, string[]> = {
  'a.b.c': ['#', '#.#', '#.*.#', '#.b.#', '*.#', '*.*.*', 'a.#', 'a.*.c', 'a.b.c'],
  'a.b': ['#', '#.#', '#.*.#', '#.b', '#.b.#', '*.#', '*.*', 'a.#', 'a.#.b', 'a.*'],
  // The empty key has no words: only patterns that can match nothing.
  '': ['', '#', '#.#'],
  // Two empty words.
  '.': ['#', '#.#', '#.*.#', '*.#', '*.*', '.#', '.*'],
  a: ['#', '#.#', '#.*.#', '*', '*.#', 'a.#'],
  'a.': ['#', '#.#', '#.*.#', '*.#', '*.*', 'a.', 'a.#', 'a.*'],
  'a..b': ['#', '#.#', '#.*.#', '#.b', '#.b.#', '*.#', '*.*.*', 'a.#', 'a.#.b', 'a..b'],
  b: ['#', '#.#', '#.*.#', '#.b', '#.b.#', '*', '*.#'],
  'a.x.y.b': ['#', '#.#', '#.*.#', '#.b', '#.b.#', '*.#', 'a.#', 'a.#.b'],
  // '*' and '#' inside a longer word are literal, in keys and patterns alike.
  'a*': ['#', '#.#', '#.*.#', '*', '*.#', 'a*'],
  'x.#y': ['#', '#.#', '#.*.#', '*.#', '*.*', 'x.#y'],
  '*.b': ['#', '#.#', '#.*.#', '#.b', '#.b.#', '*.#', '*.*'],
};

describe('broker: routing topic trie', () => {
  it('broker: topic patterns match as RabbitMQ matches them (empty key, empty words, literal wildcards)', () => {
    const trie = new TopicTrie<string>();
    for (const pattern of PATTERNS) trie.add(pattern, pattern);
    for (const [key, expected] of Object.entries(CASES)) {
      assert.deepEqual(matched(trie, key), [...expected].sort(), `key '${key}'`);
      assert.deepEqual(
        PATTERNS.filter((pattern) => referenceTopicMatch(pattern, key)).sort(),
        [...expected].sort(),
        `reference, key '${key}'`,
      );
    }
  });

  it('broker: the trie agrees with the regex reference over random patterns and keys, before and after removals', () => {
    const word = fc.constantFrom('a', 'b', '', '*', '#', 'a#');
    const pattern = fc.array(word, { maxLength: 5 }).map((words) => words.join('.')).filter((text) => text.split('.').filter((w) => w === '#').length <= 2);
    const key = fc.array(fc.constantFrom('a', 'b', '', '*', '#'), { maxLength: 7 }).map((words) => words.join('.'));
    fc.assert(
      fc.property(fc.array(pattern, { minLength: 1, maxLength: 25 }), fc.array(key, { minLength: 1, maxLength: 10 }), fc.array(fc.boolean(), { maxLength: 25 }), (patterns, keys, removals) => {
        const trie = new TopicTrie<number>();
        const live = new Set(patterns.map((_, index) => index));
        patterns.forEach((text, index) => trie.add(text, index));
        const check = (): void => {
          for (const routingKey of keys) {
            const out: number[] = [];
            trie.collect(routingKey, out);
            const expected = [...live].filter((index) => referenceTopicMatch(patterns[index]!, routingKey));
            assert.deepEqual([...new Set(out)].sort((x, y) => x - y), expected, `key '${routingKey}' patterns ${JSON.stringify(patterns)}`);
          }
        };
        check();
        removals.forEach((remove, index) => {
          if (remove && index < patterns.length) {
            trie.remove(patterns[index]!, index);
            live.delete(index);
          }
        });
        check();
      }),
      { numRuns: 300 },
    );
  });

  it('broker: equal patterns keep their values apart; removing one value or an unknown one leaves the rest', () => {
    const trie = new TopicTrie<string>();
    trie.add('a.#', 'q1');
    trie.add('a.#', 'q2');
    trie.add('a.#.#', 'q3');
    trie.remove('a.#', 'q1');
    trie.remove('a.#', 'nope');
    trie.remove('z.*', 'q2');
    assert.deepEqual(matched(trie, 'a.b'), ['q2', 'q3']);
    trie.remove('a.#.#', 'q3');
    trie.remove('a.#', 'q2');
    assert.deepEqual(matched(trie, 'a.b'), []);
    trie.add('a.#', 'q4');
    assert.deepEqual(matched(trie, 'a'), ['q4']);
  });

  it("broker: at most two '#' words per binding key, as RabbitMQ allows; routing stays fast on long keys", () => {
    for (const ok of ['', '#', '#.#', 'a.#.b.#', '*.*.*', 'a#.#.b#.#.c#']) checkTopicBindingKey(ok);
    for (const bad of ['#.#.#', '#.a.#.b.#']) {
      assert.throws(
        () => checkTopicBindingKey(bad),
        (error: unknown) => error instanceof RoutingError && error.code === 'PRECONDITION_FAILED' && error.message.includes('3'),
      );
    }
    const trie = new TopicTrie<string>();
    for (const pattern of ['#.a.#', '#.#', '*.#.*', 'a.#.a.#']) trie.add(pattern, pattern);
    const longKey = Array.from({ length: 300 }, () => 'a').join('.');
    const started = performance.now();
    assert.deepEqual(matched(trie, longKey), ['#.#', '#.a.#', '*.#.*', 'a.#.a.#']);
    assert.ok(performance.now() - started < 2000);
  });
});
