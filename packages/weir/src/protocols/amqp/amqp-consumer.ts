import type { BrokerCore } from '../../broker/broker-core.js';
import { DeliveryOutbox } from '../../broker/queue/delivery-outbox.js';
import type { ConsumerState, CreditPool, Delivery, DeliverySink, SettleOutcome } from '../../broker/queue/shared-subscription.js';
import type { Queue, QueueConsumer, VirtualHost } from '../../broker/vhost/virtual-host.js';

/** What a consumer needs from its channel. */
export interface ConsumerChannel {
  readonly connectionId: string;
  readonly clientId: string;
  readonly address: string;
  /** False while the client paused the channel with channel.flow. */
  readonly flowActive: boolean;
  /** Writes basic.deliver frames for `deliveries[from…to)` (numbering them); returns whether the socket can take more. */
  deliver(consumer: AmqpConsumer, deliveries: readonly Delivery[], from: number, to: number): boolean;
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
  /** Deliveries handed over by the subscription, not yet written: a no-ack consumer is limited by its socket. */
  private readonly outbox: DeliveryOutbox;
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
    this.outbox = new DeliveryOutbox({
      write: (deliveries, from, to) => this.write(deliveries, from, to),
      whenWritable: (resume) => channel.whenWritable(resume),
      paused: () => {
        if (this.state !== null) this.state.paused = true;
      },
      resumed: () => {
        if (!this.cancelled && this.state !== null) this.core.resumeConsumer(this.group, this.topic, this.state);
      },
    });
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
    this.outbox.add(deliveries);
  }

  private write(deliveries: readonly Delivery[], from: number, to: number): boolean {
    if (!this.options.noAck) this.unacked += to - from;
    const writable = this.channel.deliver(this, deliveries, from, to);
    if (this.options.noAck) {
      const outcomes: SettleOutcome[] = [];
      for (let index = from; index < to; index++) outcomes.push({ partition: deliveries[index]!.partition, offset: deliveries[index]!.offset, outcome: 'ack' });
      this.core.settle(this.group, this.topic, this.consumerId, outcomes);
    }
    return writable;
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
    // Leased but never written: unsubscribing (or the channel closing) hands them to other consumers.
    this.outbox.clear();
    if (this.state !== null) this.state.paused = true;
    this.vhost.removeConsumer(this.queue, this);
    if (this.unacked <= 0) this.detach();
  }

  /** From the vhost: the queue is gone, and its group with it. */
  queueDeleted(): void {
    this.cancelled = true;
    this.outbox.clear();
    // Nothing more for a tag the client is told is cancelled. What it holds dies with the queue instead of being
    // redelivered (or dead-lettered past a delivery limit): deleting the group drops those leases and gives their
    // credit back to the channel's prefetch pool, so there is nothing left to unsubscribe.
    if (this.state !== null) this.state.paused = true;
    this.detached = true;
    this.channel.cancelledByBroker(this);
  }

  /** The channel closed: everything unacknowledged is redelivered to the others. */
  close(): void {
    this.outbox.clear();
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
