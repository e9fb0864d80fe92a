import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type AmqpMethod, decodeMethod, encodeMethodFrame, type Frame, FrameParser, FrameType, PROTOCOL_HEADER } from '../../src/protocols/amqp/codec/index.js';
import { within } from './within.js';

type Received = { channel: number; method: AmqpMethod } | { channel: number; type: number; payload: Buffer };
type Tune = Extract<AmqpMethod, { method: 'connection.tune' }>;

/** JSON.stringify's replacer for decoded methods: field tables are Maps, long-longs bigints. */
export function replacer(_: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** A client speaking frames built with the broker's codec: for input amqplib will not send, or a client that misbehaves. */
export class RawAmqp {
  private readonly parser = new FrameParser({ maxFrameSize: 0 });
  private readonly frames: Frame[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private countingDeliveries = false;
  /** basic.deliver methods received since `countDeliveries()`. */
  deliveries = 0;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      for (let frame = this.parser.next(); frame !== null; frame = this.parser.next()) {
        if (this.countingDeliveries && this.countDelivery(frame)) continue;
        this.frames.push({ ...frame, payload: Buffer.from(frame.payload) });
      }
      this.wake?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawAmqp> {
    const socket = connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) });
    await once(socket, 'connect');
    return new RawAmqp(socket);
  }

  /**
   * From now on basic.deliver methods are counted in `deliveries` and dropped with every content frame, rather than
   * kept for `next()`: a test can take many megabytes of deliveries without holding them.
   */
  countDeliveries(): void {
    this.countingDeliveries = true;
  }

  private countDelivery(frame: Frame): boolean {
    if (frame.type === FrameType.Header || frame.type === FrameType.Body) return true;
    if (frame.type !== FrameType.Method || decodeMethod(frame.payload).method !== 'basic.deliver') return false;
    this.deliveries++;
    return true;
  }

  send(...buffers: Buffer[]): void {
    this.socket.write(Buffer.concat(buffers));
  }

  method(channel: number, method: AmqpMethod): void {
    this.send(encodeMethodFrame(channel, method));
  }

  /** The next frame other than a heartbeat (methods decoded); null once the broker closed the socket. */
  async next(what: string): Promise<Received | null> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) {
        if (frame.type === FrameType.Heartbeat) continue;
        if (frame.type === FrameType.Method) return { channel: frame.channel, method: decodeMethod(frame.payload) };
        return { channel: frame.channel, type: frame.type, payload: frame.payload };
      }
      if (this.ended) return null;
      await within(new Promise<void>((resolve) => (this.wake = resolve)), what);
      this.wake = null;
    }
  }

  async expect<N extends AmqpMethod['method']>(name: N, channel = 0): Promise<Extract<AmqpMethod, { method: N }>> {
    const received = await this.next(name);
    assert.ok(received !== null, `expected ${name}, but the broker closed the socket`);
    assert.ok('method' in received, `expected ${name}, got a frame of type ${'type' in received ? received.type : '?'}`);
    assert.equal(received.method.method, name, `expected ${name}, got ${JSON.stringify(received.method, replacer)}`);
    assert.equal(received.channel, channel, `${name} on channel ${received.channel}, expected ${channel}`);
    return received.method as Extract<AmqpMethod, { method: N }>;
  }

  /** Header, start-ok (PLAIN), tune-ok, open: the opening handshake up to connection.open-ok (or what came instead). */
  async startHandshake(user = 'guest', password = 'guest'): Promise<void> {
    this.send(PROTOCOL_HEADER);
    const start = await this.expect('connection.start');
    assert.match(start.mechanisms.toString(), /\bPLAIN\b/);
    this.method(0, { method: 'connection.start-ok', clientProperties: new Map(), mechanism: 'PLAIN', response: Buffer.from(`\0${user}\0${password}`), locale: 'en_US' });
  }

  /** The whole opening handshake, accepting the broker's channel-max and frame-max; resolves with its tune. */
  async handshake(options: { vhost?: string; heartbeat?: number } = {}): Promise<Tune> {
    await this.startHandshake();
    const tune = await this.expect('connection.tune');
    this.method(0, { method: 'connection.tune-ok', channelMax: tune.channelMax, frameMax: tune.frameMax, heartbeat: options.heartbeat ?? 0 });
    this.method(0, { method: 'connection.open', virtualHost: options.vhost ?? '/' });
    await this.expect('connection.open-ok');
    return tune;
  }

  async openChannel(channel: number): Promise<void> {
    this.method(channel, { method: 'channel.open' });
    await this.expect('channel.open-ok', channel);
  }

  /**
   * The connection exception: connection.close on channel 0 with `code`, nothing after it; answered with close-ok,
   * after which the broker closes the socket.
   */
  async expectConnectionClose(code: number, text: RegExp): Promise<Extract<AmqpMethod, { method: 'connection.close' }>> {
    for (;;) {
      const received = await this.next(`connection.close ${code}`);
      assert.ok(received !== null, `expected connection.close ${code}, but the broker closed the socket without one`);
      assert.ok('method' in received, `expected connection.close ${code}, got a content frame on channel ${received.channel}`);
      // Replies to what was sent before the bad frame may come first; a channel.close may not (it would be the wrong kind of exception).
      if (received.method.method === 'connection.close') {
        assert.equal(received.channel, 0);
        const close = received.method;
        assert.equal(close.replyCode, code, `connection.close carries ${close.replyCode} (${close.replyText}), expected ${code}`);
        assert.match(close.replyText, text);
        this.method(0, { method: 'connection.close-ok' });
        await within(this.closed, 'the broker to close the socket after connection.close-ok');
        return close;
      }
      assert.notEqual(received.method.method, 'channel.close', `expected connection.close ${code}, got channel.close ${JSON.stringify(received.method, replacer)}`);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}
