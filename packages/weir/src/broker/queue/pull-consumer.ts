import type { Scheduler, TimerHandle } from '../scheduler.js';
import type { ConsumerState, Delivery, DeliverySink, SharedSubscription } from './shared-subscription.js';

interface Waiter {
  readonly maxMessages: number;
  finish(deliveries: Delivery[]): void;
}

/**
 * Pull (`Receive`) as an ordinary consumer of the subscription. While a Receive waits, its consumer's credit is what
 * the Receive wants, so whatever runs the dispatcher (an append, an ack, a redelivery coming due) serves it; nothing
 * polls, so a Receive that cannot be served yet (key_shared keys owned elsewhere) costs nothing while it waits. A
 * Receive ends with the first batch dispatched to it, at its timeout with nothing, or when its consumer ends.
 *
 * There is one pull consumer per connection and group/topic. Between Receives it stays attached with no credit: its
 * leases last until the connection closes, when the protocol layer unsubscribes it (a Receive's signal aborting
 * means the same and detaches it here). Receives of one consumer are served in the order they came.
 */
export class PullConsumer implements DeliverySink {
  /** Waiting Receives, oldest first; the oldest one's want is the consumer's credit. */
  private readonly waiting: Waiter[] = [];
  private state!: ConsumerState;

  private constructor(
    private readonly subscription: SharedSubscription,
    private readonly scheduler: Scheduler,
  ) {}

  /** Attaches a pull consumer (no credit until a Receive waits). */
  static attach(subscription: SharedSubscription, scheduler: Scheduler, identity: { consumerId: string; clientId: string; address: string }): PullConsumer {
    const puller = new PullConsumer(subscription, scheduler);
    const { consumerId, clientId, address } = identity;
    puller.state = subscription.attach({ consumerId, clientId, address, prefetch: 0, priority: 0, pull: true, sink: puller });
    return puller;
  }

  /** Up to `maxMessages` deliveries: what is ready now, else the first batch within `waitMs`. */
  receive(maxMessages: number, waitMs: number, signal?: AbortSignal): Promise<Delivery[]> {
    const state = this.state;
    if (state.closed) return Promise.resolve([]);
    // The connection is gone: so are its leases (redelivered to others), and every Receive of it ends.
    const disconnected = (): void => {
      if (this.subscription.consumer(state.id) === state) this.subscription.detach(state.id);
    };
    if (signal?.aborted) {
      disconnected();
      return Promise.resolve([]);
    }
    return new Promise((resolve) => {
      let timer: TimerHandle | null = null;
      const waiter: Waiter = {
        maxMessages,
        finish: (deliveries) => {
          if (timer !== null) this.scheduler.clearTimeout(timer);
          signal?.removeEventListener('abort', disconnected);
          resolve(deliveries);
        },
      };
      this.waiting.push(waiter);
      if (this.waiting.length === 1) state.pullCredit = maxMessages;
      // Whatever is ready goes now: a Receive that does not wait needs its answer from this pass.
      this.subscription.dispatch();
      if (!this.waiting.includes(waiter)) return;
      if (waitMs <= 0) {
        this.cancel(waiter);
        return;
      }
      timer = this.scheduler.setTimeout(() => this.cancel(waiter), waitMs);
      signal?.addEventListener('abort', disconnected, { once: true });
    });
  }

  /** One dispatch pass's deliveries: they answer the oldest Receive, and the next one's want becomes the credit. */
  deliver(deliveries: Delivery[]): void {
    const waiter = this.waiting.shift();
    this.grantNext();
    waiter?.finish(deliveries);
  }

  /** The consumer was detached or its subscription ended: every waiting Receive ends with nothing. */
  ended(): void {
    this.state.pullCredit = 0;
    for (const waiter of this.waiting.splice(0)) waiter.finish([]);
  }

  /** A Receive's time is up: it ends with nothing, and the next one's want becomes the credit. */
  private cancel(waiter: Waiter): void {
    const index = this.waiting.indexOf(waiter);
    if (index < 0) return;
    this.waiting.splice(index, 1);
    if (index === 0) this.grantNext();
    waiter.finish([]);
  }

  private grantNext(): void {
    const next = this.waiting[0];
    this.state.pullCredit = next?.maxMessages ?? 0;
    if (next !== undefined) this.subscription.scheduleDispatch();
  }
}
