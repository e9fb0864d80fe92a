import { type Delivery as WireDelivery, encodePush, ProtocolError, type Header, type Message, type ResponseOf, type TopicConfig as WireTopicConfig, type TopicDescription as WireTopicDescription } from 'weir-protocol';
import { type ConsumerState, defaultSharedGroupSettings, type SettleOutcome, type SharedGroupSettings, type SharedMode } from '../../broker/queue/shared-subscription.js';
import { DeliveryOutbox } from '../../broker/queue/delivery-outbox.js';
import type { FilterDefinition } from '../../broker/queue/work-queues.js';
import { decodeHeaderList, type StoredMessage } from '../../storage/record-batch.js';
import type { ConnectionContext } from './native-connection.js';
import type { BrokerCore } from '../../broker/broker-core.js';
import type { Acks } from '../../broker/partition-writer.js';
import type { TopicConfig, TopicDescription } from '../../broker/topic-registry.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import type { MessageInput } from '../../storage/record-batch.js';
import type { HandlerTable } from './native-connection.js';
import { accessHandlers } from './access-handlers.js';

/**
 * Maps native-protocol requests onto the broker core. The wire uses -1 for "none" where the domain uses null,
 * and carries header values as bytes with an isString flag; everything else passes through.
 */
const ACKS: readonly Acks[] = ['none', 'written', 'durable'];
const STRATEGIES = new Set(['range', 'round-robin', 'sticky']);

function toConfig(wire: WireTopicConfig): Partial<TopicConfig> {
  return {
    retentionMs: wire.retentionMs < 0 ? null : wire.retentionMs,
    retentionBytes: wire.retentionBytes < 0 ? null : wire.retentionBytes,
    flushPolicy: wire.flushPolicy as TopicConfig['flushPolicy'],
    flushIntervalMs: wire.flushIntervalMs,
    maxMessageBytes: wire.maxMessageBytes,
  };
}

function toWireTopic(topic: TopicDescription): WireTopicDescription {
  return {
    name: topic.name,
    config: {
      retentionMs: topic.config.retentionMs ?? -1,
      retentionBytes: topic.config.retentionBytes ?? -1,
      flushPolicy: topic.config.flushPolicy,
      flushIntervalMs: topic.config.flushIntervalMs,
      maxMessageBytes: topic.config.maxMessageBytes,
    },
    partitions: topic.partitions.map((partition) => ({
      partition: partition.partition,
      startOffset: partition.startOffset,
      endOffset: partition.endOffset,
      bytes: partition.bytes,
    })),
  };
}

function toMessageInput(message: Message): MessageInput {
  let headers: Record<string, string | Uint8Array> | null = null;
  if (message.headers.length > 0) {
    headers = {};
    for (const header of message.headers) {
      // Decoded header values are Buffer views of the frame: decode them in place instead of copying first.
      const value = header.isString ? (header.value as Buffer).toString('utf8') : header.value;
      // A plain store of "__proto__" would replace the object's prototype instead of adding a header.
      if (header.name === '__proto__') Object.defineProperty(headers, header.name, { value, enumerable: true, writable: true, configurable: true });
      else headers[header.name] = value;
    }
  }
  // One fixed shape per message: null id and negative timestamp mean "let the store choose", as on the wire.
  return { id: message.id, key: message.key, tag: message.tag, headers, timestamp: message.timestamp, body: message.body };
}

function toWireHeaders(headers: Record<string, string | Buffer>): Header[] {
  return Object.entries(headers).map(([name, value]) =>
    typeof value === 'string' ? { name, isString: true, value: Buffer.from(value, 'utf8') } : { name, isString: false, value },
  );
}

const OUTCOMES: ReadonlyArray<SettleOutcome['outcome']> = ['ack', 'nack', 'reject'];
const TRANSACTION_OUTCOMES = ['commit', 'rollback', 'unknown'] as const;
const SETTING_NAMES = Object.keys(defaultSharedGroupSettings);

function toWireDelivery(partition: number, deliveryCount: number, message: StoredMessage): WireDelivery {
  return {
    partition,
    offset: message.offset,
    deliveryCount,
    timestamp: message.timestamp,
    storeTimestamp: message.storeTimestamp,
    id: message.id,
    key: message.key,
    tag: message.tag,
    // The stored list already holds what the wire carries (name, string flag, value bytes, in stored order): its
    // entries go out as they are, values as views of the stored batch, without decoding strings only to encode them.
    headers: decodeHeaderList(message.headers),
    body: message.body,
  };
}

function sharedMode(mode: string): SharedMode {
  if (mode !== 'shared' && mode !== 'key_shared') throw invalid(`mode must be shared or key_shared, not "${mode}"`);
  return mode;
}

function filterOf(kind: string, expression: string): FilterDefinition | null {
  if (kind === '') return null;
  if (kind !== 'tag' && kind !== 'sql') throw invalid(`filterKind must be empty, tag or sql, not "${kind}"`);
  return { kind, expression };
}

/** Group settings arrive as a JSON object; unknown names are refused so a typo does not pass silently. */
function settingsOf(text: string): Partial<SharedGroupSettings> | undefined {
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('settings must be a JSON object');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('settings must be a JSON object');
  for (const name of Object.keys(value)) if (!SETTING_NAMES.includes(name)) throw invalid(`unknown group setting "${name}"; known: ${SETTING_NAMES.join(', ')}`);
  return value as Partial<SharedGroupSettings>;
}

/** Runs `cleanup` once when the connection closes (at once if it already has); returns what cancels it. */
/** Per connection: the leave functions of its producer-group joins, by group (a connection may join a group more than once). */
const memberships = new WeakMap<ConnectionContext, Map<string, Array<() => void>>>();

function producerGroupMemberships(context: ConnectionContext): Map<string, Array<() => void>> {
  let groups = memberships.get(context);
  if (groups === undefined) memberships.set(context, (groups = new Map()));
  return groups;
}

function onClose(context: ConnectionContext, cleanup: () => void): () => void {
  if (context.closed.aborted) {
    cleanup();
    return () => {};
  }
  context.closed.addEventListener('abort', cleanup, { once: true });
  return () => context.closed.removeEventListener('abort', cleanup);
}

function invalid(message: string): WeirError {
  return new WeirError(ErrorCode.InvalidArgument, message);
}

export interface NativeHandlerOptions {
  /**
   * Null while publishing is allowed, else why not (a memory or disk watermark is crossed: the server's
   * ResourceMonitor). AMQP blocks its publishing connections then; the native protocol refuses Produce and
   * TransactionProduce with the retriable RESOURCE_ALARM, so producers back off and retry instead of filling memory or
   * disk further.
   */
  blockedReason?: () => string | null;
  /** Topics CreateTopic may create, not counting the broker's own `__*` topics (0: no limit). */
  maxTopics?: number;
}

export function nativeHandlers(broker: BrokerCore, options: NativeHandlerOptions = {}): HandlerTable {
  const blockedReason = options.blockedReason ?? (() => null);
  const resourceAlarm = (reason: string): WeirError =>
    new WeirError(ErrorCode.ResourceAlarm, `publishing is paused, nothing was stored: ${reason}; retry once the alarm clears`, { retriable: true });
  /** Pull consumers per connection ("group\ntopic"), so each is detached once when its connection closes. */
  const pullConsumers = new WeakMap<ConnectionContext, Set<string>>();
  /** Pushed consumers per connection ("group\ntopic\nconsumerId"): what Unsubscribe must stop watching for. */
  const closeWatches = new WeakMap<ConnectionContext, Map<string, () => void>>();
  let consumerNumber = 0;
  const maxTopics = options.maxTopics ?? 0;
  /** Creations under way count against maxTopics too, so concurrent CreateTopics cannot overshoot it. */
  let creatingTopics = 0;
  return {
    CreateTopic: async (body) => {
      if (maxTopics <= 0) return { topic: toWireTopic(await broker.createTopic(body.name, body.partitions, toConfig(body.config))) };
      creatingTopics++;
      try {
        const topics = (await broker.listTopics()).filter((topic) => !topic.name.startsWith('__')).length;
        if (topics + creatingTopics > maxTopics) throw new ProtocolError('LIMIT_REACHED', `cannot create topic '${body.name}': the broker's topic limit (maxTopics ${maxTopics}) is reached`);
        return { topic: toWireTopic(await broker.createTopic(body.name, body.partitions, toConfig(body.config))) };
      } finally {
        creatingTopics--;
      }
    },
    DeleteTopic: async (body) => {
      await broker.deleteTopic(body.name);
      return {};
    },
    ListTopics: async () => ({ topics: (await broker.listTopics()).map(toWireTopic) }),
    DescribeTopic: async (body) => ({ topic: toWireTopic(await broker.describeTopic(body.name)) }),
    AlterTopic: async (body) => ({
      topic: toWireTopic(await broker.alterTopic(body.name, { partitions: body.partitions, config: toConfig(body.config) })),
    }),
    InitProducer: async (body) => broker.initProducer(body.producerId),
    Produce: async (body): Promise<ResponseOf<'Produce'> | null> => {
      const acks = ACKS[body.acks];
      if (acks === undefined) throw invalid(`Produce.acks must be 0, 1 or 2, got ${body.acks}`);
      const blocked = blockedReason();
      if (blocked !== null) {
        // Acks 0 gets no response, not even an error: the messages are dropped, as on any failure of such a produce.
        if (acks === 'none') return null;
        throw resourceAlarm(blocked);
      }
      const result = broker.produce({
        topic: body.topic,
        partition: body.partition,
        acks,
        producerId: body.producerId,
        producerEpoch: body.producerEpoch,
        baseSequence: body.baseSequence,
        messages: body.messages.map(toMessageInput),
      });
      if (acks === 'none') {
        // No response is sent (docs/protocol.md); a failure can only be logged by the broker core.
        result.catch(() => {});
        return null;
      }
      return result;
    },
    Fetch: async (body, context) => {
      const result = await broker.fetch({
        topic: body.topic,
        partition: body.partition,
        offset: body.offset,
        maxBytes: body.maxBytes,
        minBytes: body.minBytes,
        maxWaitMs: body.maxWaitMs,
        signal: context.closed,
      });
      return { startOffset: result.startOffset, endOffset: result.endOffset, records: result.batches };
    },
    ListOffsets: async (body) => ({ offset: await broker.listOffsets(body.topic, body.partition, body.timestamp) }),
    JoinGroup: async (body, context) => {
      if (!STRATEGIES.has(body.strategy)) throw invalid(`JoinGroup.strategy must be range, round-robin or sticky, got "${body.strategy}"`);
      const result = await broker.joinGroup({
        group: body.group,
        memberId: body.memberId,
        clientId: context.clientId,
        host: context.remoteAddress,
        topics: body.topics,
        strategy: body.strategy as 'range' | 'round-robin' | 'sticky',
        sessionTimeoutMs: body.sessionTimeoutMs,
        rebalanceTimeoutMs: body.rebalanceTimeoutMs,
        signal: context.closed,
      });
      return { memberId: result.memberId, generation: result.generation, members: result.members };
    },
    SyncGroup: async (body) => broker.syncGroup(body),
    Heartbeat: async (body) => {
      await broker.heartbeat(body);
      return {};
    },
    LeaveGroup: async (body) => {
      await broker.leaveGroup(body);
      return {};
    },
    CommitOffsets: async (body) => {
      await broker.commitOffsets({ group: body.group, generation: body.generation, memberId: body.memberId, offsets: body.offsets });
      return {};
    },
    FetchOffsets: async (body) => ({
      offsets: (await broker.fetchOffsets(body.group, body.topic)).map((entry) => ({ ...entry, metadata: entry.metadata ?? '' })),
    }),
    ListGroups: async () => ({ groups: await broker.listGroups() }),
    DescribeGroup: async (body) => {
      const description = await broker.describeGroup(body.group);
      return {
        summary: description.summary,
        generation: description.generation,
        strategy: description.strategy,
        members: description.members.map((member) => ({ memberId: member.memberId, clientId: member.clientId, host: member.host, assignment: member.assignment })),
        lag: description.lag,
      };
    },
    Subscribe: async (body, context) => {
      const consumerId = body.consumerId === '' ? `${context.connectionId}-${++consumerNumber}` : body.consumerId;
      const { group, topic } = body;
      let state: ConsumerState | null = null;
      let paused = false;
      const outbox = new DeliveryOutbox({
        write: (pending, from, to) => {
          const deliveries: WireDelivery[] = [];
          for (let index = from; index < to; index++) {
            const delivery = pending[index]!;
            deliveries.push(toWireDelivery(delivery.partition, delivery.deliveryCount, delivery.message));
          }
          return context.push(encodePush('Deliver', { group, topic, consumerId, deliveries }));
        },
        whenWritable: (resume) => context.whenWritable(resume),
        paused: () => {
          paused = true;
          if (state !== null) state.paused = true;
        },
        resumed: () => {
          paused = false;
          if (state !== null) broker.resumeConsumer(group, topic, state);
        },
      });
      const consumer = await broker.subscribe({
        group,
        topic,
        mode: sharedMode(body.mode),
        settings: settingsOf(body.settings),
        filter: filterOf(body.filterKind, body.filter),
        consumerId,
        prefetch: body.prefetch,
        priority: body.priority,
        clientId: context.clientId,
        address: context.remoteAddress,
        sink: { deliver: (deliveries) => outbox.add(deliveries) },
      });
      state = consumer;
      // The socket may have filled while subscribe dispatched its first deliveries, before `state` was known.
      if (paused) consumer.paused = true;
      let watches = closeWatches.get(context);
      if (watches === undefined) closeWatches.set(context, (watches = new Map()));
      const name = `${group}\n${topic}\n${consumerId}`;
      watches.get(name)?.();
      watches.set(name, onClose(context, () => broker.unsubscribe(group, topic, consumerId, consumer)));
      return { consumerId };
    },
    Unsubscribe: async (body, context) => {
      const name = `${body.group}\n${body.topic}\n${body.consumerId}`;
      const watches = closeWatches.get(context);
      watches?.get(name)?.();
      watches?.delete(name);
      broker.unsubscribe(body.group, body.topic, body.consumerId);
      return {};
    },
    Settle: async (body) => {
      const outcomes: SettleOutcome[] = body.outcomes.map((outcome) => {
        const kind = OUTCOMES[outcome.outcome];
        if (kind === undefined) throw invalid(`an outcome is 0 (ack), 1 (nack) or 2 (reject), not ${outcome.outcome}`);
        return {
          partition: outcome.partition,
          offset: outcome.offset,
          outcome: kind,
          delayMs: outcome.delayMs < 0 ? undefined : outcome.delayMs,
          error: outcome.error ?? undefined,
        };
      });
      return { applied: await broker.settle(body.group, body.topic, body.consumerId, outcomes) };
    },
    Extend: async (body) => ({ applied: await broker.extend(body.group, body.topic, body.consumerId, body.deliveries, body.ms) }),
    Receive: async (body, context) => {
      const consumerId = `pull-${context.connectionId}`;
      const deliveries = await broker.receive({
        group: body.group,
        topic: body.topic,
        mode: sharedMode(body.mode),
        settings: settingsOf(body.settings),
        filter: filterOf(body.filterKind, body.filter),
        consumerId,
        clientId: context.clientId,
        address: context.remoteAddress,
        maxMessages: body.maxMessages,
        waitMs: body.waitMs,
        signal: context.closed,
      });
      let known = pullConsumers.get(context);
      if (known === undefined) pullConsumers.set(context, (known = new Set()));
      const name = `${body.group}\n${body.topic}`;
      if (!known.has(name)) {
        known.add(name);
        onClose(context, () => broker.unsubscribe(body.group, body.topic, consumerId));
      }
      return { consumerId, deliveries: deliveries.map((delivery) => toWireDelivery(delivery.partition, delivery.deliveryCount, delivery.message)) };
    },
    Peek: async (body) => ({
      messages: (await broker.peek(body.group, body.topic, body.limit)).map((entry) => toWireDelivery(entry.partition, entry.deliveries, entry.message)),
    }),
    DescribeSharedGroup: async (body) => {
      const description = await broker.describeSharedGroup(body.group);
      return {
        mode: description.mode,
        settings: JSON.stringify(description.settings),
        filterKind: description.filter?.kind ?? '',
        filter: description.filter?.expression ?? '',
        topics: description.topics.map(({ topic, stats, consumers }) => ({
          topic,
          ready: stats.ready,
          unread: stats.unread,
          inflight: stats.inflight,
          waiting: stats.waiting,
          consumers: consumers.map((consumer) => ({ consumerId: consumer.consumerId, clientId: consumer.clientId, host: consumer.address, prefetch: consumer.prefetch, inflight: consumer.inflight })),
        })),
      };
    },
    BeginTransaction: async (body) => ({ transactionId: await broker.beginTransaction(body.producerGroup) }),
    TransactionProduce: async (body) => {
      const blocked = blockedReason();
      if (blocked !== null) throw resourceAlarm(blocked);
      return broker.transactionProduce(body.transactionId, body.topic, body.partition, body.messages.map(toMessageInput));
    },
    EndTransaction: async (body) => {
      const outcome = TRANSACTION_OUTCOMES[body.outcome];
      if (outcome === undefined) throw invalid(`EndTransaction.outcome is 0 (commit), 1 (rollback) or 2 (unknown), not ${body.outcome}`);
      await broker.endTransaction(body.transactionId, outcome);
      return {};
    },
    JoinProducerGroup: async (body, context) => {
      if (body.producerGroup.length === 0) throw invalid('a producer group name must not be empty');
      const leave = broker.joinProducerGroup(body.producerGroup, {
        id: context.connectionId,
        sendCheck: (check) =>
          context.push(
            encodePush('CheckTransaction', {
              transactionId: check.transactionId,
              producerGroup: check.producerGroup,
              messages: check.messages.map((message) => toWireDelivery(-1, 0, message)),
            }),
          ),
      });
      const memberships = producerGroupMemberships(context);
      let joined = memberships.get(body.producerGroup);
      if (joined === undefined) memberships.set(body.producerGroup, (joined = []));
      joined.push(leave);
      onClose(context, leave);
      return {};
    },
    LeaveProducerGroup: async (body, context) => {
      const joined = producerGroupMemberships(context).get(body.producerGroup);
      // The most recent join goes first; each leave function is idempotent, so the close listener may still run it.
      joined?.pop()?.();
      if (joined?.length === 0) producerGroupMemberships(context).delete(body.producerGroup);
      return {};
    },
    ListProducers: async () => ({ producers: broker.listProducers() }),
    GetTrace: async (body) => ({
      events: (await broker.traceMessage(body.id)).map(({ messageId: _id, time, kind, ...detail }) => ({ time, kind, detail: JSON.stringify(detail) })),
    }),
    GetMessage: async (body) => {
      if (body.id === null && body.key === null) throw invalid('GetMessage needs an id or a key');
      const found = await broker.getMessage({ id: body.id, key: body.key, topic: body.topic, limit: body.limit > 0 ? body.limit : 32 });
      return { messages: found.map((message) => ({ ...message, headers: toWireHeaders(message.headers) })) };
    },
    ...accessHandlers(broker),
  };
}
