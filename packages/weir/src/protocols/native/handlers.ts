import type { Header, Message, ResponseOf, TopicConfig as WireTopicConfig, TopicDescription as WireTopicDescription } from 'weir-protocol';
import type { BrokerCore } from '../../broker/broker-core.js';
import type { Acks } from '../../broker/partition-writer.js';
import type { TopicConfig, TopicDescription } from '../../broker/topic-registry.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import type { MessageInput } from '../../storage/record-batch.js';
import type { HandlerTable } from './native-connection.js';

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
    for (const header of message.headers) headers[header.name] = header.isString ? Buffer.from(header.value).toString('utf8') : header.value;
  }
  // One fixed shape per message: null id and negative timestamp mean "let the store choose", as on the wire.
  return { id: message.id, key: message.key, tag: message.tag, headers, timestamp: message.timestamp, body: message.body };
}

function toWireHeaders(headers: Record<string, string | Buffer>): Header[] {
  return Object.entries(headers).map(([name, value]) =>
    typeof value === 'string' ? { name, isString: true, value: Buffer.from(value, 'utf8') } : { name, isString: false, value },
  );
}

function invalid(message: string): WeirError {
  return new WeirError(ErrorCode.InvalidArgument, message);
}

export function nativeHandlers(broker: BrokerCore): HandlerTable {
  return {
    CreateTopic: async (body) => ({ topic: toWireTopic(await broker.createTopic(body.name, body.partitions, toConfig(body.config))) }),
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
    GetMessage: async (body) => {
      if (body.id === null && body.key === null) throw invalid('GetMessage needs an id or a key');
      const found = await broker.getMessage({ id: body.id, key: body.key, topic: body.topic, limit: body.limit > 0 ? body.limit : 32 });
      return { messages: found.map((message) => ({ ...message, headers: toWireHeaders(message.headers) })) };
    },
  };
}
