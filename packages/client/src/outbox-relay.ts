import { EventEmitter } from 'node:events';
import { backoffDelay, sleep, type RetryOptions } from './backoff.js';
import { toClientError, WeirClientError } from './errors.js';
import type { ProduceResult, ProducerMessage } from './producer.js';

/**
 * The relay of the transactional outbox pattern (docs/transactional-outbox.md). The application writes the messages it
 * wants to publish into an outbox table in the same database transaction as its own changes; this relay reads the rows
 * not yet sent, publishes them, and marks them sent. No database code lives here: the application implements
 * `OutboxStore` over its own database.
 */

/** One message waiting in the outbox table. */
export interface OutboxRow {
  /**
   * The row's id, which becomes the message id (as text, UTF-8, 1–255 bytes; or what `messageId` makes of the row).
   * Must be unique among everything published to the broker within its dedup window: use UUIDs, or give
   * `messageId` a namespace (`orders-db:${row.id}`).
   */
  readonly id: string | number | bigint;
  readonly topic: string;
  readonly key?: string | Uint8Array | null;
  readonly tag?: string | null;
  readonly headers?: Readonly<Record<string, string | Uint8Array>> | null;
  readonly body: string | Uint8Array;
}

/** What the application implements over its database. */
export interface OutboxStore<Row extends OutboxRow = OutboxRow> {
  /**
   * Up to `limit` rows not marked sent, oldest first (the publish order). With several relays on one table, claim
   * them (PostgreSQL: a lease column set by `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`), so each row
   * goes to one relay at a time.
   */
  fetchUnsent(limit: number): Promise<readonly Row[]>;
  /** Marks these rows sent (or deletes them): they are never returned by `fetchUnsent` again. */
  markSent(ids: ReadonlyArray<Row['id']>): Promise<void>;
}

/**
 * Publishes messages: a `Producer` made with `client.producer({ idempotent: false })`. Not idempotent, because the
 * broker deduplicates by message id only for producers without a producer id; an idempotent producer's retries are
 * deduplicated by sequence number within one producer session, which does not help a relay that restarted.
 */
export interface OutboxPublisher {
  readonly idempotent?: boolean;
  send(topic: string, messages: readonly ProducerMessage[]): Promise<ProduceResult[]>;
}

export interface OutboxRelayOptions<Row extends OutboxRow = OutboxRow> {
  store: OutboxStore<Row>;
  /** `client.producer({ idempotent: false })` (acks `durable`, its default). */
  producer: OutboxPublisher;
  /** Rows per `fetchUnsent` (default 100). */
  batchSize?: number;
  /** How often to look for rows when nothing calls `wake()` (default 1000 ms). */
  pollIntervalMs?: number;
  /** Backoff after a failed fetch, publish or markSent (default 100 ms doubling to 10 s); retried until it works. */
  retry?: Partial<Pick<RetryOptions, 'initialMs' | 'maxMs'>>;
  /** The message id of a row (default: its id as text). */
  messageId?: (row: Row) => string | Uint8Array;
}

export type OutboxStep = 'fetch' | 'publish' | 'mark';

interface OutboxRelayEvents<Row extends OutboxRow> {
  /** Rows the broker acknowledged and the store marked sent; `results[i]` is where `rows[i]` went (`duplicate`: it was there already). */
  published: [batch: { rows: readonly Row[]; results: readonly ProduceResult[] }];
  /** A step failed; it is retried after a backoff. Only emitted when a listener is attached. */
  error: [error: WeirClientError, info: { step: OutboxStep; attempt: number }];
}

const STOPPED: unique symbol = Symbol('stopped');

/**
 * Moves outbox rows to the broker: fetch unsent rows, publish them with their row id as message id, mark them sent;
 * poll every `pollIntervalMs`, or at once after `wake()` (call it after the transaction that wrote rows commits).
 *
 * Guarantees: at least once from the database to the broker. A row is marked sent only after the broker acknowledged
 * it; a failed publish is retried (only the failed rows) until it works, and a failed markSent is retried without
 * publishing again. A relay that dies between the publish and markSent publishes the rows again when it (or another)
 * restarts: the broker recognises their ids and does not store them again, within its dedup window
 * (`dedupWindowMs`, 10 minutes by default). A relay down for longer than that may produce a duplicate, so consumers
 * should still tolerate one (the message id tells).
 *
 * Order: rows are published in `fetchUnsent` order, grouped by topic, so one key's rows keep their order, except that
 * a row whose publish failed after the producer's own retries is published again after rows of the same batch that
 * succeeded. A row the broker refuses for good (an unknown topic, a message too large) is retried at the slowest pace
 * and reported through 'error' until someone fixes or deletes it; rows after it wait.
 */
export class OutboxRelay<Row extends OutboxRow = OutboxRow> extends EventEmitter<OutboxRelayEvents<Row>> {
  private readonly store: OutboxStore<Row>;
  private readonly producer: OutboxPublisher;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly retry: Pick<RetryOptions, 'initialMs' | 'maxMs'>;
  private readonly messageId: (row: Row) => string | Uint8Array;
  private readonly stopping = new AbortController();
  private running: Promise<void> | null = null;
  /** Bumped by `wake()`: an idle wait that started before the bump ends at once. */
  private wakes = 0;
  private wakeIdle: (() => void) | null = null;
  /** Rounds (fetches) started; a flush waits for a complete round that started after it. */
  private rounds = 0;
  private flushes: Array<{ after: number; resolve(): void; reject(error: WeirClientError): void }> = [];
  private publishedRows = 0;
  private duplicateRows = 0;

  constructor(options: OutboxRelayOptions<Row>) {
    super();
    if (options === null || typeof options !== 'object') throw new TypeError('OutboxRelay needs { store, producer }');
    const { store, producer } = options;
    if (store === null || typeof store !== 'object' || typeof store.fetchUnsent !== 'function' || typeof store.markSent !== 'function') {
      throw new TypeError('store must implement fetchUnsent(limit) and markSent(ids)');
    }
    if (producer === null || typeof producer !== 'object' || typeof producer.send !== 'function') throw new TypeError('producer must be a Producer (client.producer({ idempotent: false }))');
    if (producer.idempotent === true) {
      throw new TypeError(
        'the outbox relay needs a producer made with { idempotent: false }: the broker deduplicates a resent row by its message id only for producers without a producer id',
      );
    }
    this.store = store;
    this.producer = producer;
    this.batchSize = positiveInteger('batchSize', options.batchSize ?? 100);
    this.pollIntervalMs = positiveInteger('pollIntervalMs', options.pollIntervalMs ?? 1000);
    this.retry = { initialMs: options.retry?.initialMs ?? 100, maxMs: options.retry?.maxMs ?? 10_000 };
    if (!(this.retry.initialMs >= 0) || !(this.retry.maxMs >= this.retry.initialMs)) throw new RangeError('retry: need 0 <= initialMs <= maxMs');
    this.messageId = options.messageId ?? ((row) => (typeof row.id === 'string' ? row.id : String(row.id)));
  }

  /** Rows published and marked sent since start (duplicates included). */
  get published(): number {
    return this.publishedRows;
  }

  /** Of those, rows the broker already had (a resend after a restart, dropped by its dedup). */
  get duplicates(): number {
    return this.duplicateRows;
  }

  get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Starts relaying; returns the relay. */
  start(): this {
    if (this.stopped) throw new WeirClientError('CLIENT_CLOSED', 'the outbox relay was stopped; make a new one', { retriable: false });
    this.running ??= this.run();
    return this;
  }

  /** Looks for rows now instead of at the next poll: call it after committing a transaction that wrote some. */
  wake(): void {
    this.wakes++;
    const wake = this.wakeIdle;
    this.wakeIdle = null;
    wake?.();
  }

  /**
   * Resolves once the rows unsent when it was called are published and marked sent (a round that began after the
   * call published everything it fetched and fetched less than a batch). Rejects when the relay stops first.
   */
  flush(): Promise<void> {
    if (this.stopped) return Promise.reject(stoppedError());
    const done = new Promise<void>((resolve, reject) => this.flushes.push({ after: this.rounds, resolve, reject }));
    this.start();
    this.wake();
    return done;
  }

  /**
   * Stops after the step under way: a markSent in progress finishes; a publish in progress is abandoned (its rows stay
   * unsent and are published again by the next relay, where the broker's dedup drops what it already has).
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake();
    await this.running;
    const flushes = this.flushes;
    this.flushes = [];
    for (const flush of flushes) flush.reject(stoppedError());
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const woken = this.wakes;
      const round = ++this.rounds;
      const rows = await this.retrying('fetch', () => this.store.fetchUnsent(this.batchSize));
      if (rows === STOPPED) return;
      if (rows.length > 0 && (await this.relay(rows)) === STOPPED) return;
      if (rows.length < this.batchSize) {
        this.settleFlushes(round);
        await this.idle(woken);
      }
    }
  }

  /** Publishes the rows (retrying the failed ones) and marks them sent. */
  private async relay(rows: readonly Row[]): Promise<void | typeof STOPPED> {
    let remaining = rows;
    let refused = false;
    for (let attempt = 0; remaining.length > 0; attempt++) {
      if (attempt > 0) {
        await sleep(this.delay(attempt - 1, refused), this.stopping.signal);
        if (this.stopped) return STOPPED;
      }
      const outcome = await this.publish(remaining);
      if (outcome === STOPPED) return STOPPED;
      if (outcome.sent.length > 0) {
        const ids = outcome.sent.map((row) => row.id);
        if ((await this.retrying('mark', () => this.store.markSent(ids), true)) === STOPPED) return STOPPED;
        this.publishedRows += outcome.sent.length;
        this.duplicateRows += outcome.results.filter((result) => result.duplicate).length;
        this.emit('published', { rows: outcome.sent, results: outcome.results });
      }
      if (outcome.error !== null) this.report(outcome.error, 'publish', attempt);
      remaining = outcome.failed;
      refused = outcome.error !== null && !outcome.error.retriable;
    }
  }

  /** One send per topic, in row order; the topics whose send failed come back as `failed`. */
  private async publish(rows: readonly Row[]): Promise<{ sent: Row[]; results: ProduceResult[]; failed: Row[]; error: WeirClientError | null } | typeof STOPPED> {
    const byTopic = new Map<string, Row[]>();
    for (const row of rows) {
      let list = byTopic.get(row.topic);
      if (list === undefined) byTopic.set(row.topic, (list = []));
      list.push(row);
    }
    const sends = [...byTopic].map(async ([topic, list]) => {
      // A row that cannot become a message (a bad id) fails its topic's send like a refusal by the broker would.
      const messages = list.map((row) => this.toMessage(row));
      return this.producer.send(topic, messages);
    });
    // A stop does not wait for the broker: the rows stay unsent, and their resend is deduplicated.
    let onStop: () => void = () => {};
    const stopped = new Promise<typeof STOPPED>((resolve) => {
      onStop = () => resolve(STOPPED);
      if (this.stopped) onStop();
      else this.stopping.signal.addEventListener('abort', onStop, { once: true });
    });
    const settled = await Promise.race([Promise.allSettled(sends), stopped]);
    this.stopping.signal.removeEventListener('abort', onStop);
    if (settled === STOPPED) return STOPPED;
    const outcome = { sent: [] as Row[], results: [] as ProduceResult[], failed: [] as Row[], error: null as WeirClientError | null };
    [...byTopic.values()].forEach((list, index) => {
      const result = settled[index]!;
      if (result.status === 'fulfilled') {
        outcome.sent.push(...list);
        outcome.results.push(...result.value);
      } else {
        outcome.failed.push(...list);
        outcome.error ??= toClientError(result.reason);
      }
    });
    return outcome;
  }

  private toMessage(row: Row): ProducerMessage {
    return {
      id: this.messageId(row),
      ...(row.key === undefined || row.key === null ? {} : { key: row.key }),
      ...(row.tag === undefined || row.tag === null ? {} : { tag: row.tag }),
      ...(row.headers === undefined || row.headers === null ? {} : { headers: { ...row.headers } }),
      body: row.body,
    };
  }

  /**
   * Runs a store step until it works (or the relay stops). `finish`: a step whose effect must not be lost (markSent)
   * is completed even when a stop comes meanwhile, unless it keeps failing.
   */
  private async retrying<T>(step: OutboxStep, work: () => Promise<T>, finish = false): Promise<T | typeof STOPPED> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopped && !(finish && attempt === 0)) return STOPPED;
      try {
        return await work();
      } catch (error) {
        this.report(toClientError(error), step, attempt);
        await sleep(this.delay(attempt, false), this.stopping.signal);
      }
    }
  }

  /** A refusal will not go away by itself: retry it at the slowest pace. */
  private delay(attempt: number, refused: boolean): number {
    return refused ? this.retry.maxMs : backoffDelay(attempt, this.retry);
  }

  private async idle(woken: number): Promise<void> {
    if (this.wakes !== woken || this.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.wakeIdle = resolve;
      timer = setTimeout(resolve, this.pollIntervalMs);
    });
    clearTimeout(timer);
    this.wakeIdle = null;
  }

  private settleFlushes(round: number): void {
    const done = this.flushes.filter((flush) => flush.after < round);
    if (done.length === 0) return;
    this.flushes = this.flushes.filter((flush) => flush.after >= round);
    for (const flush of done) flush.resolve();
  }

  private report(error: WeirClientError, step: OutboxStep, attempt: number): void {
    if (this.listenerCount('error') === 0) return;
    this.emit('error', error, { step, attempt });
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function stoppedError(): WeirClientError {
  return new WeirClientError('CLIENT_CLOSED', 'the outbox relay stopped', { retriable: false });
}
