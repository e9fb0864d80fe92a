import { createHash, randomBytes } from 'node:crypto';
import type { KeyValueStore } from '../../storage/message-store.js';
import type { BrokerCore } from '../broker-core.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { type Binding, type ExchangeDefinition, type ExchangeType, RoutingError, RoutingTable, predeclaredExchanges } from '../routing/index.js';
import { defaultTopicConfig, validateTopicName } from '../topic-registry.js';
import { groupSettingsOf, parseQueueArguments, type QueueOptions } from './queue-arguments.js';
import { VhostError } from './vhost-error.js';

/** A queue as declared: what `queue.declare` said and where it lives in Weir. */
export interface QueueDefinition {
  vhost: string;
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
  /** The topic holding its messages (one partition when the queue created it) and the shared group consuming it. */
  topic: string;
  group: string;
  /** Created by the declare (and deleted with the queue), rather than an existing topic adopted as a queue. */
  ownsTopic: boolean;
}

/** A consumer as the vhost sees it: the protocol layer subscribes it when told to and hears about cancellation. */
export interface QueueConsumer {
  readonly tag: string;
  readonly exclusive: boolean;
  /** Start receiving (at once, or when it becomes a single-active-consumer queue's active consumer). */
  activate(): void;
  /** The queue was deleted: stop and tell the client (basic.cancel, consumer_cancel_notify). */
  queueDeleted(): void;
}

export class Queue {
  readonly consumers: QueueConsumer[] = [];
  active: QueueConsumer | null = null;
  expiryTimer: NodeJS.Timeout | null = null;
  /** Connection that declared an exclusive queue. */
  owner: string | null = null;
  /** An auto-delete queue goes when its last consumer does, once it has had one. */
  hadConsumer = false;
  /** Messages being appended and not yet visible: a reject-publish limit counts them as taken. */
  appendsInFlight = 0;
  /** Their body bytes, for x-max-length-bytes. */
  appendBytesInFlight = 0;

  constructor(
    readonly definition: QueueDefinition,
    readonly options: QueueOptions,
  ) {}

  get name(): string {
    return this.definition.name;
  }

  /** A stream queue (x-queue-type stream): its topic is read by each consumer from its own offset, nothing is removed on ack. */
  get isStream(): boolean {
    return this.options.type === 'stream';
  }
}

export interface DeclareQueueRequest {
  name: string;
  passive: boolean;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
  /** The declaring connection (exclusive queues belong to it). */
  connection: string;
}

export interface DeclareExchangeRequest {
  name: string;
  type: string;
  passive: boolean;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: Record<string, unknown>;
}

const QUEUE_KEY = 'queue/';
const EXCHANGE_KEY = 'exchange/';
const BINDING_KEY = 'binding/';
const KNOWN_TYPES: ReadonlySet<string> = new Set(['direct', 'fanout', 'topic', 'headers']);
/** The delayed-message exchange type of RabbitMQ's plugin: routes like `x-delayed-type`, delivers after `x-delay`. */
const DELAYED_TYPE = 'x-delayed-message';

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, (_, value: unknown) => (typeof value === 'bigint' ? Number(value) : value)) === JSON.stringify(b, (_, value: unknown) => (typeof value === 'bigint' ? Number(value) : value));
}

/** Arguments as stored in metadata (JSON): bigints become numbers, Buffers strings. */
function jsonArguments(args: Record<string, unknown>): Record<string, unknown> {
  // Buffer.toJSON runs before a replacer sees the value, so byte strings arrive as { type: 'Buffer', data }.
  const replacer = (_: string, value: unknown): unknown => {
    if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
      return Buffer.from((value as { data: number[] }).data).toString('utf8');
    }
    return value;
  };
  return JSON.parse(JSON.stringify(args, replacer)) as Record<string, unknown>;
}

function fromRoutingError(error: unknown): unknown {
  if (error instanceof RoutingError) return new VhostError(error.code === 'INVALID_ARGUMENT' ? 'PRECONDITION_FAILED' : error.code, error.message);
  return error;
}

/**
 * One virtual host: its exchanges (in a RoutingTable), queues (each a topic consumed by a shared group of the same
 * name) and bindings, kept in metadata under `amqp/<vhost>/`. Durable definitions survive a restart; transient and
 * exclusive queues, and bindings that involve anything transient, do not (as in RabbitMQ).
 */
export class VirtualHost {
  readonly routing: RoutingTable;
  readonly queues = new Map<string, Queue>();
  /** Exchanges declared as x-delayed-message: their routed copies wait for `x-delay`. */
  readonly delayedExchanges = new Set<string>();
  /** Most queues (0: no limit), as RabbitMQ's vhost max-queues; queues left from before a lowered limit stay. */
  maxQueues = 0;
  /**
   * The largest message a queue's topic stores (set by VirtualHosts): an AMQP body up to the connection's limit, with
   * room for its stored properties and the x-death headers dead-lettering adds.
   */
  maxStoredMessageBytes = defaultTopicConfig.maxMessageBytes;
  /** Declarations of new queues under way: they count against maxQueues, so concurrent ones cannot overshoot it. */
  private declaring = 0;
  private readonly prefix: string;

  constructor(
    readonly name: string,
    private readonly core: BrokerCore,
    private readonly metadata: KeyValueStore,
    private readonly logger: Logger,
    /** The registry's index of queues by shared group (for dead letters). */
    private readonly events: { created(queue: Queue): void; deleted(queue: Queue): void },
  ) {
    this.prefix = `amqp/${encodeURIComponent(name)}/`;
    this.routing = new RoutingTable({ queueExists: (queue) => this.queues.has(queue) });
    for (const exchange of predeclaredExchanges()) this.routing.declareExchange(exchange);
  }

  /** A queue topic made by an older version, or under a lower AMQP limit, takes what the connections now accept. */
  private async raiseMessageLimit(topic: string): Promise<void> {
    try {
      const { config } = await this.core.describeTopic(topic);
      if (config.maxMessageBytes < this.maxStoredMessageBytes) await this.core.alterTopic(topic, { config: { maxMessageBytes: this.maxStoredMessageBytes } });
    } catch (error) {
      if (!isWeirError(error, ErrorCode.UnknownTopic)) throw error;
    }
  }

  /** Loads the durable definitions; transient and exclusive queues left by the last run are deleted. */
  async restore(): Promise<void> {
    for (const [, value] of this.metadata.entries(this.prefix + EXCHANGE_KEY)) {
      const stored = value as ExchangeDefinition & { declaredType?: string };
      try {
        this.routing.declareExchange({ ...stored, alternateExchange: stored.alternateExchange ?? null });
        if (stored.declaredType === DELAYED_TYPE) this.delayedExchanges.add(stored.name);
      } catch (error) {
        this.logger.warn({ err: error, vhost: this.name, exchange: stored.name }, 'could not restore exchange');
      }
    }
    const stale: QueueDefinition[] = [];
    for (const [, value] of this.metadata.entries(this.prefix + QUEUE_KEY)) {
      const definition = value as QueueDefinition;
      if (!definition.durable || definition.exclusive) {
        stale.push(definition);
        continue;
      }
      const queue = new Queue(definition, parseQueueArguments(definition.arguments, definition.name, this.name));
      if (definition.ownsTopic) await this.raiseMessageLimit(definition.topic);
      // The queue's subscription starts reading now, so its counts, TTL and limits hold before anyone consumes. A
      // stream has none: its consumers read the topic themselves.
      if (!queue.isStream) await this.core.createSharedGroup(definition.group, definition.topic, groupSettingsOf(queue.options, definition.ownsTopic));
      this.queues.set(definition.name, queue);
      this.events.created(queue);
    }
    for (const [key, value] of this.metadata.entries(this.prefix + BINDING_KEY)) {
      try {
        this.routing.bind(value as Binding);
      } catch (error) {
        this.logger.warn({ err: error, vhost: this.name, binding: key }, 'could not restore binding');
      }
    }
    for (const definition of stale) await this.dropStorage(definition);
  }

  // ---- exchanges ----------------------------------------------------------------------------------------------------

  async declareExchange(request: DeclareExchangeRequest): Promise<void> {
    const existing = this.routing.exchange(request.name);
    if (request.passive) {
      if (existing === undefined) throw new VhostError('NOT_FOUND', `no exchange '${request.name}' in vhost '${this.name}'`);
      return;
    }
    let type = request.type;
    if (type === DELAYED_TYPE) {
      const routedAs = request.arguments['x-delayed-type'];
      if (typeof routedAs !== 'string' || !KNOWN_TYPES.has(routedAs)) {
        throw new VhostError('PRECONDITION_FAILED', `exchange '${request.name}' of type x-delayed-message needs the argument x-delayed-type naming direct, fanout, topic or headers`);
      }
      type = routedAs;
    } else if (!KNOWN_TYPES.has(type)) {
      throw new VhostError('COMMAND_INVALID', `unknown exchange type '${type}' (direct, fanout, topic, headers or x-delayed-message)`);
    }
    if (existing !== undefined && this.delayedExchanges.has(request.name) !== (request.type === DELAYED_TYPE)) {
      throw new VhostError('PRECONDITION_FAILED', `inequivalent arg 'type' for exchange '${request.name}' in vhost '${this.name}': received '${request.type}' but current is '${this.delayedExchanges.has(request.name) ? DELAYED_TYPE : existing.type}'`);
    }
    const alternate = request.arguments['alternate-exchange'];
    const definition: ExchangeDefinition = {
      name: request.name,
      type: type as ExchangeType,
      durable: request.durable,
      autoDelete: request.autoDelete,
      internal: request.internal,
      alternateExchange: typeof alternate === 'string' ? alternate : null,
      arguments: jsonArguments(request.arguments),
    };
    let outcome: 'created' | 'exists';
    try {
      outcome = this.routing.declareExchange(definition);
    } catch (error) {
      throw fromRoutingError(error);
    }
    if (outcome === 'created') {
      if (request.type === DELAYED_TYPE) this.delayedExchanges.add(request.name);
      if (definition.durable) await this.metadata.put(this.exchangeKey(request.name), { ...definition, declaredType: request.type });
    }
  }

  async deleteExchange(name: string, ifUnused: boolean): Promise<void> {
    if (this.routing.exchange(name) === undefined) return; // RabbitMQ: deleting a missing exchange succeeds.
    const removed = this.routing.bindings({ source: name }).concat(this.routing.bindings({ destination: name, destinationKind: 'exchange' }));
    let cascaded: string[];
    try {
      cascaded = this.routing.deleteExchange(name, { ifUnused });
    } catch (error) {
      throw fromRoutingError(error);
    }
    this.delayedExchanges.delete(name);
    await this.metadata.apply([
      { key: this.exchangeKey(name), delete: true },
      ...cascaded.map((exchange) => ({ key: this.exchangeKey(exchange), delete: true })),
      ...removed.map((binding) => ({ key: this.bindingKey(binding), delete: true })),
    ]);
  }

  async bind(binding: Binding): Promise<void> {
    this.checkDestination(binding);
    try {
      this.routing.bind(binding);
    } catch (error) {
      throw fromRoutingError(error);
    }
    if (this.isDurable(binding)) await this.metadata.put(this.bindingKey(binding), { ...binding, arguments: jsonArguments(binding.arguments) });
  }

  async unbind(binding: Binding): Promise<void> {
    this.checkDestination(binding);
    if (this.routing.exchange(binding.source) === undefined) throw new VhostError('NOT_FOUND', `no exchange '${binding.source}' in vhost '${this.name}'`);
    let deleted: string[];
    try {
      deleted = this.routing.unbind(binding);
    } catch (error) {
      throw fromRoutingError(error);
    }
    await this.metadata.apply([{ key: this.bindingKey(binding), delete: true }, ...deleted.map((exchange) => ({ key: this.exchangeKey(exchange), delete: true }))]);
  }

  private checkDestination(binding: Binding): void {
    if (binding.destinationKind === 'queue' && !this.queues.has(binding.destination)) throw new VhostError('NOT_FOUND', `no queue '${binding.destination}' in vhost '${this.name}'`);
    if (binding.destinationKind === 'exchange' && this.routing.exchange(binding.destination) === undefined) {
      throw new VhostError('NOT_FOUND', `no exchange '${binding.destination}' in vhost '${this.name}'`);
    }
  }

  private isDurable(binding: Binding): boolean {
    const source = this.routing.exchange(binding.source);
    const destinationDurable =
      binding.destinationKind === 'queue'
        ? (() => {
            const queue = this.queues.get(binding.destination)?.definition;
            return queue !== undefined && queue.durable && !queue.exclusive;
          })()
        : this.routing.exchange(binding.destination)?.durable === true;
    return source?.durable === true && destinationDurable;
  }

  // ---- queues -------------------------------------------------------------------------------------------------------

  /** Declares (or, passively, finds) a queue; returns it with its ready-message and consumer counts. */
  async declareQueue(request: DeclareQueueRequest): Promise<{ queue: Queue; messageCount: number; consumerCount: number }> {
    let name = request.name;
    if (name === '') {
      if (request.passive) throw new VhostError('NOT_FOUND', `no queue '' in vhost '${this.name}'`);
      name = `amq.gen-${randomBytes(16).toString('base64url')}`;
    }
    const existing = this.queues.get(name);
    if (existing !== undefined) {
      this.checkExclusiveAccess(existing, request.connection);
      if (!request.passive) this.checkEquivalent(existing.definition, request);
      this.touch(existing);
      return { queue: existing, ...(existing.isStream ? await this.streamCounts(existing) : this.counts(existing)) };
    }
    if (request.passive) throw new VhostError('NOT_FOUND', `no queue '${name}' in vhost '${this.name}'`);
    if (this.maxQueues > 0 && this.queues.size + this.declaring >= this.maxQueues) {
      throw new VhostError('PRECONDITION_FAILED', `cannot declare queue '${name}': queue limit in vhost '${this.name}' (${this.maxQueues}) is reached`);
    }
    this.declaring++;
    try {
      return await this.createQueue(name, request);
    } finally {
      this.declaring--;
    }
  }

  private async createQueue(name: string, request: DeclareQueueRequest): Promise<{ queue: Queue; messageCount: number; consumerCount: number }> {
    if (request.name.startsWith('amq.')) throw new VhostError('ACCESS_REFUSED', `queue name '${name}' contains reserved prefix 'amq.*'`);
    if (Buffer.byteLength(name) > 255) throw new VhostError('PRECONDITION_FAILED', `queue name '${name.slice(0, 40)}…' is longer than 255 bytes`);
    const options = parseQueueArguments(request.arguments, name, this.name);
    if (options.type === 'stream') this.checkStreamProperties(name, request);
    if (options.type === 'quorum' && (!request.durable || request.exclusive || request.autoDelete)) {
      throw new VhostError('PRECONDITION_FAILED', `invalid property for queue '${name}' in vhost '${this.name}': quorum queues must be durable, non-exclusive and not auto-delete`);
    }
    if (options.deadLetterExchange !== null && options.deadLetterExchange !== '' && this.routing.exchange(options.deadLetterExchange) === undefined) {
      // RabbitMQ accepts a dead-letter exchange that does not exist yet (dead letters are dropped until it does).
      this.logger.debug({ vhost: this.name, queue: name, exchange: options.deadLetterExchange }, 'dead-letter exchange does not exist yet');
    }
    const topic = this.topicNameOf(name);
    let ownsTopic = true;
    try {
      // A stream's retention arguments are its topic's retention (applied by the store's retention pass).
      const retention = options.stream === null ? {} : { retentionBytes: options.stream.maxLengthBytes, retentionMs: options.stream.maxAgeMs };
      await this.core.createTopic(topic, 1, { flushPolicy: request.durable && !request.exclusive ? 'sync' : 'none', maxMessageBytes: this.maxStoredMessageBytes, ...retention });
    } catch (error) {
      if (!isWeirError(error, ErrorCode.TopicExists)) throw error;
      ownsTopic = false;
    }
    const definition: QueueDefinition = {
      vhost: this.name,
      name,
      durable: request.durable,
      exclusive: request.exclusive,
      autoDelete: request.autoDelete,
      arguments: jsonArguments(request.arguments),
      topic,
      group: topic,
      ownsTopic,
    };
    const queue = new Queue(definition, options);
    if (request.exclusive) queue.owner = request.connection;
    if (!queue.isStream) await this.createGroup(queue);
    this.queues.set(name, queue);
    this.events.created(queue);
    await this.metadata.put(this.queueKey(name), definition);
    this.touch(queue);
    return { queue, messageCount: 0, consumerCount: 0 };
  }

  /**
   * RabbitMQ's stream queues are durable, not exclusive and not auto-delete; the checks run in its order (auto-delete,
   * exclusive, durable) with its wording.
   */
  private checkStreamProperties(name: string, request: DeclareQueueRequest): void {
    const invalidProperty = (property: string) => new VhostError('PRECONDITION_FAILED', `invalid property '${property}' for queue '${name}' in vhost '${this.name}'`);
    if (request.autoDelete) throw invalidProperty('auto-delete');
    if (request.exclusive) throw invalidProperty('exclusive-owner');
    if (!request.durable) throw invalidProperty('non-durable');
  }

  /** The shared group consuming a classic or quorum queue's topic. */
  private async createGroup(queue: Queue): Promise<void> {
    const { definition, options } = queue;
    const { name, topic, ownsTopic } = definition;
    try {
      // A topic created just now has no consumers, so a group of its name is left over from a queue deleted midway.
      // An adopted topic's group is someone's live state and stays.
      if (ownsTopic) await this.core.deleteSharedGroup(definition.group);
      await this.core.createSharedGroup(definition.group, topic, groupSettingsOf(options, ownsTopic));
    } catch (error) {
      if (ownsTopic) await this.core.deleteTopic(topic).catch(() => {});
      if (isWeirError(error, ErrorCode.InvalidGroup)) throw new VhostError('PRECONDITION_FAILED', `queue '${name}' cannot use the group '${definition.group}': ${(error as Error).message}`);
      throw error;
    }
  }

  /** The topic of a queue: its own name when that is a topic name, else a readable name made unique by a hash. */
  private topicNameOf(queue: string): string {
    if (this.name === '/' && validateTopicName(queue) === null && !queue.startsWith('__')) return queue;
    const readable = queue.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200);
    const hash = createHash('sha256').update(this.name).update('\0').update(queue).digest('hex').slice(0, 8);
    return `amqp.${readable}.${hash}`;
  }

  private checkEquivalent(current: QueueDefinition, request: DeclareQueueRequest): void {
    const differs = (property: string, received: unknown, was: unknown) =>
      new VhostError('PRECONDITION_FAILED', `inequivalent arg '${property}' for queue '${current.name}' in vhost '${this.name}': received '${String(received)}' but current is '${String(was)}'`);
    if (current.durable !== request.durable) throw differs('durable', request.durable, current.durable);
    if (current.autoDelete !== request.autoDelete) throw differs('auto_delete', request.autoDelete, current.autoDelete);
    if (current.exclusive !== request.exclusive) throw differs('exclusive', request.exclusive, current.exclusive);
    const received = jsonArguments(request.arguments);
    for (const name of new Set([...Object.keys(received), ...Object.keys(current.arguments)])) {
      // RabbitMQ compares only the arguments it knows to be part of a queue's identity; x-* ones are those.
      if (!name.startsWith('x-')) continue;
      if (!same(received[name], current.arguments[name])) throw differs(name, JSON.stringify(received[name] ?? 'none'), JSON.stringify(current.arguments[name] ?? 'none'));
    }
  }

  checkExclusiveAccess(queue: Queue, connection: string): void {
    if (queue.owner !== null && queue.owner !== connection) {
      throw new VhostError('RESOURCE_LOCKED', `cannot obtain exclusive access to locked queue '${queue.name}' in vhost '${this.name}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`);
    }
  }

  queue(name: string, connection: string): Queue {
    const queue = this.queues.get(name);
    if (queue === undefined) throw new VhostError('NOT_FOUND', `no queue '${name}' in vhost '${this.name}'`);
    this.checkExclusiveAccess(queue, connection);
    return queue;
  }

  /** A stream's messages are those it still retains, whoever has read them. */
  async streamCounts(queue: Queue): Promise<{ messageCount: number; consumerCount: number }> {
    const { topic } = queue.definition;
    const [start, end] = await Promise.all([this.core.listOffsets(topic, 0, -2), this.core.listOffsets(topic, 0, -1)]);
    return { messageCount: end - start, consumerCount: queue.consumers.length };
  }

  counts(queue: Queue): { messageCount: number; consumerCount: number } {
    const stats = this.core.sharedGroupStats(queue.definition.group, queue.definition.topic);
    return { messageCount: stats === null ? 0 : stats.ready + stats.unread + stats.waiting, consumerCount: queue.consumers.length };
  }

  async deleteQueue(name: string, connection: string, options: { ifUnused: boolean; ifEmpty: boolean }): Promise<number> {
    const queue = this.queues.get(name);
    if (queue === undefined) return 0; // RabbitMQ 3.x+: deleting a missing queue is not an error.
    this.checkExclusiveAccess(queue, connection);
    if (queue.isStream) {
      // As RabbitMQ's stream queues: if-unused and if-empty are not applied (a stream is never emptied by its readers).
      const { messageCount } = await this.streamCounts(queue);
      await this.removeQueue(queue);
      return messageCount;
    }
    const { messageCount, consumerCount } = this.counts(queue);
    if (options.ifUnused && consumerCount > 0) throw new VhostError('PRECONDITION_FAILED', `queue '${name}' in vhost '${this.name}' in use`);
    if (options.ifEmpty && messageCount > 0) throw new VhostError('PRECONDITION_FAILED', `queue '${name}' in vhost '${this.name}' not empty`);
    await this.removeQueue(queue);
    return messageCount;
  }

  /** Deletes a queue whatever its state (exclusive owner gone, auto-delete, x-expires). */
  async removeQueue(queue: Queue): Promise<void> {
    if (this.queues.get(queue.name) !== queue) return;
    this.queues.delete(queue.name);
    if (queue.expiryTimer !== null) clearTimeout(queue.expiryTimer);
    const consumers = queue.consumers.splice(0);
    queue.active = null;
    for (const consumer of consumers) consumer.queueDeleted();
    const bindings = this.routing.bindings({ destination: queue.name, destinationKind: 'queue' });
    const deletedExchanges = this.routing.removeQueue(queue.name);
    await this.metadata.apply([
      { key: this.queueKey(queue.name), delete: true },
      ...bindings.map((binding) => ({ key: this.bindingKey(binding), delete: true })),
      ...deletedExchanges.map((exchange) => ({ key: this.exchangeKey(exchange), delete: true })),
    ]);
    await this.dropStorage(queue.definition);
    this.events.deleted(queue);
  }

  private async dropStorage(definition: QueueDefinition): Promise<void> {
    try {
      // A stream has no group of its own; a group of the topic's name is someone else's.
      if (definition.arguments['x-queue-type'] !== 'stream') await this.core.deleteSharedGroup(definition.group);
      if (definition.ownsTopic) await this.core.deleteTopic(definition.topic);
    } catch (error) {
      if (!isWeirError(error, ErrorCode.UnknownTopic)) this.logger.warn({ err: error, vhost: this.name, queue: definition.name }, 'could not delete queue storage');
    }
    await this.metadata.delete(this.queueKey(definition.name));
  }

  purgeQueue(name: string, connection: string): number {
    const queue = this.queue(name, connection);
    // RabbitMQ refuses it the same way (NOT_IMPLEMENTED): a stream loses messages only to retention.
    if (queue.isStream) throw new VhostError('NOT_IMPLEMENTED', `queue.purge not supported by stream queues: queue '${name}' in vhost '${this.name}'`);
    return this.core.purgeSharedGroup(queue.definition.group, queue.definition.topic);
  }

  // ---- consumers ----------------------------------------------------------------------------------------------------

  /** Adds a consumer; it is activated at once unless the queue has single active consumer and an active one. */
  addConsumer(queue: Queue, consumer: QueueConsumer): void {
    if (queue.consumers.some((other) => other.exclusive)) {
      throw new VhostError('ACCESS_REFUSED', `queue '${queue.name}' in vhost '${this.name}' in exclusive use`);
    }
    if (consumer.exclusive && queue.consumers.length > 0) {
      throw new VhostError('ACCESS_REFUSED', `queue '${queue.name}' in vhost '${this.name}' in exclusive use`);
    }
    queue.consumers.push(consumer);
    queue.hadConsumer = true;
    if (queue.expiryTimer !== null) clearTimeout(queue.expiryTimer), (queue.expiryTimer = null);
    if (!queue.options.singleActiveConsumer) consumer.activate();
    else if (queue.active === null) {
      queue.active = consumer;
      consumer.activate();
    }
  }

  /** Removes a consumer (cancel or its channel closed); the next one takes over a single-active-consumer queue. */
  removeConsumer(queue: Queue, consumer: QueueConsumer): void {
    const index = queue.consumers.indexOf(consumer);
    if (index < 0) return;
    queue.consumers.splice(index, 1);
    if (queue.active === consumer) {
      queue.active = queue.consumers[0] ?? null;
      queue.active?.activate();
    }
    if (queue.consumers.length === 0) {
      if (queue.definition.autoDelete && queue.hadConsumer) {
        void this.removeQueue(queue).catch((error: unknown) => this.logger.warn({ err: error, queue: queue.name }, 'could not auto-delete queue'));
        return;
      }
      this.touch(queue);
    }
  }

  /** The queue was used: restart its x-expires countdown (which only runs while it has no consumers). */
  touch(queue: Queue): void {
    const expires = queue.options.expiresMs;
    if (expires === null) return;
    if (queue.expiryTimer !== null) clearTimeout(queue.expiryTimer);
    queue.expiryTimer = null;
    if (queue.consumers.length > 0) return;
    queue.expiryTimer = setTimeout(() => {
      queue.expiryTimer = null;
      if (queue.consumers.length === 0) void this.removeQueue(queue).catch((error: unknown) => this.logger.warn({ err: error, queue: queue.name }, 'could not expire queue'));
    }, expires);
    queue.expiryTimer.unref();
  }

  /** Exclusive queues of a closed connection go with it. */
  async connectionClosed(connection: string): Promise<void> {
    for (const queue of [...this.queues.values()]) if (queue.owner === connection) await this.removeQueue(queue);
  }

  close(): void {
    for (const queue of this.queues.values()) if (queue.expiryTimer !== null) clearTimeout(queue.expiryTimer);
  }

  // ---- keys ---------------------------------------------------------------------------------------------------------

  private queueKey(name: string): string {
    return this.prefix + QUEUE_KEY + encodeURIComponent(name);
  }

  private exchangeKey(name: string): string {
    return this.prefix + EXCHANGE_KEY + encodeURIComponent(name);
  }

  private bindingKey(binding: Binding): string {
    const identity = JSON.stringify([binding.source, binding.destinationKind, binding.destination, binding.routingKey, jsonArguments(binding.arguments)]);
    return this.prefix + BINDING_KEY + createHash('sha256').update(identity).digest('hex').slice(0, 32);
  }
}
