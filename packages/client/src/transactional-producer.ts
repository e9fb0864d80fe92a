import { EventEmitter } from 'node:events';
import { partitionForKey, type Message, type StructOf } from 'weir-protocol';
import { backoffDelay, sleep } from './backoff.js';
import type { WeirClient } from './client.js';
import type { ConsumedMessage } from './consumer.js';
import { clientClosed, toClientError, WeirClientError } from './errors.js';
import { prepareMessage, type ProducerMessage } from './producer.js';
import { ProducerGroupMembership } from './producer-group.js';
import type { CheckTransactionPush } from './push-router.js';
import { asBuffer, consumedMessageOf, decodeHeaderList } from './wire-message.js';

/** What a transaction becomes: EndTransaction's outcome. `unknown` (checks only): not decided yet, ask again later. */
export type TransactionDecision = 'commit' | 'rollback' | 'unknown';

const OUTCOME_CODE: Record<TransactionDecision, number> = { commit: 0, rollback: 1, unknown: 2 };
/** The headers the broker adds to a half message (docs/design/work-queues.md, "Transactions"). */
export const TXN_HEADER = 'weir.txn';
export const TARGET_HEADER = 'weir.target';
const MAX_GROUP_NAME = 255;

/**
 * A message of a transaction the broker asks about. `topic` and `partition` are where it goes on commit (from its
 * `weir.target` header, `<topic>/<partition>`); it is not stored there yet, so `offset` is -1. Its headers still
 * carry `weir.txn` (the transaction id) and `weir.target`.
 */
export interface CheckedMessage extends ConsumedMessage {
  readonly transactionId: string;
}

/** A check-back: the broker found the transaction open and silent, and asks how the local transaction ended. */
export interface TransactionCheck {
  readonly transactionId: string;
  readonly producerGroup: string;
  /**
   * Its first messages (up to 100), for recognising the local transaction: put what identifies it (an order id) in
   * a header or the key. Empty for a transaction that has no messages (its BeginTransaction answer was lost, say).
   */
  readonly messages: readonly CheckedMessage[];
}

export interface TransactionalProducerOptions {
  /** The producer group: the broker asks its live members about transactions their owner left open. 1–255 characters. */
  producerGroup: string;
  /**
   * Says whether the local transaction behind an open broker transaction committed: `commit` (it did), `rollback`
   * (it did not, and never will), `unknown` (still running: the broker asks again later). Called for transactions of
   * any member of the group, including those a crashed instance began, so it must decide from durable state (a row the
   * local transaction wrote), not from memory. A throw, or any other value, answers `unknown`.
   */
  onCheck: (check: TransactionCheck) => TransactionDecision | Promise<TransactionDecision>;
  /** Timeout of one request (default: the client's requestTimeoutMs). */
  requestTimeoutMs?: number;
}

export interface TransactionSendOptions {
  /** Send to this partition instead of choosing one (by key, else the broker's round-robin). */
  partition?: number;
}

/** Where a transactional message goes when the transaction commits, and its id (the same once committed). */
export interface TransactionSendResult {
  readonly topic: string;
  readonly partition: number;
  /** The message id as lowercase hex: the id consumers see after the commit. */
  readonly id: string;
  readonly idBytes: Buffer;
}

/**
 * `open`: takes sends. `committing`/`rolling-back`: EndTransaction is under way. `committed`/`rolled-back`: done.
 * `in-doubt`: the outcome could not be confirmed; the broker settles it with a check-back (see `commit`).
 */
export type TransactionState = 'open' | 'committing' | 'committed' | 'rolling-back' | 'rolled-back' | 'in-doubt';

interface TransactionalProducerEvents {
  /** JoinProducerGroup was answered (at start and after every reconnection): check-backs can reach this producer. */
  joined: [info: { connectionId: string }];
  /** A check-back was answered (the broker acknowledged the EndTransaction). */
  checked: [info: { transactionId: string; decision: TransactionDecision }];
  /** Problems worked around (a failed join is retried, a throwing onCheck answers `unknown`); only emitted when a listener is attached. */
  error: [error: WeirClientError];
}

/** What a Transaction needs from its producer. */
interface TransactionContext {
  readonly client: WeirClient;
  readonly producerGroup: string;
  readonly requestTimeoutMs: number;
}

/**
 * Half messages with RocketMQ's semantics: messages sent in a transaction are stored by the broker but invisible until
 * the transaction commits, and dropped if it rolls back. Typical use couples them to a local (database) transaction:
 *
 * ```ts
 * const producer = client.transactionalProducer({
 *   producerGroup: 'orders',
 *   onCheck: async ({ messages }) => ((await db.orderExists(messages[0]!.headers.orderId)) ? 'commit' : 'rollback'),
 * });
 * await producer.transaction(async (tx) => {
 *   await tx.send('orders', { key: order.id, headers: { orderId: order.id }, body: JSON.stringify(order) });
 *   await db.insertOrder(order);          // the local transaction: commits, or throws
 * });                                     // resolved: committed; the callback threw: rolled back, and rethrown
 * ```
 *
 * If the process dies between the local commit and the broker commit, the broker finds the transaction open and
 * silent (`transactionCheckAfterMs`, 60 s by default) and asks a live member of the producer group, through `onCheck`.
 * So every instance of the application keeps a transactional producer of its group open: on creation, and after
 * every reconnection, it sends JoinProducerGroup (reconnecting the client when the connection drops), and it answers
 * each CheckTransaction push with EndTransaction. A transaction nobody answers for is rolled back after
 * `transactionMaxChecks` checks.
 */
export class TransactionalProducer extends EventEmitter<TransactionalProducerEvents> {
  readonly producerGroup: string;
  private readonly onCheck: TransactionalProducerOptions['onCheck'];
  private readonly context: TransactionContext;
  private readonly membership: ProducerGroupMembership;
  /** `transaction` calls under way (close waits for them). */
  private readonly running = new Set<Promise<unknown>>();
  /** Check-backs being answered. */
  private readonly answering = new Set<Promise<void>>();
  private closing = false;
  private closePromise: Promise<void> | null = null;

  constructor(
    private readonly client: WeirClient,
    options: TransactionalProducerOptions,
  ) {
    super();
    if (options === null || typeof options !== 'object') throw new TypeError('transactionalProducer needs options with producerGroup and onCheck');
    const group = options.producerGroup;
    if (typeof group !== 'string' || group.length === 0 || group.length > MAX_GROUP_NAME) throw new TypeError(`producerGroup must be 1 to ${MAX_GROUP_NAME} characters`);
    if (typeof options.onCheck !== 'function') {
      throw new TypeError('onCheck is required: the broker asks it how a transaction left open (by a crash) ended; answer from durable state');
    }
    this.producerGroup = group;
    this.onCheck = options.onCheck;
    this.context = { client, producerGroup: group, requestTimeoutMs: options.requestTimeoutMs ?? client.requestTimeoutMs };
    this.membership = new ProducerGroupMembership(client, group, {
      joined: (connection) => this.emit('joined', { connectionId: connection.info.connectionId }),
      failed: (error) => this.report(new WeirClientError(error.code, `joining producer group ${JSON.stringify(group)}: ${error.message}; retrying`, { retriable: error.retriable, cause: error })),
      check: (push) => this.onCheckPush(push),
    });
    this.membership.start();
  }

  /** Resolves once this producer is a live member of its group (check-backs can reach it); rejects once it is closed. */
  ready(): Promise<void> {
    return this.membership.ready();
  }

  /**
   * Runs `work` in a new transaction: BeginTransaction, then `work(tx)`, whose `tx.send` calls store messages in the
   * transaction. When `work` resolves, the transaction commits and this resolves with `work`'s value; when it throws,
   * the transaction rolls back and the error is rethrown. `work` may also end the transaction itself (`tx.commit()`,
   * `tx.rollback()`). A commit that cannot be confirmed is not rolled back (see `Transaction.commit`).
   */
  async transaction<T>(work: (tx: Transaction) => Promise<T> | T): Promise<T> {
    if (typeof work !== 'function') throw new TypeError('transaction(work): work must be a function taking the transaction');
    const tx = await this.begin();
    const run = this.runWork(tx, work);
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  /** Begins a transaction to send, commit and roll back yourself. Prefer `transaction(work)`, which always ends it. */
  async begin(): Promise<Transaction> {
    this.checkOpen();
    // Safe to repeat: an answer lost before a retry leaves an empty transaction, rolled back after its checks.
    const { transactionId } = await this.client.requestWithRetry('BeginTransaction', { producerGroup: this.producerGroup }, { timeoutMs: this.context.requestTimeoutMs });
    return new Transaction(this.context, transactionId);
  }

  /**
   * Waits for the `transaction` calls under way, then leaves: check-backs stop reaching this producer. Transactions
   * begun with `begin` and not ended are left to the broker's checks (answered by other members of the group).
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.closing = true;
      try {
        await Promise.allSettled([...this.running]);
        await this.membership.stop();
        await Promise.allSettled([...this.answering]);
      } finally {
        this.client.untrack(this);
      }
    })();
    return this.closePromise;
  }

  /** Stops at once, as if the process died: nothing is ended or answered (the broker checks back with the group). */
  abort(): void {
    this.closing = true;
    void this.membership.stop();
    this.client.untrack(this);
    this.closePromise ??= Promise.resolve();
  }

  private async runWork<T>(tx: Transaction, work: (tx: Transaction) => Promise<T> | T): Promise<T> {
    let value: T;
    try {
      value = await work(tx);
    } catch (error) {
      if (tx.state === 'open') {
        await tx.rollback().catch((failure: unknown) => {
          // The broker checks back, and onCheck (the local transaction did not commit) answers rollback.
          this.report(new WeirClientError(toClientError(failure).code, `rolling back transaction ${tx.id} after its work failed: ${toClientError(failure).message}`, { retriable: false, cause: failure }));
        });
      }
      throw error;
    }
    if (tx.state === 'open') await tx.commit();
    return value;
  }

  private onCheckPush(push: CheckTransactionPush): void {
    const answer = this.answer(toCheck(push));
    this.answering.add(answer);
    void answer.finally(() => this.answering.delete(answer));
  }

  private async answer(check: TransactionCheck): Promise<void> {
    let decision: TransactionDecision;
    try {
      const given: unknown = await this.onCheck(check);
      if (given === 'commit' || given === 'rollback' || given === 'unknown') decision = given;
      else {
        this.report(new WeirClientError('INVALID_ARGUMENT', `onCheck for transaction ${check.transactionId} returned ${JSON.stringify(given)}, not commit, rollback or unknown; answered unknown`, { retriable: false }));
        decision = 'unknown';
      }
    } catch (error) {
      this.report(
        new WeirClientError('UNKNOWN', `onCheck for transaction ${check.transactionId} threw (${error instanceof Error ? error.message : String(error)}); answered unknown, the broker asks again later`, {
          retriable: false,
          cause: error,
        }),
      );
      decision = 'unknown';
    }
    try {
      await this.client.request('EndTransaction', { transactionId: check.transactionId, outcome: OUTCOME_CODE[decision] }, { timeoutMs: this.context.requestTimeoutMs });
      this.emit('checked', { transactionId: check.transactionId, decision });
    } catch (error) {
      const failure = toClientError(error);
      // Settled meanwhile (by its producer after all, or another member's answer): nothing is left to decide.
      if (failure.code === 'UNKNOWN_TRANSACTION' || failure.code === 'CLIENT_CLOSED') return;
      // Lost answers are harmless: the broker counts the check as inconclusive and asks again.
      this.report(new WeirClientError(failure.code, `answering the check of transaction ${check.transactionId} with ${decision}: ${failure.message}`, { retriable: failure.retriable, cause: failure }));
    }
  }

  private checkOpen(): void {
    if (this.closing || this.client.closed) throw clientClosed('the transactional producer');
  }

  /** Emits a non-fatal problem when someone listens (an unheard 'error' event would crash the process). */
  private report(error: WeirClientError): void {
    if (error.code === 'CLIENT_CLOSED' || this.listenerCount('error') === 0) return;
    this.emit('error', error);
  }
}

/**
 * One transaction (from `TransactionalProducer.begin`, or handed to `transaction(work)`). Sends are applied in call
 * order; `commit` waits for the sends made before it.
 */
export class Transaction {
  readonly id: string;
  #state: TransactionState = 'open';
  /** The sends made so far, one after another: commit waits for this. */
  #tail: Promise<unknown> = Promise.resolve();
  /** The first send that failed: a commit then rolls back instead of committing part of the transaction. */
  #failure: WeirClientError | null = null;
  #messages = 0;
  readonly #context: TransactionContext;

  constructor(context: TransactionContext, id: string) {
    this.#context = context;
    this.id = id;
  }

  get state(): TransactionState {
    return this.#state;
  }

  /** Messages stored in the transaction so far. */
  get messages(): number {
    return this.#messages;
  }

  /**
   * Stores one message (or several) in the transaction, invisible to consumers until the commit. Resolves with where
   * each goes and its id, which it keeps once committed. Messages are partitioned like `Producer.send` (by key, else
   * the broker's round-robin). Delays, TTL and priority are not available in transactions (the broker refuses them).
   * A send is not retried: an answer lost with the connection leaves its fate unknown, so it fails, and the
   * transaction should be rolled back (which `transaction(work)` does when the error reaches it).
   */
  send(topic: string, message: ProducerMessage, options?: TransactionSendOptions): Promise<TransactionSendResult>;
  send(topic: string, messages: readonly ProducerMessage[], options?: TransactionSendOptions): Promise<TransactionSendResult[]>;
  send(topic: string, input: ProducerMessage | readonly ProducerMessage[], options: TransactionSendOptions = {}): Promise<TransactionSendResult | TransactionSendResult[]> {
    if (this.#state !== 'open') return Promise.reject(this.notOpen('send in'));
    const single = !Array.isArray(input);
    const list = single ? [input as ProducerMessage] : (input as readonly ProducerMessage[]);
    let messages: Message[];
    try {
      if (typeof topic !== 'string' || topic.length === 0) throw invalid(`topic must be a non-empty string, not ${JSON.stringify(topic)}`);
      const partition = options.partition;
      if (partition !== undefined && (!Number.isInteger(partition) || partition < 0)) throw invalid(`partition must be a non-negative integer, not ${String(partition)}`);
      messages = list.map((message, index) => prepareTransactional(message, single || list.length === 1 ? 'message' : `messages[${index}]`));
    } catch (error) {
      return Promise.reject(toClientError(error));
    }
    if (messages.length === 0) return Promise.resolve([]);
    const sent = this.#tail.then(() => this.sendNow(topic, messages, options.partition));
    this.#tail = sent.catch((error: unknown) => {
      this.#failure ??= toClientError(error);
    });
    return single ? sent.then((results) => results[0]!) : sent;
  }

  /**
   * Makes the messages visible: each is appended to its partition, with its id. Waits for the sends made before it;
   * if one of them failed, rolls back instead and rejects with its error.
   *
   * A commit whose answer is lost (connection closed, timeout) is repeated with the client's retry backoff; a repeat
   * that finds the transaction gone means the first one was applied. When no attempt gets through, this rejects with
   * TRANSACTION_IN_DOUBT and the transaction is left open, never rolled back: after `transactionCheckAfterMs` of
   * silence the broker asks the producer group, and onCheck (the local transaction committed) answers commit. Do not
   * repeat the local work then. UNKNOWN_TRANSACTION at the first attempt means the broker settled it already (a
   * check-back answered, or it was rolled back after the last unanswered check).
   */
  async commit(): Promise<void> {
    if (this.#state !== 'open') throw this.notOpen('commit');
    this.#state = 'committing';
    await this.#tail;
    if (this.#failure !== null) {
      const failure = this.#failure;
      await this.end('rollback').catch(() => {});
      throw new WeirClientError(failure.code, `transaction ${this.id} was rolled back instead of committed: one of its sends failed (${failure.message})`, { retriable: false, cause: failure });
    }
    await this.end('commit');
  }

  /**
   * Drops the messages. Retried like `commit`; when no attempt gets through, rejects with TRANSACTION_IN_DOUBT and
   * the broker's check-back settles it (onCheck answers rollback: the local transaction did not commit).
   */
  async rollback(): Promise<void> {
    if (this.#state !== 'open') throw this.notOpen('roll back');
    this.#state = 'rolling-back';
    // No need to wait for sends: the broker applies one transaction's calls in arrival order, and a send arriving
    // after the rollback fails with UNKNOWN_TRANSACTION.
    await this.end('rollback');
  }

  private async sendNow(topic: string, messages: Message[], partition: number | undefined): Promise<TransactionSendResult[]> {
    const { client, requestTimeoutMs } = this.#context;
    const results = new Array<TransactionSendResult>(messages.length);
    for (const group of await this.partitionGroups(topic, messages, partition)) {
      const answer = await client.request('TransactionProduce', { transactionId: this.id, topic, partition: group.partition, messages: group.indexes.map((index) => messages[index]!) }, { timeoutMs: requestTimeoutMs });
      if (answer.ids.length !== group.indexes.length) {
        throw new WeirClientError('INVALID_REQUEST', `TransactionProduce answered ${answer.ids.length} ids for ${group.indexes.length} messages`, { retriable: false });
      }
      group.indexes.forEach((index, position) => {
        const idBytes = asBuffer(answer.ids[position]!);
        results[index] = { topic, partition: answer.partition, id: idBytes.toString('hex'), idBytes };
      });
      this.#messages += group.indexes.length;
    }
    return results;
  }

  /**
   * One TransactionProduce per target partition (the broker puts a whole request in one partition, chosen by its first
   * key): keyed messages go where `Producer.send` would put them, keyless ones together wherever the broker chooses.
   */
  private async partitionGroups(topic: string, messages: Message[], partition: number | undefined): Promise<Array<{ partition: number; indexes: number[] }>> {
    const all = messages.map((_, index) => index);
    if (partition !== undefined) return [{ partition, indexes: all }];
    const keys = new Set(messages.map((message) => (message.key === null ? null : Buffer.from(message.key).toString('hex'))));
    if (keys.size === 1) return [{ partition: -1, indexes: all }];
    const count = await this.#context.client.metadata.partitionCount(topic);
    const groups = new Map<number, number[]>();
    messages.forEach((message, index) => {
      const target = message.key === null ? -1 : partitionForKey(message.key, count);
      let indexes = groups.get(target);
      if (indexes === undefined) groups.set(target, (indexes = []));
      indexes.push(index);
    });
    return [...groups].map(([target, indexes]) => ({ partition: target, indexes }));
  }

  /** EndTransaction, repeated after retriable failures (a repeat finding the transaction gone: the earlier one applied). */
  private async end(decision: 'commit' | 'rollback'): Promise<void> {
    const { client, requestTimeoutMs, producerGroup } = this.#context;
    this.#state = decision === 'commit' ? 'committing' : 'rolling-back';
    let lost: WeirClientError | null = null;
    for (let attempt = 0; ; attempt++) {
      try {
        await client.request('EndTransaction', { transactionId: this.id, outcome: OUTCOME_CODE[decision] }, { timeoutMs: requestTimeoutMs });
        this.#state = decision === 'commit' ? 'committed' : 'rolled-back';
        return;
      } catch (error) {
        const failure = toClientError(error);
        if (failure.code === 'UNKNOWN_TRANSACTION' && lost !== null) {
          this.#state = decision === 'commit' ? 'committed' : 'rolled-back';
          return;
        }
        if (failure.retriable && attempt < client.retry.retries && !client.closed) {
          lost = failure;
          await sleep(backoffDelay(attempt, client.retry), client.closeSignal);
          continue;
        }
        this.#state = 'in-doubt';
        if (failure.retriable || lost !== null) {
          throw new WeirClientError(
            'TRANSACTION_IN_DOUBT',
            `the ${decision} of transaction ${this.id} could not be confirmed (${failure.message}). It is left to the broker: after transactionCheckAfterMs of silence it asks a live member of producer group ${JSON.stringify(producerGroup)}, whose onCheck decides`,
            { retriable: false, cause: failure },
          );
        }
        if (failure.code === 'UNKNOWN_TRANSACTION') {
          throw new WeirClientError(
            'UNKNOWN_TRANSACTION',
            `cannot ${decision === 'commit' ? 'commit' : 'roll back'} transaction ${this.id}: the broker no longer has it open (${failure.message}); a check-back settled it (onCheck decided) or it was rolled back after its last unanswered check`,
            { retriable: false, cause: failure },
          );
        }
        throw failure;
      }
    }
  }

  private notOpen(what: string): WeirClientError {
    return new WeirClientError('INVALID_ARGUMENT', `cannot ${what} transaction ${this.id}: it is ${this.#state}`, { retriable: false });
  }
}

/** As `Producer.send` checks a message, minus what the broker refuses in a transaction. */
function prepareTransactional(message: ProducerMessage, what: string): Message {
  if (message !== null && typeof message === 'object') {
    const attribute = (['delayMs', 'deliverAt', 'ttlMs', 'priority'] as const).find((name) => message[name] !== undefined);
    if (attribute !== undefined) throw invalid(`${what}.${attribute}: transactional messages cannot be delayed or carry a TTL or priority (the broker refuses weir. attributes in transactions)`);
  }
  return prepareMessage(message, what);
}

function toCheck(push: CheckTransactionPush): TransactionCheck {
  return {
    transactionId: push.transactionId,
    producerGroup: push.producerGroup,
    messages: push.messages.map((delivery) => checkedMessage(delivery, push.transactionId)),
  };
}

function checkedMessage(delivery: StructOf<'Delivery', 'decode'>, transactionId: string): CheckedMessage {
  const headers = delivery.headers.length === 0 ? {} : decodeHeaderList(delivery.headers);
  const target = headers[TARGET_HEADER];
  const text = typeof target === 'string' ? target : (target?.toString('utf8') ?? '');
  // `<topic>/<partition>`: topic names have no '/', so the last one splits.
  const slash = text.lastIndexOf('/');
  const partition = Number(text.slice(slash + 1));
  const message = consumedMessageOf(slash < 0 ? text : text.slice(0, slash), slash >= 0 && Number.isInteger(partition) ? partition : -1, -1, delivery);
  return { ...message, transactionId };
}

function invalid(message: string): WeirClientError {
  return new WeirClientError('INVALID_ARGUMENT', message, { retriable: false });
}
