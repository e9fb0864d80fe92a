import { defaultExchangeRefused, invalidArgument, noExchange, RoutingError } from './errors.js';
import { defaultExchange, hasReservedPrefix, isValidExchangeName, predeclaredExchanges } from './exchange-names.js';
import { checkBindingFor, createMatcher, type Matcher } from './matchers.js';
import {
  type Binding,
  type BindingFilter,
  EXCHANGE_TYPES,
  type ExchangeDefinition,
  type RouteOptions,
  type RouteResult,
  type RoutingTableOptions,
} from './types.js';
import { canonicalValue, checkArguments, describeValue, frozenCopy, textOf } from './values.js';

/**
 * Route marks: each route takes a fresh epoch, and a queue or exchange stamped with it has been reached in this
 * route. Stamping objects the table already holds deduplicates queues and stops cycles without a Set per route.
 */
class QueueTarget {
  mark = 0;
  readonly incoming = new Set<BindingRecord>();
  constructor(readonly name: string) {}
}

class ExchangeNode {
  visited = 0;
  /** Equal to the epoch once the exchange has routed the current message to some queue. */
  routed = 0;
  /** Its bindings as a source, by bindingId. */
  readonly outgoing = new Map<string, BindingRecord>();
  readonly incoming = new Set<BindingRecord>();
  readonly matcher: Matcher<BindingRecord>;

  constructor(readonly definition: ExchangeDefinition) {
    this.matcher = createMatcher(definition.type);
  }
}

interface BindingRecord {
  readonly binding: Binding;
  readonly id: string;
  readonly source: ExchangeNode;
  /** Exactly one of `queue` and `exchange` is set. */
  readonly queue: QueueTarget | null;
  readonly exchange: ExchangeNode | null;
}

/** Bindings of one source are the same when destination, key and arguments are (RabbitMQ's identity). */
function bindingId(binding: Binding): string {
  return `${binding.destinationKind}\0${binding.destination}\0${binding.routingKey}\0${canonicalValue(binding.arguments)}`;
}

const ALTERNATE_EXCHANGE_ARGUMENT = 'alternate-exchange';

/**
 * The exchanges and bindings of one virtual host, and routing over them; the rules are described in index.ts.
 * Every method is synchronous and either completes or throws before changing anything.
 */
export class RoutingTable {
  private readonly nodes = new Map<string, ExchangeNode>();
  private readonly queues = new Map<string, QueueTarget>();
  private readonly queueExists: (name: string) => boolean;
  private epoch = 0;
  /** Matched bindings of the exchanges being visited, a stack segment per exchange, reused across routes. */
  private readonly scratch: BindingRecord[] = [];
  /** Bindings of headers exchanges: while there are none, routing never reads a message's headers. */
  private headersBindings = 0;

  constructor(options: RoutingTableOptions = {}) {
    this.queueExists = options.queueExists ?? (() => true);
    for (const definition of [defaultExchange(), ...predeclaredExchanges()]) this.nodes.set(definition.name, new ExchangeNode(frozenCopy(definition)));
  }

  /** 'exists' when an equivalent exchange is there already; see index.ts for what is refused. */
  declareExchange(definition: ExchangeDefinition): 'created' | 'exists' {
    const checked = checkDefinition(definition);
    if (checked.name === '') throw defaultExchangeRefused();
    const existing = this.nodes.get(checked.name);
    if (existing !== undefined) {
      assertEquivalent(existing.definition, checked);
      return 'exists';
    }
    if (hasReservedPrefix(checked.name)) throw new RoutingError('ACCESS_REFUSED', `exchange name '${checked.name}' contains reserved prefix 'amq.*'`);
    if (!isValidExchangeName(checked.name)) {
      throw new RoutingError('PRECONDITION_FAILED', `exchange name '${checked.name}' is invalid: at most 127 letters, digits, '-', '_', '.' or ':'`);
    }
    this.nodes.set(checked.name, new ExchangeNode(frozenCopy(checked)));
    return 'created';
  }

  /** Whether any headers exchange has a binding, i.e. whether `route` may need the message's headers. */
  get readsHeaders(): boolean {
    return this.headersBindings > 0;
  }

  exchange(name: string): ExchangeDefinition | undefined {
    return this.nodes.get(name)?.definition;
  }

  exchanges(): ExchangeDefinition[] {
    return Array.from(this.nodes.values(), (node) => node.definition);
  }

  /**
   * Deletes the exchange and every binding it is the source or destination of. Returns the auto-delete exchanges
   * deleted as a consequence (they lost their last binding), not `name` itself.
   */
  deleteExchange(name: string, options: { ifUnused?: boolean } = {}): string[] {
    if (name === '') throw defaultExchangeRefused();
    if (hasReservedPrefix(name)) throw new RoutingError('ACCESS_REFUSED', `deletion of system exchange '${name}' not allowed`);
    const node = this.nodes.get(name);
    if (node === undefined) throw noExchange(name);
    if (options.ifUnused === true && node.outgoing.size > 0) throw new RoutingError('PRECONDITION_FAILED', `exchange '${name}' in use`);
    const orphaned: ExchangeNode[] = [];
    this.drop(node, orphaned);
    return this.autoDelete(orphaned);
  }

  /** Adds the binding unless it exists. The queue a binding names is not checked: that is the caller's to know. */
  bind(binding: Binding): void {
    checkBinding(binding);
    refuseDefaultExchange(binding);
    const source = this.nodes.get(binding.source);
    if (source === undefined) throw noExchange(binding.source);
    let exchange: ExchangeNode | null = null;
    if (binding.destinationKind === 'exchange') {
      exchange = this.nodes.get(binding.destination) ?? null;
      if (exchange === null) throw noExchange(binding.destination);
    }
    checkBindingFor(source.definition.type, binding);
    const id = bindingId(binding);
    if (source.outgoing.has(id)) return;
    let queue: QueueTarget | null = null;
    if (exchange === null) {
      queue = this.queues.get(binding.destination) ?? null;
      if (queue === null) this.queues.set(binding.destination, (queue = new QueueTarget(binding.destination)));
    }
    const copy = frozenCopy({
      source: binding.source,
      destination: binding.destination,
      destinationKind: binding.destinationKind,
      routingKey: binding.routingKey,
      arguments: binding.arguments,
    });
    const record: BindingRecord = { binding: copy, id, source, queue, exchange };
    source.outgoing.set(id, record);
    source.matcher.add(record);
    if (source.definition.type === 'headers') this.headersBindings++;
    (queue ?? exchange!).incoming.add(record);
  }

  /**
   * Removes the binding; one that does not exist (or whose exchanges do not) is no error, as in RabbitMQ. Returns the
   * auto-delete exchanges deleted as a consequence.
   */
  unbind(binding: Binding): string[] {
    checkBinding(binding);
    refuseDefaultExchange(binding);
    const source = this.nodes.get(binding.source);
    const record = source?.outgoing.get(bindingId(binding));
    if (record === undefined) return [];
    this.detach(record);
    return this.autoDelete([record.source]);
  }

  bindings(filter: BindingFilter = {}): Binding[] {
    let records: Iterable<BindingRecord>;
    if (filter.source !== undefined) {
      records = this.nodes.get(filter.source)?.outgoing.values() ?? [];
    } else if (filter.destination !== undefined) {
      const toQueue = filter.destinationKind === 'exchange' ? undefined : this.queues.get(filter.destination)?.incoming;
      const toExchange = filter.destinationKind === 'queue' ? undefined : this.nodes.get(filter.destination)?.incoming;
      records = [...(toQueue ?? []), ...(toExchange ?? [])];
    } else {
      records = Array.from(this.nodes.values(), (node) => [...node.outgoing.values()]).flat();
    }
    const result: Binding[] = [];
    for (const { binding } of records) {
      if (filter.source !== undefined && binding.source !== filter.source) continue;
      if (filter.destination !== undefined && binding.destination !== filter.destination) continue;
      if (filter.destinationKind !== undefined && binding.destinationKind !== filter.destinationKind) continue;
      result.push(binding);
    }
    return result;
  }

  /** Drops every binding to the queue (it was deleted); returns the auto-delete exchanges deleted as a consequence. */
  removeQueue(queue: string): string[] {
    const target = this.queues.get(queue);
    if (target === undefined) return [];
    const orphaned: ExchangeNode[] = [];
    for (const record of [...target.incoming]) {
      this.detach(record);
      orphaned.push(record.source);
    }
    return this.autoDelete(orphaned);
  }

  /**
   * The queues a message published to `exchange` goes to (see index.ts). NOT_FOUND for a missing exchange;
   * ACCESS_REFUSED for an internal one unless `options.viaBinding`. An empty result is the caller's to handle
   * (mandatory returns, dropping).
   */
  route(exchange: string, routingKey: string, headers: ReadonlyMap<string, unknown> | null, options?: RouteOptions): RouteResult {
    const node = this.nodes.get(exchange);
    if (node === undefined) throw noExchange(exchange);
    if (node.definition.internal && options?.viaBinding !== true) throw new RoutingError('ACCESS_REFUSED', `cannot publish to internal exchange '${exchange}'`);
    // The default exchange (the commonest publish) reaches at most the queue named by the key: a list of its exact
    // size, rather than one grown by push (which reserves room for 17).
    if (node.definition.name === '') return { queues: this.queueExists(routingKey) ? [routingKey] : [] };
    const queues: string[] = [];
    this.epoch++;
    this.visit(node, routingKey, headers, queues);
    return { queues };
  }

  /**
   * Routes through one exchange and on through its matching exchange bindings, depth first; then, if nothing it led
   * to reached a queue, through its alternate exchange. Returns whether the message reached a queue from here.
   * An exchange counts as routed as soon as it has reached a queue, and queue bindings are taken before exchange
   * bindings, so that a cycle leading back to it sees it routed whenever it can.
   */
  private visit(node: ExchangeNode, routingKey: string, headers: ReadonlyMap<string, unknown> | null, queues: string[]): boolean {
    const epoch = this.epoch;
    node.visited = epoch;
    let routed = false;
    if (node.definition.name === '') {
      // The default exchange binds every queue implicitly, under its name.
      if (this.queueExists(routingKey)) {
        routed = true;
        const target = this.queues.get(routingKey);
        if (target === undefined || target.mark !== epoch) {
          if (target !== undefined) target.mark = epoch;
          queues.push(routingKey);
        }
      }
    } else {
      const scratch = this.scratch;
      const start = scratch.length;
      node.matcher.collect(routingKey, headers, scratch);
      const end = scratch.length;
      for (let index = start; index < end; index++) {
        const queue = scratch[index]!.queue;
        if (queue === null) continue;
        routed = true;
        if (queue.mark !== epoch) {
          queue.mark = epoch;
          queues.push(queue.name);
        }
      }
      if (routed) node.routed = epoch;
      for (let index = start; index < end; index++) {
        const next = scratch[index]!.exchange;
        if (next !== null && this.reach(next, routingKey, headers, queues)) {
          routed = true;
          node.routed = epoch;
        }
      }
      // Popping is cheaper than setting `length`, a runtime call in V8.
      while (scratch.length > start) scratch.pop();
    }
    const alternate = node.definition.alternateExchange;
    if (!routed && alternate !== null) {
      // A missing alternate exchange is no error: RabbitMQ only logs it.
      const alternateNode = this.nodes.get(alternate);
      if (alternateNode !== undefined) routed = this.reach(alternateNode, routingKey, headers, queues);
    }
    if (routed) node.routed = epoch;
    return routed;
  }

  /** An exchange visited earlier in this route is not visited again; it counts as routed if it was. */
  private reach(node: ExchangeNode, routingKey: string, headers: ReadonlyMap<string, unknown> | null, queues: string[]): boolean {
    if (node.visited === this.epoch) return node.routed === this.epoch;
    return this.visit(node, routingKey, headers, queues);
  }

  private detach(record: BindingRecord): void {
    record.source.outgoing.delete(record.id);
    if (record.source.definition.type === 'headers') this.headersBindings--;
    record.source.matcher.remove(record);
    if (record.queue !== null) {
      record.queue.incoming.delete(record);
      if (record.queue.incoming.size === 0) this.queues.delete(record.queue.name);
    } else {
      record.exchange!.incoming.delete(record);
    }
  }

  /** Removes the exchange and its bindings both ways; sources that lost a binding are added to `orphaned`. */
  private drop(node: ExchangeNode, orphaned: ExchangeNode[]): void {
    this.nodes.delete(node.definition.name);
    for (const record of [...node.outgoing.values()]) this.detach(record);
    for (const record of [...node.incoming]) {
      this.detach(record);
      orphaned.push(record.source);
    }
  }

  /** Deletes the auto-delete exchanges among `orphaned` that have no bindings left as a source, transitively. */
  private autoDelete(orphaned: ExchangeNode[]): string[] {
    const deleted: string[] = [];
    for (let index = 0; index < orphaned.length; index++) {
      const node = orphaned[index]!;
      const { name, autoDelete } = node.definition;
      if (!autoDelete || node.outgoing.size > 0 || this.nodes.get(name) !== node) continue;
      this.drop(node, orphaned);
      deleted.push(name);
    }
    return deleted;
  }
}

function refuseDefaultExchange(binding: Binding): void {
  if (binding.source === '' || (binding.destinationKind === 'exchange' && binding.destination === '')) throw defaultExchangeRefused();
}

function checkBinding(binding: Binding): void {
  if (typeof binding !== 'object' || binding === null) throw invalidArgument('a binding must be an object');
  for (const field of ['source', 'destination', 'routingKey'] as const) {
    if (typeof binding[field] !== 'string') throw invalidArgument(`binding ${field} must be a string`);
  }
  if (binding.destinationKind !== 'queue' && binding.destinationKind !== 'exchange') throw invalidArgument("binding destinationKind must be 'queue' or 'exchange'");
  checkArguments(binding.arguments, 'binding arguments');
}

/** The definition's own fields only, checked; its 'alternate-exchange' argument must agree with alternateExchange. */
function checkDefinition(definition: ExchangeDefinition): ExchangeDefinition {
  if (typeof definition !== 'object' || definition === null) throw invalidArgument('an exchange definition must be an object');
  const { name, type, durable, autoDelete, internal, alternateExchange } = definition;
  if (typeof name !== 'string') throw invalidArgument('exchange name must be a string');
  if (!EXCHANGE_TYPES.includes(type)) throw invalidArgument(`unknown exchange type ${describeValue(type)}`);
  for (const [field, value] of [['durable', durable], ['autoDelete', autoDelete], ['internal', internal]] as const) {
    if (typeof value !== 'boolean') throw invalidArgument(`exchange ${field} must be a boolean`);
  }
  if (alternateExchange !== null && typeof alternateExchange !== 'string') throw invalidArgument('exchange alternateExchange must be a string or null');
  checkArguments(definition.arguments, 'exchange arguments');
  const argument = definition.arguments[ALTERNATE_EXCHANGE_ARGUMENT];
  if (argument !== undefined) {
    const text = textOf(argument);
    if (text === null) throw new RoutingError('PRECONDITION_FAILED', `invalid type for arg '${ALTERNATE_EXCHANGE_ARGUMENT}' in exchange '${name}': expected a string`);
    if (text !== alternateExchange) {
      throw invalidArgument(`exchange '${name}': alternateExchange ${describeValue(alternateExchange)} disagrees with its '${ALTERNATE_EXCHANGE_ARGUMENT}' argument '${text}'`);
    }
  }
  return { name, type, durable, autoDelete, internal, alternateExchange, arguments: definition.arguments };
}

/**
 * RabbitMQ's equivalence check, names and wording included, over every property and argument. (RabbitMQ compares
 * only the 'alternate-exchange' argument; Weir compares them all, so a redeclaration never silently keeps arguments
 * that differ.) The alternate exchange is compared once, as the property: the argument only carries it.
 */
function assertEquivalent(current: ExchangeDefinition, requested: ExchangeDefinition): void {
  const fail = (property: string, received: string, existing: string): never => {
    throw new RoutingError('PRECONDITION_FAILED', `inequivalent arg '${property}' for exchange '${current.name}': received ${received} but current is ${existing}`);
  };
  if (requested.type !== current.type) fail('type', `'${requested.type}'`, `'${current.type}'`);
  if (requested.durable !== current.durable) fail('durable', `'${requested.durable}'`, `'${current.durable}'`);
  if (requested.autoDelete !== current.autoDelete) fail('auto_delete', `'${requested.autoDelete}'`, `'${current.autoDelete}'`);
  if (requested.internal !== current.internal) fail('internal', `'${requested.internal}'`, `'${current.internal}'`);
  // 'none' for an absent value, as RabbitMQ writes it.
  const describeAlternate = (name: string | null): string => (name === null ? 'none' : `'${name}'`);
  if (requested.alternateExchange !== current.alternateExchange) {
    fail(ALTERNATE_EXCHANGE_ARGUMENT, describeAlternate(requested.alternateExchange), describeAlternate(current.alternateExchange));
  }
  const names = new Set([...Object.keys(current.arguments), ...Object.keys(requested.arguments)]);
  names.delete(ALTERNATE_EXCHANGE_ARGUMENT);
  for (const name of names) {
    const describeIn = (args: Record<string, unknown>): string => (Object.hasOwn(args, name) ? describeValue(args[name]) : 'none');
    const samePresence = Object.hasOwn(requested.arguments, name) === Object.hasOwn(current.arguments, name);
    if (!samePresence || canonicalValue(requested.arguments[name]) !== canonicalValue(current.arguments[name])) {
      fail(name, describeIn(requested.arguments), describeIn(current.arguments));
    }
  }
}
