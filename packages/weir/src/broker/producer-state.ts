import type { Clock } from '../core/clock.js';
import { ErrorCode, isWeirError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { AppendResult, MessageStore } from '../storage/message-store.js';
import type { StoredMessage } from '../storage/record-batch.js';
import { brokerError, type MetadataOp } from './errors.js';
import type { ProducerIds } from './producer-ids.js';
import type { Scheduler, TimerHandle } from './scheduler.js';
import type { Topic, TopicObserver, TopicRegistry } from './topic-registry.js';

/** Resolved batches remembered per (producer, partition): a retry of any of them is answered from memory. */
export const PRODUCER_WINDOW = 5;
/** Sequences are int32 and wrap to 0 after 2^31 - 1, as Kafka's do. */
const SEQUENCE_MODULUS = 2 ** 31;
const STATE_KEY_PREFIX = 'producer/state/';
/** Messages per read while rebuilding state from the log. */
const RECOVERY_READ_MESSAGES = 4096;

export interface ProducerStateOptions {
  /** How often changed partitions write their snapshot (default 10 s); bounds the log a restart re-reads. */
  snapshotIntervalMs: number;
  /** A producer silent on a partition this long (by store time) is forgotten there (default 1 day, Kafka's). */
  retentionMs: number;
}

/** The original answer to a batch, for a retry recognised as a duplicate. -1 fields: stored, but too long ago to say where. */
export interface SequencedBatch {
  baseOffset: number;
  storeTimestamp: number;
  position: number;
}

export type SequenceDecision =
  /** The batch was new and `append` was called. */
  | { duplicate: false }
  /** A retry: `append` was not called; the original's result (once it is stored). */
  | { duplicate: true; original: Promise<SequencedBatch> };

interface BatchRecord {
  baseSequence: number;
  count: number;
  baseOffset: number;
  storeTimestamp: number;
  position: number;
  /** The append while it is in flight; null once it resolved. */
  pending: Promise<AppendResult> | null;
}

/** What one producer's sequence numbers revealed since the broker started. */
interface ProducerSequenceStats {
  producerId: number;
  epoch: number;
  /** Storage queue ids it wrote to. */
  partitions: Set<number>;
  batches: number;
  messages: number;
  /** Messages in batches recognised as retries of stored ones. */
  duplicates: number;
  /** Batches refused because sequences were skipped or overlapped: something was lost before the broker. */
  gaps: number;
  lastSeen: number;
}

/** One producer's sequence state on one partition. */
interface ProducerEntry {
  producerId: number;
  epoch: number;
  /** The sequence the next new batch must start with. */
  nextSequence: number;
  /** Oldest first: at most PRODUCER_WINDOW resolved batches, then the ones in flight (they resolve in this order). */
  batches: BatchRecord[];
  /** Store time of the producer's last batch here (expiry). */
  lastTimestamp: number;
}

class PartitionProducers {
  readonly producers = new Map<number, ProducerEntry>();
  /** While the partition's first snapshot key is being written: idempotent produces wait for it, in arrival order. */
  ready: Promise<void> | null = null;
  /** Something changed since the last snapshot was written. */
  dirty = false;

  constructor(
    readonly queueId: number,
    /** Everything below this offset is reflected in the persisted snapshot. */
    public snapshotOffset: number,
  ) {}
}

/** `producer/state/<queueId>`: [producerId, epoch, lastTimestamp, [[baseSequence, count, baseOffset, storeTimestamp, position], …]]. */
interface StoredSnapshot {
  offset: number;
  producers: Array<[number, number, number, Array<[number, number, number, number, number]>]>;
}

function stateKey(queueId: number): string {
  return STATE_KEY_PREFIX + queueId;
}

/** How far `from` lies behind `to`, modulo the sequence space. */
function behind(to: number, from: number): number {
  return (((to - from) % SEQUENCE_MODULUS) + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
}

function resolvedCount(entry: ProducerEntry): number {
  let count = 0;
  while (count < entry.batches.length && entry.batches[count]!.pending === null) count++;
  return count;
}

function trimWindow(entry: ProducerEntry): void {
  const resolved = resolvedCount(entry);
  if (resolved > PRODUCER_WINDOW) entry.batches.splice(0, resolved - PRODUCER_WINDOW);
}

/**
 * Idempotent-producer sequence state, per (producer, partition): the next expected sequence and the last
 * PRODUCER_WINDOW batches, so a retried batch is answered with its original offsets instead of being stored twice.
 *
 * Decisions: a batch whose (baseSequence, count) equals a remembered one is a duplicate (if the original is still in
 * flight, the retry waits for it); a batch starting at the next sequence is appended; a batch entirely before the
 * remembered window is a duplicate of a batch stored too long ago to describe (answered with offsets -1, as a Kafka
 * client treats DUPLICATE_SEQUENCE); anything else is OUT_OF_ORDER_SEQUENCE. A new epoch, or a producer with no state
 * here, must start at sequence 0; otherwise UNKNOWN_PRODUCER tells it to initialise again.
 *
 * Ordering: the check and the store append happen in one synchronous step, and the store orders appends by call, so
 * concurrent produces for one (producer, partition) are stored in the order they were accepted. A failed append takes
 * its batch and every later one of that producer back out of the state (the store fails every append queued after a
 * failed one), so the producer resends from the failed sequence.
 *
 * Durability: partitions that have state keep a snapshot under `producer/state/<queueId>` (queue ids are never reused)
 * holding the resolved batches and the offset it covers; it is rewritten every `snapshotIntervalMs` when changed, and
 * on close. Before the first idempotent batch of a partition is appended, the partition's (empty) snapshot is written,
 * so every idempotent batch in the log lies at or after some snapshot's offset. `open` loads the snapshots and re-reads
 * each partition's log from its snapshot offset: after a clean close nothing, after a crash at most
 * `snapshotIntervalMs` worth of appends per partition.
 */
export class ProducerStateManager implements TopicObserver {
  private readonly partitions = new Map<number, PartitionProducers>();
  private timer: TimerHandle | null = null;
  private snapshotChain: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly store: MessageStore,
    private readonly ids: ProducerIds,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly options: ProducerStateOptions,
  ) {}

  static async open(
    store: MessageStore,
    registry: TopicRegistry,
    ids: ProducerIds,
    clock: Clock,
    scheduler: Scheduler,
    logger: Logger,
    options: ProducerStateOptions,
  ): Promise<ProducerStateManager> {
    const manager = new ProducerStateManager(store, ids, clock, scheduler, logger, options);
    const orphans: MetadataOp[] = [];
    let replayed = 0;
    for (const [key, value] of store.metadata.entries(STATE_KEY_PREFIX)) {
      const queueId = Number(key.slice(STATE_KEY_PREFIX.length));
      if (registry.locate(queueId) === undefined) {
        orphans.push({ key, delete: true });
        continue;
      }
      replayed += await manager.recover(queueId, value as StoredSnapshot);
    }
    if (orphans.length > 0) await store.metadata.apply(orphans);
    if (replayed > 0) logger.info({ batches: replayed }, 'producer state rebuilt from the log');
    manager.arm();
    return manager;
  }

  /**
   * Decides what to do with a batch of an idempotent producer and, when it is new, calls `append` (synchronously, in
   * the same step as the check). Throws (or rejects with) UNKNOWN_PRODUCER, INVALID_PRODUCER_EPOCH or
   * OUT_OF_ORDER_SEQUENCE.
   */
  sequence(
    queueId: number,
    producerId: number,
    producerEpoch: number,
    baseSequence: number,
    count: number,
    append: () => Promise<AppendResult>,
  ): SequenceDecision | Promise<SequenceDecision> {
    let partition = this.partitions.get(queueId);
    if (partition === undefined) {
      // A stranger must not cause the metadata write below.
      this.ids.check(producerId, producerEpoch);
      partition = this.startPartition(queueId);
    }
    const ready = partition.ready;
    if (ready !== null) {
      const current = partition;
      return ready.then(() => this.decide(current, producerId, producerEpoch, baseSequence, count, append));
    }
    return this.decide(partition, producerId, producerEpoch, baseSequence, count, append);
  }

  /** Writes the empty snapshot of a partition's first idempotent batch before that batch may be appended. */
  private startPartition(queueId: number): PartitionProducers {
    const offset = this.store.queueById(queueId)?.endOffset ?? 0;
    const partition = new PartitionProducers(queueId, offset);
    this.partitions.set(queueId, partition);
    const snapshot: StoredSnapshot = { offset, producers: [] };
    partition.ready = this.store.metadata.put(stateKey(queueId), snapshot).then(
      () => {
        partition.ready = null;
        // The topic was deleted meanwhile: its keys are gone except this one.
        if (this.partitions.get(queueId) !== partition) void this.store.metadata.delete(stateKey(queueId)).catch(() => {});
      },
      (error: unknown) => {
        if (this.partitions.get(queueId) === partition) this.partitions.delete(queueId);
        throw error;
      },
    );
    return partition;
  }

  /** Per producer: what its sequence numbers said (in memory; since the broker started, for producers seen within the retention). */
  private readonly sequenceStats = new Map<number, ProducerSequenceStats>();

  private stats(producerId: number, epoch: number): ProducerSequenceStats {
    let stats = this.sequenceStats.get(producerId);
    if (stats === undefined) {
      stats = { producerId, epoch, partitions: new Set(), batches: 0, messages: 0, duplicates: 0, gaps: 0, lastSeen: 0 };
      this.sequenceStats.set(producerId, stats);
    }
    stats.epoch = Math.max(stats.epoch, epoch);
    stats.lastSeen = this.clock.now();
    return stats;
  }

  /**
   * Every idempotent producer seen since the broker started, with the batches it sent and what its sequence numbers
   * revealed: duplicates (retries the broker recognised and did not store again) and gaps (a batch that never reached
   * the broker: loss upstream of it). Sorted by producer id.
   */
  listProducers(): Array<{ producerId: number; epoch: number; partitions: number; batches: number; messages: number; duplicates: number; gaps: number; lastSeen: number }> {
    return [...this.sequenceStats.values()]
      .sort((a, b) => a.producerId - b.producerId)
      .map((stats) => ({ ...stats, partitions: stats.partitions.size }));
  }

  private decide(
    partition: PartitionProducers,
    producerId: number,
    producerEpoch: number,
    baseSequence: number,
    count: number,
    append: () => Promise<AppendResult>,
  ): SequenceDecision {
    // Checked here rather than by the caller, so a fence that lands while a produce waits is honoured.
    this.ids.check(producerId, producerEpoch);
    const stats = this.stats(producerId, producerEpoch);
    stats.partitions.add(partition.queueId);
    try {
      const decision = this.decideSequence(partition, producerId, producerEpoch, baseSequence, count, append);
      if (decision.duplicate) stats.duplicates += count;
      else {
        stats.batches++;
        stats.messages += count;
      }
      return decision;
    } catch (error) {
      if (isWeirError(error, ErrorCode.OutOfOrderSequence)) stats.gaps++;
      throw error;
    }
  }

  private decideSequence(
    partition: PartitionProducers,
    producerId: number,
    producerEpoch: number,
    baseSequence: number,
    count: number,
    append: () => Promise<AppendResult>,
  ): SequenceDecision {
    let entry = partition.producers.get(producerId);
    if (entry !== undefined && producerEpoch < entry.epoch) {
      throw brokerError(ErrorCode.InvalidProducerEpoch, `producer ${producerId} already wrote epoch ${entry.epoch} here; epoch ${producerEpoch} is fenced`);
    }
    if (entry === undefined || producerEpoch > entry.epoch) {
      if (baseSequence !== 0) {
        throw brokerError(
          ErrorCode.UnknownProducer,
          `the broker holds no sequence state for producer ${producerId} epoch ${producerEpoch} on this partition, so its first batch must have sequence 0, not ${baseSequence}; initialise the producer again`,
        );
      }
      entry = { producerId, epoch: producerEpoch, nextSequence: 0, batches: [], lastTimestamp: this.clock.now() };
      partition.producers.set(producerId, entry);
      return this.appendNew(partition, entry, baseSequence, count, append);
    }
    for (const batch of entry.batches) {
      if (batch.baseSequence === baseSequence && batch.count === count) {
        return { duplicate: true, original: batch.pending === null ? Promise.resolve(sequencedOf(batch)) : batch.pending.then(() => sequencedOf(batch)) };
      }
    }
    if (baseSequence === entry.nextSequence) return this.appendNew(partition, entry, baseSequence, count, append);
    const distance = behind(entry.nextSequence, baseSequence);
    if (distance > 0 && distance <= SEQUENCE_MODULUS / 2) {
      const oldest = entry.batches[0]?.baseSequence ?? entry.nextSequence;
      if (distance >= behind(entry.nextSequence, oldest) + count) {
        return { duplicate: true, original: Promise.resolve({ baseOffset: -1, storeTimestamp: -1, position: -1 }) };
      }
      throw brokerError(
        ErrorCode.OutOfOrderSequence,
        `producer ${producerId}: the batch of sequences ${baseSequence}..${baseSequence + count - 1} overlaps stored batches without matching one; next expected sequence is ${entry.nextSequence}`,
      );
    }
    throw brokerError(ErrorCode.OutOfOrderSequence, `producer ${producerId}: expected sequence ${entry.nextSequence}, got ${baseSequence} (a batch is missing)`);
  }

  private appendNew(partition: PartitionProducers, entry: ProducerEntry, baseSequence: number, count: number, append: () => Promise<AppendResult>): SequenceDecision {
    const batch: BatchRecord = { baseSequence, count, baseOffset: -1, storeTimestamp: -1, position: -1, pending: null };
    entry.batches.push(batch);
    entry.nextSequence = (baseSequence + count) % SEQUENCE_MODULUS;
    let appended: Promise<AppendResult>;
    try {
      appended = append();
    } catch (error) {
      appended = Promise.reject(error);
    }
    batch.pending = appended.then(
      (result) => {
        if (!entry.batches.includes(batch)) {
          // Stored although an earlier batch of the producer failed: the store broke its contract (a failed append
          // fails every later one), so the log now holds this batch after a gap the producer will fill.
          this.logger.error({ queueId: partition.queueId, producerId: entry.producerId, baseSequence }, 'idempotent batch stored after a failed earlier batch');
        }
        batch.baseOffset = result.baseOffset;
        batch.storeTimestamp = result.storeTimestamp;
        batch.position = result.position;
        batch.pending = null;
        entry.lastTimestamp = result.storeTimestamp;
        trimWindow(entry);
        partition.dirty = true;
        return result;
      },
      (error: unknown) => {
        // Take this batch and every later one back: the producer resends from here.
        const index = entry.batches.indexOf(batch);
        if (index >= 0) {
          entry.batches.splice(index);
          entry.nextSequence = baseSequence;
        }
        throw error;
      },
    );
    // Whoever waits on the append sees its failure; this branch only keeps the state.
    batch.pending.catch(() => {});
    return { duplicate: false };
  }

  // ---- recovery -------------------------------------------------------------------------------------------------

  /** Loads a partition's snapshot and replays its log from the snapshot's offset. Returns the batches replayed. */
  private async recover(queueId: number, snapshot: StoredSnapshot): Promise<number> {
    const info = this.store.queueById(queueId);
    if (info === null) return 0;
    const partition = new PartitionProducers(queueId, Math.min(snapshot.offset, info.endOffset));
    for (const [producerId, epoch, lastTimestamp, batches] of snapshot.producers) {
      // A crash may have lost log written under a lax flush policy after the snapshot was taken: forget those batches.
      const kept = batches.filter(([, count, baseOffset]) => baseOffset + count <= info.endOffset);
      const last = kept[kept.length - 1];
      if (last === undefined) continue;
      partition.producers.set(producerId, {
        producerId,
        epoch,
        nextSequence: (last[0] + last[1]) % SEQUENCE_MODULUS,
        batches: kept.map(([baseSequence, count, baseOffset, storeTimestamp, position]) => ({ baseSequence, count, baseOffset, storeTimestamp, position, pending: null })),
        lastTimestamp,
      });
    }
    if (snapshot.offset > info.endOffset) partition.dirty = true;
    this.partitions.set(queueId, partition);
    let replayed = 0;
    // Messages of one batch share a position; a read may end inside a batch, so the batch is closed on the next one.
    let first: StoredMessage | null = null;
    let count = 0;
    const closeBatch = (): void => {
      if (first !== null && first.producerId > 0 && first.sequence >= 0) {
        this.replayBatch(partition, first, count);
        replayed++;
      }
      first = null;
      count = 0;
    };
    let offset = Math.max(partition.snapshotOffset, info.startOffset);
    while (offset < info.endOffset) {
      let read;
      try {
        read = await this.store.read(queueId, offset, { maxMessages: RECOVERY_READ_MESSAGES, maxBytes: 4 << 20 });
      } catch (error) {
        if (!isWeirError(error, ErrorCode.DataDamaged)) throw error;
        // Damaged messages are never served; a retry of one of them is accepted as new.
        this.logger.warn({ queueId, offset }, 'producer state: skipping a damaged message while rebuilding');
        closeBatch();
        offset++;
        continue;
      }
      for (const message of read.messages) {
        if (first !== null && (first as StoredMessage).position === message.position) count++;
        else {
          closeBatch();
          first = message;
          count = 1;
        }
      }
      if (read.nextOffset <= offset) break;
      offset = read.nextOffset;
    }
    closeBatch();
    if (replayed > 0) partition.dirty = true;
    return replayed;
  }

  private replayBatch(partition: PartitionProducers, first: StoredMessage, count: number): void {
    let entry = partition.producers.get(first.producerId);
    if (entry !== undefined && first.producerEpoch < entry.epoch) return;
    if (entry === undefined || first.producerEpoch > entry.epoch) {
      entry = { producerId: first.producerId, epoch: first.producerEpoch, nextSequence: 0, batches: [], lastTimestamp: first.storeTimestamp };
      partition.producers.set(first.producerId, entry);
    }
    entry.batches.push({ baseSequence: first.sequence, count, baseOffset: first.offset, storeTimestamp: first.storeTimestamp, position: first.position, pending: null });
    entry.nextSequence = (first.sequence + count) % SEQUENCE_MODULUS;
    entry.lastTimestamp = first.storeTimestamp;
    trimWindow(entry);
  }

  // ---- snapshots ------------------------------------------------------------------------------------------------

  private arm(): void {
    if (this.closed || this.options.snapshotIntervalMs <= 0) return;
    this.timer = this.scheduler.setTimeout(
      () => {
        this.timer = null;
        void this.snapshot().finally(() => this.arm());
      },
      this.options.snapshotIntervalMs,
      { background: true },
    );
  }

  /**
   * Writes the snapshot of every partition whose state or end offset changed, in one atomic metadata write, and
   * forgets producers silent for longer than `retentionMs`. A snapshot holds only resolved batches and covers the
   * partition's visible end: every batch below it has resolved, every batch in flight lies at or after it.
   */
  snapshot(): Promise<void> {
    // One snapshot at a time: a call made while one runs writes another after it.
    const run = this.snapshotChain.then(() => this.writeSnapshots());
    this.snapshotChain = run.catch(() => {});
    return run;
  }

  private async writeSnapshots(): Promise<void> {
    const ops: MetadataOp[] = [];
    const written: Array<[PartitionProducers, number]> = [];
    const expiredBefore = this.clock.now() - this.options.retentionMs;
    // Statistics follow the state they describe: a producer silent for the retention is forgotten there too.
    for (const [producerId, stats] of this.sequenceStats) if (stats.lastSeen < expiredBefore) this.sequenceStats.delete(producerId);
    for (const partition of this.partitions.values()) {
      if (partition.ready !== null) continue;
      const info = this.store.queueById(partition.queueId);
      if (info === null) continue;
      for (const [producerId, entry] of partition.producers) {
        if (entry.lastTimestamp < expiredBefore && entry.batches.every((batch) => batch.pending === null)) {
          partition.producers.delete(producerId);
          partition.dirty = true;
        }
      }
      if (!partition.dirty && info.endOffset === partition.snapshotOffset) continue;
      if (partition.producers.size === 0) {
        // Forgotten at once, so a produce arriving meanwhile starts afresh and writes its key after this delete.
        this.partitions.delete(partition.queueId);
        ops.push({ key: stateKey(partition.queueId), delete: true });
        continue;
      }
      ops.push({ key: stateKey(partition.queueId), value: this.snapshotOf(partition, info.endOffset) });
      partition.dirty = false;
      written.push([partition, info.endOffset]);
    }
    if (ops.length === 0) return;
    try {
      await this.store.metadata.apply(ops);
      for (const [partition, offset] of written) partition.snapshotOffset = offset;
    } catch (error) {
      for (const [partition] of written) partition.dirty = true;
      this.logger.warn({ err: error, partitions: ops.length }, 'producer state snapshot failed; will retry');
    }
  }

  private snapshotOf(partition: PartitionProducers, offset: number): StoredSnapshot {
    const producers: StoredSnapshot['producers'] = [];
    for (const entry of partition.producers.values()) {
      const batches = entry.batches.filter((batch) => batch.pending === null).map((batch): [number, number, number, number, number] => [batch.baseSequence, batch.count, batch.baseOffset, batch.storeTimestamp, batch.position]);
      if (batches.length > 0) producers.push([entry.producerId, entry.epoch, entry.lastTimestamp, batches]);
    }
    return { offset, producers };
  }

  // ---- topics ---------------------------------------------------------------------------------------------------

  topicDeleting(topic: Topic): MetadataOp[] {
    return topic.queueIds.filter((queueId) => this.store.metadata.has(stateKey(queueId))).map((queueId) => ({ key: stateKey(queueId), delete: true }));
  }

  topicDeleted(topic: Topic): void {
    for (const queueId of topic.queueIds) {
      this.partitions.delete(queueId);
      for (const stats of this.sequenceStats.values()) stats.partitions.delete(queueId);
    }
  }

  /** Stops the snapshot timer and writes a final snapshot (call once no produce is in flight). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) this.scheduler.clearTimeout(this.timer);
    this.timer = null;
    await this.snapshot();
  }

  /** Producers with state on a partition (tests and metrics). */
  producerCount(queueId: number): number {
    return this.partitions.get(queueId)?.producers.size ?? 0;
  }
}

function sequencedOf(batch: BatchRecord): SequencedBatch {
  return { baseOffset: batch.baseOffset, storeTimestamp: batch.storeTimestamp, position: batch.position };
}
