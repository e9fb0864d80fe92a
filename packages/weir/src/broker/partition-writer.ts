import type { AppendOptions, AppendResult, MessageStore } from '../storage/message-store.js';
import type { BatchAttributes, MessageInput } from '../storage/record-batch.js';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { fromStorage, invalidArgument, shuttingDown } from './errors.js';
import type { Partitioner } from './partitioner.js';
import type { ProducerStateManager } from './producer-state.js';
import { partitionQueueName, type TopicRegistry } from './topic-registry.js';
import type { Clock } from '../core/clock.js';
import { prepareProduced, RESERVED_PREFIX } from './queue/message-attributes.js';
import type { MessageDedup } from './queue/dedup.js';

/**
 * When a produce is answered. `durable`: once the append resolved, i.e. after the fsync the topic's flush policy asks
 * for. `written`: once the batch is in the commit-log file (page cache), see AppendOptions.onWritten. `none`: the client
 * wants no answer; the broker still stores the batch exactly as for `written`.
 */
export type Acks = 'none' | 'written' | 'durable';

const ACKS: ReadonlySet<string> = new Set<Acks>(['none', 'written', 'durable']);
const MAX_SEQUENCE = 0x7fffffff;

export interface ProduceRequest {
  topic: string;
  /** A partition number, or -1: by the key of the first message (murmur2), else round robin. */
  partition: number;
  acks: Acks;
  /** From initProducer, or -1 for a producer without idempotence. */
  producerId: number;
  producerEpoch: number;
  /** Sequence of the first message for this (producer, partition); ignored without a producer id. */
  baseSequence: number;
  messages: readonly MessageInput[];
}

/** The same messages to several topics at once, stored once (see produceShared). */
export interface SharedProduceRequest {
  /** Where the messages go: each a topic and a partition (-1: chosen as `produce` chooses); no partition twice. */
  targets: ReadonlyArray<{ topic: string; partition: number }>;
  acks: Acks;
  messages: readonly MessageInput[];
}

/** What became of one target of a shared produce: its result, or why it got nothing. */
export type SharedProduceOutcome = { topic: string; result: ProduceResult; error: null } | { topic: string; result: null; error: unknown };

export interface ProduceResult {
  partition: number;
  /** Offset of the first message; -1 for a duplicate of a batch older than the producer window. */
  baseOffset: number;
  storeTimestamp: number;
  /** Commit-log position of the batch: with storeTimestamp it yields the generated message ids. */
  position: number;
  /** The batch was a retry of one already stored; the offsets are the original ones. */
  duplicate: boolean;
}


/**
 * The produce path: topic and partition lookup, partition choice, idempotence, the append, and the ack level. Keeps
 * every append in flight so close() can let them finish.
 */
/** What the produce path asks of the work-queue layer. */
export interface WriterHooks {
  /** Refuses produces to a topic whose queue limit says so (QUEUE_FULL). */
  admit(topic: string): void;
  /** Broker-side dedup of client-chosen ids for producers without idempotence. */
  dedup: MessageDedup;
  /** Holds delayed messages until due (the delay schedule); resolves once they are durable. */
  delay(topic: string, partition: number, messages: readonly MessageInput[]): Promise<void>;
}

export class PartitionWriter {
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly store: MessageStore,
    private readonly registry: TopicRegistry,
    private readonly partitioner: Partitioner,
    private readonly producers: ProducerStateManager,
    private readonly clock: Clock,
    private readonly hooks: WriterHooks,
  ) {}

  /**
   * Validates reserved `weir.` headers and turns relative times into absolute ones (docs/design/work-queues.md).
   * Returns the messages to store and whether they are delayed: all of a produce are, or none.
   */
  private prepare(messages: readonly MessageInput[]): { messages: readonly MessageInput[]; delayed: boolean } {
    let prepared: MessageInput[] | null = null;
    let delayed = 0;
    const now = this.clock.now();
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      if (message.headers === null || message.headers === undefined) continue;
      const result = prepareProduced(message, now);
      if (result.delayed) delayed++;
      if (result.message !== message) {
        prepared ??= messages.slice();
        prepared[i] = result.message;
      }
    }
    if (delayed > 0 && delayed < messages.length) throw invalidArgument('a produce carries delayed messages only, or none: send delayed messages in their own batch');
    return { messages: prepared ?? messages, delayed: delayed > 0 };
  }

  async produce(request: ProduceRequest): Promise<ProduceResult> {
    if (this.closed) throw shuttingDown();
    if (!ACKS.has(request.acks)) throw invalidArgument(`acks must be none, written or durable, not ${String(request.acks)}`);
    if (!Array.isArray(request.messages) || request.messages.length === 0) throw invalidArgument('a produce carries at least one message');
    const topic = this.registry.get(request.topic);
    this.hooks.admit(topic.name);
    const idempotent = request.producerId !== -1;
    const key = request.messages[0]!.key;
    if (idempotent && request.partition === -1 && (key === null || key === undefined)) {
      // Sequences count per partition, so a retry must land where the original did: no round robin.
      throw invalidArgument('an idempotent producer must name the partition or key its first message');
    }
    const partition = this.partitioner.choose(topic.name, topic.queueIds.length, request.partition, key);
    const queueId = topic.queueIds[partition]!;
    const { messages, delayed } = this.prepare(request.messages);
    if (delayed && idempotent) throw invalidArgument('delayed messages cannot be sent by an idempotent producer (a retry is caught by dedup of their message ids instead)');
    request = messages === request.messages ? request : { ...request, messages };
    try {
      if (!idempotent) return await this.produceWithDedup(topic.name, partition, queueId, messages, request.acks, delayed);
      const { producerId, producerEpoch, baseSequence } = request;
      if (!Number.isSafeInteger(baseSequence) || baseSequence < 0 || baseSequence > MAX_SEQUENCE) {
        throw invalidArgument(`an idempotent batch needs a sequence from 0 to ${MAX_SEQUENCE}, not ${baseSequence}`);
      }
      const ack: { promise?: Promise<AppendResult> } = {};
      const decision = await this.producers.sequence(queueId, producerId, producerEpoch, baseSequence, request.messages.length, () => {
        const appended = this.appendWithSignal(queueId, request.messages, { producerId, producerEpoch, baseSequence }, request.acks);
        ack.promise = appended.answer;
        return appended.durable;
      });
      if (decision.duplicate) {
        const original = await decision.original;
        return { partition, ...original, duplicate: true };
      }
      const result = await ack.promise!;
      return { partition, baseOffset: result.baseOffset, storeTimestamp: result.storeTimestamp, position: result.position, duplicate: false };
    } catch (error) {
      throw fromStorage(error, topic.name);
    }
  }

  /**
   * A produce without producer id. Messages with client-chosen ids go through the dedup window: ids stored within it
   * are not stored again (a batch of nothing but duplicates answers with the first original's location and
   * `duplicate: true`; otherwise only the new messages are stored). Messages without ids skip it at no cost.
   */
  private async produceWithDedup(topic: string, partition: number, queueId: number, messages: readonly MessageInput[], acks: Acks, delayed: boolean): Promise<ProduceResult> {
    let ids: Array<Buffer | null> | null = null;
    for (let i = 0; i < messages.length; i++) {
      const id = messages[i]!.id;
      if (id === null || id === undefined) continue;
      ids ??= new Array<Buffer | null>(messages.length).fill(null);
      ids[i] = typeof id === 'string' ? Buffer.from(id, 'utf8') : Buffer.from(id.buffer, id.byteOffset, id.byteLength);
    }
    if (ids === null) return this.storeOrDelay(topic, partition, queueId, messages, acks, delayed);
    const reservation = this.hooks.dedup.tryBegin(ids) ?? (await this.hooks.dedup.begin(ids));
    try {
      if (reservation.fresh.length === 0) {
        const original = reservation.duplicates.find((location) => location !== null) ?? null;
        const at = original === null ? undefined : this.registry.locate(original.queueId);
        return {
          partition: at?.partition ?? partition,
          baseOffset: original?.offset ?? -1,
          storeTimestamp: original?.storeTimestamp ?? -1,
          position: original?.position ?? -1,
          duplicate: true,
        };
      }
      const fresh = reservation.fresh.length === messages.length ? messages : reservation.fresh.map((index) => messages[index]!);
      const result = await this.storeOrDelay(topic, partition, queueId, fresh, acks, delayed);
      reservation.complete(
        fresh.map((_, index) => ({
          queueId,
          offset: result.baseOffset < 0 ? -1 : result.baseOffset + index,
          storeTimestamp: result.storeTimestamp,
          position: result.position,
        })),
      );
      // Only some were new: one base offset cannot say where each message is, so none is given (-1).
      return fresh === messages ? result : { ...result, baseOffset: -1 };
    } finally {
      reservation.abort();
    }
  }

  /** Appends (or hands delayed messages to the schedule) and answers at the ack level. */
  private async storeOrDelay(topic: string, partition: number, queueId: number, messages: readonly MessageInput[], acks: Acks, delayed: boolean): Promise<ProduceResult> {
    if (delayed) {
      await this.hooks.delay(topic, partition, messages);
      return { partition, baseOffset: -1, storeTimestamp: this.clock.now(), position: -1, duplicate: false };
    }
    const result = await this.append(queueId, messages, {}, acks);
    return { partition, baseOffset: result.baseOffset, storeTimestamp: result.storeTimestamp, position: result.position, duplicate: false };
  }

  /**
   * A produce without producer id of the same messages to several topics: one stored batch that every chosen
   * partition points at, so the bytes are written once. Each target is checked as a produce to it alone would be
   * (topic exists, work-queue admission) and one that fails gets its error while the others still get the messages;
   * outcomes come back in target order. The batch is answered at the ack level once it is acknowledged under the
   * strictest flush policy among the targets. Messages that cannot share a batch take the single-topic path once per
   * target: delayed messages (each copy waits in the delay schedule), messages with client-chosen ids (dedup by id),
   * and a batch over some target's message size limit (so only that target refuses it).
   */
  async produceShared(request: SharedProduceRequest): Promise<SharedProduceOutcome[]> {
    if (this.closed) throw shuttingDown();
    if (!ACKS.has(request.acks)) throw invalidArgument(`acks must be none, written or durable, not ${String(request.acks)}`);
    if (!Array.isArray(request.messages) || request.messages.length === 0) throw invalidArgument('a produce carries at least one message');
    if (!Array.isArray(request.targets) || request.targets.length === 0) throw invalidArgument('a shared produce names at least one target');
    const { messages, delayed } = this.prepare(request.messages);
    const alone = (target: { topic: string; partition: number }): Promise<SharedProduceOutcome> =>
      this.produce({ topic: target.topic, partition: target.partition, acks: request.acks, producerId: -1, producerEpoch: 0, baseSequence: 0, messages: request.messages }).then(
        (result) => ({ topic: target.topic, result, error: null }),
        (error: unknown) => ({ topic: target.topic, result: null, error }),
      );
    if (delayed || messages.some((message) => message.id !== null && message.id !== undefined)) return Promise.all(request.targets.map(alone));
    const outcomes: Array<SharedProduceOutcome | null> = [];
    const admitted: Array<{ index: number; partition: number; queueId: number }> = [];
    const queueIds = new Set<number>();
    for (const [index, target] of request.targets.entries()) {
      try {
        const topic = this.registry.get(target.topic);
        this.hooks.admit(topic.name);
        const partition = this.partitioner.choose(topic.name, topic.queueIds.length, target.partition, messages[0]!.key);
        const queueId = topic.queueIds[partition]!;
        if (queueIds.has(queueId)) throw invalidArgument(`partition ${partition} of "${topic.name}" is named twice in one shared produce`);
        queueIds.add(queueId);
        admitted.push({ index, partition, queueId });
        outcomes.push(null);
      } catch (error) {
        outcomes.push({ topic: target.topic, result: null, error });
      }
    }
    if (admitted.length > 0) {
      const settle = (index: number, result: ProduceResult | null, error: unknown) => {
        const topic = request.targets[index]!.topic;
        outcomes[index] = result === null ? { topic, result: null, error: fromStorage(error, topic) } : { topic, result, error: null };
      };
      try {
        const results = await this.answerAt<readonly AppendResult[]>(request.acks, (onWritten) => this.store.appendShared([...queueIds], messages, { onWritten })).answer;
        admitted.forEach(({ index, partition }, at) => {
          const { baseOffset, storeTimestamp, position } = results[at]!;
          settle(index, { partition, baseOffset, storeTimestamp, position, duplicate: false }, null);
        });
      } catch (error) {
        if (isWeirError(error, ErrorCode.MessageTooLarge) && admitted.length > 1) {
          const retried = await Promise.all(admitted.map(({ index }) => alone(request.targets[index]!)));
          admitted.forEach(({ index }, at) => (outcomes[index] = retried[at]!));
        } else {
          for (const { index } of admitted) settle(index, null, error);
        }
      }
    }
    return outcomes as SharedProduceOutcome[];
  }

  /** The partition a produce of these messages goes to, as produce would choose it (transactions store elsewhere first). */
  route(topicName: string, requested: number, messages: readonly MessageInput[]): { queueName: string; partition: number } {
    if (!Array.isArray(messages) || messages.length === 0) throw invalidArgument('a produce carries at least one message');
    const topic = this.registry.get(topicName);
    this.hooks.admit(topic.name);
    const partition = this.partitioner.choose(topic.name, topic.queueIds.length, requested, messages[0]!.key);
    for (const message of messages) {
      if (message.headers && Object.keys(message.headers).some((name) => name.startsWith(RESERVED_PREFIX))) throw invalidArgument(`transactional messages cannot carry ${RESERVED_PREFIX} attributes (delay, TTL, priority)`);
    }
    return { queueName: partitionQueueName(topic.name, partition), partition };
  }

  private append(queueId: number, messages: readonly MessageInput[], attributes: BatchAttributes, acks: Acks): Promise<AppendResult> {
    return this.appendWithSignal(queueId, messages, attributes, acks).answer;
  }

  /**
   * Appends; `durable` is the store's promise, `answer` settles at the ack level: the same promise for `durable`
   * acks, else whichever comes first of "written" (AppendOptions.onWritten) and the append resolving.
   */
  private appendWithSignal(queueId: number, messages: readonly MessageInput[], attributes: BatchAttributes, acks: Acks): { durable: Promise<AppendResult>; answer: Promise<AppendResult> } {
    return this.answerAt(acks, (onWritten) => this.store.append(queueId, messages, onWritten === undefined ? attributes : { ...attributes, onWritten }));
  }

  /** Starts an append (given its "written" callback for acks below durable) and answers at the ack level. */
  private answerAt<Result>(acks: Acks, append: (onWritten: ((result: Result) => void) | undefined) => Promise<Result>): { durable: Promise<Result>; answer: Promise<Result> } {
    if (acks === 'durable') {
      const durable = this.track(append(undefined));
      return { durable, answer: durable };
    }
    let durable!: Promise<Result>;
    const answer = new Promise<Result>((resolve, reject) => {
      durable = this.track(append(resolve));
      durable.then(resolve, reject);
    });
    return { durable, answer };
  }

  /** Keeps an append in flight until it settles, so close() can wait for it. */
  private track<Result>(appended: Promise<Result>): Promise<Result> {
    this.inFlight.add(appended);
    const forget = () => this.inFlight.delete(appended);
    appended.then(forget, forget);
    return appended;
  }

  /** Refuses new produces and waits for the appends in flight to settle. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
  }
}
