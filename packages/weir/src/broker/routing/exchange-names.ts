import type { ExchangeDefinition, ExchangeType } from './types.js';

/**
 * AMQP 0-9-1's exchange-name domain: at most 127 characters, each a letter, digit, '-', '_', '.' or ':'. The spec
 * answers a name outside it with precondition-failed. RabbitMQ itself does not check the characters (it takes any
 * name up to 255 bytes); Weir follows the spec, so a name RabbitMQ accepts may be refused here.
 */
const NAME_PATTERN = /^[A-Za-z0-9\-_.:]{0,127}$/;

export function isValidExchangeName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** The 'amq.' prefix is kept for the exchanges the broker declares itself. */
export function hasReservedPrefix(name: string): boolean {
  return name.startsWith('amq.');
}

/** The default exchange and the predeclared 'amq.' ones: always present, never exported as definitions. */
export function isSystemExchange(name: string): boolean {
  return name === '' || hasReservedPrefix(name);
}

function systemExchange(name: string, type: ExchangeType): ExchangeDefinition {
  return { name, type, durable: true, autoDelete: false, internal: false, alternateExchange: null, arguments: {} };
}

export function defaultExchange(): ExchangeDefinition {
  return systemExchange('', 'direct');
}

/** The exchanges every virtual host has from the start, as in RabbitMQ. */
export function predeclaredExchanges(): ExchangeDefinition[] {
  return [
    systemExchange('amq.direct', 'direct'),
    systemExchange('amq.fanout', 'fanout'),
    systemExchange('amq.topic', 'topic'),
    systemExchange('amq.headers', 'headers'),
    systemExchange('amq.match', 'headers'),
  ];
}
