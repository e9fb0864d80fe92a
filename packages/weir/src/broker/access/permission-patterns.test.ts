import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileProblem, PermissionPatterns } from './permission-patterns.js';

describe('access: permission patterns', () => {
  const patterns = new PermissionPatterns();

  it('access: a pattern matches anywhere in the name unless anchored, as RabbitMQ re:run does', () => {
    assert.ok(patterns.matches('orders', 'orders'));
    assert.ok(patterns.matches('orders', 'old-orders-2'), 'unanchored: a match inside the name grants');
    assert.ok(!patterns.matches('^orders$', 'old-orders-2'));
    assert.ok(patterns.matches('^orders\\.', 'orders.eu'));
    assert.ok(!patterns.matches('^orders\\.', 'ordersXeu'));
    assert.ok(patterns.matches('^(amq\\.gen.*|amq\\.default)$', 'amq.default'));
    assert.ok(patterns.matches('.*', ''));
  });

  it("access: '' grants nothing, not even an empty name", () => {
    for (const resource of ['', 'a', 'amq.default']) assert.ok(!patterns.matches('', resource), resource);
  });

  it('access: a repeated pattern is compiled once', () => {
    const fresh = new PermissionPatterns();
    const compiled = (fresh as unknown as { compiled: Map<string, RegExp> }).compiled;
    fresh.matches('^a', 'ab');
    const first = compiled.get('^a');
    fresh.matches('^a', 'xb');
    assert.equal(compiled.get('^a'), first);
    assert.equal(compiled.size, 1);
  });

  it('access: compileProblem says why a pattern is not a regular expression', () => {
    assert.equal(compileProblem('^ok.*$'), null);
    assert.equal(compileProblem(''), null);
    assert.match(compileProblem('(')!, /Unterminated group/);
    assert.match(compileProblem('[a-')!, /Unterminated character class|Invalid/);
  });
});
