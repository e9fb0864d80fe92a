import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RoutingError } from './errors.js';

/** Shared helpers of the routing tests (not a test file itself). */

/** Argument values as a front-end decodes them, with the near-misses that equality must tell apart or join. */
export const argumentValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, undefined, true, false, 0, -0, 1, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 60, '', 'a', 'é', '1'),
    fc.constantFrom(0n, 1n, -1n, 2n ** 60n, 2n ** 70n),
    fc.string({ maxLength: 4 }),
    fc.integer(),
    fc.double(),
    fc.uint8Array({ maxLength: 4 }).map((bytes) => Buffer.from(bytes)),
    fc.constantFrom('a', 'é').map((text) => Buffer.from(text, 'utf8')),
    fc.constantFrom(Buffer.from([0xff]), new Uint8Array([0x61])),
    fc.constantFrom(0, 1_700_000_000_000, Number.NaN).map((time) => new Date(time)),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', '$bytes', '$object'), tie('value'), { maxKeys: 3 }),
  ),
})).value;

/** An assert.throws predicate: a RoutingError with this code (and, if given, a message containing `text`). */
export function refused(code: RoutingError['code'], text?: string): (error: unknown) => boolean {
  return (error) => {
    if (!(error instanceof RoutingError) || error.code !== code) return false;
    if (text !== undefined) assert.ok(error.message.includes(text), `message "${error.message}" lacks "${text}"`);
    return true;
  };
}

/** A topic matcher to check the trie against: each key word becomes '.'+word, so a pattern is a regex over those. */
export function referenceTopicMatch(pattern: string, key: string): boolean {
  const words = pattern === '' ? [] : pattern.split('.');
  const body = words
    .map((word) => (word === '#' ? '(?:\\.[^.]*)*' : word === '*' ? '\\.[^.]*' : `\\.${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    .join('');
  return new RegExp(`^${body}$`).test(key === '' ? '' : `.${key}`);
}
