import { type DefinitionsSection, entriesOf, invalidAt, isPlainObject, SectionOrder, stringAt } from '../access/definitions.js';
import type { VirtualHosts } from './virtual-hosts.js';

/**
 * Exchanges, queues and bindings in RabbitMQ's definitions format
 * (https://www.rabbitmq.com/docs/definitions): what survives a restart is what is exported, durable things only.
 * Import declares them (creating or checking, never deleting), exchanges first, then queues, then bindings.
 */
export function vhostDefinitions(vhosts: VirtualHosts): DefinitionsSection {
  return {
    keys: ['exchanges', 'queues', 'bindings'],
    order: SectionOrder.exchanges,
    export() {
      const exchanges: unknown[] = [];
      const queues: unknown[] = [];
      const bindings: unknown[] = [];
      for (const host of vhosts.list()) {
        for (const exchange of host.routing.exchanges()) {
          if (exchange.name === '' || exchange.name.startsWith('amq.') || !exchange.durable) continue;
          exchanges.push({
            name: exchange.name,
            vhost: host.name,
            type: host.delayedExchanges.has(exchange.name) ? 'x-delayed-message' : exchange.type,
            durable: exchange.durable,
            auto_delete: exchange.autoDelete,
            internal: exchange.internal,
            arguments: exchange.arguments,
          });
        }
        for (const queue of host.queues.values()) {
          const definition = queue.definition;
          if (!definition.durable || definition.exclusive) continue;
          queues.push({ name: definition.name, vhost: host.name, durable: true, auto_delete: definition.autoDelete, arguments: definition.arguments });
        }
        for (const binding of host.routing.bindings()) {
          if (binding.source === '') continue;
          const destinationDurable = binding.destinationKind === 'queue' ? host.queues.get(binding.destination)?.definition.durable : host.routing.exchange(binding.destination)?.durable;
          if (host.routing.exchange(binding.source)?.durable !== true || destinationDurable !== true) continue;
          bindings.push({
            source: binding.source,
            vhost: host.name,
            destination: binding.destination,
            destination_type: binding.destinationKind,
            routing_key: binding.routingKey,
            arguments: binding.arguments,
          });
        }
      }
      return { exchanges, queues, bindings };
    },
    validate(definitions) {
      for (const [entry, path] of entriesOf(definitions, 'exchanges')) {
        stringAt(entry, path, 'name');
        stringAt(entry, path, 'type');
        checkCommon(entry, path);
      }
      for (const [entry, path] of entriesOf(definitions, 'queues')) {
        stringAt(entry, path, 'name');
        checkCommon(entry, path);
      }
      for (const [entry, path] of entriesOf(definitions, 'bindings')) {
        for (const name of ['source', 'destination', 'routing_key']) stringAt(entry, path, name);
        const kind = entry.destination_type;
        if (kind !== 'queue' && kind !== 'exchange') throw invalidAt(`${path}.destination_type`, 'must be queue or exchange');
        checkCommon(entry, path);
      }
    },
    async import(definitions) {
      const hostOf = (entry: Record<string, unknown>, path: string) => {
        const name = typeof entry.vhost === 'string' ? entry.vhost : '/';
        const host = vhosts.get(name);
        if (host === null) throw invalidAt(`${path}.vhost`, `vhost '${name}' does not exist`);
        return host;
      };
      for (const [entry, path] of entriesOf(definitions, 'exchanges')) {
        await hostOf(entry, path).declareExchange({
          name: entry.name as string,
          type: entry.type as string,
          passive: false,
          durable: entry.durable !== false,
          autoDelete: entry.auto_delete === true,
          internal: entry.internal === true,
          arguments: (entry.arguments as Record<string, unknown> | undefined) ?? {},
        });
      }
      for (const [entry, path] of entriesOf(definitions, 'queues')) {
        await hostOf(entry, path).declareQueue({
          name: entry.name as string,
          passive: false,
          durable: entry.durable !== false,
          exclusive: false,
          autoDelete: entry.auto_delete === true,
          arguments: (entry.arguments as Record<string, unknown> | undefined) ?? {},
          connection: 'definitions',
        });
      }
      for (const [entry, path] of entriesOf(definitions, 'bindings')) {
        await hostOf(entry, path).bind({
          source: entry.source as string,
          destination: entry.destination as string,
          destinationKind: entry.destination_type as 'queue' | 'exchange',
          routingKey: entry.routing_key as string,
          arguments: (entry.arguments as Record<string, unknown> | undefined) ?? {},
        });
      }
    },
  };
}

function checkCommon(entry: Record<string, unknown>, path: string): void {
  if (entry.vhost !== undefined && typeof entry.vhost !== 'string') throw invalidAt(`${path}.vhost`, 'must be a string');
  if (entry.arguments !== undefined && !isPlainObject(entry.arguments)) throw invalidAt(`${path}.arguments`, 'must be an object');
  for (const flag of ['durable', 'auto_delete', 'internal']) {
    if (entry[flag] !== undefined && typeof entry[flag] !== 'boolean') throw invalidAt(`${path}.${flag}`, 'must be true or false');
  }
}
