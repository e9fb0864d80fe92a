import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { predeclaredExchanges } from './exchange-names.js';
import { RoutingTable } from './routing-table.js';
import { refused } from './test-support.js';
import type { Binding, DestinationKind, ExchangeDefinition, ExchangeType } from './types.js';

function exchange(name: string, type: ExchangeType, extra: Partial<ExchangeDefinition> = {}): ExchangeDefinition {
  return { name, type, durable: false, autoDelete: false, internal: false, alternateExchange: null, arguments: {}, ...extra };
}

function binding(source: string, destination: string, routingKey = '', extra: { kind?: DestinationKind; args?: Record<string, unknown> } = {}): Binding {
  return { source, destination, destinationKind: extra.kind ?? 'queue', routingKey, arguments: extra.args ?? {} };
}

function e2e(source: string, destination: string, routingKey = ''): Binding {
  return binding(source, destination, routingKey, { kind: 'exchange' });
}

function table(queues: string[] = []): RoutingTable {
  const existing = new Set(queues);
  return new RoutingTable({ queueExists: (name) => existing.has(name) });
}

function route(routing: RoutingTable, name: string, key = '', headers: Record<string, unknown> | null = null): string[] {
  return routing.route(name, key, headers === null ? null : new Map(Object.entries(headers))).queues;
}

describe('broker: routing table exchanges', () => {
  it('broker: the default and amq. exchanges exist from the start; the default routes only to queues that exist', () => {
    const routing = table(['q1']);
    assert.deepEqual(
      routing.exchanges().map((definition) => [definition.name, definition.type, definition.durable]),
      [['', 'direct', true], ...predeclaredExchanges().map((definition) => [definition.name, definition.type, true])],
    );
    assert.deepEqual(
      predeclaredExchanges().map((definition) => `${definition.name}:${definition.type}`),
      ['amq.direct:direct', 'amq.fanout:fanout', 'amq.topic:topic', 'amq.headers:headers', 'amq.match:headers'],
    );
    assert.deepEqual(route(routing, '', 'q1'), ['q1']);
    assert.deepEqual(route(routing, '', 'missing'), []);
    assert.deepEqual(new RoutingTable().route('', 'anything', null).queues, ['anything']);
  });

  it('broker: the default exchange cannot be declared, deleted, bound or unbound', () => {
    const routing = table();
    routing.declareExchange(exchange('x', 'direct'));
    assert.throws(() => routing.declareExchange(exchange('', 'direct', { durable: true })), refused('ACCESS_REFUSED', 'default exchange'));
    assert.throws(() => routing.deleteExchange(''), refused('ACCESS_REFUSED'));
    assert.throws(() => routing.bind(binding('', 'q')), refused('ACCESS_REFUSED'));
    assert.throws(() => routing.unbind(binding('', 'q')), refused('ACCESS_REFUSED'));
    assert.throws(() => routing.bind(e2e('x', '')), refused('ACCESS_REFUSED'));
    assert.throws(() => routing.unbind(e2e('x', '')), refused('ACCESS_REFUSED'));
    // A queue named '' is no exchange: that binding is allowed.
    routing.bind(binding('x', '', 'k'));
    assert.deepEqual(route(routing, 'x', 'k'), ['']);
  });

  it('broker: declaring an equal exchange answers exists; any difference is PRECONDITION_FAILED naming it', () => {
    const routing = table();
    const base = exchange('orders', 'topic', { durable: true, alternateExchange: 'ae', arguments: { 'alternate-exchange': 'ae', 'x-note': [1, { a: 'b' }] } });
    assert.equal(routing.declareExchange(base), 'created');
    assert.equal(routing.declareExchange({ ...base, arguments: { 'x-note': [1n, { a: Buffer.from('b') }], 'alternate-exchange': 'ae' } }), 'exists');
    // The alternate exchange is compared as the property; the argument only carries it.
    assert.equal(routing.declareExchange({ ...base, arguments: { 'x-note': [1, { a: 'b' }] } }), 'exists');
    const differences: [Partial<ExchangeDefinition>, string][] = [
      [{ type: 'direct' }, "inequivalent arg 'type' for exchange 'orders': received 'direct' but current is 'topic'"],
      [{ durable: false }, "arg 'durable'"],
      [{ autoDelete: true }, "arg 'auto_delete'"],
      [{ internal: true }, "arg 'internal'"],
      [{ alternateExchange: null, arguments: { 'x-note': [1, { a: 'b' }] } }, "arg 'alternate-exchange' for exchange 'orders': received none but current is 'ae'"],
      [{ arguments: { 'alternate-exchange': 'ae', 'x-note': [2] } }, "arg 'x-note'"],
      [{ arguments: { 'alternate-exchange': 'ae', 'x-note': [1, { a: 'b' }], extra: null } }, "arg 'extra' for exchange 'orders': received void but current is none"],
    ];
    for (const [change, message] of differences) {
      assert.throws(() => routing.declareExchange({ ...base, ...change }), refused('PRECONDITION_FAILED', message));
    }
    assert.equal(routing.exchange('orders')?.type, 'topic');
    assert.equal(routing.declareExchange(exchange('amq.topic', 'topic', { durable: true })), 'exists');
    assert.throws(() => routing.declareExchange(exchange('amq.topic', 'topic')), refused('PRECONDITION_FAILED', "arg 'durable'"));
  });

  it("broker: new 'amq.' names are ACCESS_REFUSED; names outside the AMQP exchange-name domain PRECONDITION_FAILED", () => {
    const routing = table();
    assert.throws(() => routing.declareExchange(exchange('amq.custom', 'direct')), refused('ACCESS_REFUSED', "exchange name 'amq.custom' contains reserved prefix 'amq.*'"));
    for (const ok of ['a', 'A-z_0.9:x', 'x'.repeat(127), 'amq', 'AMQ.x']) assert.equal(routing.declareExchange(exchange(ok, 'fanout')), 'created');
    for (const bad of ['x'.repeat(128), 'with space', 'a/b', 'é', 'tab\t', 'a*']) {
      assert.throws(() => routing.declareExchange(exchange(bad, 'fanout')), refused('PRECONDITION_FAILED', 'is invalid'));
    }
  });

  it('broker: malformed definitions are INVALID_ARGUMENT; an alternate-exchange argument must agree with the property', () => {
    const routing = table();
    const malformed: unknown[] = [
      { ...exchange('x', 'direct'), type: 'x-delayed-message' },
      { ...exchange('x', 'direct'), durable: 'yes' },
      { ...exchange('x', 'direct'), alternateExchange: 7 },
      { ...exchange('x', 'direct'), arguments: new Map() },
      { ...exchange('x', 'direct'), arguments: { f: () => 0 } },
      { ...exchange('x', 'direct'), arguments: { 'alternate-exchange': 'a' } },
      exchange('x', 'direct', { alternateExchange: 'a', arguments: { 'alternate-exchange': 'b' } }),
    ];
    for (const definition of malformed) assert.throws(() => routing.declareExchange(definition as ExchangeDefinition), refused('INVALID_ARGUMENT'));
    assert.throws(
      () => routing.declareExchange(exchange('x', 'direct', { alternateExchange: 'a', arguments: { 'alternate-exchange': 5 } })),
      refused('PRECONDITION_FAILED', "arg 'alternate-exchange'"),
    );
    assert.equal(routing.declareExchange(exchange('x', 'direct', { alternateExchange: 'a', arguments: { 'alternate-exchange': Buffer.from('a') } })), 'created');
    assert.equal(routing.exchange('y'), undefined);
  });

  it('broker: stored definitions and bindings are frozen copies', () => {
    const routing = table();
    const args = { list: [1] };
    const definition = exchange('x', 'headers', { arguments: args });
    routing.declareExchange(definition);
    const bindingArgs: Record<string, unknown> = { a: 1 };
    routing.bind(binding('x', 'q', '', { args: bindingArgs }));
    args.list.push(2);
    definition.type = 'fanout';
    bindingArgs['a'] = 2;
    const stored = routing.exchange('x')!;
    assert.deepEqual(stored.arguments, { list: [1] });
    assert.equal(stored.type, 'headers');
    assert.ok(Object.isFrozen(stored) && Object.isFrozen(stored.arguments));
    assert.deepEqual(routing.bindings({ source: 'x' })[0]!.arguments, { a: 1 });
    assert.ok(Object.isFrozen(routing.bindings({ source: 'x' })[0]));
    assert.deepEqual(route(routing, 'x', '', { a: 1 }), ['q']);
  });

  it('broker: deleting removes bindings both ways; ifUnused, missing, default and amq. exchanges are refused', () => {
    const routing = table();
    routing.declareExchange(exchange('up', 'fanout'));
    routing.declareExchange(exchange('x', 'fanout'));
    routing.bind(e2e('up', 'x'));
    routing.bind(binding('x', 'q'));
    assert.throws(() => routing.deleteExchange('x', { ifUnused: true }), refused('PRECONDITION_FAILED', "exchange 'x' in use"));
    assert.throws(() => routing.deleteExchange('missing'), refused('NOT_FOUND', "no exchange 'missing'"));
    assert.throws(() => routing.deleteExchange('amq.direct'), refused('ACCESS_REFUSED', "deletion of system exchange 'amq.direct' not allowed"));
    assert.throws(() => routing.deleteExchange('amq.nothing'), refused('ACCESS_REFUSED'));
    assert.deepEqual(routing.deleteExchange('x'), []);
    assert.equal(routing.exchange('x'), undefined);
    assert.deepEqual(routing.bindings({ source: 'up' }), []);
    assert.deepEqual(routing.bindings({ destination: 'q' }), []);
    assert.throws(() => routing.route('x', '', null), refused('NOT_FOUND'));
    // Unused only counts bindings as a source.
    routing.declareExchange(exchange('x', 'fanout'));
    routing.bind(e2e('up', 'x'));
    assert.deepEqual(routing.deleteExchange('x', { ifUnused: true }), []);
    assert.deepEqual(routing.bindings(), []);
  });
});

describe('broker: routing table bindings', () => {
  it('broker: bind is idempotent and needs its exchanges; queues are not checked', () => {
    const routing = table();
    routing.declareExchange(exchange('x', 'direct'));
    routing.bind(binding('x', 'q', 'k'));
    routing.bind(binding('x', 'q', 'k'));
    routing.bind(binding('x', 'q', 'k', { args: { a: 1 } }));
    routing.bind(binding('x', 'q', 'k', { args: { a: 1n } }));
    assert.equal(routing.bindings().length, 2);
    assert.deepEqual(route(routing, 'x', 'k'), ['q']);
    assert.throws(() => routing.bind(binding('missing', 'q')), refused('NOT_FOUND', "no exchange 'missing'"));
    assert.throws(() => routing.bind(e2e('x', 'missing')), refused('NOT_FOUND', "no exchange 'missing'"));
    assert.throws(() => routing.bind({ ...binding('x', 'q'), destinationKind: 'topic' as DestinationKind }), refused('INVALID_ARGUMENT'));
    assert.throws(() => routing.bind({ ...binding('x', 'q'), routingKey: 5 as unknown as string }), refused('INVALID_ARGUMENT'));
    assert.throws(() => routing.bind(binding('x', 'q', 'k', { args: { m: new Map() } })), refused('INVALID_ARGUMENT'));
  });

  it('broker: bindings an exchange type cannot use are PRECONDITION_FAILED and change nothing', () => {
    const routing = table();
    routing.declareExchange(exchange('t', 'topic'));
    routing.declareExchange(exchange('h', 'headers'));
    routing.declareExchange(exchange('d', 'direct'));
    assert.throws(() => routing.bind(binding('t', 'q', '#.a.#.#')), refused('PRECONDITION_FAILED', "'#' wildcards"));
    assert.throws(() => routing.bind(binding('h', 'q', '', { args: { 'x-match': 'most' } })), refused('PRECONDITION_FAILED', 'x-match'));
    assert.deepEqual(routing.bindings(), []);
    // Other types keep such keys and arguments without reading them.
    routing.bind(binding('d', 'q', '#.#.#', { args: { 'x-match': 'most' } }));
    assert.deepEqual(route(routing, 'd', '#.#.#'), ['q']);
  });

  it('broker: unbind is idempotent, even for missing exchanges, and removes exactly the binding with equal arguments', () => {
    const routing = table();
    routing.declareExchange(exchange('x', 'direct'));
    routing.bind(binding('x', 'q', 'k', { args: { a: [1, 'b'] } }));
    routing.bind(binding('x', 'q', 'k'));
    assert.deepEqual(routing.unbind(binding('x', 'q', 'k', { args: { a: [1] } })), []);
    assert.deepEqual(routing.unbind(binding('nowhere', 'q', 'k')), []);
    assert.deepEqual(routing.unbind(e2e('x', 'nowhere')), []);
    assert.equal(routing.bindings().length, 2);
    routing.unbind(binding('x', 'q', 'k', { args: { a: [1n, Buffer.from('b')] } }));
    assert.deepEqual(
      routing.bindings().map((b) => b.arguments),
      [{}],
    );
    routing.unbind(binding('x', 'q', 'k'));
    routing.unbind(binding('x', 'q', 'k'));
    assert.deepEqual(route(routing, 'x', 'k'), []);
  });

  it('broker: bindings are listed by source, destination and kind', () => {
    const routing = table();
    routing.declareExchange(exchange('a', 'fanout'));
    routing.declareExchange(exchange('b', 'fanout'));
    routing.declareExchange(exchange('same', 'fanout'));
    routing.bind(binding('a', 'same'));
    routing.bind(e2e('a', 'same'));
    routing.bind(binding('b', 'same', 'k'));
    routing.bind(e2e('b', 'a'));
    const names = (list: Binding[]): string[] => list.map((b) => `${b.source}>${b.destinationKind}:${b.destination}`);
    assert.deepEqual(names(routing.bindings()), ['a>queue:same', 'a>exchange:same', 'b>queue:same', 'b>exchange:a']);
    assert.deepEqual(names(routing.bindings({ source: 'a' })), ['a>queue:same', 'a>exchange:same']);
    assert.deepEqual(names(routing.bindings({ destination: 'same' })), ['a>queue:same', 'b>queue:same', 'a>exchange:same']);
    assert.deepEqual(names(routing.bindings({ destination: 'same', destinationKind: 'exchange' })), ['a>exchange:same']);
    assert.deepEqual(names(routing.bindings({ source: 'b', destination: 'same' })), ['b>queue:same']);
    assert.deepEqual(names(routing.bindings({ destinationKind: 'exchange' })), ['a>exchange:same', 'b>exchange:a']);
    assert.deepEqual(routing.bindings({ source: 'nothing' }), []);
  });

  it('broker: removeQueue drops every binding to the queue and nothing else', () => {
    const routing = table();
    routing.declareExchange(exchange('x', 'fanout'));
    routing.declareExchange(exchange('y', 'direct'));
    routing.bind(binding('x', 'q'));
    routing.bind(binding('y', 'q', 'a'));
    routing.bind(binding('y', 'q', 'b'));
    routing.bind(binding('y', 'other', 'a'));
    assert.deepEqual(routing.removeQueue('q'), []);
    assert.deepEqual(routing.removeQueue('never-bound'), []);
    assert.deepEqual(
      routing.bindings().map((b) => b.destination),
      ['other'],
    );
    assert.deepEqual(route(routing, 'x'), []);
    assert.deepEqual(route(routing, 'y', 'a'), ['other']);
  });
});

describe('broker: routing table auto-delete', () => {
  it('broker: an auto-delete exchange goes with its last source binding, not before and not for bindings to it', () => {
    const routing = table();
    routing.declareExchange(exchange('auto', 'direct', { autoDelete: true }));
    routing.declareExchange(exchange('up', 'fanout'));
    routing.bind(binding('auto', 'q1', 'a'));
    routing.bind(binding('auto', 'q2', 'b'));
    routing.bind(e2e('up', 'auto'));
    assert.deepEqual(routing.unbind(binding('auto', 'q1', 'a')), []);
    assert.deepEqual(routing.unbind(e2e('up', 'auto')), []);
    assert.ok(routing.exchange('auto'));
    assert.deepEqual(routing.unbind(binding('auto', 'q2', 'b')), ['auto']);
    assert.equal(routing.exchange('auto'), undefined);
    // Never bound: stays.
    routing.declareExchange(exchange('idle', 'direct', { autoDelete: true }));
    assert.ok(routing.exchange('idle'));
  });

  it('broker: deletions cascade through exchange-to-exchange bindings, from unbind, removeQueue and deleteExchange', () => {
    // a → b → c → queue q, all auto-delete; d (not auto-delete) → c.
    const build = (): RoutingTable => {
      const routing = table();
      for (const name of ['a', 'b', 'c']) routing.declareExchange(exchange(name, 'fanout', { autoDelete: true }));
      routing.declareExchange(exchange('d', 'fanout'));
      routing.bind(e2e('a', 'b'));
      routing.bind(e2e('b', 'c'));
      routing.bind(e2e('d', 'c'));
      routing.bind(binding('c', 'q'));
      return routing;
    };
    let routing = build();
    assert.deepEqual(routing.removeQueue('q'), ['c', 'b', 'a']);
    assert.deepEqual(
      routing.exchanges().map((definition) => definition.name).filter((name) => !name.startsWith('amq.') && name !== ''),
      ['d'],
    );
    assert.deepEqual(routing.bindings(), []);

    routing = build();
    assert.deepEqual(routing.unbind(binding('c', 'q')), ['c', 'b', 'a']);

    routing = build();
    routing.declareExchange(exchange('e', 'fanout', { autoDelete: true }));
    routing.bind(e2e('e', 'c'));
    routing.bind(binding('e', 'q2'));
    // c goes; b loses its only binding and a then too; e keeps its queue binding.
    assert.deepEqual(routing.deleteExchange('c'), ['b', 'a']);
    assert.ok(routing.exchange('e'));
    assert.deepEqual(routing.bindings().map((b) => `${b.source}>${b.destination}`), ['e>q2']);
  });

  it('broker: cascades stop at cycles and self-bindings', () => {
    const routing = table();
    routing.declareExchange(exchange('a', 'fanout', { autoDelete: true }));
    routing.declareExchange(exchange('b', 'fanout', { autoDelete: true }));
    routing.bind(e2e('a', 'b'));
    routing.bind(e2e('b', 'a'));
    routing.bind(e2e('a', 'a'));
    routing.bind(binding('b', 'q'));
    assert.deepEqual(routing.unbind(binding('b', 'q')), []);
    assert.deepEqual(routing.unbind(e2e('a', 'a')), []);
    assert.deepEqual(routing.unbind(e2e('b', 'a')), ['b', 'a']);
    assert.deepEqual(routing.bindings(), []);
  });
});

describe('broker: routing table routes', () => {
  it('broker: direct, fanout, topic and headers exchanges pick their bindings', () => {
    const routing = table();
    routing.declareExchange(exchange('d', 'direct'));
    routing.declareExchange(exchange('f', 'fanout'));
    routing.declareExchange(exchange('t', 'topic'));
    routing.declareExchange(exchange('h', 'headers'));
    routing.bind(binding('d', 'q1', 'k'));
    routing.bind(binding('d', 'q2', 'K'));
    routing.bind(binding('d', 'q3', ''));
    routing.bind(binding('f', 'q1', 'ignored'));
    routing.bind(binding('f', 'q2'));
    routing.bind(binding('t', 'q1', 'stock.*.nyse'));
    routing.bind(binding('t', 'q2', 'stock.#'));
    routing.bind(binding('t', 'q3', '#.nyse'));
    routing.bind(binding('h', 'q1', 'key ignored', { args: { 'x-match': 'any', a: 1, b: 2 } }));
    routing.bind(binding('h', 'q2', '', { args: { a: 1, b: 2 } }));
    assert.deepEqual(route(routing, 'd', 'k'), ['q1']);
    assert.deepEqual(route(routing, 'd', ''), ['q3']);
    assert.deepEqual(route(routing, 'd', 'k2'), []);
    assert.deepEqual(route(routing, 'f', 'anything'), ['q1', 'q2']);
    assert.deepEqual(route(routing, 't', 'stock.usd.nyse').sort(), ['q1', 'q2', 'q3']);
    assert.deepEqual(route(routing, 't', 'stock'), ['q2']);
    assert.deepEqual(route(routing, 't', 'bond.nyse'), ['q3']);
    assert.deepEqual(route(routing, 'h', '', { a: 1 }), ['q1']);
    assert.deepEqual(route(routing, 'h', '', { a: 1, b: 2n }), ['q1', 'q2']);
    assert.deepEqual(route(routing, 'h', 'x', null), []);
  });

  it('broker: a queue reached by several bindings or paths is listed once, in first-reached order', () => {
    const routing = table(['q0']);
    routing.declareExchange(exchange('t', 'topic'));
    routing.declareExchange(exchange('f', 'fanout'));
    routing.bind(binding('t', 'q1', 'a.*'));
    routing.bind(binding('t', 'q1', 'a.#'));
    routing.bind(binding('t', 'q1', '#.#'));
    routing.bind(binding('t', 'q2', 'a.#.#'));
    routing.bind(binding('f', 'q2'));
    routing.bind(e2e('f', 't'));
    routing.bind(binding('f', 'q3'));
    assert.deepEqual(route(routing, 'f', 'a.b'), ['q2', 'q3', 'q1']);
    assert.deepEqual(route(routing, 't', 'a.b.c').sort(), ['q1', 'q2']);
  });

  it('broker: exchange-to-exchange bindings are followed transitively with their own keys; cycles end', () => {
    const routing = table();
    routing.declareExchange(exchange('entry', 'topic'));
    routing.declareExchange(exchange('mid', 'direct'));
    routing.declareExchange(exchange('loop', 'fanout'));
    routing.bind(e2e('entry', 'mid', 'orders.#'));
    routing.bind(binding('mid', 'q-created', 'orders.created'));
    routing.bind(e2e('mid', 'loop', 'orders.created'));
    routing.bind(e2e('loop', 'entry'));
    routing.bind(e2e('loop', 'loop'));
    routing.bind(binding('loop', 'q-all'));
    assert.deepEqual(route(routing, 'entry', 'orders.created'), ['q-created', 'q-all']);
    assert.deepEqual(route(routing, 'entry', 'orders.paid'), []);
    assert.deepEqual(route(routing, 'loop', 'x'), ['q-all']);
    assert.deepEqual(route(routing, 'mid', 'orders.created'), ['q-created', 'q-all']);
  });

  it('broker: an exchange that routes to no queue passes the message to its alternate exchange, along chains', () => {
    const routing = table();
    routing.declareExchange(exchange('main', 'direct', { alternateExchange: 'ae1' }));
    routing.declareExchange(exchange('ae1', 'direct', { alternateExchange: 'ae2' }));
    routing.declareExchange(exchange('ae2', 'fanout', { internal: true }));
    routing.bind(binding('main', 'routed', 'known'));
    routing.bind(binding('ae1', 'from-ae1', 'special'));
    routing.bind(binding('ae2', 'unrouted'));
    assert.deepEqual(route(routing, 'main', 'known'), ['routed']);
    assert.deepEqual(route(routing, 'main', 'special'), ['from-ae1']);
    assert.deepEqual(route(routing, 'main', 'other'), ['unrouted']);
    // The alternate of an alternate is not used when the first one routes.
    assert.deepEqual(route(routing, 'ae1', 'special'), ['from-ae1']);
    // A missing alternate exchange is skipped.
    routing.declareExchange(exchange('lonely', 'direct', { alternateExchange: 'nonexistent' }));
    assert.deepEqual(route(routing, 'lonely', 'k'), []);
    // An alternate that routes nowhere leaves the message unroutable.
    routing.unbind(binding('ae2', 'unrouted'));
    assert.deepEqual(route(routing, 'main', 'other'), []);
  });

  it('broker: alternate-exchange cycles end; an alternate already tried is not tried again', () => {
    const routing = table();
    routing.declareExchange(exchange('a', 'direct', { alternateExchange: 'b' }));
    routing.declareExchange(exchange('b', 'direct', { alternateExchange: 'a' }));
    routing.declareExchange(exchange('self', 'direct', { alternateExchange: 'self' }));
    routing.bind(binding('b', 'qb', 'kb'));
    assert.deepEqual(route(routing, 'a', 'none'), []);
    assert.deepEqual(route(routing, 'a', 'kb'), ['qb']);
    assert.deepEqual(route(routing, 'b', 'none'), []);
    assert.deepEqual(route(routing, 'self', 'none'), []);
  });

  it('broker: the alternate exchange applies after exchange bindings are followed, and only if they reach no queue', () => {
    const routing = table();
    routing.declareExchange(exchange('front', 'topic', { alternateExchange: 'front-ae' }));
    routing.declareExchange(exchange('front-ae', 'fanout'));
    routing.declareExchange(exchange('inner', 'direct'));
    routing.declareExchange(exchange('inner-with-ae', 'direct', { alternateExchange: 'inner-ae' }));
    routing.declareExchange(exchange('inner-ae', 'fanout'));
    routing.bind(binding('front-ae', 'q-front-ae'));
    routing.bind(binding('inner-ae', 'q-inner-ae'));
    routing.bind(e2e('front', 'inner', 'a.*'));
    routing.bind(e2e('front', 'inner-with-ae', 'b.*'));
    routing.bind(binding('inner', 'q-inner', 'a.1'));
    // The bound exchange routes: no alternate.
    assert.deepEqual(route(routing, 'front', 'a.1'), ['q-inner']);
    // The bound exchange matched but reached no queue: the front's alternate takes it.
    assert.deepEqual(route(routing, 'front', 'a.2'), ['q-front-ae']);
    // The bound exchange's own alternate reached a queue, so the front routed.
    assert.deepEqual(route(routing, 'front', 'b.2'), ['q-inner-ae']);
    // Nothing matched at all.
    assert.deepEqual(route(routing, 'front', 'c'), ['q-front-ae']);
  });

  it('broker: in a cycle, an exchange that reached a queue counts as routed for the exchanges leading back to it', () => {
    const routing = table();
    routing.declareExchange(exchange('x', 'fanout'));
    routing.declareExchange(exchange('y', 'fanout', { alternateExchange: 'y-ae' }));
    routing.declareExchange(exchange('y-ae', 'fanout'));
    routing.bind(e2e('x', 'y'));
    routing.bind(binding('x', 'q'));
    routing.bind(e2e('y', 'x'));
    routing.bind(binding('y-ae', 'q-y-ae'));
    assert.deepEqual(route(routing, 'x'), ['q']);
    // From y: x reaches q, so y routed through x and its alternate is not used.
    assert.deepEqual(route(routing, 'y'), ['q']);
    // Also when x reaches its queue through another exchange before y is visited.
    routing.declareExchange(exchange('x2', 'fanout'));
    routing.declareExchange(exchange('z', 'fanout'));
    routing.bind(e2e('x2', 'z'));
    routing.bind(e2e('x2', 'y'));
    routing.bind(binding('z', 'q-z'));
    routing.unbind(e2e('y', 'x'));
    routing.bind(e2e('y', 'x2'));
    assert.deepEqual(route(routing, 'x2'), ['q-z']);
  });

  it('broker: internal exchanges refuse direct publishes but are reached through bindings, alternates and viaBinding', () => {
    const routing = table();
    routing.declareExchange(exchange('inside', 'fanout', { internal: true }));
    routing.declareExchange(exchange('front', 'fanout'));
    routing.declareExchange(exchange('lost', 'direct', { alternateExchange: 'inside' }));
    routing.bind(binding('inside', 'q'));
    routing.bind(e2e('front', 'inside'));
    assert.throws(() => routing.route('inside', '', null), refused('ACCESS_REFUSED', "cannot publish to internal exchange 'inside'"));
    assert.throws(() => routing.route('inside', '', null, { viaBinding: false }), refused('ACCESS_REFUSED'));
    assert.deepEqual(routing.route('inside', '', null, { viaBinding: true }).queues, ['q']);
    assert.deepEqual(route(routing, 'front'), ['q']);
    assert.deepEqual(route(routing, 'lost', 'k'), ['q']);
    assert.throws(() => routing.route('absent', '', null), refused('NOT_FOUND', "no exchange 'absent'"));
  });

  it('broker: the default exchange can be an alternate exchange, routing by the key to an existing queue', () => {
    const routing = table(['k']);
    routing.declareExchange(exchange('x', 'direct', { alternateExchange: '' }));
    routing.bind(binding('x', 'k', 'other'));
    assert.deepEqual(route(routing, 'x', 'k'), ['k']);
    assert.deepEqual(route(routing, 'x', 'other'), ['k']);
    assert.deepEqual(route(routing, 'x', 'missing'), []);
  });

  it('broker: routes leave no state behind: the same route twice gives the same answer', () => {
    const routing = table();
    routing.declareExchange(exchange('t', 'topic', { alternateExchange: 'ae' }));
    routing.declareExchange(exchange('ae', 'fanout'));
    routing.declareExchange(exchange('f', 'fanout'));
    routing.bind(e2e('t', 'f', 'a.#'));
    routing.bind(binding('f', 'q1'));
    routing.bind(binding('t', 'q2', '*.b'));
    routing.bind(binding('ae', 'q3'));
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(route(routing, 't', 'a.b'), ['q2', 'q1']);
      assert.deepEqual(route(routing, 't', 'z'), ['q3']);
    }
  });
});
