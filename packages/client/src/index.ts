/**
 * weir-client: the TypeScript client for the Weir broker's native protocol.
 *
 * ```ts
 * import { WeirClient } from 'weir-client';
 *
 * const client = new WeirClient({ brokers: ['localhost:7654'], clientId: 'orders-service' });
 * await client.admin().createTopic('orders', { partitions: 8 });
 *
 * const producer = client.producer();                       // idempotent, acks 'durable', 5 ms linger
 * const { partition, offset, id } = await producer.send('orders', { key: 'customer-42', body: JSON.stringify(order) });
 *
 * const consumer = client.consumer({ group: 'billing' });   // stream mode: the group shares the partitions
 * consumer.on('rebalance', ({ assigned, revoked }) => log(assigned, revoked));
 * await consumer.subscribe('orders');
 * for await (const message of consumer) handle(message);   // commits what was handled every 5 s, and on close
 *
 * const jobs = client.queueConsumer({ group: 'workers', prefetch: 50 });   // work queue: one consumer per message
 * await jobs.subscribe('jobs');
 * for await (const job of jobs) {
 *   try { await run(job.body); void job.ack(); } catch (error) { void job.nack({ delayMs: 5000, error: String(error) }); }
 * }
 *
 * const txp = client.transactionalProducer({ producerGroup: 'orders', onCheck: ({ messages }) => lookUp(messages) });
 * await txp.transaction(async (tx) => {                      // half messages: invisible until the work resolves
 *   await tx.send('orders', { key: order.id, body: JSON.stringify(order) });
 *   await db.insertOrder(order);                             // throws: rolled back, rethrown
 * });
 *
 * await client.close();                                      // flushes producers, commits and leaves groups
 * ```
 *
 * Transactional outbox (docs/transactional-outbox.md): `new OutboxRelay({ store, producer: client.producer({ idempotent:
 * false }) }).start()` publishes the rows of your outbox table (`store` implements fetchUnsent and markSent over your
 * database) with the row id as message id, so the broker's dedup drops a resend after a crash.
 *
 * Broadcast (`mode: 'broadcast'`): every instance reads every partition and commits under `<group>/<instanceId>`;
 * give a stable `instanceId` and a restarted instance resumes where it stopped (a random one starts from `from`).
 *
 * Errors are WeirClientError: `code` (a broker error name, or CONNECTION_CLOSED, TIMEOUT, CLIENT_CLOSED), `retriable`
 * and a message saying what happened and, where it can, what to do.
 */
export { WeirClient, type WeirClientOptions, type RetryRequestOptions } from './client.js';
export { Producer, type ProducerOptions, type ProducerMessage, type SendOptions, type Acks, type ProduceResult } from './producer.js';
export { Consumer, type ConsumerOptions, type ConsumedMessage, type RebalanceEvent, type TopicPartition, type AssignmentStrategy } from './consumer.js';
export { QueueConsumer, type QueueConsumerOptions, type QueueMode, type QueueFilter, type QueueGroupSettings, type ReceiveOptions } from './queue-consumer.js';
export type { QueueMessage, PeekedMessage, NackOptions, RejectOptions, SettleApplied } from './queue-message.js';
export {
  TransactionalProducer,
  Transaction,
  type TransactionalProducerOptions,
  type TransactionCheck,
  type CheckedMessage,
  type TransactionDecision,
  type TransactionSendOptions,
  type TransactionSendResult,
  type TransactionState,
} from './transactional-producer.js';
export { OutboxRelay, type OutboxRelayOptions, type OutboxRow, type OutboxStore, type OutboxPublisher } from './outbox-relay.js';
export type {
  TraceEvent,
  TraceKind,
  TraceLocation,
  TraceProducer,
  StoredTraceEvent,
  DelayedTraceEvent,
  DeliveredTraceEvent,
  AckedTraceEvent,
  NackedTraceEvent,
  RejectedTraceEvent,
  DeadLetteredTraceEvent,
  ExpiredTraceEvent,
  TransactionTraceEvent,
} from './trace.js';
export {
  Admin,
  DEFAULT_TOPIC_CONFIG,
  type TopicSettings,
  type CreateTopicOptions,
  type AlterTopicOptions,
  type TopicInfo,
  type FoundMessageInfo,
  type GroupDescription,
  type GetMessageQuery,
  type SharedGroupDescription,
  type SharedTopicDescription,
  type ProducerInfo,
  type UserInfo,
  type PermissionInfo,
  type DefinitionsImportReport,
} from './admin.js';
export { Connection, CLIENT_VERSION, type ConnectionOptions, type RequestOptions, type HandshakeInfo } from './connection.js';
export { WeirClientError, isWeirClientError, type WeirClientErrorCode } from './errors.js';
export { parseAddress, formatAddress, DEFAULT_PORT, type BrokerAddress } from './address.js';
export { backoffDelay, type RetryOptions } from './backoff.js';
export { TopicMetadata } from './metadata.js';
export type { TopicConfig, PartitionState, GroupSummary, GroupMember, GroupLag, PartitionOffset } from 'weir-protocol';
