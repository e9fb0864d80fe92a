import { randomBytes } from 'node:crypto';

/**
 * RabbitMQ's direct reply-to (https://www.rabbitmq.com/docs/direct-reply-to): an RPC client consumes the pseudo-queue
 * `amq.rabbitmq.reply-to` (no-ack) and publishes requests with that reply_to; the broker rewrites it to a name that
 * routes straight back to the client's channel. Replies are never stored: if the client is gone, they are dropped.
 */
export const REPLY_TO_QUEUE = 'amq.rabbitmq.reply-to';
const PREFIX = `${REPLY_TO_QUEUE}.`;

export type ReplySink = (routingKey: string, rawProperties: Buffer, body: Buffer) => void;

export class DirectReplyTo {
  private readonly sinks = new Map<string, ReplySink>();

  /** Registers a channel's reply consumer; returns the reply_to name its requests carry. */
  register(sink: ReplySink): string {
    const name = PREFIX + randomBytes(18).toString('base64url');
    this.sinks.set(name, sink);
    return name;
  }

  unregister(name: string): void {
    this.sinks.delete(name);
  }

  /** Whether a routing key on the default exchange names a reply consumer (whether or not it still exists). */
  static isReplyName(routingKey: string): boolean {
    return routingKey.startsWith(PREFIX);
  }

  /** Delivers a reply; false when its consumer is gone. */
  deliver(routingKey: string, rawProperties: Buffer, body: Buffer): boolean {
    const sink = this.sinks.get(routingKey);
    if (sink === undefined) return false;
    sink(routingKey, rawProperties, body);
    return true;
  }
}
