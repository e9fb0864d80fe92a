import { randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { defaultQueueSettings, type KeyValueStore, type MessageStore, prepareBatch, type QueueInfo } from '../../storage/message-store.js';
import { decodeHeaders, generatedMessageId, type MessageInput, RecordFlag, type StoredMessage } from '../../storage/record-batch.js';
import { brokerError, invalidArgument, shuttingDown } from '../errors.js';
import type { Scheduler, TimerHandle } from '../scheduler.js';
import { DeadlineTimer } from './deadline-timer.js';
import { Attribute } from './message-attributes.js';

/**
 * Transactional (half) messages with RocketMQ's semantics, broker side.
 *
 * A producer of a producer group begins a transaction, adds messages to it and then commits (the messages are appended
 * to their target partitions) or rolls back (they are dropped). Until then they sit in one storage queue, `__txn.half`
 * (sync flush; no '/' in its name, so it never collides with a topic partition `<topic>/<n>`), with two extra headers:
 * `weir.txn` (the transaction id) and `weir.target` (the target storage queue). No consumer reads that queue.
 *
 * **Record.** `txn/<id>` in the store's metadata = `{ id, producerGroup, state, entries: [[targetQueue, halfOffset,
 * count], …], delivered?, decidedBy?, createdAt, lastActivityAt, checks, nextCheckAt }` (times in wall-clock ms). One
 * entry per `add`, in add order. Every call answers only once its record change is durable. Records are replaced,
 * never mutated.
 *
 * **Commit.** The record goes to `committing` (durable), then each entry is read back from the half queue and handed
 * to `deliver` in add order, with the same message ids and without the two headers; then the record is deleted.
 * After each delivered entry but the last, `delivered` (entries done) is written, so a commit cut short by a crash
 * or a failed delivery resumes at the first entry not known to be delivered. That one entry is the duplicate window:
 * if the crash fell between its `deliver` becoming durable and the progress write (or, for the last entry, the record
 * deletion), its messages are appended to the target again on restart, with the same ids. Delivery is at least once.
 *
 * **Rollback** is one atomic deletion of the record; the half messages are left for the low-water mark. A record in
 * state `rolling-back` (not written by this version) is deleted on open.
 *
 * **Check-back.** A transaction with no call for `checkAfterMs` is checked: `check` asks a live producer of its
 * group. 'commit' and 'rollback' settle it. 'unknown', no live producer, a failed check, or no answer within
 * `checkTimeoutMs` count as one inconclusive check, and the next one comes `checkIntervalMs` later, doubling up to
 * `maxCheckIntervalMs`. After `maxChecks` inconclusive checks the group's `outcomeAfterMaxChecks` is applied
 * ('rollback' by default) and reported as a `timeout-commit` / `timeout-rollback` event. Any `add` resets the check
 * count and the timer (the producer is evidently alive). The answer to a check is waited for outside the
 * transaction's queue of calls, so the producer's own commit or rollback is never held up by it; an answer that comes
 * back after the transaction was settled, or after it saw new activity, is ignored.
 *
 * **Time.** Deadlines run on the monotonic clock; the record keeps them as wall-clock times (`nextCheckAt`) so they
 * survive a restart, where the remaining wait is clamped to [0, max(checkAfterMs, maxCheckIntervalMs)] in case the
 * wall clock stepped. All deadlines share one scheduler timer (deadline-timer.ts).
 *
 * **Space.** The half queue's low-water mark follows the lowest half offset a live transaction still needs (its
 * first undelivered entry), or the queue's end when there is none, so retention reclaims settled half messages.
 *
 * **Concurrency.** Calls on one transaction run one after another in call order, so one transaction's adds keep
 * their order; different transactions interleave freely in the half queue.
 */

export const HALF_QUEUE = '__txn.half';
export const TXN_HEADER = Attribute.transaction;
export const TARGET_HEADER = Attribute.target;
const RECORD_PREFIX = 'txn/';
/** Half messages handed to a check-back: enough for a producer to recognise the transaction. */
const CHECK_MESSAGES = 100;
/** Room for the two headers a half message carries on top of the producer's message (a target name ≤ 255 bytes). */
const HALF_HEADER_ROOM = 1024;
const MAX_GROUP_NAME = 255;

export type TransactionOutcome = 'commit' | 'rollback' | 'unknown';
export type TransactionState = 'open' | 'committing' | 'rolling-back';

export interface TransactionCheck {
  transactionId: string;
  producerGroup: string;
  /** The transaction's half messages (the first up to 100), still carrying `weir.txn` and `weir.target`. */
  messages: StoredMessage[];
}

export type TransactionEventKind = 'begin' | 'commit' | 'rollback' | 'check' | 'timeout-commit' | 'timeout-rollback';
/** Who decided a transaction's outcome. */
export type TransactionDecider = 'producer' | 'check' | 'timeout';

/** One step of a transaction, for the message trace. */
export interface TransactionEvent {
  transactionId: string;
  producerGroup: string;
  kind: TransactionEventKind;
  /** Checks: the answer ('unknown' also for no answer). Settling events: what was done. */
  outcome?: TransactionOutcome;
  /** Settling events: who decided (a commit finished after a restart keeps its original decider). */
  via?: TransactionDecider;
  /** Why a check was inconclusive, that a commit was finished after a restart, messages that were lost, … */
  detail?: string;
  /** Hex ids of the messages concerned: all delivered or dropped ones, or those shown to a check. */
  messageIds: string[];
  /** Wall-clock ms. */
  time: number;
}

export interface TransactionManagerOptions {
  store: MessageStore;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** Appends the messages to the target storage queue as one batch; resolves once durable. */
  deliver: (targetQueue: string, messages: MessageInput[]) => Promise<void>;
  /** Asks a live producer of the group; null when no producer of that group is connected. */
  check: (producerGroup: string, check: TransactionCheck) => Promise<TransactionOutcome> | null;
  /** For the message trace; must not throw (a throw is logged and ignored). */
  onEvent?: (event: TransactionEvent) => void;
  /** Inactivity before the first check-back (default 60 s). */
  checkAfterMs?: number;
  /** Wait after the first inconclusive check; doubles after each (default 10 s). */
  checkIntervalMs?: number;
  /** Cap of that wait (default 5 min). */
  maxCheckIntervalMs?: number;
  /** Inconclusive checks before `outcomeAfterMaxChecks` applies (default 15). */
  maxChecks?: number;
  /** How long one check-back may take before it counts as inconclusive (default 30 s). */
  checkTimeoutMs?: number;
  /** Per producer group; default 'rollback'. */
  outcomeAfterMaxChecks?: (producerGroup: string) => 'commit' | 'rollback';
  /** Default 10,000. */
  maxMessagesPerTransaction?: number;
  /** Default 100,000. */
  maxOpenTransactions?: number;
}

export interface TransactionSummary {
  id: string;
  producerGroup: string;
  state: TransactionState;
  messages: number;
  createdAt: number;
  lastActivityAt: number;
  checks: number;
  nextCheckAt: number;
}

type Entry = [targetQueue: string, halfOffset: number, count: number];

/** The durable record `txn/<id>`. */
interface TransactionRecord {
  id: string;
  producerGroup: string;
  state: TransactionState;
  entries: Entry[];
  /** Entries already delivered by a commit that was cut short (absent: none). */
  delivered?: number;
  /** Who decided, once the state is `committing` (for the trace after a restart). */
  decidedBy?: TransactionDecider;
  createdAt: number;
  lastActivityAt: number;
  checks: number;
  nextCheckAt: number;
}

class Transaction {
  /** What is durable (replaced once a write resolves, never mutated: the metadata store keeps what was put). */
  record: TransactionRecord;
  messages: number;
  /** Monotonic time of the next check (or of the next attempt of an interrupted commit). */
  deadline = 0;
  /** Calls on this transaction run one after another: this settles when the last one queued has. */
  tail: Promise<void> = Promise.resolve();
  /** Bumped by every add: a check answer is only acted on if no add came after the check was sent. */
  version = 0;
  /** A check-back is out. */
  checking = false;
  /** While an add is in flight: the half queue's end when it was issued, a floor for its offsets. */
  appendFloor: number | null = null;
  /** Failed attempts of the current commit, for its retry backoff. */
  failures = 0;

  constructor(record: TransactionRecord) {
    this.record = record;
    this.messages = record.entries.reduce((sum, entry) => sum + entry[2], 0);
  }

  get id(): string {
    return this.record.id;
  }
}

interface ResolvedOptions {
  checkAfterMs: number;
  checkIntervalMs: number;
  maxCheckIntervalMs: number;
  maxChecks: number;
  checkTimeoutMs: number;
  maxMessagesPerTransaction: number;
  maxOpenTransactions: number;
}

export class TransactionManager {
  private readonly store: MessageStore;
  private readonly metadata: KeyValueStore;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly logger: Logger;
  private readonly limits: ResolvedOptions;
  private readonly live = new Map<string, Transaction>();
  private readonly timers: DeadlineTimer<string>;
  private readonly checkTimers = new Set<TimerHandle>();
  private creatingHalfQueue: Promise<QueueInfo> | null = null;
  private trimRequested = false;
  private trimming: Promise<void> | null = null;
  private closed = false;

  private constructor(private readonly options: TransactionManagerOptions) {
    this.store = options.store;
    this.metadata = options.store.metadata;
    this.clock = options.clock;
    this.scheduler = options.scheduler;
    this.logger = options.logger;
    this.limits = resolveOptions(options);
    this.timers = new DeadlineTimer(this.clock, this.scheduler, (ids) => {
      for (const id of ids) this.due(id);
    });
  }

  /**
   * Loads every transaction record: open ones get their check timer back, and commits or rollbacks a restart cut
   * short are finished before this resolves (a delivery that fails again is retried in the background). `deliver`
   * must work by then: open this after the topics.
   */
  static async open(options: TransactionManagerOptions): Promise<TransactionManager> {
    const manager = new TransactionManager(options);
    await manager.recover();
    return manager;
  }

  /** Starts a transaction of the producer group; resolves with its id once its record is durable. */
  async begin(producerGroup: string): Promise<string> {
    this.assertOpen();
    if (typeof producerGroup !== 'string' || producerGroup.length === 0 || producerGroup.length > MAX_GROUP_NAME) {
      throw invalidArgument(`a producer group name is 1 to ${MAX_GROUP_NAME} characters`);
    }
    if (this.live.size >= this.limits.maxOpenTransactions) {
      throw invalidArgument(`the broker already holds ${this.live.size} unfinished transactions, its limit (maxOpenTransactions); commit or roll back some first`);
    }
    const now = this.clock.now();
    const record: TransactionRecord = {
      id: randomUUID(),
      producerGroup,
      state: 'open',
      entries: [],
      createdAt: now,
      lastActivityAt: now,
      checks: 0,
      nextCheckAt: now + this.limits.checkAfterMs,
    };
    const txn = new Transaction(record);
    // Counted against the limit from now on, so concurrent begins cannot overshoot it.
    this.live.set(txn.id, txn);
    try {
      await this.metadata.put(recordKey(txn.id), record);
    } catch (error) {
      this.live.delete(txn.id);
      throw error;
    }
    this.arm(txn, this.limits.checkAfterMs);
    this.emit(txn, 'begin', {}, []);
    return txn.id;
  }

  /**
   * Stores messages for `targetQueue` (a topic partition's storage queue) in the transaction, invisible to consumers.
   * Resolves with their offset in the half queue and their ids: the producer's own, or the ones the store generated,
   * which the messages keep when they are delivered.
   */
  async add(transactionId: string, targetQueue: string, messages: readonly MessageInput[]): Promise<{ halfOffset: number; ids: Buffer[] }> {
    this.assertOpen();
    const txn = this.get(transactionId);
    return this.serially(txn, async () => {
      this.assertLive(txn);
      if (txn.record.state !== 'open') throw invalidArgument(`transaction ${txn.id} is ${describeState(txn.record.state)}; it takes no more messages`);
      if (targetQueue === HALF_QUEUE) throw invalidArgument(`"${HALF_QUEUE}" cannot be a transaction's target`);
      const target = typeof targetQueue === 'string' ? this.store.queue(targetQueue) : null;
      if (target === null) throw brokerError(ErrorCode.UnknownQueue, `queue "${String(targetQueue)}" does not exist`);
      if (!Array.isArray(messages) || messages.length === 0) throw invalidArgument('add takes at least one message');
      const total = txn.messages + messages.length;
      if (total > this.limits.maxMessagesPerTransaction) {
        throw invalidArgument(`transaction ${txn.id} would hold ${total} messages; a transaction holds at most ${this.limits.maxMessagesPerTransaction}`);
      }
      // Checked against the target's limits here, so the error names the target rather than the half queue.
      prepareBatch(target.name, target.settings, messages);
      const half = await this.halfQueue(target.settings.maxMessageBytes);
      const inputs = messages.map((message) => ({ ...message, headers: { ...message.headers, [TXN_HEADER]: txn.id, [TARGET_HEADER]: target.name } }));
      txn.appendFloor = this.store.queueById(half.id)?.endOffset ?? 0;
      try {
        const result = await this.store.append(half.id, inputs, { flags: RecordFlag.Transactional });
        const ids = messages.map((message, index) =>
          message.id === undefined || message.id === null ? generatedMessageId(result.storeTimestamp, result.position, index) : Buffer.from(toBytes(message.id)),
        );
        const now = this.clock.now();
        txn.version++;
        await this.write(txn, {
          ...txn.record,
          entries: [...txn.record.entries, [target.name, result.baseOffset, result.count]],
          lastActivityAt: now,
          checks: 0,
          nextCheckAt: now + this.limits.checkAfterMs,
        });
        txn.messages += result.count;
        this.arm(txn, this.limits.checkAfterMs);
        return { halfOffset: result.baseOffset, ids };
      } finally {
        txn.appendFloor = null;
      }
    });
  }

  /**
   * Delivers the transaction's messages to their targets and forgets it; resolves once all are durable there. If a
   * delivery fails, this rejects, the transaction stays `committing` and is retried in the background; calling
   * commit again resumes it at once.
   */
  async commit(transactionId: string): Promise<void> {
    this.assertOpen();
    const txn = this.get(transactionId);
    return this.serially(txn, async () => {
      this.assertLive(txn);
      if (txn.record.state === 'rolling-back') throw invalidArgument(`transaction ${txn.id} is being rolled back; it cannot be committed`);
      await this.commitNow(txn, 'producer');
    });
  }

  /** Drops the transaction's messages; resolves once that is durable. */
  async rollback(transactionId: string): Promise<void> {
    this.assertOpen();
    const txn = this.get(transactionId);
    return this.serially(txn, async () => {
      this.assertLive(txn);
      if (txn.record.state === 'committing') throw invalidArgument(`transaction ${txn.id} is being committed; it can no longer be rolled back`);
      await this.rollbackNow(txn, 'producer');
    });
  }

  /** Unfinished transactions, oldest first. */
  list(): TransactionSummary[] {
    return [...this.live.values()]
      .map((txn) => ({
        id: txn.id,
        producerGroup: txn.record.producerGroup,
        state: txn.record.state,
        messages: txn.messages,
        createdAt: txn.record.createdAt,
        lastActivityAt: txn.record.lastActivityAt,
        checks: txn.record.checks,
        nextCheckAt: txn.record.nextCheckAt,
      }))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Refuses new calls, lets calls in flight finish and clears every timer. Nothing needs writing: all state is
   * durable as it changes. Check-backs still out are ignored when they answer. The store is not closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timers.clear();
    for (const handle of this.checkTimers) this.scheduler.clearTimeout(handle);
    this.checkTimers.clear();
    await Promise.all([...this.live.values()].map((txn) => txn.tail));
    await this.trimming;
  }

  // ---- recovery ---------------------------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    for (const [key, value] of this.metadata.entries(RECORD_PREFIX)) {
      const record = parseRecord(value);
      if (record === null || key !== recordKey(record.id)) {
        this.logger.error({ key }, 'ignoring a malformed transaction record');
        continue;
      }
      this.live.set(record.id, new Transaction(record));
    }
    const now = this.clock.now();
    const longestWait = Math.max(this.limits.checkAfterMs, this.limits.maxCheckIntervalMs);
    const unfinished: Transaction[] = [];
    for (const txn of this.live.values()) {
      if (txn.record.state === 'open') this.arm(txn, Math.min(longestWait, Math.max(0, txn.record.nextCheckAt - now)));
      else unfinished.push(txn);
    }
    if (this.live.size > 0) this.logger.info({ transactions: this.live.size, unfinished: unfinished.length }, 'transactions recovered');
    for (const txn of unfinished) {
      // A failure is logged and retried by commitNow; open itself succeeds.
      await this.serially(txn, () => this.finish(txn, 'finished after a restart')).catch(() => {});
    }
    await this.trimHalfQueue();
  }

  /** Completes a commit or rollback that was decided but not finished. */
  private finish(txn: Transaction, detail?: string): Promise<void> {
    if (!this.isLive(txn)) return Promise.resolve();
    const via = txn.record.decidedBy ?? 'producer';
    return txn.record.state === 'committing' ? this.commitNow(txn, via, detail) : this.rollbackNow(txn, via, detail);
  }

  // ---- settling ---------------------------------------------------------------------------------------------------

  /** Runs inside the transaction's queue of calls. */
  private async commitNow(txn: Transaction, via: TransactionDecider, detail?: string): Promise<void> {
    const ids: string[] = [];
    const problems: string[] = [];
    try {
      if (txn.record.state === 'open') await this.write(txn, { ...txn.record, state: 'committing', decidedBy: via, lastActivityAt: this.clock.now() });
      const entries = txn.record.entries;
      for (let index = txn.record.delivered ?? 0; index < entries.length; index++) {
        const [target, halfOffset, count] = entries[index]!;
        const messages = await this.readEntry(txn, halfOffset, count, problems);
        if (messages.length > 0) {
          try {
            await this.options.deliver(target, messages.map(deliverable));
          } catch (error) {
            // The target's topic was deleted meanwhile: nothing can receive these any more.
            if (!isWeirError(error, ErrorCode.UnknownQueue) && !isWeirError(error, ErrorCode.UnknownTopic)) throw error;
            problems.push(`${messages.length} message(s) for "${target}" dropped: it no longer exists`);
          }
          for (const message of messages) ids.push(message.id.toString('hex'));
        }
        if (index + 1 < entries.length) await this.write(txn, { ...txn.record, delivered: index + 1 });
      }
      await this.metadata.delete(recordKey(txn.id));
    } catch (error) {
      if (txn.record.state === 'committing') {
        txn.failures++;
        const delay = this.backoff(txn.failures);
        this.logger.warn({ err: error, transactionId: txn.id, attempt: txn.failures, retryInMs: delay }, 'committing a transaction failed; will retry');
        this.arm(txn, delay);
      }
      throw error;
    }
    if (problems.length > 0) this.logger.error({ transactionId: txn.id, problems }, 'a committed transaction lost messages');
    this.forget(txn);
    const notes = [...(detail === undefined ? [] : [detail]), ...problems];
    this.emit(txn, via === 'timeout' ? 'timeout-commit' : 'commit', { outcome: 'commit', via, detail: notes.length > 0 ? notes.join('; ') : undefined }, ids);
  }

  /** Runs inside the transaction's queue of calls. */
  private async rollbackNow(txn: Transaction, via: TransactionDecider, detail?: string): Promise<void> {
    const ids = this.options.onEvent === undefined ? [] : await this.messageIds(txn);
    await this.metadata.delete(recordKey(txn.id));
    this.forget(txn);
    this.emit(txn, via === 'timeout' ? 'timeout-rollback' : 'rollback', { outcome: 'rollback', via, detail }, ids);
  }

  private forget(txn: Transaction): void {
    this.live.delete(txn.id);
    this.timers.delete(txn.id);
    void this.trimHalfQueue();
  }

  // ---- check-back -------------------------------------------------------------------------------------------------

  /** A deadline passed (timer callback). */
  private due(id: string): void {
    const txn = this.live.get(id);
    if (txn === undefined || this.closed) return;
    if (txn.record.state !== 'open') {
      void this.serially(txn, () => this.finish(txn)).catch(() => {});
      return;
    }
    if (txn.checking) return; // its answer re-arms the timer
    void this.serially(txn, () => this.sendCheck(txn)).catch((error: unknown) => {
      this.logger.warn({ err: error, transactionId: id }, 'transaction check-back failed');
      this.rearm(txn);
    });
  }

  /** Runs inside the transaction's queue of calls; the answer is awaited outside it. */
  private async sendCheck(txn: Transaction): Promise<void> {
    if (!this.isLive(txn) || txn.record.state !== 'open' || txn.checking) return;
    if (this.clock.monotonic() < txn.deadline) {
      this.timers.set(txn.id, txn.deadline); // an add moved the deadline after the timer fired
      return;
    }
    if (txn.record.checks >= this.limits.maxChecks) {
      await this.settleAfterMaxChecks(txn, txn.record.checks);
      return;
    }
    txn.checking = true;
    const version = txn.version;
    let messages: StoredMessage[] = [];
    try {
      messages = await this.readMessages(txn, CHECK_MESSAGES);
    } catch (error) {
      this.logger.warn({ err: error, transactionId: txn.id }, 'could not read half messages for a check-back');
    }
    void this.askProducer(txn, version, messages);
  }

  private async askProducer(txn: Transaction, version: number, messages: StoredMessage[]): Promise<void> {
    const { producerGroup } = txn.record;
    let outcome: TransactionOutcome = 'unknown';
    let reason: string | null = null;
    try {
      const answer = this.options.check(producerGroup, { transactionId: txn.id, producerGroup, messages });
      if (answer === null) reason = 'no live producer in the group';
      else {
        const result = await this.within(answer, this.limits.checkTimeoutMs);
        if (result === 'timeout') reason = `no answer within ${this.limits.checkTimeoutMs} ms`;
        else if (result === 'commit' || result === 'rollback' || result === 'unknown') outcome = result;
        else reason = `an invalid answer: ${String(result)}`;
      }
    } catch (error) {
      reason = `the check failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    const ids = messages.map((message) => message.id.toString('hex'));
    await this.serially(txn, () => this.answered(txn, version, outcome, reason, ids)).catch((error: unknown) => {
      this.logger.warn({ err: error, transactionId: txn.id }, 'acting on a check-back answer failed');
      this.rearm(txn);
    });
  }

  /** Runs inside the transaction's queue of calls. */
  private async answered(txn: Transaction, version: number, outcome: TransactionOutcome, reason: string | null, ids: string[]): Promise<void> {
    txn.checking = false;
    if (this.closed || !this.isLive(txn) || txn.record.state !== 'open') return;
    if (txn.version !== version) {
      this.timers.set(txn.id, txn.deadline); // the producer was active meanwhile: its own deadline stands
      return;
    }
    this.emit(txn, 'check', { outcome, detail: reason ?? undefined }, ids);
    if (outcome === 'commit') return this.commitNow(txn, 'check');
    if (outcome === 'rollback') return this.rollbackNow(txn, 'check');
    const checks = txn.record.checks + 1;
    if (checks >= this.limits.maxChecks) return this.settleAfterMaxChecks(txn, checks);
    const delay = this.backoff(checks);
    // Armed before the write: should the write fail, the check still comes (the durable record only has it earlier).
    this.arm(txn, delay);
    await this.write(txn, { ...txn.record, checks, nextCheckAt: this.clock.now() + delay });
  }

  private async settleAfterMaxChecks(txn: Transaction, checks: number): Promise<void> {
    const { producerGroup } = txn.record;
    let outcome: 'commit' | 'rollback' = 'rollback';
    try {
      const configured = this.options.outcomeAfterMaxChecks?.(producerGroup);
      if (configured === 'commit') outcome = 'commit';
    } catch (error) {
      this.logger.warn({ err: error, producerGroup }, 'outcomeAfterMaxChecks threw; rolling back');
    }
    const detail = `no decision after ${checks} check(s); the group's outcome after max checks is ${outcome}`;
    this.logger.warn({ transactionId: txn.id, producerGroup, checks, outcome }, 'transaction settled without its producer');
    if (outcome === 'commit') await this.commitNow(txn, 'timeout', detail);
    else await this.rollbackNow(txn, 'timeout', detail);
  }

  /** Resolves with the answer, or 'timeout' after `ms` (on the scheduler, so tests drive it). */
  private within<T>(answer: Promise<T>, ms: number): Promise<T | 'timeout'> {
    return new Promise((resolve, reject) => {
      const handle = this.scheduler.setTimeout(
        () => {
          this.checkTimers.delete(handle);
          resolve('timeout');
        },
        ms,
        { background: true },
      );
      this.checkTimers.add(handle);
      const done = (): void => {
        this.scheduler.clearTimeout(handle);
        this.checkTimers.delete(handle);
      };
      answer.then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error);
        },
      );
    });
  }

  // ---- half queue -------------------------------------------------------------------------------------------------

  /** The half queue, created on first use and grown to carry the largest message a target accepts. */
  private async halfQueue(targetMaxMessageBytes: number): Promise<QueueInfo> {
    const needed = Math.max(defaultQueueSettings.maxMessageBytes, targetMaxMessageBytes + HALF_HEADER_ROOM);
    let queue = this.store.queue(HALF_QUEUE);
    if (queue === null) {
      // Concurrent first adds share one creation.
      queue = await (this.creatingHalfQueue ??= this.store
        .createQueue(HALF_QUEUE, { flushPolicy: 'sync', retentionMs: null, retentionBytes: null, maxMessageBytes: needed })
        .finally(() => (this.creatingHalfQueue = null)));
    }
    const { settings } = queue;
    // Only our low-water mark may drop half messages, and they must be durable before an add answers.
    if (settings.maxMessageBytes < needed || settings.flushPolicy !== 'sync' || settings.retentionMs !== null || settings.retentionBytes !== null) {
      queue = await this.store.updateQueue(HALF_QUEUE, { flushPolicy: 'sync', retentionMs: null, retentionBytes: null, maxMessageBytes: Math.max(needed, settings.maxMessageBytes) });
    }
    return queue;
  }

  /**
   * The messages of one entry that really belong to this transaction (a half queue deleted and recreated would reuse
   * offsets). Lost or damaged ones are reported in `problems`: a commit must not wait forever for what cannot return.
   */
  private async readEntry(txn: Transaction, halfOffset: number, count: number, problems: string[]): Promise<StoredMessage[]> {
    const half = this.store.queue(HALF_QUEUE);
    const found: StoredMessage[] = [];
    if (half !== null) {
      try {
        for (let at = halfOffset; found.length < count; ) {
          const read = await this.store.read(half.id, at, { maxMessages: count - found.length });
          if (read.messages.length === 0) break;
          found.push(...read.messages);
          at = read.nextOffset;
        }
      } catch (error) {
        if (!isWeirError(error, ErrorCode.OffsetOutOfRange) && !isWeirError(error, ErrorCode.UnknownQueue) && !isWeirError(error, ErrorCode.DataDamaged)) throw error;
        this.logger.error({ err: error, transactionId: txn.id, halfOffset, count }, 'half messages of a transaction cannot be read');
      }
    }
    const own = found.filter((message) => decodeHeaders(message.headers)[TXN_HEADER] === txn.id);
    if (own.length < count) problems.push(`${count - own.length} of ${count} half message(s) at ${halfOffset} are missing`);
    return own;
  }

  /** Up to `limit` half messages of the transaction, in add order. */
  private async readMessages(txn: Transaction, limit: number): Promise<StoredMessage[]> {
    const messages: StoredMessage[] = [];
    const ignored: string[] = [];
    for (const [, halfOffset, count] of txn.record.entries.slice(txn.record.delivered ?? 0)) {
      if (messages.length >= limit) break;
      const read = await this.readEntry(txn, halfOffset, Math.min(count, limit - messages.length), ignored);
      messages.push(...read);
    }
    return messages;
  }

  /** Hex ids of all the transaction's messages, for the trace; best effort. */
  private async messageIds(txn: Transaction): Promise<string[]> {
    try {
      return (await this.readMessages(txn, Infinity)).map((message) => message.id.toString('hex'));
    } catch (error) {
      this.logger.warn({ err: error, transactionId: txn.id }, 'could not read the ids of a transaction for its trace');
      return [];
    }
  }

  /** Moves the half queue's low-water mark up to what live transactions still need. Runs are coalesced. */
  private trimHalfQueue(): Promise<void> {
    this.trimRequested = true;
    this.trimming ??= this.trimLoop();
    return this.trimming;
  }

  private async trimLoop(): Promise<void> {
    // Yield first: a run that never awaited would reach its `finally` before trimHalfQueue stored its promise.
    await Promise.resolve();
    try {
      while (this.trimRequested) {
        this.trimRequested = false;
        const half = this.store.queue(HALF_QUEUE);
        if (half === null) continue;
        let floor = half.endOffset;
        for (const txn of this.live.values()) {
          if (txn.appendFloor !== null) floor = Math.min(floor, txn.appendFloor);
          const first = txn.record.entries[txn.record.delivered ?? 0];
          if (first !== undefined) floor = Math.min(floor, first[1]);
        }
        if (floor <= half.startOffset) continue;
        try {
          await this.store.advanceLowWaterMark(half.id, floor);
        } catch (error) {
          this.logger.warn({ err: error, offset: floor }, 'could not advance the half queue low-water mark');
        }
      }
    } finally {
      // Cleared in the same step as the last check of trimRequested, so no request falls in between.
      this.trimming = null;
    }
  }

  // ---- plumbing ---------------------------------------------------------------------------------------------------

  private serially<T>(txn: Transaction, work: () => Promise<T>): Promise<T> {
    const result = txn.tail.then(work);
    txn.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  private async write(txn: Transaction, next: TransactionRecord): Promise<void> {
    await this.metadata.put(recordKey(txn.id), next);
    txn.record = next;
  }

  private arm(txn: Transaction, delayMs: number): void {
    if (this.closed) return;
    txn.deadline = this.clock.monotonic() + delayMs;
    this.timers.set(txn.id, txn.deadline);
  }

  /**
   * After a failed check or a failed settle: a transaction whose timer already fired would otherwise wait for its
   * producer forever. (A failed commit arms its own retry, so a timer is already there.)
   */
  private rearm(txn: Transaction): void {
    if (this.isLive(txn) && !txn.checking && this.timers.get(txn.id) === undefined) this.arm(txn, this.limits.checkIntervalMs);
  }

  private backoff(attempt: number): number {
    return Math.min(this.limits.maxCheckIntervalMs, this.limits.checkIntervalMs * 2 ** Math.min(attempt - 1, 52));
  }

  private emit(
    txn: Transaction,
    kind: TransactionEventKind,
    fields: { outcome?: TransactionOutcome; via?: TransactionDecider; detail?: string | undefined },
    messageIds: string[],
  ): void {
    if (this.options.onEvent === undefined) return;
    const event: TransactionEvent = { transactionId: txn.id, producerGroup: txn.record.producerGroup, kind, messageIds, time: this.clock.now() };
    if (fields.outcome !== undefined) event.outcome = fields.outcome;
    if (fields.via !== undefined) event.via = fields.via;
    if (fields.detail !== undefined) event.detail = fields.detail;
    try {
      this.options.onEvent(event);
    } catch (error) {
      this.logger.warn({ err: error, transactionId: txn.id, kind }, 'a transaction event listener threw');
    }
  }

  private get(transactionId: string): Transaction {
    const txn = typeof transactionId === 'string' ? this.live.get(transactionId) : undefined;
    if (txn === undefined) throw unknownTransaction(transactionId);
    return txn;
  }

  private isLive(txn: Transaction): boolean {
    return this.live.get(txn.id) === txn;
  }

  /** A call queued behind the one that settled the transaction finds it gone. */
  private assertLive(txn: Transaction): void {
    if (this.closed) throw shuttingDown();
    if (!this.isLive(txn)) throw unknownTransaction(txn.id);
  }

  private assertOpen(): void {
    if (this.closed) throw shuttingDown();
  }
}

function recordKey(id: string): string {
  return RECORD_PREFIX + id;
}

// A dedicated code (UNKNOWN_TRANSACTION) would let clients tell this apart from a malformed call.
function unknownTransaction(id: unknown): Error {
  return brokerError(ErrorCode.UnknownTransaction, `transaction "${String(id)}" does not exist: it was committed or rolled back (perhaps after a check-back), or never begun`);
}

function describeState(state: TransactionState): string {
  return state === 'committing' ? 'being committed' : state === 'rolling-back' ? 'being rolled back' : 'open';
}

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** A half message as it goes to its target: same id, key, tag, time and body; without the two transaction headers. */
function deliverable(message: StoredMessage): MessageInput {
  const headers = decodeHeaders(message.headers);
  delete headers[TXN_HEADER];
  delete headers[TARGET_HEADER];
  return {
    id: message.id,
    key: message.key,
    tag: message.tag,
    headers: Object.keys(headers).length > 0 ? headers : null,
    timestamp: message.timestamp,
    body: message.body,
  };
}

function resolveOptions(options: TransactionManagerOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    checkAfterMs: options.checkAfterMs ?? 60_000,
    checkIntervalMs: options.checkIntervalMs ?? 10_000,
    maxCheckIntervalMs: options.maxCheckIntervalMs ?? 300_000,
    maxChecks: options.maxChecks ?? 15,
    checkTimeoutMs: options.checkTimeoutMs ?? 30_000,
    maxMessagesPerTransaction: options.maxMessagesPerTransaction ?? 10_000,
    maxOpenTransactions: options.maxOpenTransactions ?? 100_000,
  };
  for (const [name, value] of Object.entries(resolved)) {
    const least = name === 'maxChecks' ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < least) throw invalidArgument(`${name} must be an integer of at least ${least}, not ${String(value)}`);
  }
  if (resolved.maxCheckIntervalMs < resolved.checkIntervalMs) throw invalidArgument('maxCheckIntervalMs must be at least checkIntervalMs');
  return resolved;
}

function parseRecord(value: unknown): TransactionRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Partial<TransactionRecord>;
  const finite = (field: unknown): field is number => typeof field === 'number' && Number.isFinite(field);
  if (typeof record.id !== 'string' || typeof record.producerGroup !== 'string') return null;
  if (record.state !== 'open' && record.state !== 'committing' && record.state !== 'rolling-back') return null;
  if (!Array.isArray(record.entries)) return null;
  for (const entry of record.entries) {
    if (!Array.isArray(entry) || entry.length !== 3 || typeof entry[0] !== 'string' || !Number.isSafeInteger(entry[1]) || !Number.isSafeInteger(entry[2])) return null;
  }
  if (record.delivered !== undefined && !Number.isSafeInteger(record.delivered)) return null;
  if (record.decidedBy !== undefined && record.decidedBy !== 'producer' && record.decidedBy !== 'check' && record.decidedBy !== 'timeout') return null;
  if (!finite(record.createdAt) || !finite(record.lastActivityAt) || !finite(record.checks) || !finite(record.nextCheckAt)) return null;
  return record as TransactionRecord;
}
