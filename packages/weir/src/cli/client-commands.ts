import { createInterface } from 'node:readline';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ConsumedMessage, type ProducerMessage, type TopicSettings, type TraceEvent, WeirClient } from 'weir-client';
import { bytesToText, formatBytes, formatDuration, printJson, printTable } from './output.js';
import { integer, serverOption } from './program.js';
import { type ConsumeFlags, consumeQueue, registerQueueCommands } from './queue-commands.js';
import { formatTraceLine } from './trace-output.js';

export interface CommonOptions {
  server: string;
  json?: boolean;
}

/** One client per command, closed when the command ends. */
export async function withClient<T>(options: CommonOptions, work: (client: WeirClient) => Promise<T>): Promise<T> {
  const client = new WeirClient({ brokers: [options.server], clientId: 'weir-cli', retry: { retries: 3 } });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

const flushPolicy = (value: string): TopicSettings['flushPolicy'] => {
  if (!['sync', 'interval', 'none'].includes(value)) throw new InvalidArgumentError(`must be sync, interval or none, got "${value}"`);
  return value as TopicSettings['flushPolicy'];
};

function topicSettings(options: Record<string, unknown>): TopicSettings {
  const settings: TopicSettings = {};
  if (options.retentionMs !== undefined) settings.retentionMs = options.retentionMs as number;
  if (options.retentionBytes !== undefined) settings.retentionBytes = options.retentionBytes as number;
  if (options.flushPolicy !== undefined) settings.flushPolicy = options.flushPolicy as TopicSettings['flushPolicy'];
  if (options.flushIntervalMs !== undefined) settings.flushIntervalMs = options.flushIntervalMs as number;
  if (options.maxMessageBytes !== undefined) settings.maxMessageBytes = options.maxMessageBytes as number;
  return settings;
}

function withTopicSettingOptions(command: Command): Command {
  return command
    .option('--retention-ms <ms>', 'delete messages older than this (-1 keeps them)', integer('--retention-ms', -1))
    .option('--retention-bytes <bytes>', 'keep about this many bytes per partition (-1: no limit)', integer('--retention-bytes', -1))
    .option('--flush-policy <policy>', 'sync | interval | none', flushPolicy)
    .option('--flush-interval-ms <ms>', 'sync interval of the interval policy', integer('--flush-interval-ms', 1))
    .option('--max-message-bytes <bytes>', 'largest message accepted', integer('--max-message-bytes', 64));
}

export function clientCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).addOption(serverOption()).option('--json', 'print JSON instead of a table');
}

function parseHeader(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError(`a header is name=value, got "${value}"`);
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}

/** `beginning`, `end`, an offset, or an ISO-8601 time. */
function parseFrom(value: string): 'earliest' | 'latest' | number | Date {
  if (value === 'beginning' || value === 'earliest') return 'earliest';
  if (value === 'end' || value === 'latest') return 'latest';
  if (/^\d+$/.test(value)) return Number(value);
  const time = new Date(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(time.getTime())) return time;
  throw new InvalidArgumentError(`must be beginning, end, an offset or an ISO-8601 time (e.g. 2026-11-21T10:00:00Z), got "${value}"`);
}

export function registerClientCommands(program: Command): void {
  const topic = program.command('topic').description('create, list, describe, alter and delete topics');

  withTopicSettingOptions(clientCommand(topic, 'create', 'create a topic'))
    .argument('<name>', 'topic name')
    .option('-p, --partitions <n>', 'number of partitions', integer('--partitions', 1), 1)
    .action(async (name: string, options: CommonOptions & Record<string, unknown>) => {
      const created = await withClient(options, (client) => client.admin().createTopic(name, { partitions: options.partitions as number, ...topicSettings(options) }));
      if (options.json) printJson(created);
      else process.stdout.write(`created topic ${created.name} with ${created.partitions.length} partition(s)\n`);
    });

  clientCommand(topic, 'list', 'list topics').action(async (options: CommonOptions) => {
    const topics = await withClient(options, (client) => client.admin().listTopics());
    if (options.json) return printJson(topics);
    printTable(
      ['topic', 'partitions', 'messages', 'size', 'retention', 'flush'],
      topics.map((info) => [
        info.name,
        info.partitions.length,
        info.partitions.reduce((sum, partition) => sum + partition.endOffset - partition.startOffset, 0),
        formatBytes(info.partitions.reduce((sum, partition) => sum + partition.bytes, 0)),
        formatDuration(info.config.retentionMs),
        info.config.flushPolicy,
      ]),
    );
  });

  clientCommand(topic, 'describe', 'show a topic and its partitions')
    .argument('<name>', 'topic name')
    .action(async (name: string, options: CommonOptions) => {
      const info = await withClient(options, (client) => client.admin().describeTopic(name));
      if (options.json) return printJson(info);
      const config = info.config;
      process.stdout.write(
        `topic ${info.name}: retention ${formatDuration(config.retentionMs)}${config.retentionBytes >= 0 ? ` / ${formatBytes(config.retentionBytes)}` : ''}, flush ${config.flushPolicy}, max message ${formatBytes(config.maxMessageBytes)}\n`,
      );
      printTable(
        ['partition', 'start offset', 'end offset', 'messages', 'size'],
        info.partitions.map((partition) => [partition.partition, partition.startOffset, partition.endOffset, partition.endOffset - partition.startOffset, formatBytes(partition.bytes)]),
      );
    });

  withTopicSettingOptions(clientCommand(topic, 'alter', 'change settings or add partitions'))
    .argument('<name>', 'topic name')
    .option('-p, --partitions <n>', 'new partition count (only grows)', integer('--partitions', 1))
    .action(async (name: string, options: CommonOptions & Record<string, unknown>) => {
      const altered = await withClient(options, (client) =>
        client.admin().alterTopic(name, { ...(options.partitions === undefined ? {} : { partitions: options.partitions as number }), ...topicSettings(options) }),
      );
      if (options.json) printJson(altered);
      else process.stdout.write(`altered topic ${altered.name}: ${altered.partitions.length} partition(s)\n`);
    });

  clientCommand(topic, 'delete', 'delete a topic and its data')
    .argument('<name>', 'topic name')
    .action(async (name: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().deleteTopic(name));
      if (options.json) printJson({ deleted: name });
      else process.stdout.write(`deleted topic ${name}\n`);
    });

  clientCommand(program, 'produce', 'send messages: one per line of standard input, or --message')
    .argument('<topic>', 'topic name')
    .option('-m, --message <text>', 'send this one message instead of reading standard input')
    .option('-k, --key <key>', 'message key (same key, same partition, in order)')
    .option('-t, --tag <tag>', 'message tag')
    .option('-H, --header <name=value>', 'a header (repeatable)', parseHeader)
    .option('-p, --partition <n>', 'send to this partition', integer('--partition', 0))
    .addOption(new Option('--delay-ms <ms>', 'deliver this long after the broker receives it (held until then)').argParser(integer('--delay-ms', 0)).conflicts('deliverAt'))
    .option('--deliver-at <time>', 'deliver at this time: ISO-8601 (2026-11-21T10:00:00Z) or ms since the epoch', parseDeliverAt)
    .option('--ttl-ms <ms>', 'work queues drop (or dead-letter) it once this long has passed', integer('--ttl-ms', 1))
    .option('--priority <0-9>', 'work-queue priority: higher is delivered first (default 0)', integerIn('--priority', 0, 9))
    .action(async (topicName: string, options: CommonOptions & ProduceFlags) => {
      const template: Omit<ProducerMessage, 'body'> = {
        ...(options.key === undefined ? {} : { key: options.key }),
        ...(options.tag === undefined ? {} : { tag: options.tag }),
        ...(options.header === undefined ? {} : { headers: options.header }),
        ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
        ...(options.deliverAt === undefined ? {} : { deliverAt: options.deliverAt }),
        ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
        ...(options.priority === undefined ? {} : { priority: options.priority }),
      };
      const sendOptions = options.partition === undefined ? {} : { partition: options.partition };
      // Decided as the producer decides it, when the messages are prepared (a due time may pass while they are sent).
      const delayed = options.delayMs !== undefined ? options.delayMs > 0 : options.deliverAt !== undefined && options.deliverAt > Date.now();
      const sent = await withClient(options, async (client) => {
        const producer = client.producer({ acks: 'durable' });
        const pending: Promise<unknown>[] = [];
        let count = 0;
        const progress = process.stderr.isTTY && options.message === undefined ? new ProgressLine() : null;
        const send = (body: string) => {
          const acknowledged = producer.send(topicName, { ...template, body }, sendOptions).then(() => progress?.tick());
          pending.push(acknowledged);
          count++;
        };
        try {
          if (options.message !== undefined) send(options.message);
          else {
            for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
              send(line);
              // Keep memory flat on huge inputs: the producer's buffer applies backpressure through send().
              if (pending.length >= 10_000) await Promise.all(pending.splice(0));
            }
          }
          await Promise.all(pending);
          await producer.close();
        } finally {
          progress?.done();
        }
        return count;
      });
      if (options.json) printJson({ topic: topicName, acknowledged: sent, ...(delayed ? { delayed: true } : {}) });
      else process.stderr.write(`${sent} message(s) acknowledged as durable${delayed ? ' (held by the broker until due)' : ''}\n`);
    });

  clientCommand(program, 'consume', 'print messages: one body per line (--json for everything)')
    .argument('<topic>', 'topic name')
    .option('-g, --group <group>', 'consumer group (commits its position; without one nothing is committed)')
    .addOption(new Option('--mode <mode>', 'group mode: stream | broadcast, or a work queue: shared | key_shared').choices(['stream', 'broadcast', 'shared', 'key_shared']))
    .option('-f, --from <where>', 'beginning | end | <offset> | <ISO-8601 time> (default: committed position, else beginning)', parseFrom)
    .option('-n, --max <n>', 'stop after this many messages', integer('--max', 1))
    .addOption(new Option('--count <n>', 'the same as --max').argParser(integer('--count', 1)).conflicts('max'))
    .option('--exit-when-idle <ms>', 'stop once no message arrived for this long', integer('--exit-when-idle', 1))
    .option('--prefetch <n>', 'work queues: most unacknowledged messages held (default 100, at most --count)', integer('--prefetch', 1))
    .addOption(new Option('--ack', 'work queues: acknowledge each message (the default)').conflicts(['nack', 'reject']))
    .addOption(new Option('--nack', 'work queues: nack each message (redelivered after the group backoff)').conflicts(['ack', 'reject']))
    .addOption(new Option('--reject', 'work queues: reject each message (to the dead-letter topic)').conflicts(['ack', 'nack']))
    .addOption(new Option('--tag <expr>', "work queues: only messages with these tags ('a || b'); fixed when the group is created").conflicts('sql'))
    .option('--sql <expr>', "work queues: only messages whose headers match (\"region = 'eu'\"); fixed when the group is created")
    .action(async (topicName: string, options: CommonOptions & ConsumeFlags, command: Command) => {
      if (options.mode === 'shared' || options.mode === 'key_shared') return consumeQueue(topicName, options, command);
      const queueOnly = (['prefetch', 'ack', 'nack', 'reject', 'tag', 'sql'] as const).find((name) => options[name] !== undefined);
      if (queueOnly !== undefined) command.error(`error: --${queueOnly} applies to work queues: add --mode shared or --mode key_shared (and --group)`, { exitCode: 2 });
      if (options.mode !== undefined && options.group === undefined) command.error(`error: --mode ${options.mode} needs --group <group>`, { exitCode: 2 });
      const max = options.max ?? options.count;
      await withClient(options, async (client) => {
        const from = options.from === 'latest' ? 'latest' : 'earliest';
        const consumer = client.consumer({
          ...(options.group === undefined ? {} : { group: options.group }),
          ...(options.mode === undefined ? {} : { mode: options.mode as 'stream' | 'broadcast' }),
          from,
          maxWaitMs: 200,
        });
        await consumer.subscribe(topicName);
        if (typeof options.from === 'number' || options.from instanceof Date) await consumer.seek({ topic: topicName, to: options.from });
        let printed = 0;
        try {
          while (max === undefined || printed < max) {
            const next = await nextWithin(consumer.next(), options.exitWhenIdle);
            if (next === null || next.done) break;
            printMessage(next.value, options.json === true);
            printed++;
          }
        } finally {
          await consumer.close();
        }
      });
    });

  registerQueueCommands(program);

  const group = program.command('group').description('inspect consumer groups');
  clientCommand(group, 'list', 'list consumer groups').action(async (options: CommonOptions) => {
    const groups = await withClient(options, (client) => client.admin().listGroups());
    if (options.json) return printJson(groups);
    printTable(['group', 'mode', 'state', 'members'], groups.map((entry) => [entry.group, entry.mode, entry.state, entry.members]));
  });
  clientCommand(group, 'describe', 'members, assignment, committed offsets and lag')
    .argument('<group>', 'group name')
    .action(async (name: string, options: CommonOptions) => {
      const description = await withClient(options, (client) => client.admin().describeGroup(name));
      if (options.json) return printJson(description);
      process.stdout.write(`group ${description.summary.group}: ${description.summary.state}, generation ${description.generation}, strategy ${description.strategy || '-'}\n`);
      printTable(
        ['member', 'client', 'host', 'partitions'],
        description.members.map((member) => [member.memberId, member.clientId, member.host, member.assignment.map((entry) => `${entry.topic}[${entry.partitions.join(',')}]`).join(' ')]),
      );
      printTable(
        ['topic', 'partition', 'committed', 'end', 'lag'],
        description.lag.map((entry) => [entry.topic, entry.partition, entry.committedOffset < 0 ? '-' : entry.committedOffset, entry.endOffset, entry.lag]),
      );
    });

  const producer = program.command('producer').description('inspect producers');
  clientCommand(producer, 'list', 'idempotent producers seen since the broker started: retries recognised, sequence gaps refused').action(async (options: CommonOptions) => {
    const producers = await withClient(options, (client) => client.admin().listProducers());
    if (options.json) return printJson(producers);
    if (producers.length === 0) {
      process.stderr.write('no idempotent producer seen since the broker started\n');
      return;
    }
    printTable(
      ['producer id', 'epoch', 'partitions', 'batches', 'messages', 'duplicates', 'gaps', 'last seen'],
      producers.map((entry) => [entry.producerId, entry.epoch, entry.partitions, entry.batches, entry.messages, entry.duplicates, entry.gaps, entry.lastSeen > 0 ? new Date(entry.lastSeen).toISOString() : '-']),
    );
  });

  const message = program.command('message').description('look messages up');
  clientCommand(message, 'get', 'find messages by id or by key, with the trace of each (stored, deliveries, outcomes, dead letters, transactions)')
    .addOption(new Option('--id <id>', 'message id (hex, as shown by consume --json)').conflicts('key'))
    .option('--key <key>', 'message key')
    .option('--topic <topic>', 'only this topic (key lookups)')
    .option('-n, --limit <n>', 'most messages for a key', integer('--limit', 1), 20)
    .action(async (options: CommonOptions & { id?: string; key?: string; topic?: string; limit: number }) => {
      if (options.id === undefined && options.key === undefined) {
        process.stderr.write('weir message get: give --id <id> or --key <key>\n');
        process.exitCode = 2;
        return;
      }
      const found = await withClient(options, async (client) => {
        const admin = client.admin();
        const messages = await admin.getMessage({
          ...(options.id === undefined ? {} : { id: options.id }),
          ...(options.key === undefined ? {} : { key: options.key }),
          ...(options.topic === undefined ? {} : { topic: options.topic }),
          limit: options.limit,
        });
        return Promise.all(messages.map(async (entry) => ({ ...entry, trace: await admin.trace(entry.idBytes) })));
      });
      if (options.json) return printJson(found);
      if (found.length === 0) {
        process.stderr.write('no message found\n');
        process.exitCode = 1;
        return;
      }
      printTable(
        ['topic', 'partition', 'offset', 'stored', 'id', 'key', 'body'],
        found.map((entry) => [entry.topic, entry.partition, entry.offset, new Date(entry.storeTimestamp).toISOString(), entry.id, bytesToText(entry.key) ?? '', truncate(bytesToText(entry.body) ?? '', 60)]),
      );
      for (const entry of found) printTrace(`${entry.topic}/${entry.partition}@${entry.offset}`, entry.id, entry.trace);
    });
}

/** A message's trace under a heading, one event per line. */
function printTrace(where: string, id: string, trace: readonly TraceEvent[]): void {
  process.stdout.write(`\ntrace of ${where} (id ${id}):\n`);
  if (trace.length === 0) process.stdout.write('  nothing recorded (tracing off, or older than the trace retention)\n');
  for (const event of trace) process.stdout.write(`  ${formatTraceLine(event)}\n`);
}

export function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

interface ProduceFlags {
  message?: string;
  key?: string;
  tag?: string;
  header?: Record<string, string>;
  partition?: number;
  delayMs?: number;
  deliverAt?: number;
  ttlMs?: number;
  priority?: number;
}

/** ms since the epoch, or an ISO-8601 time. */
function parseDeliverAt(value: string): number {
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const time = new Date(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(time.getTime())) return time.getTime();
  throw new InvalidArgumentError(`must be an ISO-8601 time (e.g. 2026-11-21T10:00:00Z) or milliseconds since the epoch, got "${value}"`);
}

function integerIn(name: string, minimum: number, maximum: number): (value: string) => number {
  const parse = integer(name, minimum);
  return (value: string) => {
    const number = parse(value);
    if (number > maximum) throw new InvalidArgumentError(`${name} must be from ${minimum} to ${maximum}, got ${value}`);
    return number;
  };
}

export function printMessage(message: ConsumedMessage & { deliveryCount?: number }, json: boolean): void {
  if (!json) {
    process.stdout.write(`${message.body.toString('utf8')}\n`);
    return;
  }
  process.stdout.write(
    `${JSON.stringify({
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      id: message.id,
      key: bytesToText(message.key),
      tag: message.tag,
      headers: Object.fromEntries(Object.entries(message.headers).map(([name, value]) => [name, typeof value === 'string' ? value : bytesToText(value)])),
      timestamp: new Date(message.timestamp).toISOString(),
      ...(message.deliveryCount === undefined ? {} : { deliveryCount: message.deliveryCount }),
      body: bytesToText(message.body),
    })}\n`,
  );
}

/** The next message, or null once `idleMs` passes without one. */
export async function nextWithin<T>(next: Promise<T>, idleMs: number | undefined): Promise<T | null> {
  if (idleMs === undefined) return next;
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), idleMs)));
  try {
    return await Promise.race([next, idle]);
  } finally {
    clearTimeout(timer);
  }
}

/** A single self-rewriting status line on stderr for long inputs. */
class ProgressLine {
  private acknowledged = 0;
  private lastDraw = 0;
  tick(): void {
    this.acknowledged++;
    const now = Date.now();
    if (now - this.lastDraw > 100) {
      this.lastDraw = now;
      process.stderr.write(`\r${this.acknowledged.toLocaleString('en-US')} acknowledged`);
    }
  }
  done(): void {
    if (this.lastDraw > 0) process.stderr.write('\n');
  }
}
