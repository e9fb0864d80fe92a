/**
 * The amqp suite's floor: an AMQP 0-9-1 server that does as little as a broker can — queues are arrays in memory,
 * nothing is written to disk, there is no routing beyond the default exchange, and a publish is confirmed as soon as
 * its frames are read. Run against it, the suite's amqplib workloads measure what the client and the loopback socket
 * cost on this machine: no broker can do better with these clients, so it bounds every ratio the suite reports.
 *
 * It speaks only what the suite's clients send (connection and channel handshakes, confirm.select, queue.declare /
 * delete, basic.qos / consume / cancel / publish / ack), answers anything else by closing the connection with 540
 * NOT_IMPLEMENTED, and trusts its peer. It is a measuring instrument, not a broker: never point an application at it.
 *
 * Run as a process of its own: `node --import tsx bench/amqp-null-broker.ts`; it prints `listening on 127.0.0.1:<port>`
 * once listening (what bench/broker-process.ts waits for) and exits on SIGTERM.
 */
import { createServer, type Socket } from 'node:net';
import {
  basicDeliverSize,
  CONTENT_HEADER_PREFIX_SIZE,
  decodeMethod,
  encodeMethodFrame,
  FrameParser,
  FrameType,
  heartbeatFrame,
  PROTOCOL_HEADER,
  putBasicDeliver,
  ReplyCode,
  tableFromJs,
  type AmqpMethod,
} from '../packages/weir/src/protocols/amqp/codec/index.js';

const FRAME_MAX = 131_072;

interface Message {
  queue: MemoryQueue;
  rawProperties: Buffer;
  body: Buffer;
}

/** A queue as an array with a read index: messages are taken from the front in bulk, so shifting would be quadratic. */
class MemoryQueue {
  private messages: Message[] = [];
  private head = 0;
  readonly consumers: Consumer[] = [];
  private nextConsumer = 0;

  constructor(readonly name: string) {}

  get depth(): number {
    return this.messages.length - this.head;
  }

  push(message: Message): void {
    this.messages.push(message);
  }

  /** Puts unacknowledged messages back at the front, in the order given (a closed channel's, as RabbitMQ does). */
  requeue(messages: readonly Message[]): void {
    this.messages = [...messages, ...this.messages.slice(this.head)];
    this.head = 0;
  }

  take(): Message | undefined {
    const message = this.messages[this.head];
    if (message === undefined) return undefined;
    this.messages[this.head++] = undefined as unknown as Message;
    if (this.head > 4096 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
    return message;
  }

  purge(): number {
    const count = this.depth;
    this.messages = [];
    this.head = 0;
    return count;
  }

  /** Hands ready messages to consumers with credit, round-robin, one delivery at a time. */
  dispatch(): void {
    let idle = 0;
    while (this.depth > 0 && this.consumers.length > 0 && idle < this.consumers.length) {
      const consumer = this.consumers[this.nextConsumer++ % this.consumers.length]!;
      if (!consumer.hasCredit()) {
        idle++;
        continue;
      }
      idle = 0;
      consumer.deliver(this.take()!);
    }
  }
}

class Consumer {
  constructor(
    readonly channel: ChannelState,
    readonly tag: string,
    readonly queue: MemoryQueue,
    readonly noAck: boolean,
  ) {}

  hasCredit(): boolean {
    return this.noAck || this.channel.prefetch === 0 || this.channel.unacked.size < this.channel.prefetch;
  }

  deliver(message: Message): void {
    const channel = this.channel;
    const tag = ++channel.deliveryTag;
    if (!this.noAck) channel.unacked.set(tag, message);
    channel.connection.queueDelivery(channel.id, this.tag, tag, this.queue.name, message);
  }
}

class ChannelState {
  prefetch = 0;
  deliveryTag = 0;
  /** Unacknowledged deliveries by tag, in delivery order (a Map keeps insertion order, which `multiple` acks walk). */
  readonly unacked = new Map<number, Message>();
  readonly consumers = new Map<string, Consumer>();
  confirming = false;
  publishSeq = 0;
  /** Highest publish sequence read but not yet confirmed. */
  confirmUpTo = 0;
  /** The publish whose content is being read. */
  pending: { routingKey: string; rawProperties: Buffer | null; bodySize: number; parts: Buffer[]; received: number } | null = null;

  constructor(
    readonly connection: Connection,
    readonly id: number,
  ) {}
}

const queues = new Map<string, MemoryQueue>();
let serverNamed = 0;

class Connection {
  private readonly parser = new FrameParser({ maxFrameSize: FRAME_MAX });
  private readonly channels = new Map<number, ChannelState>();
  private headerSeen = false;
  /** Set once the connection is closing: nothing more is read from it or delivered to it. */
  private closed = false;
  private frameMax = FRAME_MAX;
  private pendingHeader = Buffer.alloc(0);
  /** Frames written at the end of each read, as one write. */
  private out: Buffer[] = [];
  private readonly deliveries: { channel: number; consumerTag: string; deliveryTag: number; queue: string; message: Message }[] = [];
  private readonly touched = new Set<MemoryQueue>();

  constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.closeAll());
  }

  queueDelivery(channel: number, consumerTag: string, deliveryTag: number, queue: string, message: Message): void {
    this.deliveries.push({ channel, consumerTag, deliveryTag, queue, message });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    if (!this.headerSeen) {
      this.pendingHeader = Buffer.concat([this.pendingHeader, chunk]);
      if (this.pendingHeader.length < PROTOCOL_HEADER.length) return;
      if (!this.pendingHeader.subarray(0, PROTOCOL_HEADER.length).equals(PROTOCOL_HEADER)) {
        this.socket.end(PROTOCOL_HEADER);
        return;
      }
      this.headerSeen = true;
      chunk = this.pendingHeader.subarray(PROTOCOL_HEADER.length);
      this.send(0, {
        method: 'connection.start',
        versionMajor: 0,
        versionMinor: 9,
        serverProperties: tableFromJs({ product: 'weir-bench null broker', capabilities: { publisher_confirms: true, 'basic.nack': true } }),
        mechanisms: Buffer.from('PLAIN AMQPLAIN'),
        locales: Buffer.from('en_US'),
      });
    }
    this.parser.push(chunk);
    try {
      for (let frame = this.parser.next(); frame !== null && !this.closed; frame = this.parser.next()) {
        if (frame.type === FrameType.Method) this.onMethod(frame.channel, decodeMethod(frame.payload));
        else if (frame.type === FrameType.Header) this.onHeader(frame.channel, frame.payload);
        else if (frame.type === FrameType.Body) this.onBody(frame.channel, frame.payload);
        else if (frame.type === FrameType.Heartbeat) this.out.push(heartbeatFrame());
      }
    } catch (error) {
      this.fail(ReplyCode.FRAME_ERROR, (error as Error).message);
    }
    this.flush();
  }

  /** Confirms, then deliveries for every queue this read touched, then one write. */
  private flush(): void {
    for (const channel of this.channels.values()) {
      if (channel.confirming && channel.confirmUpTo > 0) {
        this.send(channel.id, { method: 'basic.ack', deliveryTag: channel.confirmUpTo, multiple: true });
        channel.confirmUpTo = 0;
      }
    }
    for (const queue of this.touched) queue.dispatch();
    this.touched.clear();
    this.writeOut();
    for (const connection of active) if (connection !== this) connection.writeOut();
  }

  writeOut(): void {
    if (this.deliveries.length > 0) {
      let size = 0;
      for (const d of this.deliveries) size += basicDeliverSize(d.channel, d.consumerTag, d.deliveryTag, '', d.queue, d.message.rawProperties, d.message.body, this.frameMax);
      const buf = Buffer.allocUnsafe(size);
      let at = 0;
      for (const d of this.deliveries) at = putBasicDeliver(buf, at, d.channel, d.consumerTag, d.deliveryTag, false, '', d.queue, d.message.rawProperties, d.message.body, this.frameMax);
      this.out.push(buf);
      this.deliveries.length = 0;
    }
    if (this.out.length === 0) return;
    const frames = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.socket.write(frames);
  }

  private send(channel: number, method: AmqpMethod): void {
    this.out.push(encodeMethodFrame(channel, method));
  }

  private fail(code: number, text: string): void {
    this.send(0, { method: 'connection.close', replyCode: code, replyText: text.slice(0, 255), classId: 0, methodId: 0 });
    this.end();
  }

  /** Writes what is queued and closes; its consumers go at once, so no delivery is written to a closing socket. */
  private end(): void {
    this.closeAll();
    this.closed = true;
    this.writeOut();
    this.socket.end();
  }

  private channel(id: number): ChannelState {
    const channel = this.channels.get(id);
    if (channel === undefined) throw new Error(`channel ${id} is not open`);
    return channel;
  }

  private onMethod(id: number, method: AmqpMethod): void {
    switch (method.method) {
      case 'connection.start-ok':
        this.send(0, { method: 'connection.tune', channelMax: 2047, frameMax: FRAME_MAX, heartbeat: 0 });
        return;
      case 'connection.tune-ok':
        if (method.frameMax > 0) this.frameMax = Math.min(method.frameMax, FRAME_MAX);
        return;
      case 'connection.open':
        active.add(this);
        this.send(0, { method: 'connection.open-ok' });
        return;
      case 'connection.close':
        this.send(0, { method: 'connection.close-ok' });
        this.end();
        return;
      case 'channel.open':
        this.channels.set(id, new ChannelState(this, id));
        this.send(id, { method: 'channel.open-ok' });
        return;
      case 'channel.close':
        this.closeChannel(id);
        this.send(id, { method: 'channel.close-ok' });
        return;
      case 'confirm.select':
        this.channel(id).confirming = true;
        if (!method.noWait) this.send(id, { method: 'confirm.select-ok' });
        return;
      case 'basic.qos':
        this.channel(id).prefetch = method.prefetchCount;
        this.send(id, { method: 'basic.qos-ok' });
        return;
      case 'queue.declare': {
        const name = method.queue === '' ? `amq.gen-null-${++serverNamed}` : method.queue;
        let queue = queues.get(name);
        if (queue === undefined) {
          if (method.passive) return this.fail(ReplyCode.NOT_FOUND, `no queue '${name}'`);
          queue = new MemoryQueue(name);
          queues.set(name, queue);
        }
        if (!method.noWait) this.send(id, { method: 'queue.declare-ok', queue: name, messageCount: queue.depth, consumerCount: queue.consumers.length });
        return;
      }
      case 'queue.delete': {
        const queue = queues.get(method.queue);
        const count = queue?.purge() ?? 0;
        queues.delete(method.queue);
        if (!method.noWait) this.send(id, { method: 'queue.delete-ok', messageCount: count });
        return;
      }
      case 'basic.consume': {
        const queue = queues.get(method.queue);
        if (queue === undefined) return this.fail(ReplyCode.NOT_FOUND, `no queue '${method.queue}'`);
        const channel = this.channel(id);
        const tag = method.consumerTag === '' ? `amq.ctag-null-${++serverNamed}` : method.consumerTag;
        const consumer = new Consumer(channel, tag, queue, method.noAck);
        channel.consumers.set(tag, consumer);
        queue.consumers.push(consumer);
        if (!method.noWait) this.send(id, { method: 'basic.consume-ok', consumerTag: tag });
        this.touched.add(queue);
        return;
      }
      case 'basic.cancel': {
        const channel = this.channel(id);
        const consumer = channel.consumers.get(method.consumerTag);
        if (consumer !== undefined) this.removeConsumer(consumer);
        if (!method.noWait) this.send(id, { method: 'basic.cancel-ok', consumerTag: method.consumerTag });
        return;
      }
      case 'basic.ack': {
        const channel = this.channel(id);
        if (!method.multiple) {
          const message = channel.unacked.get(method.deliveryTag);
          channel.unacked.delete(method.deliveryTag);
          if (message !== undefined) this.touched.add(message.queue);
          return;
        }
        for (const [tag, message] of channel.unacked) {
          if (tag > method.deliveryTag) break;
          channel.unacked.delete(tag);
          this.touched.add(message.queue);
        }
        return;
      }
      case 'basic.publish': {
        const channel = this.channel(id);
        channel.pending = { routingKey: method.routingKey, rawProperties: null, bodySize: 0, parts: [], received: 0 };
        return;
      }
      default:
        return this.fail(ReplyCode.NOT_IMPLEMENTED, `the null broker does not implement ${method.method}`);
    }
  }

  private onHeader(id: number, payload: Buffer): void {
    const channel = this.channel(id);
    const pending = channel.pending;
    if (pending === null) throw new Error('content header without basic.publish');
    // class-id, weight, body-size (spec §4.2.6.1), then the property flags and list, kept as they are: frame payloads
    // are views of socket reads, which are not reused.
    pending.bodySize = Number(payload.readBigUInt64BE(4));
    pending.rawProperties = payload.subarray(CONTENT_HEADER_PREFIX_SIZE);
    if (pending.bodySize === 0) this.publish(channel);
  }

  private onBody(id: number, payload: Buffer): void {
    const channel = this.channel(id);
    const pending = channel.pending;
    if (pending === null || pending.rawProperties === null) throw new Error('content body without a content header');
    pending.parts.push(payload);
    pending.received += payload.length;
    if (pending.received >= pending.bodySize) this.publish(channel);
  }

  private publish(channel: ChannelState): void {
    const pending = channel.pending!;
    channel.pending = null;
    const body = pending.parts.length === 1 ? pending.parts[0]! : Buffer.concat(pending.parts);
    const queue = queues.get(pending.routingKey);
    if (queue !== undefined) {
      queue.push({ queue, rawProperties: pending.rawProperties!, body });
      this.touched.add(queue);
    }
    if (channel.confirming) channel.confirmUpTo = ++channel.publishSeq;
  }

  private removeConsumer(consumer: Consumer): void {
    consumer.channel.consumers.delete(consumer.tag);
    const list = consumer.queue.consumers;
    const at = list.indexOf(consumer);
    if (at >= 0) list.splice(at, 1);
  }

  private closeChannel(id: number): void {
    const channel = this.channels.get(id);
    if (channel === undefined) return;
    for (const consumer of channel.consumers.values()) this.removeConsumer(consumer);
    const back = new Map<MemoryQueue, Message[]>();
    for (const message of channel.unacked.values()) {
      let list = back.get(message.queue);
      if (list === undefined) back.set(message.queue, (list = []));
      list.push(message);
    }
    channel.unacked.clear();
    for (const [queue, messages] of back) {
      queue.requeue(messages);
      this.touched.add(queue);
    }
    this.channels.delete(id);
  }

  private closeAll(): void {
    active.delete(this);
    for (const id of [...this.channels.keys()]) this.closeChannel(id);
  }
}

const active = new Set<Connection>();

const server = createServer((socket) => new Connection(socket));
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(`listening on 127.0.0.1:${address.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
