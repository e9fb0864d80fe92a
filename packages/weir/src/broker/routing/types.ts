/** Public shapes of the routing table; see index.ts for the rules it applies. */
export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

export const EXCHANGE_TYPES: readonly ExchangeType[] = ['direct', 'fanout', 'topic', 'headers'];

export interface ExchangeDefinition {
  /** '' is the default exchange. */
  name: string;
  type: ExchangeType;
  durable: boolean;
  /** Deleted when its last binding as a source is removed (never merely for having none). */
  autoDelete: boolean;
  /** Cannot be published to directly, only reached through bindings, alternate exchanges or `viaBinding` routes. */
  internal: boolean;
  /**
   * Where messages go that this exchange routes to no queue. When `arguments` also holds 'alternate-exchange' (as
   * AMQP clients send it), the two must agree; it may also be set without the argument (say, from a policy).
   */
  alternateExchange: string | null;
  /** Plain JS values (see values.ts), kept for definitions export. */
  arguments: Record<string, unknown>;
}

export type DestinationKind = 'queue' | 'exchange';

export interface Binding {
  /** The exchange messages come from. */
  source: string;
  destination: string;
  destinationKind: DestinationKind;
  routingKey: string;
  /** Plain JS values; a headers exchange reads 'x-match' and the header values to match from them. */
  arguments: Record<string, unknown>;
}

export interface BindingFilter {
  source?: string;
  destination?: string;
  destinationKind?: DestinationKind;
}

export interface RouteResult {
  /** Distinct queue names, in the order routing first reached them. */
  queues: string[];
}

export interface RouteOptions {
  /**
   * The broker itself is passing the message on (dead-lettering, a shovel, a federation link), not a client
   * publishing: internal exchanges accept it.
   */
  viaBinding?: boolean;
}

export interface RoutingTableOptions {
  /** Whether a queue exists, for the default exchange; without it every routing key is taken to name a queue. */
  queueExists?: (name: string) => boolean;
}
