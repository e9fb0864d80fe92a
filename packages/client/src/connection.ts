import { EventEmitter } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  apiKeyOf,
  decodePush,
  decodeResponse,
  DEFAULT_MAX_FRAME_BYTES,
  encodeRequest,
  FrameKind,
  FrameReader,
  isProtocolError,
  LENGTH_PREFIX_BYTES,
  PROTOCOL_VERSION,
  type ApiName,
  type DecodedPush,
  type DecodedResponseOf,
  type RequestOf,
} from 'weir-protocol';
import { formatAddress, parseAddress, type BrokerAddress } from './address.js';
import { cloneError, errorFromResponse, toClientError, WeirClientError } from './errors.js';

/** This library's version, sent in Handshake. */
export const CLIENT_VERSION = '0.1.0';

export interface ConnectionOptions {
  /** A name for the application, shown in broker logs and group listings (default `weir-client`). */
  clientId?: string;
  /** Sent in Handshake (default this library's version). */
  clientVersion?: string;
  /** Largest frame this side accepts; the broker may lower it (default 16 MiB). */
  maxFrameBytes?: number;
  /** Requested heartbeat interval; 0 (the default) lets the broker choose. */
  heartbeatMs?: number;
  /** Limit for the TCP connect plus the handshake (default 10 s). */
  connectTimeoutMs?: number;
  /** Default timeout of `request` (default 30 s). */
  requestTimeoutMs?: number;
}

export interface RequestOptions {
  /** Overrides the connection's request timeout for this request. */
  timeoutMs?: number;
  /** Aborting rejects the request (its response, if one comes, is ignored). */
  signal?: AbortSignal;
}

/** What Handshake negotiated. */
export interface HandshakeInfo {
  /** The protocol version both sides use. */
  readonly version: number;
  readonly brokerVersion: string;
  /** Largest frame either side may send from now on. */
  readonly maxFrameBytes: number;
  /** Ping interval; the broker drops a connection silent for 3 of them. */
  readonly heartbeatMs: number;
  /** The broker's name for this connection (in its logs). */
  readonly connectionId: string;
}

interface PendingRequest {
  readonly name: ApiName;
  readonly apiKey: number;
  resolve(body: unknown): void;
  reject(error: WeirClientError): void;
  /** Clears the timeout and the abort listener. */
  settle(): void;
}

interface ConnectionEvents {
  /** Once, when the connection ends for any reason; every request in flight has been rejected with `error`. */
  close: [error: WeirClientError];
  /** A frame the broker sent without a request (docs/protocol.md, "Pushes"), e.g. Deliver; unknown push keys are dropped. */
  push: [push: DecodedPush];
}

/**
 * One connection to a broker: Handshake first, then any number of requests in flight, matched to their responses by
 * correlation id (responses may come in any order: a long-polling Fetch does not hold back the answers behind it).
 *
 * Writes: every frame written in one tick goes out in one socket write (the socket is corked at the first write of a
 * tick and uncorked on the next). When the socket's buffer is full (`write` returns false) further frames wait in this
 * object's own queue until 'drain'; `queuedFrames`/`queuedBytes` show that queue and `whenWritable()` lets a caller
 * wait for it, so a fast producer does not pile frames into memory.
 *
 * Liveness: when Handshake fixed a heartbeat interval, a Ping goes out whenever nothing was sent for half of it, and a
 * connection from which nothing arrived for 3 intervals is destroyed (the broker applies the same rule).
 *
 * Failure: when the connection ends, every request in flight is rejected with CONNECTION_CLOSED (retriable: the
 * broker may or may not have processed it); after `close()` they are rejected with CLIENT_CLOSED.
 *
 * Pushes: frames of kind Push (Deliver, for queue consumers) are decoded and emitted as 'push', in arrival order
 * relative to responses. A push this client does not know is dropped (newer brokers may send more); a malformed one
 * closes the connection, as an undecodable response does.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  /** `host:port` of the broker (or the label given to `open`). */
  readonly address: string;
  private readonly reader: FrameReader;
  private readonly pending = new Map<number, PendingRequest>();
  private nextCorrelationId = 1;
  private readonly requestTimeoutMs: number;
  private handshake: HandshakeInfo | null = null;
  private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private closedWith: WeirClientError | null = null;
  /** The first socket error, to say why the connection closed. */
  private socketError: Error | null = null;

  // Writes.
  private corked = false;
  /** The socket refused more (write returned false): frames wait in `queue` until 'drain'. */
  private blocked = false;
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queued = 0;
  private drainWaiters: Array<{ resolve(): void; reject(error: WeirClientError): void }> = [];

  // Liveness.
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private lastSentAt = Date.now();
  private lastReceivedAt = Date.now();
  private lastTickAt = Date.now();
  private pingInFlight = false;
  /** Round-trip time of the last Ping, in milliseconds (-1 before the first). */
  rttMs = -1;

  private constructor(
    private readonly stream: Duplex,
    address: string,
    options: ConnectionOptions,
  ) {
    super();
    this.address = address;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.reader = new FrameReader(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (error) => {
      this.socketError ??= error;
    });
    stream.on('end', () => this.destroy(new WeirClientError('CONNECTION_CLOSED', `the broker at ${this.address} closed the connection`)));
    stream.on('close', () => this.fail(this.closeError()));
    stream.on('drain', () => this.onDrain());
  }

  /**
   * Connects to `address` (`'host:port'`, `'[::1]:7654'` or a parsed address) and performs the handshake. Rejects with
   * CONNECTION_CLOSED (retriable) and a message that says what to check when the broker cannot be reached, or with
   * the broker's error (e.g. UNSUPPORTED_VERSION) when it refuses the handshake.
   */
  static connect(address: string | BrokerAddress, options: ConnectionOptions = {}): Promise<Connection> {
    const target = typeof address === 'string' ? parseAddress(address) : address;
    const label = formatAddress(target);
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    return new Promise<Connection>((resolve, reject) => {
      const socket = netConnect({ host: target.host, port: target.port, noDelay: true });
      let done = false;
      const timer = setTimeout(() => {
        finish(new WeirClientError('CONNECTION_CLOSED', `cannot connect to ${label}: no answer within ${timeoutMs} ms — is the address right and the port reachable?`));
        socket.destroy();
      }, timeoutMs);
      const finish = (error: WeirClientError | null, connection?: Connection): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off('error', onError);
        if (error !== null) reject(error);
        else resolve(connection!);
      };
      const onError = (error: NodeJS.ErrnoException): void => finish(connectError(label, target, error));
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        Connection.open(socket, { ...options, connectTimeoutMs: Math.max(1, timeoutMs) }, label).then(
          (connection) => finish(null, connection),
          (error: unknown) => {
            socket.destroy();
            finish(toClientError(error, 'CONNECTION_CLOSED'));
          },
        );
      });
    });
  }

  /** Performs the handshake over an already connected stream (a socket, or an in-memory duplex in tests). */
  static async open(stream: Duplex, options: ConnectionOptions = {}, address = 'stream'): Promise<Connection> {
    const connection = new Connection(stream, address, options);
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    try {
      const answer = await connection.request(
        'Handshake',
        {
          minVersion: PROTOCOL_VERSION,
          maxVersion: PROTOCOL_VERSION,
          clientId: options.clientId ?? 'weir-client',
          clientVersion: options.clientVersion ?? CLIENT_VERSION,
          maxFrameBytes,
          heartbeatMs: options.heartbeatMs ?? 0,
        },
        { timeoutMs: options.connectTimeoutMs ?? 10_000 },
      );
      if (answer.version !== PROTOCOL_VERSION) {
        throw new WeirClientError('UNSUPPORTED_VERSION', `the broker at ${address} chose protocol version ${answer.version}; this client speaks ${PROTOCOL_VERSION}`);
      }
      if (answer.maxFrameBytes < 64) throw new WeirClientError('INVALID_REQUEST', `the broker at ${address} negotiated an unusable frame limit of ${answer.maxFrameBytes} bytes`);
      connection.handshake = {
        version: answer.version,
        brokerVersion: answer.brokerVersion,
        maxFrameBytes: answer.maxFrameBytes,
        heartbeatMs: answer.heartbeatMs,
        connectionId: answer.connectionId,
      };
      connection.maxFrameBytes = answer.maxFrameBytes;
      connection.reader.setMaxFrameBytes(answer.maxFrameBytes);
      connection.startHeartbeat(answer.heartbeatMs);
      return connection;
    } catch (error) {
      const failure = toClientError(error, 'CONNECTION_CLOSED');
      connection.destroy(failure);
      if (failure.code === 'UNSUPPORTED_VERSION') {
        throw new WeirClientError('UNSUPPORTED_VERSION', `${failure.message} (this client speaks protocol version ${PROTOCOL_VERSION}; upgrade the client or the broker)`, {
          cause: failure,
        });
      }
      throw failure;
    }
  }

  /** What Handshake negotiated (throws before it completed). */
  get info(): HandshakeInfo {
    if (this.handshake === null) throw new Error('the handshake has not completed');
    return this.handshake;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Requests waiting for their responses. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Frames waiting in this connection's own queue for the socket to drain. */
  get queuedFrames(): number {
    return this.queue.length - this.queueHead;
  }

  /** Bytes of `queuedFrames`. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** Whether the socket took every frame so far (no frame waits for 'drain'). */
  get writable(): boolean {
    return !this.blocked && this.closedWith === null;
  }

  /** Largest frame this connection may send (the negotiated limit). */
  get frameLimit(): number {
    return this.maxFrameBytes;
  }

  /** Resolves once no frame waits for the socket to drain; rejects when the connection closes first. */
  whenWritable(): Promise<void> {
    if (this.closedWith !== null) return Promise.reject(cloneError(this.closedWith));
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * Sends a request and resolves with the decoded response body. Rejects with a WeirClientError: the broker's error
   * code and message for an error response; TIMEOUT when no response arrives in time; CONNECTION_CLOSED when the
   * connection breaks first; CLIENT_CLOSED after `close()`; FRAME_TOO_LARGE (or the encoder's code) for a request
   * that cannot be sent at all.
   */
  request<N extends ApiName>(name: N, body: RequestOf<N>, options: RequestOptions = {}): Promise<DecodedResponseOf<N>> {
    if (this.closedWith !== null) return Promise.reject(cloneError(this.closedWith));
    if (options.signal?.aborted) return Promise.reject(abortError(name, options.signal));
    const correlationId = this.takeCorrelationId();
    let frame: Buffer;
    try {
      frame = this.encode(name, correlationId, body);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<DecodedResponseOf<N>>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
      const signal = options.signal;
      let timer: NodeJS.Timeout | null = null;
      const onAbort = (): void => {
        if (this.pending.get(correlationId) !== entry) return;
        this.pending.delete(correlationId);
        entry.settle();
        reject(abortError(name, signal!));
      };
      const entry: PendingRequest = {
        name,
        apiKey: apiKeyOf(name),
        resolve: resolve as (body: unknown) => void,
        reject,
        settle: () => {
          if (timer !== null) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          if (this.pending.get(correlationId) !== entry) return;
          this.pending.delete(correlationId);
          signal?.removeEventListener('abort', onAbort);
          reject(new WeirClientError('TIMEOUT', `${name} to ${this.address} got no response within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(correlationId, entry);
      this.write(frame);
    });
  }

  /** Sends a request that gets no response (Produce with acks 0). Throws when the connection is closed. */
  send<N extends ApiName>(name: N, body: RequestOf<N>): void {
    if (this.closedWith !== null) throw cloneError(this.closedWith);
    this.write(this.encode(name, this.takeCorrelationId(), body));
  }

  /** Ends the connection politely: requests in flight are rejected with CLIENT_CLOSED. Resolves once the socket closed. */
  close(): Promise<void> {
    if (this.stream.destroyed) {
      this.fail(new WeirClientError('CLIENT_CLOSED', `the connection to ${this.address} was closed by the client`));
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      // Let what is queued go out, then end; a broker that does not finish the close in time is cut off.
      const timer = setTimeout(() => this.stream.destroy(), 1000);
      this.stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.fail(new WeirClientError('CLIENT_CLOSED', `the connection to ${this.address} was closed by the client`));
      this.uncork();
      this.stream.end();
    });
  }

  /** Drops the connection at once; requests in flight fail with `error` (default: CONNECTION_CLOSED, retriable). */
  destroy(error?: WeirClientError): void {
    this.fail(error ?? new WeirClientError('CONNECTION_CLOSED', `the connection to ${this.address} was dropped by the client`));
    this.stream.destroy();
  }

  // ---- writing ------------------------------------------------------------------------------------------------------

  private takeCorrelationId(): number {
    let id = this.nextCorrelationId;
    while (this.pending.has(id)) id = id >= 0x7fffffff ? 1 : id + 1;
    this.nextCorrelationId = id >= 0x7fffffff ? 1 : id + 1;
    return id;
  }

  private encode<N extends ApiName>(name: N, correlationId: number, body: RequestOf<N>): Buffer {
    let frame: Buffer;
    try {
      frame = encodeRequest(name, correlationId, body);
    } catch (error) {
      if (isProtocolError(error)) throw new WeirClientError(error.code, `cannot send ${name}: ${error.message}`, { retriable: false, cause: error });
      throw error;
    }
    const payloadBytes = frame.length - LENGTH_PREFIX_BYTES;
    if (payloadBytes > this.maxFrameBytes) {
      throw new WeirClientError(
        'FRAME_TOO_LARGE',
        `${name} of ${payloadBytes} bytes exceeds the frame limit of ${this.maxFrameBytes} bytes negotiated with ${this.address}; send less at once`,
        { retriable: false },
      );
    }
    return frame;
  }

  private write(frame: Buffer): void {
    this.lastSentAt = Date.now();
    if (this.blocked) {
      this.queue.push(frame);
      this.queued += frame.length;
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(() => this.uncork());
    }
    if (!this.stream.write(frame)) this.blocked = true;
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.stream.uncork();
  }

  private onDrain(): void {
    if (this.closedWith !== null) return;
    this.blocked = false;
    while (!this.blocked && this.queueHead < this.queue.length) {
      const frame = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = EMPTY;
      this.queued -= frame.length;
      if (!this.corked) {
        this.corked = true;
        this.stream.cork();
        process.nextTick(() => this.uncork());
      }
      if (!this.stream.write(frame)) this.blocked = true;
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (!this.blocked) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  }

  // ---- reading ------------------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closedWith !== null) return;
    this.lastReceivedAt = Date.now();
    this.reader.push(chunk);
    for (;;) {
      let payload: Buffer | null;
      try {
        payload = this.reader.next();
      } catch (error) {
        this.destroy(new WeirClientError('CONNECTION_CLOSED', `bad frame from ${this.address}: ${(error as Error).message}; connection closed`, { cause: error }));
        return;
      }
      if (payload === null) return;
      this.onFrame(payload);
      if (this.closedWith !== null) return;
    }
  }

  private onFrame(payload: Buffer): void {
    if (payload[0] === FrameKind.Push) {
      this.onPush(payload);
      return;
    }
    let response;
    try {
      response = decodeResponse(payload);
    } catch (error) {
      // The frame boundary is still known, but a broker that sends what we cannot read is not to be trusted further.
      const protocolError = isProtocolError(error) ? error : null;
      const correlationId = protocolError?.correlationId ?? null;
      const entry = correlationId === null ? undefined : this.pending.get(correlationId);
      if (entry !== undefined && correlationId !== null) {
        this.pending.delete(correlationId);
        entry.settle();
        entry.reject(new WeirClientError(protocolError!.code, `undecodable ${entry.name} response from ${this.address}: ${protocolError!.message}`, { retriable: false }));
      }
      this.destroy(new WeirClientError('CONNECTION_CLOSED', `undecodable frame from ${this.address}: ${(error as Error).message}; connection closed`, { cause: error }));
      return;
    }
    const entry = this.pending.get(response.correlationId);
    if (entry === undefined) return; // timed out or aborted: nobody waits for it
    if (entry.apiKey !== response.apiKey) {
      this.destroy(
        new WeirClientError(
          'CONNECTION_CLOSED',
          `${this.address} answered ${entry.name} (correlation id ${response.correlationId}) with a ${response.name} response; connection closed`,
        ),
      );
      return;
    }
    this.pending.delete(response.correlationId);
    entry.settle();
    if (response.errorCode !== 0) entry.reject(errorFromResponse(entry.name, response.errorCode, response.errorMessage));
    else entry.resolve(response.body);
  }

  private onPush(payload: Buffer): void {
    let push: DecodedPush | null;
    try {
      push = decodePush(payload);
    } catch (error) {
      this.destroy(new WeirClientError('CONNECTION_CLOSED', `undecodable push frame from ${this.address}: ${(error as Error).message}; connection closed`, { cause: error }));
      return;
    }
    if (push !== null) this.emit('push', push);
  }

  // ---- liveness -----------------------------------------------------------------------------------------------------

  private startHeartbeat(heartbeatMs: number): void {
    if (!(heartbeatMs > 0) || this.closedWith !== null) return;
    const tickMs = Math.max(5, Math.floor(heartbeatMs / 4));
    this.lastTickAt = Date.now();
    this.heartbeatTimer = setInterval(() => this.heartbeatTick(heartbeatMs, tickMs), tickMs);
    this.heartbeatTimer.unref();
  }

  private heartbeatTick(heartbeatMs: number, tickMs: number): void {
    const now = Date.now();
    // A tick far behind schedule means this process was busy (not that the broker went quiet): data may be waiting
    // unread in the socket, so give it a tick's grace before judging.
    if (now - this.lastTickAt > 2 * tickMs) this.lastReceivedAt = Math.max(this.lastReceivedAt, now - tickMs);
    this.lastTickAt = now;
    if (now - this.lastReceivedAt >= 3 * heartbeatMs) {
      this.destroy(new WeirClientError('CONNECTION_CLOSED', `nothing from ${this.address} for ${now - this.lastReceivedAt} ms (3 heartbeat intervals); connection considered dead`));
      return;
    }
    if (!this.pingInFlight && now - this.lastSentAt >= heartbeatMs / 2) {
      this.pingInFlight = true;
      const sentAt = now;
      this.request('Ping', {}, { timeoutMs: 3 * heartbeatMs }).then(
        () => {
          this.rttMs = Date.now() - sentAt;
          this.pingInFlight = false;
        },
        () => {
          this.pingInFlight = false;
        },
      );
    }
  }

  // ---- closing ------------------------------------------------------------------------------------------------------

  private closeError(): WeirClientError {
    const cause = this.socketError as NodeJS.ErrnoException | null;
    const reason = cause === null ? 'closed' : `lost: ${cause.code ?? cause.message}`;
    return new WeirClientError('CONNECTION_CLOSED', `connection to ${this.address} ${reason}`, { cause: cause ?? undefined });
  }

  private fail(error: WeirClientError): void {
    if (this.closedWith !== null) return;
    this.closedWith = error;
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.queue = [];
    this.queueHead = 0;
    this.queued = 0;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) {
      entry.settle();
      entry.reject(cloneError(error));
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter.reject(cloneError(error));
    this.emit('close', error);
  }
}

const EMPTY = Buffer.alloc(0);

function abortError(name: string, signal: AbortSignal): WeirClientError {
  const reason = signal.reason;
  if (reason instanceof WeirClientError) return reason;
  return new WeirClientError('CLIENT_CLOSED', `${name} was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
}

function connectError(label: string, target: BrokerAddress, error: NodeJS.ErrnoException): WeirClientError {
  const code = error.code ?? error.message;
  let hint: string;
  switch (error.code) {
    case 'ECONNREFUSED':
      hint = ' — is `weir serve` running there?';
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      hint = ` — cannot resolve host ${JSON.stringify(target.host)}; check the broker address`;
      break;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      hint = ' — is the address right and the port reachable from here?';
      break;
    default:
      hint = '';
  }
  return new WeirClientError('CONNECTION_CLOSED', `cannot connect to ${label}: ${code}${hint}`, { cause: error });
}
