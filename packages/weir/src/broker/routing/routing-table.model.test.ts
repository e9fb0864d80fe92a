import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RoutingTable } from './routing-table.js';
import { referenceTopicMatch } from './test-support.js';
import type { Binding, ExchangeType } from './types.js';

/**
 * Random topologies — every exchange type, exchange-to-exchange bindings with cycles, alternate exchanges (some
 * missing, some cyclic) — routed by the table and by a plain model of the documented rules: bindings tried in order,
 * a Set of visited exchanges, regex topic matching, headers rules spelled out.
 */

interface ExchangeSpec {
  type: ExchangeType;
  alternate: string | null;
}

interface Topology {
  exchanges: ExchangeSpec[];
  bindings: Binding[];
}

const EXCHANGES = ['e0', 'e1', 'e2', 'e3'];
const QUEUES = ['q0', 'q1', 'q2', 'q3'];
const word = fc.constantFrom('a', 'b');
const routingKey = fc.array(word, { maxLength: 3 }).map((words) => words.join('.'));
const bindingKey = fc
  .array(fc.constantFrom('a', 'b', '*', '#'), { maxLength: 3 })
  .map((words) => words.join('.'))
  .filter((key) => key.split('.').filter((w) => w === '#').length <= 2);
const headerValues = fc.record({ a: fc.constantFrom(1, 2), b: fc.constant(1) }, { requiredKeys: [] });
const headersArguments = fc.tuple(fc.constantFrom('all', 'any', undefined), headerValues).map(([mode, values]) => (mode === undefined ? values : { 'x-match': mode, ...values }));

const topology: fc.Arbitrary<Topology> = fc
  .record({
    exchanges: fc.array(
      fc.record({ type: fc.constantFrom<ExchangeType>('direct', 'fanout', 'topic', 'headers'), alternate: fc.constantFrom(null, 'missing', ...EXCHANGES) }),
      { minLength: EXCHANGES.length, maxLength: EXCHANGES.length },
    ),
    bindings: fc.array(
      fc.record({
        source: fc.constantFrom(...EXCHANGES),
        toExchange: fc.boolean(),
        exchange: fc.constantFrom(...EXCHANGES),
        queue: fc.constantFrom(...QUEUES),
        key: bindingKey,
        args: headersArguments,
      }),
      { maxLength: 10 },
    ),
  })
  .map(({ exchanges, bindings }) => ({
    exchanges,
    bindings: bindings.map((b) => ({
      source: b.source,
      destination: b.toExchange ? b.exchange : b.queue,
      destinationKind: b.toExchange ? ('exchange' as const) : ('queue' as const),
      routingKey: b.key,
      arguments: b.args,
    })),
  }));

function modelMatches(type: ExchangeType, binding: Binding, key: string, headers: Map<string, unknown>): boolean {
  switch (type) {
    case 'direct':
      return binding.routingKey === key;
    case 'fanout':
      return true;
    case 'topic':
      return referenceTopicMatch(binding.routingKey, key);
    case 'headers': {
      const wanted = Object.entries(binding.arguments).filter(([name]) => !name.startsWith('x-'));
      const one = ([name, value]: [string, unknown]): boolean => headers.get(name) === value;
      return binding.arguments['x-match'] === 'any' ? wanted.some(one) : wanted.every(one);
    }
  }
}

/** The rules of index.ts, written as plainly as possible. */
function modelRoute(model: Topology, bindings: Binding[], start: string, key: string, headers: Map<string, unknown>): string[] {
  const queues: string[] = [];
  const visited = new Set<string>();
  const routed = new Set<string>();
  const visit = (name: string): boolean => {
    visited.add(name);
    const spec = model.exchanges[EXCHANGES.indexOf(name)]!;
    const matching = bindings.filter((b) => b.source === name && modelMatches(spec.type, b, key, headers));
    let reached = false;
    for (const b of matching.filter((m) => m.destinationKind === 'queue')) {
      reached = true;
      if (!queues.includes(b.destination)) queues.push(b.destination);
    }
    if (reached) routed.add(name);
    for (const b of matching.filter((m) => m.destinationKind === 'exchange')) {
      if (visited.has(b.destination) ? routed.has(b.destination) : visit(b.destination)) {
        reached = true;
        routed.add(name);
      }
    }
    if (!reached && spec.alternate !== null && EXCHANGES.includes(spec.alternate)) {
      reached = visited.has(spec.alternate) ? routed.has(spec.alternate) : visit(spec.alternate);
    }
    if (reached) routed.add(name);
    return reached;
  };
  visit(start);
  return queues;
}

describe('broker: routing table model', () => {
  it('broker: routes over random topologies agree with a plain model of the rules', () => {
    fc.assert(
      fc.property(
        topology,
        fc.array(fc.record({ exchange: fc.constantFrom(...EXCHANGES), key: routingKey, headers: headerValues }), { minLength: 1, maxLength: 8 }),
        (model, publishes) => {
          const routing = new RoutingTable();
          model.exchanges.forEach((spec, index) => {
            routing.declareExchange({ name: EXCHANGES[index]!, type: spec.type, durable: false, autoDelete: false, internal: false, alternateExchange: spec.alternate, arguments: {} });
          });
          // Duplicates are one binding, as the table keeps them.
          const kept: Binding[] = [];
          for (const b of model.bindings) {
            routing.bind(b);
            if (!kept.some((k) => JSON.stringify(k) === JSON.stringify(b))) kept.push(b);
          }
          for (const publish of publishes) {
            const headers = new Map(Object.entries(publish.headers));
            const actual = routing.route(publish.exchange, publish.key, headers).queues;
            const expected = modelRoute(model, kept, publish.exchange, publish.key, headers);
            assert.equal(new Set(actual).size, actual.length, 'queues are distinct');
            // Topic exchanges yield matches in trie order, not binding order; otherwise the order is the model's too.
            if (model.exchanges.some((spec) => spec.type === 'topic')) assert.deepEqual([...actual].sort(), [...expected].sort());
            else assert.deepEqual(actual, expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
