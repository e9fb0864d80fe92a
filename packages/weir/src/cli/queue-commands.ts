import type { Command } from 'commander';
import type { PeekedMessage, QueueConsumerOptions, QueueMessage, SharedGroupDescription } from 'weir-client';
import { clientCommand, type CommonOptions, nextWithin, printMessage, truncate, withClient } from './client-commands.js';
import { bytesToText, formatDuration, printJson, printTable } from './output.js';
import { integer } from './program.js';

/**
 * Work queues (shared and key_shared groups) on the command line: `weir queue peek|describe`, and the work-queue side
 * of `weir consume` (`--mode shared|key_shared`), which settles each message it prints.
 */

export interface ConsumeFlags {
  group?: string;
  mode?: 'stream' | 'broadcast' | 'shared' | 'key_shared';
  from?: 'earliest' | 'latest' | number | Date;
  max?: number;
  count?: number;
  exitWhenIdle?: number;
  prefetch?: number;
  ack?: boolean;
  nack?: boolean;
  reject?: boolean;
  tag?: string;
  sql?: string;
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('inspect work queues (shared and key_shared groups)');

  clientCommand(queue, 'peek', 'show ready messages in delivery order, without consuming them')
    .argument('<topic>', 'topic name')
    .requiredOption('-g, --group <group>', 'the shared group')
    .option('-n, --limit <n>', 'most messages to show', integer('--limit', 1), 20)
    .action(async (topic: string, options: CommonOptions & { group: string; limit: number }) => {
      const messages = await withClient(options, (client) => client.admin().peek(options.group, topic, options.limit));
      if (options.json) return printJson(messages.map(peekedJson));
      if (messages.length === 0) {
        process.stderr.write(`no ready message in group ${options.group} on ${topic}\n`);
        return;
      }
      printTable(
        ['partition', 'offset', 'deliveries', 'id', 'key', 'tag', 'body'],
        messages.map((message) => [message.partition, message.offset, message.deliveryCount, message.id, bytesToText(message.key) ?? '', message.tag ?? '', truncate(bytesToText(message.body) ?? '', 40)]),
      );
    });

  clientCommand(queue, 'describe', 'mode, settings, filter, message counts and consumers of a shared group')
    .argument('<group>', 'group name')
    .action(async (group: string, options: CommonOptions) => {
      const description = await withClient(options, (client) => client.admin().describeSharedGroup(group));
      if (options.json) return printJson(description);
      printDescription(description);
    });
}

function peekedJson(message: PeekedMessage): Record<string, unknown> {
  return {
    partition: message.partition,
    offset: message.offset,
    deliveries: message.deliveryCount,
    id: message.id,
    key: bytesToText(message.key),
    tag: message.tag,
    headers: Object.fromEntries(Object.entries(message.headers).map(([name, value]) => [name, typeof value === 'string' ? value : bytesToText(value)])),
    timestamp: new Date(message.timestamp).toISOString(),
    body: bytesToText(message.body),
  };
}

function printDescription(description: SharedGroupDescription): void {
  const { settings, filter } = description;
  const filterText = filter === null ? 'no filter' : filter.tag !== undefined ? `tag filter "${filter.tag}"` : `sql filter "${filter.sql}"`;
  process.stdout.write(`group ${description.group}: ${description.mode}, ${filterText}\n`);
  process.stdout.write(
    `settings: ack timeout ${formatDuration(settings.ackTimeoutMs)}, max deliveries ${settings.maxDeliveries || 'unlimited'}, backoff ${formatDuration(settings.backoffInitialMs)}–${formatDuration(settings.backoffMaxMs)}, ` +
      `dead letters to ${settings.deadLetterTopic ?? `${description.group}.dlq`}${settings.deadLetterExpired ? ' (expired too)' : ''}, ` +
      `${settings.messageTtlMs === null || settings.messageTtlMs === undefined ? '' : `message TTL ${formatDuration(settings.messageTtlMs)}, `}` +
      `max length ${settings.maxLength ?? 'unlimited'}, max bytes ${settings.maxBytes ?? 'unlimited'} (${settings.overflow}), read ahead ${settings.readAhead}, start ${settings.start}\n`,
  );
  printTable(
    ['topic', 'ready', 'unread', 'in flight', 'waiting', 'consumers'],
    description.topics.map((topic) => [topic.topic, topic.ready, topic.unread, topic.inflight, topic.waiting, topic.consumers.length]),
  );
  const consumers = description.topics.flatMap((topic) => topic.consumers.map((consumer) => ({ topic: topic.topic, ...consumer })));
  if (consumers.length > 0) {
    printTable(
      ['topic', 'consumer', 'client', 'host', 'prefetch', 'in flight'],
      consumers.map((consumer) => [consumer.topic, consumer.consumerId, consumer.clientId, consumer.host, consumer.prefetch || 'unlimited', consumer.inflight]),
    );
  }
}

/** `weir consume --mode shared|key_shared`: prints each message and settles it (ack unless --nack or --reject). */
export async function consumeQueue(topic: string, options: CommonOptions & ConsumeFlags, command: Command): Promise<void> {
  if (options.group === undefined) command.error(`error: --mode ${options.mode} needs --group <group> (the work queue to consume)`, { exitCode: 2 });
  if (options.from !== undefined && options.from !== 'earliest' && options.from !== 'latest') {
    command.error('error: a work queue starts at its beginning or end (--from beginning|end, used when the group is created); it has no offsets to seek to', { exitCode: 2 });
  }
  const max = options.max ?? options.count;
  const outcome = options.reject ? 'reject' : options.nack ? 'nack' : 'ack';
  const consumerOptions: QueueConsumerOptions = {
    group: options.group!,
    mode: options.mode as 'shared' | 'key_shared',
    // No more than it will take: what it held beyond that would be redelivered with a raised delivery count.
    prefetch: options.prefetch ?? Math.min(100, max ?? 100),
    ...(options.tag !== undefined ? { filter: { tag: options.tag } } : options.sql !== undefined ? { filter: { sql: options.sql } } : {}),
    ...(options.from === undefined ? {} : { settings: { start: options.from } }),
  };
  let settled = 0;
  await withClient(options, async (client) => {
    const consumer = client.queueConsumer(consumerOptions);
    await consumer.subscribe(topic);
    // Outcomes not yet awaited; `taken` counts every message, so the list can be emptied as it is awaited.
    const outcomes: Promise<unknown>[] = [];
    let taken = 0;
    try {
      while (max === undefined || taken < max) {
        const next = await nextWithin(consumer.next(), options.exitWhenIdle);
        if (next === null || next.done) break;
        const message: QueueMessage = next.value;
        printMessage(message, options.json === true);
        outcomes.push(outcome === 'ack' ? message.ack() : outcome === 'nack' ? message.nack({ error: 'nacked with weir consume --nack' }) : message.reject({ reason: 'rejected with weir consume --reject' }));
        taken++;
        // Keep memory flat on long runs: a settled outcome's promise is not kept.
        if (outcomes.length >= 10_000) await Promise.all(outcomes.splice(0));
      }
    } finally {
      // Closing at once sends the last outcomes together with the Unsubscribe, so the broker hands nothing more to
      // this consumer only to take it back (see QueueConsumer.close).
      const closed = consumer.close();
      try {
        await Promise.all(outcomes.splice(0));
        settled = taken;
      } finally {
        await closed;
      }
    }
  });
  const verb = outcome === 'ack' ? 'acknowledged' : outcome === 'nack' ? 'nacked (redelivered after the group backoff)' : 'rejected (dead-lettered)';
  process.stderr.write(`${settled} message(s) ${verb}\n`);
}
