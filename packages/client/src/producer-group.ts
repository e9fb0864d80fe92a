import { backoffDelay, sleep } from './backoff.js';
import type { WeirClient } from './client.js';
import type { Connection } from './connection.js';
import { clientClosed, toClientError, type WeirClientError } from './errors.js';
import { type CheckTransactionPush, PushRouter } from './push-router.js';

export interface MembershipEvents {
  /** JoinProducerGroup was answered on a connection: check-backs for the group can reach this producer there. */
  joined(connection: Connection): void;
  /** Joining failed; it is tried again with backoff. */
  failed(error: WeirClientError): void;
  /** A CheckTransaction push for the group. */
  check(push: CheckTransactionPush, connection: Connection): void;
}

/**
 * Keeps one transactional producer a live member of its producer group: the broker only sends check-backs to
 * connections that sent JoinProducerGroup, and forgets them when they close. So the member joins on the client's
 * connection, watches it, and joins again on the next one as soon as it is gone, reconnecting the client if nothing
 * else does (a producer that only waits for checks must still get them after a broker restart).
 */
export class ProducerGroupMembership {
  /** The connection the group was joined on, while it is open. */
  private joinedOn: Connection | null = null;
  private waiters: Array<{ resolve(): void; reject(error: WeirClientError): void }> = [];
  private readonly stopping = new AbortController();
  private readonly stopSignal: AbortSignal;
  private running: Promise<void> | null = null;

  constructor(
    private readonly client: WeirClient,
    readonly producerGroup: string,
    private readonly events: MembershipEvents,
  ) {
    this.stopSignal = AbortSignal.any([client.closeSignal, this.stopping.signal]);
  }

  get stopped(): boolean {
    return this.stopSignal.aborted;
  }

  /** Starts joining (and rejoining after every reconnection) until `stop`. */
  start(): void {
    this.running ??= this.run();
  }

  /** Resolves once the group is joined on an open connection; rejects once stopped. */
  ready(): Promise<void> {
    if (this.stopped) return Promise.reject(clientClosed('the transactional producer'));
    if (this.joinedOn !== null && !this.joinedOn.closed) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops rejoining, leaves the group on the open connection and takes this producer's check route off it. */
  async stop(): Promise<void> {
    this.stopping.abort(clientClosed('the transactional producer'));
    await this.running;
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.stopped; ) {
      let connection: Connection;
      try {
        connection = await this.untilStopped(this.client.connection());
      } catch (error) {
        if (this.stopped) break;
        this.events.failed(toClientError(error));
        await sleep(backoffDelay(attempt++, this.client.retry), this.stopSignal);
        continue;
      }
      const router = PushRouter.of(connection);
      // Checks may come the moment the broker registered the join, before its answer: route them first.
      const onPush = (push: CheckTransactionPush): void => this.events.check(push, connection);
      router.routeChecks(this.producerGroup, onPush);
      let closed!: () => void;
      const whenClosed = new Promise<void>((resolve) => (closed = resolve));
      const unwatch = router.watchClose(() => closed());
      const onStop = (): void => closed();
      this.stopSignal.addEventListener('abort', onStop, { once: true });
      try {
        await connection.request('JoinProducerGroup', { producerGroup: this.producerGroup }, { signal: this.stopSignal });
        if (!connection.closed && !this.stopped) {
          this.joinedOn = connection;
          attempt = 0;
          this.events.joined(connection);
          this.wake(null);
        }
      } catch (error) {
        const failure = toClientError(error);
        if (!this.stopped) {
          this.events.failed(failure);
          // A refusal (a bad group name) will not go away by itself: retry at the slowest pace.
          const delay = failure.retriable ? backoffDelay(attempt++, this.client.retry) : this.client.retry.maxMs;
          router.unrouteChecks(this.producerGroup, onPush);
          unwatch();
          this.stopSignal.removeEventListener('abort', onStop);
          await sleep(delay, this.stopSignal);
          continue;
        }
      }
      await whenClosed;
      unwatch();
      this.stopSignal.removeEventListener('abort', onStop);
      // Stopped with the client's connection still open (other producers use it): leave, so the broker asks the
      // group's other members instead of this connection. Checks that cross the leave are answered "unknown" by the
      // push router once the route is gone.
      if (!connection.closed) await connection.request('LeaveProducerGroup', { producerGroup: this.producerGroup }).catch(() => {});
      router.unrouteChecks(this.producerGroup, onPush);
      this.joinedOn = null;
    }
    this.joinedOn = null;
    this.wake(clientClosed('the transactional producer'));
  }

  /** The promise's outcome, or CLIENT_CLOSED as soon as this stops (a close must not wait for a broker that is down). */
  private untilStopped<T>(promise: Promise<T>): Promise<T> {
    if (this.stopped) {
      promise.catch(() => {});
      return Promise.reject(clientClosed('the transactional producer'));
    }
    return new Promise<T>((resolve, reject) => {
      const onStop = (): void => reject(clientClosed('the transactional producer'));
      this.stopSignal.addEventListener('abort', onStop, { once: true });
      promise.then(
        (value) => {
          this.stopSignal.removeEventListener('abort', onStop);
          resolve(value);
        },
        (error: unknown) => {
          this.stopSignal.removeEventListener('abort', onStop);
          reject(error);
        },
      );
    });
  }

  private wake(error: WeirClientError | null): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) {
      if (error === null) waiter.resolve();
      else waiter.reject(error);
    }
  }
}
