import type { BrokerCore } from '../../broker/broker-core.js';
import type { ConsumerState, CreditPool, Delivery, DeliverySink } from '../../broker/queue/shared-subscription.js';
import type { Queue, QueueConsumer, VirtualHost } from '../../broker/vhost/virtual-host.js';

/** Body bytes written per slice of deliveries, roughly (see AmqpConsumer.send). */
const SLICE_BYTES = 64 * 1024;

/** What a consumer needs from its channel. */
export interface ConsumerChannel {
  readonly connectionId: string;
  readonly clientId: string;
  readonly address: string;
  /** False while the client paused the channel with channel.flow. */
  readonly flowActive: boolean;
  /** Writes basic.deliver frames for these deliveries (numbering them) and returns whether the socket can take more. */
  deliver(consumer: AmqpConsumer, deliveries: Delivery[]): boolean;
  /** The queue was deleted under the consumer: basic.cancel to the client. */
  cancelledByBroker(consumer: AmqpConsumer): void;
  /** Runs `resume` once the socket drained. */
  whenWritable(resume: () => void): void;
}

/** Whom a delivery is settled through: a consumer, or a channel's basic.get puller of one queue. */
export interface SettleSource {
  readonly group: string;
  readonly topic: string;
  readonly consumerId: string;
  /** Told how many of its deliveries the client settled. */
  settled?(count: number): void;
}

/**
 * One basic.consume: a consumer of the queue's shared group. It is subscribed when the vhost activates it (at once,
 * or when it becomes a single-active-consumer queue's active consumer). A cancelled consumer gets nothing more, but
 * stays attached until its unacknowledged deliveries are settled: in AMQP they remain the channel's to ack (§1.8.3.5).
 */
export class AmqpConsumer implements QueueConsumer, DeliverySink, SettleSource {
  state: ConsumerState | null = null;
  /** Deliveries not yet acknowledged by the client (none for no-ack consumers). */
  unacked = 0;
  cancelled = false;
  private detached = false;
  /** Deliveries handed over by the subscription, not yet written (see send). */
  private readonly pending: Delivery[] = [];
  private waitingForDrain = false;
  /** The consumer id in the shared group: unique per connection, channel and tag. */
  readonly consumerId: string;
  readonly group: string;
  readonly topic: string;

  constructor(
    readonly tag: string,
    readonly queue: Queue,
    private readonly vhost: VirtualHost,
    private readonly core: BrokerCore,
    private readonly channel: ConsumerChannel,
    readonly options: { noAck: boolean; exclusive: boolean; prefetch: number; priority: number; pool: CreditPool | undefined; channelNumber: number },
  ) {
    this.consumerId = `${channel.connectionId}/${options.channelNumber}/${tag}`;
    this.group = queue.definition.group;
    this.topic = queue.definition.topic;
  }

  get exclusive(): boolean {
    return this.options.exclusive;
  }

  get noAck(): boolean {
    return this.options.noAck;
  }

  activate(): void {
    if (this.cancelled || this.state !== null) return;
    try {
      this.state = this.core.subscribe({
        group: this.group,
        topic: this.topic,
        mode: 'shared',
        consumerId: this.consumerId,
        clientId: this.channel.clientId,
        address: this.channel.address,
        // A no-ack consumer is limited by its socket instead (see deliver).
        prefetch: this.options.noAck ? 0 : this.options.prefetch,
        priority: this.options.priority,
        pool: this.options.noAck ? undefined : this.options.pool,
        sink: this,
      });
    } catch {
      // The queue's group went away (deleted meanwhile, or the broker is closing): the client hears basic.cancel.
      this.channel.cancelledByBroker(this);
      return;
    }
    // A channel paused by channel.flow starts its consumers paused too.
    this.state.paused = !this.channel.flowActive;
  }

  deliver(deliveries: Delivery[]): void {
    for (const delivery of deliveries) this.pending.push(delivery);
    if (this.waitingForDrain || this.send()) return;
    // The socket is full: no more until it drains, so a slow reader cannot make the broker buffer without bound.
    this.waitingForDrain = true;
    if (this.state !== null) this.state.paused = true;
    this.channel.whenWritable(() => this.drained());
  }

  /**
   * Writes pending deliveries in slices of about SLICE_BYTES while the socket takes them; returns whether all went.
   * A dispatch may hand a consumer without prefetch (no-ack) its queue's whole read-ahead at once, so a full socket
   * must be able to stop it midway: what is left waits here, already leased, until the socket drains.
   */
  private send(): boolean {
    while (this.pending.length > 0) {
      let bytes = 0;
      let count = 0;
      while (count < this.pending.length && (count === 0 || bytes < SLICE_BYTES)) bytes += this.pending[count++]!.message.body.length;
      const slice = this.pending.splice(0, count);
      if (!this.options.noAck) this.unacked += slice.length;
      const writable = this.channel.deliver(this, slice);
      if (this.options.noAck) {
        this.core.settle(this.group, this.topic, this.consumerId, slice.map((delivery) => ({ partition: delivery.partition, offset: delivery.offset, outcome: 'ack' as const })));
      }
      if (!writable) return false;
    }
    return true;
  }

  private drained(): void {
    if (this.cancelled) {
      // Leased but never written: unsubscribing (or the channel closing) hands them to other consumers.
      this.pending.length = 0;
      this.waitingForDrain = false;
      return;
    }
    if (!this.send()) {
      this.channel.whenWritable(() => this.drained());
      return;
    }
    this.waitingForDrain = false;
    if (this.state !== null) this.core.resumeConsumer(this.group, this.topic, this.state);
  }

  /** Some of its deliveries were settled by the client. */
  settled(count: number): void {
    this.unacked -= count;
    if (this.cancelled && this.unacked <= 0) this.detach();
  }

  /** basic.cancel from the client: nothing more is delivered; unacked deliveries can still be settled. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    if (this.state !== null) this.state.paused = true;
    this.vhost.removeConsumer(this.queue, this);
    if (this.unacked <= 0) this.detach();
  }

  /** From the vhost: the queue is gone, and its group with it. */
  queueDeleted(): void {
    this.cancelled = true;
    // Nothing more for a tag the client is told is cancelled. What it holds dies with the queue instead of being
    // redelivered (or dead-lettered past a delivery limit): deleting the group drops those leases and gives their
    // credit back to the channel's prefetch pool, so there is nothing left to unsubscribe.
    if (this.state !== null) this.state.paused = true;
    this.detached = true;
    this.channel.cancelledByBroker(this);
  }

  /** The channel closed: everything unacknowledged is redelivered to the others. */
  close(): void {
    if (!this.cancelled) {
      this.cancelled = true;
      this.vhost.removeConsumer(this.queue, this);
    }
    this.detach();
  }

  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    if (this.state !== null) this.core.unsubscribe(this.group, this.topic, this.consumerId, this.state);
  }
}
