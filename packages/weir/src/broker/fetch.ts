import { ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { MessageStore } from '../storage/message-store.js';
import { brokerError, fromStorage, invalidArgument, isNonNegativeInteger, shuttingDown } from './errors.js';
import type { Scheduler, TimerHandle } from './scheduler.js';
import type { Topic, TopicObserver, TopicRegistry } from './topic-registry.js';

export interface FetchRequest {
  topic: string;
  partition: number;
  /** First offset wanted; the partition's end offset is valid (the fetch waits for the next message). */
  offset: number;
  /** Stop adding batches past this many bytes (at least one batch is returned). */
  maxBytes: number;
  /** Answer early once this many bytes are available (0 or 1: as soon as anything is). */
  minBytes: number;
  /** Longest time to wait for minBytes; 0 answers at once. */
  maxWaitMs: number;
  /** Aborting (e.g. the connection closed) rejects the fetch with the signal's reason. */
  signal?: AbortSignal;
}

export interface FetchResult {
  startOffset: number;
  endOffset: number;
  /** Whole stored record batches; the first may start before the requested offset. */
  batches: Buffer[];
}

/** One waiting fetch, registered under its queue id while it waits for appends. */
class Waiter {
  /** The end offset this fetch last read up to: only an append past it is news. */
  seenEnd = 0;
  /** Queue bytes when it last read, and how many more it needs to reach minBytes (0: any append will do). */
  seenQueueBytes = 0;
  missingBytes = 0;
  timedOut = false;
  private wake: (() => void) | null = null;
  private fail: ((error: unknown) => void) | null = null;
  failure: { error: unknown } | null = null;

  constructor(readonly queueId: number) {}

  /** The next wake-up: resolves on news or timeout, rejects on abort, close or topic deletion. */
  next(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.failure !== null) return reject(this.failure.error);
      if (this.timedOut) return resolve();
      this.wake = resolve;
      this.fail = reject;
    });
  }

  notify(): void {
    const wake = this.wake;
    this.wake = this.fail = null;
    wake?.();
  }

  abort(error: unknown): void {
    this.failure ??= { error };
    const fail = this.fail;
    this.wake = this.fail = null;
    fail?.(error);
  }
}

/**
 * Reads and long polling. A fetch that finds fewer than minBytes registers a waiter under its storage queue id; the
 * broker's single `store.onAppend` listener looks up the waiters of the queue that moved and wakes those with enough
 * new data (judged from the queue's byte count, then confirmed by a real read). Each waiting fetch owns one timer for
 * maxWaitMs; nothing polls. Close and topic deletion reject every waiter; an abort signal rejects its own.
 */
export class Fetcher implements TopicObserver {
  private readonly waiters = new Map<number, Set<Waiter>>();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    private readonly store: MessageStore,
    private readonly registry: TopicRegistry,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
  ) {
    this.unsubscribe = store.onAppend((queueId, endOffset) => this.appended(queueId, endOffset));
  }

  async fetch(request: FetchRequest): Promise<FetchResult> {
    if (this.closed) throw shuttingDown();
    const { offset, maxBytes, minBytes, maxWaitMs, signal } = request;
    if (!Number.isSafeInteger(offset)) throw invalidArgument(`offset must be an integer, not ${offset}`);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw invalidArgument(`maxBytes must be a positive integer, not ${maxBytes}`);
    if (!isNonNegativeInteger(minBytes)) throw invalidArgument(`minBytes must be a non-negative integer, not ${minBytes}`);
    if (!isNonNegativeInteger(maxWaitMs)) throw invalidArgument(`maxWaitMs must be a non-negative integer, not ${maxWaitMs}`);
    signal?.throwIfAborted();
    const queueId = this.registry.queueId(request.topic, request.partition);
    // More than maxBytes can never be asked for: one read returns at most about that much.
    const wanted = Math.max(1, Math.min(minBytes, maxBytes));
    let waiter: Waiter | null = null;
    let timer: TimerHandle | null = null;
    const onAbort = (): void => waiter?.abort(signal!.reason);
    try {
      for (;;) {
        const info = this.store.queueById(queueId);
        if (info === null) throw brokerError(ErrorCode.UnknownTopic, `topic "${request.topic}" does not exist`);
        if (offset < info.startOffset || offset > info.endOffset) {
          throw brokerError(ErrorCode.OffsetOutOfRange, `offset ${offset} is outside partition ${request.partition} of "${request.topic}": [${info.startOffset}, ${info.endOffset}]`);
        }
        let result: FetchResult = { startOffset: info.startOffset, endOffset: info.endOffset, batches: [] };
        let bytes = 0;
        if (offset < info.endOffset) {
          const read = await this.store.readBatches(queueId, offset, { maxBytes });
          result = { startOffset: read.startOffset, endOffset: read.endOffset, batches: read.batches };
          for (const batch of read.batches) bytes += batch.byteLength;
        }
        if (bytes >= wanted || maxWaitMs === 0 || waiter?.timedOut) return result;
        if (this.closed) throw shuttingDown();
        if (waiter === null) {
          const created = new Waiter(queueId);
          waiter = created;
          timer = this.scheduler.setTimeout(() => {
            created.timedOut = true;
            this.remove(created);
            created.notify();
          }, maxWaitMs);
          signal?.addEventListener('abort', onAbort, { once: true });
          if (signal?.aborted) created.abort(signal.reason);
        }
        waiter.seenEnd = result.endOffset;
        waiter.seenQueueBytes = info.bytes;
        waiter.missingBytes = wanted <= 1 ? 0 : wanted - bytes;
        const woken = waiter.next();
        this.add(waiter);
        // Appends that became visible while this fetch was reading did not see the waiter: look once now.
        const now = this.store.queueById(queueId);
        if (now !== null && this.hasNews(waiter, now.endOffset, () => now.bytes)) {
          this.remove(waiter);
          waiter.notify();
        }
        await woken;
      }
    } catch (error) {
      throw fromStorage(error, request.topic);
    } finally {
      if (timer !== null) this.scheduler.clearTimeout(timer);
      if (waiter !== null) this.remove(waiter);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** -2: the earliest offset, -1: the latest (end), otherwise the first offset stored at or after the timestamp. */
  async listOffsets(topicName: string, partition: number, timestamp: number): Promise<number> {
    if (this.closed) throw shuttingDown();
    const queueId = this.registry.queueId(topicName, partition);
    const info = this.store.queueById(queueId);
    if (info === null) throw brokerError(ErrorCode.UnknownTopic, `topic "${topicName}" does not exist`);
    if (timestamp === -2) return info.startOffset;
    if (timestamp === -1) return info.endOffset;
    if (!isNonNegativeInteger(timestamp)) throw invalidArgument(`timestamp must be -2, -1 or milliseconds since the epoch, not ${timestamp}`);
    try {
      return await this.store.offsetForTimestamp(queueId, timestamp);
    } catch (error) {
      throw fromStorage(error, topicName);
    }
  }

  /** The store's append listener: runs inside the store's append path, so it only flags waiters. */
  private appended(queueId: number, endOffset: number): void {
    const waiting = this.waiters.get(queueId);
    if (waiting === undefined) return;
    try {
      let queueBytes: number | null = null;
      const bytesNow = (): number => (queueBytes ??= this.store.queueById(queueId)?.bytes ?? 0);
      for (const waiter of waiting) {
        if (!this.hasNews(waiter, endOffset, bytesNow)) continue;
        this.remove(waiter);
        waiter.notify();
      }
    } catch (error) {
      this.logger.error({ err: error, queueId }, 'waking fetches failed');
    }
  }

  private hasNews(waiter: Waiter, endOffset: number, bytesNow: () => number): boolean {
    if (endOffset <= waiter.seenEnd) return false;
    return waiter.missingBytes === 0 || bytesNow() - waiter.seenQueueBytes >= waiter.missingBytes;
  }

  private add(waiter: Waiter): void {
    let waiting = this.waiters.get(waiter.queueId);
    if (waiting === undefined) this.waiters.set(waiter.queueId, (waiting = new Set()));
    waiting.add(waiter);
  }

  private remove(waiter: Waiter): void {
    const waiting = this.waiters.get(waiter.queueId);
    if (waiting === undefined) return;
    waiting.delete(waiter);
    if (waiting.size === 0) this.waiters.delete(waiter.queueId);
  }

  topicDeleted(topic: Topic): void {
    for (const queueId of topic.queueIds) {
      const waiting = this.waiters.get(queueId);
      if (waiting === undefined) continue;
      this.waiters.delete(queueId);
      for (const waiter of waiting) waiter.abort(brokerError(ErrorCode.UnknownTopic, `topic "${topic.name}" was deleted`));
    }
  }

  /** Fetches waiting right now (tests and metrics). */
  get waiting(): number {
    let count = 0;
    for (const waiting of this.waiters.values()) count += waiting.size;
    return count;
  }

  /** Rejects every waiting fetch with BROKER_SHUTTING_DOWN and stops listening to the store. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiting of all) for (const waiter of waiting) waiter.abort(shuttingDown());
  }
}
