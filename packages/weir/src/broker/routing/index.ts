/**
 * Exchange routing, protocol-neutral: a RoutingTable per virtual host holds exchanges and bindings and says which
 * queues a message goes to. Its rules are RabbitMQ's (AMQP 0-9-1 with RabbitMQ's extensions), so an AMQP front-end
 * maps methods straight onto it and RoutingError codes onto reply codes of the same name.
 *
 * Exchanges
 * - The default exchange '' (direct, durable) and amq.direct, amq.fanout, amq.topic, amq.headers and amq.match
 *   (headers) always exist. '' cannot be declared, deleted, bound or unbound, as source or destination
 *   (ACCESS_REFUSED); the 'amq.' ones cannot be deleted (ACCESS_REFUSED), and no new 'amq.' name can be declared
 *   (ACCESS_REFUSED).
 * - Declaring an existing exchange answers 'exists' if type, durable, autoDelete, internal, the alternate exchange
 *   and every argument are equal, else PRECONDITION_FAILED naming the first that differs. A new name must be in
 *   the AMQP exchange-name domain, else PRECONDITION_FAILED (exchange-names.ts).
 * - Deleting removes the bindings the exchange is source or destination of. ifUnused refuses (PRECONDITION_FAILED)
 *   while it is the source of a binding. A missing exchange is NOT_FOUND; RabbitMQ answers delete-ok to that, so an
 *   AMQP front-end ignores it.
 * - An auto-delete exchange is deleted when it loses its last binding as a source — through unbind, removeQueue or
 *   the deletion of a destination exchange — and that deletion can orphan further auto-delete exchanges in turn.
 *   Those calls return the names deleted this way, for the caller to forget them too (metadata, definitions).
 *
 * Bindings
 * - bind is idempotent; its source, and an exchange destination, must exist (NOT_FOUND). Queues are the caller's:
 *   the table neither checks that a bound queue exists nor notices one going away until removeQueue.
 * - unbind is idempotent too: a missing binding, or missing exchanges, are no error (as in RabbitMQ).
 * - Types: direct matches the routing key exactly; fanout matches every binding; topic as in topic-trie.ts (at most
 *   two '#' words per binding key, else PRECONDITION_FAILED); headers as in headers-rule.ts (a bad x-match is
 *   PRECONDITION_FAILED). Binding arguments of other types are kept but not used.
 *
 * Routing (`route`)
 * - The default exchange routes to the queue named by the routing key if `queueExists` says it exists.
 * - Message headers, like binding arguments, are plain JS values (values.ts), not wire-typed field values.
 * - Exchange-to-exchange bindings are followed transitively. Each exchange is visited at most once per route, so
 *   cycles end, and a queue reached along several paths is listed once, in the order first reached.
 * - Alternate exchanges, as RabbitMQ documents them: when an exchange routes a message to no queue — counting
 *   queues reached through its exchange bindings and their alternate exchanges — the message goes to its alternate
 *   exchange, whose own alternate exchange applies in turn; one already visited in this route is not tried again,
 *   and a missing one is skipped. (RabbitMQ's code tries the alternate only when the exchange matched no binding at
 *   all, so an exchange-to-exchange binding that matched but led nowhere keeps the message from the alternate there;
 *   here it does not.)
 * - Publishing to an internal exchange is ACCESS_REFUSED; `{ viaBinding: true }` is for the broker itself passing a
 *   message on (dead-lettering and the like), which may. Internal exchanges are reached through bindings and as
 *   alternate exchanges freely. A missing exchange is NOT_FOUND.
 * - An empty result means unroutable: returning mandatory messages is the caller's job.
 * - The cost of a route is that of the exchanges visited: a map lookup for direct, the bindings for fanout, the trie
 *   branches the key can take for topic, every binding's rule for headers. Nothing is allocated but the result and,
 *   for topic, the key's words.
 */
export { bindingFromJson, type BindingJson, bindingToJson, exchangeFromJson, type ExchangeJson, exchangeToJson, type JsonValue } from './definitions-json.js';
export { RoutingError, type RoutingErrorCode } from './errors.js';
export { isSystemExchange, isValidExchangeName, predeclaredExchanges } from './exchange-names.js';
export { MAX_HASH_WORDS } from './topic-trie.js';
export { RoutingTable } from './routing-table.js';
export type { Binding, BindingFilter, DestinationKind, ExchangeDefinition, ExchangeType, RouteOptions, RouteResult, RoutingTableOptions } from './types.js';
export { valuesEqual } from './values.js';
