import type { Socket } from 'node:net';
import type { AccessControl } from '../../broker/access/access-control.js';
import type { BrokerCore } from '../../broker/broker-core.js';
import type { VirtualHost } from '../../broker/vhost/virtual-host.js';
import type { VirtualHosts } from '../../broker/vhost/virtual-hosts.js';
import { systemClock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { SocketOutput } from '../../net/socket-output.js';
import { AmqpChannel, type ChannelHost } from './amqp-channel.js';
import type { DirectReplyTo } from './direct-reply-to.js';
import { AmqpError, asAmqpError, channelError, commandInvalid, notAllowed, unexpectedFrame } from './amqp-error.js';
import {
  type AmqpMethod,
  BASIC_ACK_KEY,
  BASIC_PUBLISH_KEY,
  BasicAckReader,
  BasicPublishReader,
  decodeMethod,
  decodeTable,
  encodeMethodFrame,
  Field,
  type FieldTable,
  FrameParser,
  FrameType,
  heartbeatFrame,
  parseProtocolHeader,
  PROTOCOL_HEADER,
  ReplyCode,
  tableBoolean,
  tableString,
} from './codec/index.js';

export interface AmqpSettings {
  /** Largest frame the broker accepts and offers in connection.tune (bytes, incl. the 8 bytes of framing). */
  frameMax: number;
  /** Most channels per connection. */
  channelMax: number;
  /** Heartbeat the broker proposes (seconds; 0 disables); the client's answer in tune-ok wins. */
  heartbeatSeconds: number;
  /** Largest message body accepted. */
  maxMessageBytes: number;
  /** A connection that has not finished the handshake in this time is closed. */
  handshakeTimeoutMs: number;
  /** Unsent output above which the connection is closed: the client is not reading its socket. */
  maxOutputBytes: number;
}

/** What connections share: the broker, the vhosts, access control, and the server's flow-control state. */
export interface AmqpContext {
  core: BrokerCore;
  vhosts: VirtualHosts;
  access: AccessControl;
  logger: Logger;
  settings: AmqpSettings;
  version: string;
  /** Null when publishing is allowed, else why it is not (a watermark). */
  blockedReason(): string | null;
  replies: DirectReplyTo;
}

type Phase = 'header' | 'start-ok' | 'tune-ok' | 'open' | 'running' | 'closing' | 'closed';

let nextConnectionId = 1;

/** §4.2.3: frame-max may not be below this, so a connection can always carry its methods. */
const FRAME_MIN_SIZE = 4096;

/**
 * One AMQP 0-9-1 connection (§2.2.4, §4.2): protocol header, SASL PLAIN / AMQPLAIN, tune, open, channels,
 * heartbeats both ways, connection.blocked, and the close handshake. Frames of a socket read are handled in order,
 * each channel's methods one at a time; writes are corked per read so the replies of one read leave in one write.
 */
export class AmqpConnection implements ChannelHost {
  readonly id = `amqp-${nextConnectionId++}`;
  readonly address: string;
  clientId = '';
  user = '';
  private phase: Phase = 'header';
  private parser: FrameParser;
  private readonly publishReader = new BasicPublishReader();
  private readonly ackReader = new BasicAckReader();
  private headerBytes = Buffer.alloc(0);
  private readonly channels = new Map<number, AmqpChannel>();
  /** Each channel's methods run one after another (a method may await the store). */
  private readonly channelQueues = new Map<number, Promise<void>>();
  private host: VirtualHost | null = null;
  frameMax: number;
  private channelMax: number;
  private heartbeatSeconds = 0;
  // Monotonic: a wall-clock step must neither close a live peer (forward) nor stop heartbeats (backward).
  private lastReceived = systemClock.monotonic();
  private lastSent = systemClock.monotonic();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private capabilities: FieldTable = new Map();
  private hasPublished = false;
  /** Set while reads are paused by flow control (connection.blocked sent). */
  private blocked = false;
  private readonly output: SocketOutput;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly context: AmqpContext,
    /** Set for a connection over the listener's limit: connection.open is answered with 530 and this reason. */
    private readonly refusal: string | null = null,
  ) {
    this.address = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.frameMax = context.settings.frameMax;
    this.channelMax = context.settings.channelMax;
    this.parser = new FrameParser({ maxFrameSize: context.settings.frameMax });
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.output = new SocketOutput(socket, context.settings.maxOutputBytes, (unsentBytes) => {
      // No connection.close: a client that does not read would never see it.
      context.logger.warn(
        { connection: this.id, address: this.address, unsentBytes, maxOutputBytes: context.settings.maxOutputBytes },
        'closing amqp connection: the client is not reading its socket (unsent output over maxOutputBytesPerConnection)',
      );
      this.phase = 'closed';
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => context.logger.debug({ err: error, connection: this.id }, 'amqp socket error'));
    socket.on('close', () => this.onClose());
    this.handshakeTimer = setTimeout(() => {
      context.logger.info({ connection: this.id, address: this.address }, 'amqp handshake timed out; closing');
      socket.destroy();
    }, context.settings.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  get core(): BrokerCore {
    return this.context.core;
  }

  get access(): AccessControl {
    return this.context.access;
  }

  get logger(): Logger {
    return this.context.logger;
  }

  get replies(): DirectReplyTo {
    return this.context.replies;
  }

  get vhost(): VirtualHost {
    return this.host!;
  }

  get vhosts(): VirtualHosts {
    return this.context.vhosts;
  }

  get maxMessageBytes(): number {
    return this.context.settings.maxMessageBytes;
  }

  get consumerCancelNotify(): boolean {
    return tableBoolean(this.capabilities, 'consumer_cancel_notify') === true;
  }

  // ---- output -------------------------------------------------------------------------------------------------------

  send(bytes: Buffer): boolean {
    if (this.phase === 'closed') return false;
    this.lastSent = systemClock.monotonic();
    return this.output.write(bytes);
  }

  whenWritable(resume: () => void): void {
    this.output.whenWritable(resume);
  }

  private sendMethod(channel: number, method: AmqpMethod): void {
    this.send(encodeMethodFrame(channel, method));
  }

  // ---- input --------------------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.lastReceived = systemClock.monotonic();
    if (this.phase === 'closed') return;
    try {
      if (this.phase === 'header') {
        chunk = this.readProtocolHeader(chunk);
        if (this.phase === 'header' || chunk.byteLength === 0) return;
      }
      const parser = this.parser;
      parser.push(chunk);
      while (parser.advance()) {
        this.handleFrame(parser.frameType, parser.frameChannel, parser.payloadBuf, parser.payloadStart, parser.payloadEnd);
        if ((this.phase as Phase) === 'closed') return;
      }
    } catch (error) {
      // A method that failed to decode is named in the close (§4.2.7: class-id and method-id of the failing method).
      const failed = error as { classId?: number; methodId?: number };
      this.fail(error, failed.classId ?? 0, failed.methodId ?? 0);
    }
  }

  /** §4.2.2: a client opens with `AMQP 0 0 9 1`; any other header is answered with ours, and the socket closed. */
  private readProtocolHeader(chunk: Buffer): Buffer {
    const bytes = this.headerBytes.byteLength === 0 ? chunk : Buffer.concat([this.headerBytes, chunk]);
    if (bytes.byteLength < PROTOCOL_HEADER.byteLength) {
      if (!PROTOCOL_HEADER.subarray(0, bytes.byteLength).equals(bytes.subarray(0, Math.min(bytes.byteLength, 4))) && bytes.byteLength >= 4) return this.refuseHeader();
      this.headerBytes = Buffer.from(bytes);
      return Buffer.alloc(0);
    }
    if (!parseProtocolHeader(bytes.subarray(0, PROTOCOL_HEADER.byteLength)).ok) return this.refuseHeader();
    this.headerBytes = Buffer.alloc(0);
    this.phase = 'start-ok';
    this.sendMethod(0, {
      method: 'connection.start',
      versionMajor: 0,
      versionMinor: 9,
      serverProperties: this.serverProperties(),
      mechanisms: Buffer.from('PLAIN AMQPLAIN'),
      locales: Buffer.from('en_US'),
    });
    return bytes.subarray(PROTOCOL_HEADER.byteLength);
  }

  private refuseHeader(): Buffer {
    // Spec §4.2.2: answer with the header of the version we speak, then close.
    this.output.write(PROTOCOL_HEADER);
    this.output.end();
    this.phase = 'closed';
    return Buffer.alloc(0);
  }

  private serverProperties(): FieldTable {
    const capabilities = new Map([
      'publisher_confirms',
      'exchange_exchange_bindings',
      'basic.nack',
      'consumer_cancel_notify',
      'connection.blocked',
      'authentication_failure_close',
      'per_consumer_qos',
      'direct_reply_to',
    ].map((name) => [name, Field.bool(true)]));
    return new Map([
      ['product', Field.string('Weir')],
      ['version', Field.string(this.context.version)],
      ['platform', Field.string(`Node.js ${process.version}`)],
      ['information', Field.string('Weir message broker')],
      ['capabilities', Field.table(capabilities)],
    ]);
  }

  /** One frame, its payload `buf[start, end)` (a view is made only of a body, which is kept). */
  private handleFrame(type: number, channel: number, buf: Buffer, start: number, end: number): void {
    if (type === FrameType.Heartbeat) {
      if (channel !== 0) throw new AmqpError(ReplyCode.FRAME_ERROR, `heartbeat frame on channel ${channel}; heartbeats use channel 0`);
      return;
    }
    if (this.phase === 'closing') {
      // §4.2.7 (connection.close): after sending close, only close and close-ok are of interest.
      if (type === FrameType.Method && channel === 0) {
        const method = decodeMethod(buf, start, end);
        if (method.method === 'connection.close-ok') this.terminate();
        else if (method.method === 'connection.close') {
          this.sendMethod(0, { method: 'connection.close-ok' });
          this.terminate();
        }
      }
      return;
    }
    if (channel === 0) {
      if (type !== FrameType.Method) throw unexpectedFrame(`content frame (type ${type}) on channel 0`);
      this.handleConnectionMethod(decodeMethod(buf, start, end));
      return;
    }
    if (this.phase !== 'running') throw channelError(`frame on channel ${channel} before the connection is open`);
    if (type === FrameType.Method) {
      const method = this.channelQueues.has(channel) ? decodeMethod(buf, start, end) : this.readMethod(buf, start, end);
      this.channelMethod(channel, method, buf.readUInt16BE(start), buf.readUInt16BE(start + 2));
      return;
    }
    const open = this.channels.get(channel);
    if (open === undefined) throw channelError(`content frame on channel ${channel}, which is not open`);
    if (type !== FrameType.Header && type !== FrameType.Body) throw unexpectedFrame(`unknown frame type ${type}`);
    // Nothing of the channel pending (the common case): handled at once, without a closure per frame.
    if (!this.channelQueues.has(channel)) this.handleContent(open, type, buf, start, end);
    else this.queueContent(channel, open, type, buf, start, end);
  }

  /**
   * A method to be handled at once: basic.publish and basic.ack (one per message) are read into a reused object, which
   * a method queued behind a pending one could not use, as it must keep its own.
   */
  private readMethod(buf: Buffer, start: number, end: number): AmqpMethod {
    const key = end - start >= 4 ? buf.readUInt32BE(start) : 0;
    if (key === BASIC_PUBLISH_KEY) return this.publishReader.read(buf, start, end);
    if (key === BASIC_ACK_KEY) return this.ackReader.read(buf, start, end);
    return decodeMethod(buf, start, end);
  }

  /**
   * A content frame waiting behind its channel's pending method. Its own method, so that handleFrame captures
   * nothing: a function with a closure allocates the closure's variables on every call, not just when it makes one.
   */
  private queueContent(number: number, channel: AmqpChannel, type: number, buf: Buffer, start: number, end: number): void {
    // The payload's bytes stay as they are (a socket read, or the parser's buffer of this frame alone).
    this.onChannel(number, () => this.handleContent(channel, type, buf, start, end));
  }

  private handleContent(channel: AmqpChannel, type: number, buf: Buffer, start: number, end: number): void {
    try {
      if (type === FrameType.Header) channel.handleHeader(buf, start, end);
      else channel.handleBody(buf.subarray(start, end));
    } catch (error) {
      this.channelFailed(channel, error, 60, 40);
    }
  }

  /**
   * Runs a channel's frames in order; a synchronous one (the common case: publish, content, ack) runs at once when
   * nothing of its channel is pending, so a read's frames are handled without a promise each.
   */
  private onChannel(number: number, run: () => Promise<void> | void): void {
    const previous = this.channelQueues.get(number);
    if (previous === undefined) {
      const result = run();
      if (result instanceof Promise) this.track(number, result);
    } else {
      this.track(number, previous.then(run));
    }
  }

  private channelMethod(number: number, method: AmqpMethod, classId: number, methodId: number): void {
    let channel = this.channels.get(number);
    if (method.method === 'channel.open') {
      if (channel !== undefined && channel.state !== 'closed') throw channelError(`second 'channel.open' seen on channel ${number}`);
      if (number > this.channelMax) throw notAllowed(`channel number ${number} is above the negotiated channel_max ${this.channelMax}`);
      channel = new AmqpChannel(number, this);
      this.channels.set(number, channel);
      this.sendMethod(number, { method: 'channel.open-ok' });
      return;
    }
    if (channel === undefined || channel.state === 'closed') {
      if (method.method === 'channel.close-ok') return;
      throw channelError(`expected 'channel.open' on channel ${number}, got ${method.method}`);
    }
    if (channel.state === 'closing') {
      // A closing channel discards everything but close and close-ok (§4.2.7), so these need not wait behind the
      // method that failed: the client may reopen the channel number right after its close-ok.
      void channel.handleMethod(method);
      if ((channel.state as string) === 'closed') this.channels.delete(number);
      return;
    }
    // As for content frames: a closure only when the method has to wait behind a pending one.
    if (!this.channelQueues.has(number)) {
      const result = this.runMethod(channel, method, classId, methodId);
      if (result instanceof Promise) this.track(number, result);
    } else {
      this.queueMethod(number, channel, method, classId, methodId);
    }
    if ((channel.state as string) === 'closed' && this.channelQueues.get(number) === undefined) this.channels.delete(number);
  }

  /** A method waiting behind its channel's pending one (see queueContent for why this is a method of its own). */
  private queueMethod(number: number, channel: AmqpChannel, method: AmqpMethod, classId: number, methodId: number): void {
    this.onChannel(number, () => this.runMethod(channel, method, classId, methodId));
  }

  private runMethod(channel: AmqpChannel, method: AmqpMethod, classId: number, methodId: number): Promise<void> | void {
    try {
      const result = channel.handleMethod(method);
      if (result instanceof Promise) return result.catch((error: unknown) => this.channelFailed(channel, error, classId, methodId));
    } catch (error) {
      this.channelFailed(channel, error, classId, methodId);
    }
    return undefined;
  }

  private track(number: number, promise: Promise<void>): void {
    const tracked = promise.finally(() => {
      if (this.channelQueues.get(number) === tracked) this.channelQueues.delete(number);
    });
    this.channelQueues.set(number, tracked);
  }

  private channelFailed(channel: AmqpChannel, error: unknown, classId: number, methodId: number): void {
    const { error: amqp, unexpected } = asAmqpError(error);
    if (unexpected) this.context.logger.error({ err: error, connection: this.id, channel: channel.number }, 'amqp channel method failed');
    if (amqp.closesConnection) {
      this.fail(amqp, classId, methodId);
      return;
    }
    if (channel.state !== 'open') return;
    channel.fail(amqp, classId, methodId);
  }

  // ---- connection class ---------------------------------------------------------------------------------------------

  private handleConnectionMethod(method: AmqpMethod): void {
    switch (method.method) {
      case 'connection.start-ok':
        if (this.phase !== 'start-ok') throw commandInvalid('connection.start-ok out of order');
        return this.startOk(method.mechanism, method.response, method.clientProperties);
      case 'connection.secure-ok':
        throw commandInvalid('connection.secure-ok: PLAIN and AMQPLAIN need no challenge');
      case 'connection.tune-ok':
        if (this.phase !== 'tune-ok') throw commandInvalid('connection.tune-ok out of order');
        return this.tuneOk(method.channelMax, method.frameMax, method.heartbeat);
      case 'connection.open':
        if (this.phase !== 'open') throw commandInvalid('connection.open out of order');
        return this.open(method.virtualHost);
      case 'connection.close':
        this.sendMethod(0, { method: 'connection.close-ok' });
        this.terminate();
        return;
      case 'connection.close-ok':
        this.terminate();
        return;
      case 'connection.blocked':
      case 'connection.unblocked':
        return; // a client may send these (RabbitMQ's extension is symmetric); the broker has nothing to do.
      case 'connection.update-secret':
        this.sendMethod(0, { method: 'connection.update-secret-ok' });
        return;
      default:
        throw commandInvalid(`${method.method} is not allowed on channel 0`);
    }
  }

  private startOk(mechanism: string, response: Buffer, clientProperties: FieldTable): void {
    const capabilities = clientProperties.get('capabilities');
    if (capabilities?.type === 'F') this.capabilities = capabilities.value;
    this.clientId = tableString(clientProperties, 'connection_name') ?? tableString(clientProperties, 'product') ?? '';
    const credentials = parseCredentials(mechanism, response);
    if (credentials === null) {
      throw new AmqpError(ReplyCode.ACCESS_REFUSED, `authentication mechanism '${mechanism}' is not supported (PLAIN or AMQPLAIN)`);
    }
    const result = this.context.access.authenticate(credentials.user, credentials.password, this.socket.remoteAddress ?? '');
    if (!result.ok) {
      // authentication_failure_close: the client expects connection.close with ACCESS_REFUSED, not a bare close.
      throw new AmqpError(ReplyCode.ACCESS_REFUSED, `Login was refused using authentication mechanism ${mechanism}: ${result.reason}`);
    }
    // Refused only now, after authentication, so nobody learns more than a login would tell; a close before tune is
    // what clients report with the server's reason ("Handshake terminated by server: 530 …").
    if (this.refusal !== null) throw notAllowed(this.refusal);
    this.user = credentials.user;
    this.phase = 'tune-ok';
    this.sendMethod(0, { method: 'connection.tune', channelMax: this.channelMax, frameMax: this.frameMax, heartbeat: this.context.settings.heartbeatSeconds });
  }

  private tuneOk(channelMax: number, frameMax: number, heartbeat: number): void {
    if (frameMax !== 0 && frameMax < FRAME_MIN_SIZE) throw notAllowed(`frame_max=${frameMax} < ${FRAME_MIN_SIZE} min size`);
    if (frameMax > this.frameMax) throw notAllowed(`frame_max=${frameMax} > ${this.frameMax} max size`);
    if (channelMax > this.channelMax) throw notAllowed(`channel_max=${channelMax} > ${this.channelMax} max`);
    if (frameMax !== 0) this.frameMax = frameMax;
    if (channelMax !== 0) this.channelMax = channelMax;
    this.parser.maxFrameSize = this.frameMax;
    this.heartbeatSeconds = heartbeat;
    this.phase = 'open';
  }

  private open(vhostName: string): void {
    const vhost = this.context.vhosts.get(vhostName);
    if (vhost === null) throw notAllowed(`vhost '${vhostName}' not found`);
    if (!this.context.access.canAccessVhost(this.user, vhostName)) throw notAllowed(`access to vhost '${vhostName}' refused for user '${this.user}'`);
    this.host = vhost;
    this.phase = 'running';
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer), (this.handshakeTimer = null);
    this.sendMethod(0, { method: 'connection.open-ok' });
    this.startHeartbeats();
    this.context.logger.debug({ connection: this.id, user: this.user, vhost: vhostName, address: this.address }, 'amqp connection open');
  }

  /** §4.2.7: heartbeats are sent every interval/2 while idle; a peer silent for two intervals is dead. */
  private startHeartbeats(): void {
    if (this.heartbeatSeconds === 0) return;
    const intervalMs = this.heartbeatSeconds * 1000;
    this.heartbeatTimer = setInterval(() => {
      const now = systemClock.monotonic();
      if (now - this.lastReceived > 2 * intervalMs) {
        this.context.logger.info({ connection: this.id, address: this.address, timeoutSeconds: this.heartbeatSeconds }, 'missed heartbeats from client; closing');
        this.socket.destroy();
        return;
      }
      if (now - this.lastSent >= intervalMs / 2) this.send(heartbeatFrame());
    }, intervalMs / 2);
    this.heartbeatTimer.unref();
  }

  // ---- flow control -------------------------------------------------------------------------------------------------

  publishing(): void {
    this.hasPublished = true;
    const reason = this.context.blockedReason();
    if (reason !== null) this.block(reason);
  }

  /**
   * A watermark was crossed: a connection that publishes gets connection.blocked and is not read until it clears
   * (RabbitMQ's connection.blocked extension); consumers on it keep receiving.
   */
  block(reason: string): void {
    if (this.blocked || !this.hasPublished || this.phase !== 'running') return;
    this.blocked = true;
    if (tableBoolean(this.capabilities, 'connection.blocked') === true) this.sendMethod(0, { method: 'connection.blocked', reason });
    this.socket.pause();
  }

  unblock(): void {
    if (!this.blocked) return;
    this.blocked = false;
    if (tableBoolean(this.capabilities, 'connection.blocked') === true) this.sendMethod(0, { method: 'connection.unblocked' });
    this.socket.resume();
  }

  // ---- closing ------------------------------------------------------------------------------------------------------

  /** A connection exception (§4.2.7): connection.close with the reply code, then wait for close-ok (bounded). */
  fail(error: unknown, classId: number, methodId: number): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    const { error: amqp, unexpected } = asAmqpError(error);
    if (unexpected) this.context.logger.error({ err: error, connection: this.id }, 'amqp connection failed');
    else this.context.logger.debug({ connection: this.id, code: amqp.replyCode, reason: amqp.text }, 'amqp connection exception');
    if (this.phase === 'header') {
      this.terminate();
      return;
    }
    this.closeChannels();
    this.phase = 'closing';
    this.sendMethod(0, { method: 'connection.close', replyCode: amqp.replyCode, replyText: amqp.replyText, classId, methodId });
    setTimeout(() => this.terminate(), 1000).unref();
  }

  /** Closes the connection from the broker's side (shutdown): 320 CONNECTION_FORCED. */
  close(reason = 'broker is shutting down'): void {
    this.fail(new AmqpError(ReplyCode.CONNECTION_FORCED, reason), 0, 0);
  }

  private closeChannels(): void {
    for (const channel of this.channels.values()) channel.closeResources();
    this.channels.clear();
  }

  private terminate(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeChannels();
    this.output.end();
  }

  private onClose(): void {
    this.phase = 'closed';
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.output.closed();
    this.closeChannels();
    const host = this.host;
    const done = host === null ? Promise.resolve() : host.connectionClosed(this.id);
    void done
      .catch((error: unknown) => this.context.logger.warn({ err: error, connection: this.id }, 'could not delete exclusive queues'))
      .finally(() => this.resolveFinished());
  }
}

/** PLAIN (RFC 4616: authzid NUL authcid NUL passwd) and AMQPLAIN (a field table without its length prefix). */
function parseCredentials(mechanism: string, response: Buffer): { user: string; password: string } | null {
  if (mechanism === 'PLAIN') {
    const parts = response.toString('utf8').split('\u0000');
    if (parts.length !== 3) return { user: '', password: '' };
    return { user: parts[1]!, password: parts[2]! };
  }
  if (mechanism === 'AMQPLAIN') {
    const prefixed = Buffer.alloc(4 + response.byteLength);
    prefixed.writeUInt32BE(response.byteLength, 0);
    response.copy(prefixed, 4);
    try {
      const { table } = decodeTable(prefixed, 0);
      return { user: tableString(table, 'LOGIN') ?? '', password: tableString(table, 'PASSWORD') ?? '' };
    } catch {
      return { user: '', password: '' };
    }
  }
  return null;
}
