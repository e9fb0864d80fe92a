import type { DecodedPushOf } from 'weir-protocol';
import type { Connection } from './connection.js';
import { WeirClientError } from './errors.js';

export type DeliverPush = DecodedPushOf<'Deliver'>;
export type CheckTransactionPush = DecodedPushOf<'CheckTransaction'>;

/** EndTransaction's outcome code for "not decided yet; ask again later". */
const OUTCOME_UNKNOWN = 2;

/**
 * Hands the pushes of one connection to whoever they are for: Deliver pushes to the queue consumer they name (group,
 * topic, consumer id), CheckTransaction pushes to a transactional producer of the producer group they name. Tells
 * the consumers with deliveries on the connection when it closes. One 'push' and one 'close' listener per connection
 * however many consumers and producers share it, and a map lookup per push instead of each of them inspecting every
 * push.
 */
export class PushRouter {
  private static readonly routers = new WeakMap<Connection, PushRouter>();
  private readonly routes = new Map<string, (push: DeliverPush) => void>();
  /** Per producer group, the producers on this connection that answer its checks (taken in turn). */
  private readonly checkRoutes = new Map<string, Array<(push: CheckTransactionPush) => void>>();
  private checkTurn = 0;
  private readonly closeWatchers = new Set<(error: WeirClientError) => void>();

  private constructor(private readonly connection: Connection) {
    connection.on('push', (push) => {
      if (push.name === 'Deliver') {
        // Deliveries for a consumer this side no longer routes (it just unsubscribed) are returned by that Unsubscribe.
        this.routes.get(routeKey(push.body.group, push.body.topic, push.body.consumerId))?.(push.body);
      } else if (push.name === 'CheckTransaction') {
        this.onCheck(push.body);
      }
    });
    connection.once('close', (error) => {
      this.routes.clear();
      this.checkRoutes.clear();
      const watchers = [...this.closeWatchers];
      this.closeWatchers.clear();
      for (const watcher of watchers) watcher(error);
    });
  }

  static of(connection: Connection): PushRouter {
    let router = PushRouter.routers.get(connection);
    if (router === undefined) {
      router = new PushRouter(connection);
      PushRouter.routers.set(connection, router);
    }
    return router;
  }

  route(group: string, topic: string, consumerId: string, handler: (push: DeliverPush) => void): void {
    this.routes.set(routeKey(group, topic, consumerId), handler);
  }

  unroute(group: string, topic: string, consumerId: string): void {
    this.routes.delete(routeKey(group, topic, consumerId));
  }

  /** Sends the group's CheckTransaction pushes on this connection to `handler` (in turn with others of the group). */
  routeChecks(producerGroup: string, handler: (push: CheckTransactionPush) => void): void {
    let handlers = this.checkRoutes.get(producerGroup);
    if (handlers === undefined) this.checkRoutes.set(producerGroup, (handlers = []));
    if (!handlers.includes(handler)) handlers.push(handler);
  }

  unrouteChecks(producerGroup: string, handler: (push: CheckTransactionPush) => void): void {
    const handlers = this.checkRoutes.get(producerGroup);
    if (handlers === undefined) return;
    const index = handlers.indexOf(handler);
    if (index >= 0) handlers.splice(index, 1);
    if (handlers.length === 0) this.checkRoutes.delete(producerGroup);
  }

  /** Calls `watcher` once when the connection closes; returns a function that stops watching. */
  watchClose(watcher: (error: WeirClientError) => void): () => void {
    if (this.connection.closed) {
      watcher(new WeirClientError('CONNECTION_CLOSED', `the connection to ${this.connection.address} is closed`));
      return () => {};
    }
    this.closeWatchers.add(watcher);
    return () => this.closeWatchers.delete(watcher);
  }

  private onCheck(push: CheckTransactionPush): void {
    const handlers = this.checkRoutes.get(push.producerGroup);
    if (handlers !== undefined && handlers.length > 0) {
      handlers[this.checkTurn++ % handlers.length]!(push);
      return;
    }
    // A check sent before the broker handled this connection's LeaveProducerGroup may still come after the group's
    // producer on it closed. Answering "unknown" at once lets the broker ask again later, maybe another member,
    // instead of waiting out its check timeout for an answer that never comes.
    this.connection.request('EndTransaction', { transactionId: push.transactionId, outcome: OUTCOME_UNKNOWN }).catch(() => {});
  }
}

function routeKey(group: string, topic: string, consumerId: string): string {
  return `${group}\u0000${topic}\u0000${consumerId}`;
}
