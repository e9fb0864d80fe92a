import type { Message } from 'weir-protocol';
import type { WeirClientError } from './errors.js';

/** Sequences are int32 and wrap to 0 after 2^31 - 1, as the broker's do. */
export const SEQUENCE_MODULUS = 2 ** 31;
/** A record batch counts its messages in 16 bits, and a generated id numbers them in 16 bits. */
export const MAX_BATCH_MESSAGES = 0xffff;

/** The wire acks levels: 0 none (no response), 1 written, 2 durable. */
export type AcksLevel = 0 | 1 | 2;

/** What a message resolves with once the broker acknowledged it. */
export interface ProduceResult {
  readonly topic: string;
  readonly partition: number;
  /**
   * The message's offset; -1 when unknown (acks `none`, a retry the broker recognised from long ago, or a delayed
   * message: it is stored in the partition when it falls due).
   */
  readonly offset: number;
  /** The message id as lowercase hex: the one given, else the one the broker generated; null when unknown. */
  readonly id: string | null;
  /** The same id as bytes. */
  readonly idBytes: Buffer | null;
  /** The broker had already stored this batch (a retry); offsets and ids are the original ones. */
  readonly duplicate: boolean;
}

/** A message accepted by `send`, waiting for its batch to be acknowledged. */
export interface PendingMessage {
  readonly message: Message;
  /** Encoded size inside a Produce request (what it adds to a batch and to the producer's buffer). */
  readonly bytes: number;
  /** The client-given id, or null when the broker generates one. */
  readonly idBytes: Buffer | null;
  /** The key's bytes (for partitioning), or null. */
  readonly keyBytes: Buffer | null;
  resolve(result: ProduceResult): void;
  reject(error: WeirClientError): void;
}

let batchOrder = 0;

/** Messages for one partition that travel in one Produce request. */
export class Batch {
  readonly messages: PendingMessage[] = [];
  /** Sum of the messages' `bytes`. */
  bytes = 0;
  /** The idempotent sequence of the first message, assigned when the batch is closed; -1 when not idempotent. */
  sequence = -1;
  /** Failed attempts so far. */
  attempts = 0;
  /** Closing order across the producer: resends go out in this order. */
  order = -1;
  /** Built once, reused by retries. */
  wireMessages: Message[] | null = null;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly acks: AcksLevel,
    readonly idempotent: boolean,
    /** Delayed messages (held by the broker until due): the broker takes a produce of only delayed messages, or none. */
    readonly delayed = false,
  ) {}

  get count(): number {
    return this.messages.length;
  }
}

/**
 * The batches of one partition, in order: the `open` one still taking messages, closed ones `ready` to send (resends
 * first), those `inFlight`, and those that `failed` and wait to be resent once every batch in flight has settled.
 */
export class PartitionQueue {
  open: Batch | null = null;
  ready: Batch[] = [];
  inFlight: Batch[] = [];
  failed: Batch[] = [];
  /** The sequence the next closed idempotent batch gets. */
  nextSequence = 0;
  /** A failure happened: nothing new is sent until the batches in flight settled and the failed ones are queued again. */
  recovering = false;
  /**
   * The earliest batch the broker rejected (so it is certainly not stored): the batches closed after it are renumbered
   * from its sequence, closing the gap it left.
   */
  gap: { sequence: number; order: number } | null = null;
  /** The open batch may go out (its linger expired). */
  openDue = false;
  lingerTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}
}

/** The partition queues of one topic. */
export class TopicQueues {
  readonly byPartition = new Map<number, PartitionQueue>();

  constructor(readonly topic: string) {}
}

export interface AccumulatorOptions {
  /** How long an open batch waits for more messages; 0 sends what one tick produced. */
  lingerMs: number;
  /** A batch closes before it would exceed this many bytes (a single larger message gets a batch of its own). */
  maxBatchBytes: number;
  /** A batch closes at this many messages. */
  maxBatchMessages: number;
}

/**
 * Batching decisions, per partition. A message joins the partition's open batch unless that batch has another acks
 * level, idempotence or delayedness, or would exceed `maxBatchBytes`/`maxBatchMessages`, in which case the open batch is closed and a new one
 * opened. A batch that reaches a limit closes at once; otherwise it becomes due after `lingerMs` (with 0, at the end of
 * the current tick, so one synchronous burst still forms one batch). A due batch stays open — still taking messages —
 * until the sender can take it (fewer batches in flight than allowed), so batches grow while the partition is busy.
 *
 * Closing a batch gives an idempotent batch its sequence (`nextSequence`, advanced by its message count, modulo 2^31).
 */
export class Accumulator {
  /** Per topic, its partitions' queues by partition number (no key string to build per message). */
  private readonly topics = new Map<string, TopicQueues>();
  /** Every queue, in creation order. */
  private readonly queues: PartitionQueue[] = [];
  /** While > 0 (a flush), every open batch counts as due. */
  flushing = 0;

  constructor(
    readonly options: AccumulatorOptions,
    /** Called when a partition may have a batch to send. */
    private readonly onSendable: (queue: PartitionQueue) => void,
  ) {}

  /** The queues of one topic (look it up once, then take partitions from it with `queueOf`). */
  topic(topic: string): TopicQueues {
    let queues = this.topics.get(topic);
    if (queues === undefined) {
      queues = new TopicQueues(topic);
      this.topics.set(topic, queues);
    }
    return queues;
  }

  /** The queue of one partition of a topic from `topic()`. */
  queueOf(queues: TopicQueues, partition: number): PartitionQueue {
    let queue = queues.byPartition.get(partition);
    if (queue === undefined) {
      queue = new PartitionQueue(queues.topic, partition);
      queues.byPartition.set(partition, queue);
      this.queues.push(queue);
    }
    return queue;
  }

  allQueues(): IterableIterator<PartitionQueue> {
    return this.queues.values();
  }

  /** Adds a message to the partition's open batch (opening or closing batches as the limits say); returns the batch. */
  append(queue: PartitionQueue, message: PendingMessage, acks: AcksLevel, idempotent: boolean, delayed = false): Batch {
    let batch = queue.open;
    if (
      batch !== null &&
      (batch.acks !== acks ||
        batch.idempotent !== idempotent ||
        batch.delayed !== delayed ||
        batch.count >= this.options.maxBatchMessages ||
        batch.bytes + message.bytes > this.options.maxBatchBytes)
    ) {
      this.close(queue);
      batch = null;
    }
    if (batch === null) {
      batch = new Batch(queue.topic, queue.partition, acks, idempotent, delayed);
      queue.open = batch;
      queue.openDue = false;
      this.startLinger(queue);
    }
    batch.messages.push(message);
    batch.bytes += message.bytes;
    if (batch.count >= this.options.maxBatchMessages || batch.bytes >= this.options.maxBatchBytes) {
      this.close(queue);
      this.onSendable(queue);
    }
    return batch;
  }

  /** The next batch the partition may send, closing the open one if it is due; null when there is none. */
  takeSendable(queue: PartitionQueue): Batch | null {
    if (queue.ready.length === 0 && queue.open !== null && (queue.openDue || this.flushing > 0)) this.close(queue);
    return queue.ready.shift() ?? null;
  }

  /** Whether the partition has a batch that `takeSendable` would return. */
  hasSendable(queue: PartitionQueue): boolean {
    return queue.ready.length > 0 || (queue.open !== null && (queue.openDue || this.flushing > 0));
  }

  /** Closes the open batch: it gets its sequence and joins the end of `ready`. */
  close(queue: PartitionQueue): void {
    const batch = queue.open;
    if (batch === null) return;
    queue.open = null;
    queue.openDue = false;
    if (queue.lingerTimer !== null) clearTimeout(queue.lingerTimer);
    queue.lingerTimer = null;
    if (batch.idempotent) {
      batch.sequence = queue.nextSequence;
      queue.nextSequence = (queue.nextSequence + batch.count) % SEQUENCE_MODULUS;
    }
    batch.order = batchOrder++;
    queue.ready.push(batch);
  }

  /** Renumbers idempotent batches in order from `from`, and sets the partition's next sequence after them. */
  renumber(queue: PartitionQueue, batches: readonly Batch[], from: number): void {
    let sequence = from;
    for (const batch of batches) {
      if (!batch.idempotent) continue;
      batch.sequence = sequence;
      sequence = (sequence + batch.count) % SEQUENCE_MODULUS;
    }
    queue.nextSequence = sequence;
  }

  /** Stops every linger timer (the producer is going away). */
  clearTimers(): void {
    for (const queue of this.queues) {
      if (queue.lingerTimer !== null) clearTimeout(queue.lingerTimer);
      queue.lingerTimer = null;
    }
  }

  private startLinger(queue: PartitionQueue): void {
    if (queue.lingerTimer !== null) clearTimeout(queue.lingerTimer);
    queue.lingerTimer = null;
    const due = (): void => {
      queue.lingerTimer = null;
      if (queue.open === null) return;
      queue.openDue = true;
      this.onSendable(queue);
    };
    if (this.options.lingerMs > 0) queue.lingerTimer = setTimeout(due, this.options.lingerMs);
    else if (this.flushing === 0) process.nextTick(due);
  }
}
