import type { DecodedPushOf } from 'weir-protocol';
import type { Connection } from './connection.js';
import { WeirClientError } from './errors.js';

export type DeliverPush = DecodedPushOf<'Deliver'>;

/**
 * Hands the Deliver pushes of one connection to the queue consumer they name (group, topic, consumer id), and tells
 * the consumers with deliveries on it when it closes. One 'push' and one 'close' listener per connection however many
 * queue consumers share it, and a map lookup per push instead of every consumer inspecting every push.
 */
export class PushRouter {
  private static readonly routers = new WeakMap<Connection, PushRouter>();
  private readonly routes = new Map<string, (push: DeliverPush) => void>();
  private readonly closeWatchers = new Set<(error: WeirClientError) => void>();

  private constructor(private readonly connection: Connection) {
    connection.on('push', (push) => {
      if (push.name !== 'Deliver') return;
      // Deliveries for a consumer this side no longer routes (it just unsubscribed) are returned by that Unsubscribe.
      this.routes.get(routeKey(push.body.group, push.body.topic, push.body.consumerId))?.(push.body);
    });
    connection.once('close', (error) => {
      this.routes.clear();
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

  /** Calls `watcher` once when the connection closes; returns a function that stops watching. */
  watchClose(watcher: (error: WeirClientError) => void): () => void {
    if (this.connection.closed) {
      watcher(new WeirClientError('CONNECTION_CLOSED', `the connection to ${this.connection.address} is closed`));
      return () => {};
    }
    this.closeWatchers.add(watcher);
    return () => this.closeWatchers.delete(watcher);
  }
}

function routeKey(group: string, topic: string, consumerId: string): string {
  return `${group}\u0000${topic}\u0000${consumerId}`;
}
