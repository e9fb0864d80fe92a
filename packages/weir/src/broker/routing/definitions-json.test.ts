import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bindingFromJson, bindingToJson, exchangeFromJson, exchangeToJson } from './definitions-json.js';
import { RoutingTable } from './routing-table.js';
import { argumentValue, refused } from './test-support.js';
import type { Binding, ExchangeDefinition } from './types.js';
import { canonicalValue } from './values.js';

/** Through text, as the metadata store and definition files keep it. */
function viaText<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe('broker: routing definitions JSON', () => {
  it("broker: exchanges use RabbitMQ's field names, the alternate exchange as its argument", () => {
    const definition: ExchangeDefinition = {
      name: 'orders',
      type: 'topic',
      durable: true,
      autoDelete: false,
      internal: true,
      alternateExchange: 'orders.ae',
      arguments: { 'x-note': 'hi' },
    };
    const json = exchangeToJson(definition);
    assert.deepEqual(json, {
      name: 'orders',
      type: 'topic',
      durable: true,
      auto_delete: false,
      internal: true,
      arguments: { 'x-note': 'hi', 'alternate-exchange': 'orders.ae' },
    });
    const back = exchangeFromJson(viaText(json));
    assert.deepEqual(back, { ...definition, arguments: { 'x-note': 'hi', 'alternate-exchange': 'orders.ae' } });
    // A table accepts the result, and it is equivalent to the original.
    const routing = new RoutingTable();
    routing.declareExchange(definition);
    assert.equal(routing.declareExchange(back), 'exists');
  });

  it("broker: reading applies RabbitMQ's import defaults and ignores fields it does not know", () => {
    assert.deepEqual(exchangeFromJson({ name: 'x', type: 'fanout', vhost: '/', user_who_performed_action: 'guest' }), {
      name: 'x',
      type: 'fanout',
      durable: true,
      autoDelete: false,
      internal: false,
      alternateExchange: null,
      arguments: {},
    });
    assert.deepEqual(bindingFromJson({ source: 'x', destination: 'q', destination_type: 'queue', vhost: '/', properties_key: '~' }), {
      source: 'x',
      destination: 'q',
      destinationKind: 'queue',
      routingKey: '',
      arguments: {},
    });
  });

  it('broker: bindings use source, destination, destination_type, routing_key and arguments', () => {
    const binding: Binding = { source: 'h', destination: 'other', destinationKind: 'exchange', routingKey: 'k', arguments: { 'x-match': 'any', n: 5 } };
    const json = bindingToJson(binding);
    assert.deepEqual(json, { source: 'h', destination: 'other', destination_type: 'exchange', routing_key: 'k', arguments: { 'x-match': 'any', n: 5 } });
    assert.deepEqual(bindingFromJson(viaText(json)), binding);
  });

  it("broker: a '__proto__' argument stays an argument, through JSON and into the table", () => {
    const json = JSON.parse('{"source":"h","destination":"q","destination_type":"queue","routing_key":"","arguments":{"__proto__":{"a":1}}}') as unknown;
    const binding = bindingFromJson(json);
    assert.deepEqual(Object.keys(binding.arguments), ['__proto__']);
    assert.equal(Object.getPrototypeOf(binding.arguments), Object.prototype);
    assert.deepEqual(viaText(bindingToJson(binding)), json);
    const routing = new RoutingTable();
    routing.declareExchange({ name: 'h', type: 'headers', durable: false, autoDelete: false, internal: false, alternateExchange: null, arguments: {} });
    routing.bind(binding);
    assert.deepEqual(Object.keys(routing.bindings()[0]!.arguments), ['__proto__']);
    assert.deepEqual(routing.route('h', '', new Map([['__proto__', { a: 1n }]])).queues, ['q']);
    assert.deepEqual(routing.route('h', '', new Map([['a', 1]])).queues, []);
  });

  it('broker: malformed JSON is INVALID_ARGUMENT', () => {
    const exchanges: unknown[] = [
      null,
      [],
      'x',
      { type: 'direct' },
      { name: 'x', type: 'x-consistent-hash' },
      { name: 'x', type: 'direct', durable: 'true' },
      { name: 'x', type: 'direct', arguments: [] },
      { name: 'x', type: 'direct', arguments: { 'alternate-exchange': 3 } },
      { name: 'x', type: 'direct', arguments: { big: { $bigint: '1.5' } } },
      { name: 'x', type: 'direct', arguments: { n: { $number: 'huge' } } },
      { name: 'x', type: 'direct', arguments: { d: { $date: 'today' } } },
      { name: 'x', type: 'direct', arguments: { o: { $object: 5 } } },
    ];
    for (const value of exchanges) assert.throws(() => exchangeFromJson(value), refused('INVALID_ARGUMENT'), JSON.stringify(value));
    const bindings: unknown[] = [
      { destination: 'q', destination_type: 'queue' },
      { source: 'x', destination: 'q', destination_type: 'stream' },
      { source: 'x', destination: 'q', destination_type: 'queue', routing_key: 1 },
      { source: 'x', destination: 'q', destination_type: 'queue', arguments: 'none' },
    ];
    for (const value of bindings) assert.throws(() => bindingFromJson(value), refused('INVALID_ARGUMENT'), JSON.stringify(value));
  });

  it('broker: argument values come back equal through JSON text, whatever JSON cannot hold', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('a', 'x-match', '$bytes', 'alternate-exchange-not'), argumentValue, { maxKeys: 4 }), (args) => {
        const binding: Binding = { source: 's', destination: 'd', destinationKind: 'queue', routingKey: '', arguments: args };
        const back = bindingFromJson(viaText(bindingToJson(binding)));
        assert.equal(canonicalValue(back.arguments), canonicalValue(args));
      }),
      { numRuns: 1000 },
    );
    const tricky = { big: 2n ** 70n, small: 3n, bytes: Buffer.from([0xff, 0]), text: Buffer.from('ok'), nan: Number.NaN, when: new Date(7), never: new Date(Number.NaN), lookalike: { $bytes: 'AA==' } };
    const json = bindingToJson({ source: 's', destination: 'd', destinationKind: 'queue', routingKey: '', arguments: tricky }).arguments;
    assert.deepEqual(viaText(json), {
      big: { $bigint: '1180591620717411303424' },
      small: 3,
      bytes: { $bytes: '/wA=' },
      text: 'ok',
      nan: { $number: 'NaN' },
      when: { $date: 7 },
      never: { $date: null },
      lookalike: { $object: { $bytes: 'AA==' } },
    });
  });
});
