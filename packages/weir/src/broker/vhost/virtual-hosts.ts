import type { Logger } from '../../core/logger.js';
import { decodeHeaders, type HeaderValue, inputHeaders, type MessageInput } from '../../storage/record-batch.js';
import type { BrokerCore } from '../broker-core.js';
import type { DeadLetter } from '../queue/work-queues.js';
import { type Queue, VirtualHost } from './virtual-host.js';
import { VhostError } from './vhost-error.js';
import { vhostDefinitions } from './vhost-definitions.js';

/** Why a message left its queue, in RabbitMQ's x-death vocabulary. */
export type DeadLetterCause = 'rejected' | 'expired' | 'maxlen' | 'delivery_limit';

/**
 * Turns a dead letter into the message republished to the dead-letter exchange (the protocol layer owns the message
 * format, e.g. AMQP's x-death header). Returns null to drop it (a dead-letter cycle).
 */
/** The message being dead-lettered: from the log, or a publish a full queue refused (never stored). */
export interface DeadMessage {
  headers: Readonly<Record<string, HeaderValue>>;
  body: Uint8Array;
  timestamp: number;
}

export type DeadLetterFormatter = (
  message: DeadMessage,
  context: { vhost: string; queue: string; cause: DeadLetterCause; deadLetterExchange: string; deadLetterRoutingKey: string | null },
) => { routingKeys: string[]; headers: ReadonlyMap<string, unknown> | null; input: MessageInput } | null;

const CAUSES: Record<DeadLetter['reason'], DeadLetterCause> = {
  rejected: 'rejected',
  expired: 'expired',
  overflow: 'maxlen',
  'max-deliveries': 'delivery_limit',
};

/**
 * What a stored AMQP message may take beyond its body: its properties (one content-header frame, so at most
 * frame_max) and the x-death headers dead-lettering adds. A queue's topic stores bodies up to the AMQP limit plus this.
 */
export const STORED_PROPERTIES_ROOM_BYTES = 1 << 20;

/**
 * Every virtual host, and the services that span them: the dead-letter handler of the queues' shared groups, and
 * appends to queues on behalf of the vhost layer.
 */
export class VirtualHosts {
  private readonly hosts = new Map<string, VirtualHost>();
  /** Shared group → queue, for dead letters. */
  private readonly byGroup = new Map<string, { vhost: VirtualHost; queue: Queue }>();
  private formatter: DeadLetterFormatter | null = null;
  private queueLimit = 0;

  private constructor(
    private readonly core: BrokerCore,
    private readonly logger: Logger,
    private readonly maxStoredMessageBytes: number,
  ) {}

  /** `maxStoredMessageBytes`: the topic limit of every queue (see VirtualHost.maxStoredMessageBytes). */
  static async open(core: BrokerCore, logger: Logger, maxStoredMessageBytes: number): Promise<VirtualHosts> {
    const hosts = new VirtualHosts(core, logger, maxStoredMessageBytes);
    for (const name of core.access.listVhosts()) await hosts.load(name);
    core.access.onVhostDeleted((name) => void hosts.drop(name));
    core.setDeadLetterHandler((deadLetter) => hosts.deadLetter(deadLetter));
    core.definitions.register(vhostDefinitions(hosts));
    return hosts;
  }

  /** How dead letters are formatted; until set, they wait. */
  setDeadLetterFormatter(formatter: DeadLetterFormatter): void {
    this.formatter = formatter;
  }

  /** Queues each vhost may hold (0: no limit); declarations past it are refused (RabbitMQ's vhost max-queues). */
  setQueueLimit(maxQueues: number): void {
    this.queueLimit = maxQueues;
    for (const host of this.hosts.values()) host.maxQueues = maxQueues;
  }

  /** The vhost, or null when it does not exist. */
  get(name: string): VirtualHost | null {
    const host = this.hosts.get(name);
    if (host !== undefined) return host;
    if (!this.core.access.hasVhost(name)) return null;
    return this.create(name);
  }

  list(): VirtualHost[] {
    return [...this.hosts.values()];
  }

  private create(name: string): VirtualHost {
    const host = new VirtualHost(name, this.core, this.core.metadata, this.logger, {
      created: (queue) => this.byGroup.set(queue.definition.group, { vhost: host, queue }),
      deleted: (queue) => this.byGroup.delete(queue.definition.group),
    });
    host.maxQueues = this.queueLimit;
    host.maxStoredMessageBytes = this.maxStoredMessageBytes;
    this.hosts.set(name, host);
    return host;
  }

  private async load(name: string): Promise<void> {
    await this.create(name).restore();
  }

  private async drop(name: string): Promise<void> {
    const host = this.hosts.get(name);
    if (host === undefined) return;
    this.hosts.delete(name);
    for (const queue of [...host.queues.values()]) await host.removeQueue(queue);
    host.close();
  }

  /** A dead letter of a queue's shared group (expired, rejected, over a limit). */
  private async deadLetter(deadLetter: DeadLetter): Promise<void> {
    const owner = this.byGroup.get(deadLetter.group);
    if (owner === undefined) return;
    const stored = deadLetter.message;
    const message = { headers: stored.headers.length > 0 ? decodeHeaders(stored.headers) : {}, body: stored.body, timestamp: stored.timestamp };
    await this.republish(owner.queue, message, CAUSES[deadLetter.reason]);
  }

  /**
   * A publish refused by a full queue with `x-overflow: reject-publish-dlx`: the publisher gets a nack, and the
   * message is dead-lettered (reason maxlen) as RabbitMQ does.
   */
  async rejectedPublish(queue: Queue, input: MessageInput): Promise<void> {
    const body = typeof input.body === 'string' ? Buffer.from(input.body) : input.body;
    // The dead-letter formatter reads the headers, which a publisher may have handed over encoded (AMQP's StoredInputs).
    await this.republish(queue, { headers: inputHeaders(input), body, timestamp: Date.now() }, 'maxlen');
  }

  /**
   * Republishes to the queue's dead-letter exchange, or drops the message when it has none (or that exchange does
   * not exist), as RabbitMQ does. Resolves once every copy is stored.
   */
  private async republish(queue: Queue, message: DeadMessage, cause: DeadLetterCause): Promise<void> {
    const vhost = this.byGroup.get(queue.definition.group)?.vhost;
    const exchange = queue.options.deadLetterExchange;
    if (vhost === undefined || exchange === null || vhost.routing.exchange(exchange) === undefined) return;
    if (this.formatter === null) throw new VhostError('RESOURCE_ERROR', 'no dead-letter formatter yet');
    const formatted = this.formatter(message, {
      vhost: vhost.name,
      queue: queue.name,
      cause,
      deadLetterExchange: exchange,
      deadLetterRoutingKey: queue.options.deadLetterRoutingKey,
    });
    if (formatted === null) return;
    const targets = new Map<string, Queue>();
    for (const key of formatted.routingKeys) {
      // Dead letters are the broker passing a message on: an internal dead-letter exchange accepts them.
      for (const name of vhost.routing.route(exchange, key, formatted.headers, { viaBinding: true }).queues) {
        const target = vhost.queues.get(name);
        if (target !== undefined) targets.set(name, target);
      }
    }
    if (targets.size === 0) return;
    const failures = await this.appendShared([...targets.values()], [formatted.input]);
    const failure = failures.find((error) => error !== null);
    if (failure !== undefined) throw failure;
  }

  /** Appends messages to a queue durably (under the queue's flush policy). */
  async append(queue: Queue, messages: readonly MessageInput[]): Promise<void> {
    await this.core.produce({ topic: queue.definition.topic, partition: 0, acks: 'durable', producerId: -1, producerEpoch: 0, baseSequence: 0, messages });
  }

  /**
   * Appends the same messages to several queues durably, stored once in the commit log (the strictest flush policy
   * among them decides when it resolves). Resolves with one entry per queue, in order: null when the queue has them,
   * else why it refused (e.g. QUEUE_FULL); rejects only when the broker refuses the call as a whole.
   */
  async appendShared(queues: readonly Queue[], messages: readonly MessageInput[]): Promise<unknown[]> {
    const targets = queues.map((queue) => ({ topic: queue.definition.topic, partition: 0 }));
    const outcomes = await this.core.produceShared({ targets, acks: 'durable', messages });
    return outcomes.map((outcome) => outcome.error);
  }

  close(): void {
    this.core.setDeadLetterHandler(null);
    for (const host of this.hosts.values()) host.close();
  }
}
