import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileHeadersRule, headersMatch } from './headers-rule.js';
import { refused } from './test-support.js';

function matches(bindingArguments: Record<string, unknown>, headers: Record<string, unknown> | null): boolean {
  return headersMatch(compileHeadersRule(bindingArguments), headers === null ? null : new Map(Object.entries(headers)));
}

describe('broker: routing headers rules', () => {
  it("broker: x-match all (the default) needs every header to match; any needs one", () => {
    const all = { format: 'pdf', type: 'report' };
    assert.ok(matches(all, { format: 'pdf', type: 'report', extra: 1 }));
    assert.ok(!matches(all, { format: 'pdf' }));
    assert.ok(!matches(all, { format: 'pdf', type: 'log' }));
    assert.ok(matches({ ...all, 'x-match': 'all' }, { format: 'pdf', type: 'report' }));
    const any = { 'x-match': 'any', format: 'pdf', type: 'report' };
    assert.ok(matches(any, { type: 'report' }));
    assert.ok(matches(any, { format: 'pdf', type: 'log' }));
    assert.ok(!matches(any, { format: 'zip', other: 'report' }));
    assert.ok(!matches(any, null));
  });

  it('broker: a binding with no headers to match takes every message under all and none under any', () => {
    assert.ok(matches({}, null));
    assert.ok(matches({ 'x-match': 'all', 'x-other': 1 }, { a: 1 }));
    assert.ok(!matches({ 'x-match': 'any' }, { a: 1 }));
    assert.ok(!matches({ 'x-match': 'any', 'x-other': 1 }, { 'x-other': 1 }));
  });

  it("broker: all and any skip 'x-' arguments; all-with-x and any-with-x match them, x-match aside", () => {
    assert.ok(matches({ 'x-match': 'all', 'x-tenant': 'a', kind: 'k' }, { kind: 'k' }));
    assert.ok(!matches({ 'x-match': 'all-with-x', 'x-tenant': 'a', kind: 'k' }, { kind: 'k' }));
    assert.ok(matches({ 'x-match': 'all-with-x', 'x-tenant': 'a', kind: 'k' }, { kind: 'k', 'x-tenant': 'a' }));
    assert.ok(matches({ 'x-match': 'all-with-x' }, {}));
    assert.ok(!matches({ 'x-match': 'any', 'x-tenant': 'a' }, { 'x-tenant': 'a' }));
    assert.ok(matches({ 'x-match': 'any-with-x', 'x-tenant': 'a' }, { 'x-tenant': 'a' }));
    assert.ok(!matches({ 'x-match': 'any-with-x', 'x-tenant': 'a' }, { 'x-match': 'any-with-x' }));
  });

  it('broker: a void (null or undefined) binding value asks only that the header be present, with any value', () => {
    for (const presence of [null, undefined]) {
      assert.ok(matches({ trace: presence }, { trace: 'yes' }));
      assert.ok(matches({ trace: presence }, { trace: null }));
      assert.ok(!matches({ trace: presence }, { other: 1 }));
      assert.ok(matches({ 'x-match': 'any', trace: presence, b: 2 }, { trace: 0 }));
    }
    // A header present with a void value does not equal a real binding value.
    assert.ok(!matches({ trace: 'yes' }, { trace: null }));
  });

  it('broker: values compare by value across JS representations', () => {
    assert.ok(matches({ n: 1 }, { n: 1n }));
    assert.ok(matches({ n: 2n ** 62n }, { n: 2 ** 62 }));
    assert.ok(!matches({ n: 1 }, { n: '1' }));
    assert.ok(!matches({ n: 1 }, { n: 1.0000001 }));
    assert.ok(matches({ b: true }, { b: true }));
    assert.ok(!matches({ b: true }, { b: 1 }));
    assert.ok(matches({ s: 'é' }, { s: Buffer.from('é') }));
    assert.ok(matches({ x: Buffer.from([1, 2]) }, { x: new Uint8Array([1, 2]) }));
    assert.ok(!matches({ x: Buffer.from([1, 2]) }, { x: Buffer.from([1, 3]) }));
    assert.ok(matches({ d: { scale: 2, value: 150 } }, { d: { value: 150, scale: 2 } }));
    assert.ok(matches({ a: [1, 'x'] }, { a: [1n, 'x'] }));
  });

  it('broker: x-match must be one of the four words, as text', () => {
    assert.ok(matches({ 'x-match': Buffer.from('any'), a: 1 }, { a: 1, b: 2 }));
    assert.throws(() => compileHeadersRule({ 'x-match': 'some' }), refused('PRECONDITION_FAILED', "Invalid x-match field value 'some'"));
    assert.throws(() => compileHeadersRule({ 'x-match': 'ALL' }), refused('PRECONDITION_FAILED'));
    assert.throws(() => compileHeadersRule({ 'x-match': 1 }), refused('PRECONDITION_FAILED', 'Invalid x-match field type'));
    assert.throws(() => compileHeadersRule({ 'x-match': null }), refused('PRECONDITION_FAILED'));
  });
});
