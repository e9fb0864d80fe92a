import type { Socket } from 'node:net';
import {
  type ApiName,
  apiKeyOf,
  type DecodedRequestOf,
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  encodeResponseParts,
  errorCodeOf,
  type ErrorName,
  FrameReader,
  isProtocolError,
  PROTOCOL_VERSION,
  type ResponseOf,
  DEFAULT_MAX_FRAME_BYTES,
} from 'weir-protocol';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { SocketOutput } from '../../net/socket-output.js';
import { protocolErrorOf } from './error-mapping.js';

/** What a handler knows about the connection it serves. */
export interface ConnectionContext {
  readonly connectionId: string;
  readonly clientId: string;
  /** `address:port`, for logs and group descriptions. */
  readonly remoteAddress: string;
  /** The peer's IP address alone (as `socket.remoteAddress` gives it; '' when unknown), for address checks. */
  readonly peerAddress: string;
  /** Aborted when the connection closes, so long polls and joins stop waiting for it. */
  readonly closed: AbortSignal;
  /**
   * Sends a frame the client did not ask for (a push, e.g. Deliver); dropped once the connection is closing. Returns
   * false when the socket's unsent output is over its high-water mark: stop producing pushes until `whenWritable`.
   */
  push(frame: Buffer): boolean;
  /** Runs `resume` once the socket's unsent output has drained (at once when it is not congested; never once closing). */
  whenWritable(resume: () => void): void;
}

/** A handler returns the response body, or null for a request that gets no response (Produce with acks 0). */
export type Handler<N extends ApiName> = (body: DecodedRequestOf<N>, context: ConnectionContext) => Promise<ResponseOf<N> | null> | ResponseOf<N> | null;
export type HandlerTable = { readonly [N in Exclude<ApiName, 'Handshake' | 'Ping'>]: Handler<N> };

/** Requests handled per API, across connections (what metrics and tests read). */
export type RequestCounts = Map<ApiName, number>;

export interface NativeConnectionOptions {
  maxFrameBytes: number;
  requestCounts: RequestCounts;
  heartbeatMs: number;
  maxInFlight: number;
  /** Unsent output above which the connection is closed (a client that does not read). */
  maxOutputBytes: number;
  /** A connection whose Handshake has not arrived in this time is closed. */
  handshakeTimeoutMs: number;
  /** Set for a connection over the listener's limit: its first request is answered with LIMIT_REACHED and it is closed. */
  refusal?: string | null;
  brokerVersion: string;
  clock: Clock;
  logger: Logger;
}

/** Protocol errors after which the byte stream cannot be trusted: answer (where possible) and close. */
const FATAL: ReadonlySet<ErrorName> = new Set(['INVALID_REQUEST', 'FRAME_TOO_LARGE', 'NOT_HANDSHAKEN']);

let nextConnectionNumber = 1;

/**
 * One native-protocol connection: frames in, handler calls, responses out.
 *
 * - Handshake first (docs/protocol.md, "Handshake and version negotiation"); anything else first is NOT_HANDSHAKEN.
 * - Pipelining: every decoded request is dispatched at once; responses are written as they complete, in any order.
 *   Writes of one tick are corked into one syscall.
 * - Backpressure: reading pauses while `maxInFlight` requests are unanswered or the socket's write buffer is over
 *   its high-water mark (a client that never reads cannot make the broker buffer without bound), and resumes on drain.
 * - Output limit: a socket whose unsent output passes `maxOutputBytes` is destroyed (the client is not reading, so
 *   no answer would reach it); pushes report congestion past the high-water mark so producers of deliveries pause.
 * - Liveness: a connection from which nothing arrives for 3 heartbeat intervals is closed, and one that has not
 *   completed its Handshake within `handshakeTimeoutMs` too, however slowly it trickles bytes in (slowloris).
 * - Bad input: a malformed or oversized frame gets an error response when its correlation id is known, then the
 *   connection is closed with the reason logged. Nothing a client sends can throw out of this class.
 */
export class NativeConnection implements ConnectionContext {
  readonly connectionId = `c${nextConnectionNumber++}`;
  readonly remoteAddress: string;
  readonly peerAddress: string;
  clientId = '';
  private readonly reader: FrameReader;
  private readonly abort = new AbortController();
  private handshaken = false;
  private inFlight = 0;
  private lastHeard: number;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private readonly output: SocketOutput;
  private closing = false;
  private heartbeatMs: number;
  /** Resolves once the socket has closed and every request in flight has finished. */
  readonly finished: Promise<void>;
  private markFinished!: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly handlers: HandlerTable,
    private readonly options: NativeConnectionOptions,
  ) {
    this.peerAddress = socket.remoteAddress ?? '';
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.reader = new FrameReader(Math.min(DEFAULT_MAX_FRAME_BYTES, options.maxFrameBytes));
    this.heartbeatMs = options.heartbeatMs;
    this.lastHeard = options.clock.monotonic();
    this.finished = new Promise((resolve) => (this.markFinished = resolve));
    this.output = new SocketOutput(socket, options.maxOutputBytes, (unsentBytes) => {
      options.logger.warn(
        { connection: this.connectionId, remote: this.remoteAddress, unsentBytes, maxOutputBytes: options.maxOutputBytes },
        'closing connection: the client is not reading its socket (unsent output over maxOutputBytesPerConnection)',
      );
      this.closing = true;
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.updateFlow());
    socket.on('error', (error) => options.logger.debug({ connection: this.connectionId, err: error }, 'connection error'));
    socket.on('close', () => this.onClose());
    this.scheduleHeartbeatCheck();
    this.handshakeTimer = setTimeout(() => {
      options.logger.info({ connection: this.connectionId, remote: this.remoteAddress, timeoutMs: options.handshakeTimeoutMs }, 'handshake timed out; closing');
      this.socket.destroy();
    }, options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    options.logger.info({ connection: this.connectionId, remote: this.remoteAddress }, 'connection opened');
  }

  get closed(): AbortSignal {
    return this.abort.signal;
  }

  private onData(chunk: Buffer): void {
    this.lastHeard = this.options.clock.monotonic();
    try {
      this.reader.push(chunk);
      for (let frame = this.reader.next(); frame !== null && !this.closing; frame = this.reader.next()) this.onFrame(frame);
    } catch (error) {
      this.failConnection(error, null);
    }
  }

  private onFrame(frame: Buffer): void {
    let request: ReturnType<typeof decodeRequest>;
    try {
      request = decodeRequest(frame);
    } catch (error) {
      const correlationId = isProtocolError(error) ? error.correlationId : null;
      const apiKey = isProtocolError(error) ? error.apiKey : null;
      if (isProtocolError(error) && !FATAL.has(error.code) && correlationId !== null) {
        // Unknown API or version: the frame boundary is intact, so answer and keep serving.
        this.output.write(encodeErrorResponse(apiKey ?? -1, correlationId, errorCodeOf(error.code), error.message));
        return;
      }
      this.failConnection(error, correlationId === null ? null : { apiKey: apiKey ?? -1, correlationId });
      return;
    }
    if (this.options.refusal) {
      this.failConnection(new Error(this.options.refusal), { apiKey: request.apiKey, correlationId: request.correlationId }, 'LIMIT_REACHED');
      return;
    }
    if (request.name === 'Handshake') {
      this.handshake(request.correlationId, request.body as DecodedRequestOf<'Handshake'>);
      return;
    }
    if (!this.handshaken) {
      this.failConnection(new Error(`the first request must be Handshake, got ${request.name}`), { apiKey: request.apiKey, correlationId: request.correlationId }, 'NOT_HANDSHAKEN');
      return;
    }
    if (request.name === 'Ping') {
      this.output.write(encodeResponse('Ping', request.correlationId, {}));
      return;
    }
    this.dispatch(request.name, request.apiKey, request.correlationId, request.body);
  }

  private handshake(correlationId: number, body: DecodedRequestOf<'Handshake'>): void {
    if (this.handshaken) {
      this.output.write(encodeErrorResponse(apiKeyOf('Handshake'), correlationId, errorCodeOf('INVALID_REQUEST'), 'the connection has already completed its handshake'));
      return;
    }
    if (body.minVersion > PROTOCOL_VERSION || body.maxVersion < PROTOCOL_VERSION) {
      this.failConnection(
        new Error(`the broker speaks protocol version ${PROTOCOL_VERSION}; the client offered ${body.minVersion}..${body.maxVersion}`),
        { apiKey: apiKeyOf('Handshake'), correlationId },
        'UNSUPPORTED_VERSION',
      );
      return;
    }
    const maxFrameBytes = Math.max(1024, Math.min(this.options.maxFrameBytes, body.maxFrameBytes > 0 ? body.maxFrameBytes : this.options.maxFrameBytes));
    if (body.heartbeatMs > 0) this.heartbeatMs = Math.max(1000, Math.min(body.heartbeatMs, 5 * 60_000));
    this.reader.setMaxFrameBytes(maxFrameBytes);
    this.clientId = body.clientId;
    this.handshaken = true;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer), (this.handshakeTimer = null);
    this.output.write(
      encodeResponse('Handshake', correlationId, {
        version: PROTOCOL_VERSION,
        brokerVersion: this.options.brokerVersion,
        maxFrameBytes,
        heartbeatMs: this.heartbeatMs,
        connectionId: this.connectionId,
      }),
    );
    this.scheduleHeartbeatCheck();
    this.options.logger.info({ connection: this.connectionId, clientId: body.clientId, clientVersion: body.clientVersion }, 'client handshake');
  }

  private dispatch(name: ApiName, apiKey: number, correlationId: number, body: unknown): void {
    const handler = this.handlers[name as Exclude<ApiName, 'Handshake' | 'Ping'>] as Handler<ApiName>;
    this.inFlight++;
    this.options.requestCounts.set(name, (this.options.requestCounts.get(name) ?? 0) + 1);
    this.updateFlow();
    let result: Promise<unknown> | unknown;
    try {
      result = handler(body as never, this);
    } catch (error) {
      this.complete(name, apiKey, correlationId, null, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (response) => this.complete(name, apiKey, correlationId, response, null),
        (error: unknown) => this.complete(name, apiKey, correlationId, null, error),
      );
    } else {
      this.complete(name, apiKey, correlationId, result, null);
    }
  }

  private complete(name: ApiName, apiKey: number, correlationId: number, response: unknown, error: unknown): void {
    this.inFlight--;
    if (this.socket.destroyed) {
      this.maybeFinish();
      return;
    }
    if (error !== null) {
      const mapped = protocolErrorOf(error);
      if (mapped.unexpected) this.options.logger.error({ connection: this.connectionId, api: name, err: error }, 'request failed unexpectedly');
      this.output.write(encodeErrorResponse(apiKey, correlationId, errorCodeOf(mapped.name), mapped.message));
    } else if (response !== null) {
      try {
        for (const part of encodeResponseParts(name, correlationId, response as never)) this.output.write(part);
      } catch (encodeError) {
        this.options.logger.error({ connection: this.connectionId, api: name, err: encodeError }, 'response could not be encoded');
        this.output.write(encodeErrorResponse(apiKey, correlationId, errorCodeOf('INTERNAL_ERROR'), `the broker could not encode its ${name} response`));
      }
    }
    this.updateFlow();
    this.maybeFinish();
  }

  push(frame: Buffer): boolean {
    if (this.closing) return false;
    this.output.write(frame);
    return !this.socket.writableNeedDrain;
  }

  whenWritable(resume: () => void): void {
    if (this.closing) return; // nothing more will be sent; the consumer is detached when the connection closes
    this.output.whenWritable(resume);
  }

  /** Pauses reading while too much is in flight or unsent; resumes when both are back under their limits. */
  private updateFlow(): void {
    if (this.closing) return;
    const congested = this.inFlight >= this.options.maxInFlight || this.socket.writableNeedDrain;
    if (congested && !this.socket.isPaused()) this.socket.pause();
    else if (!congested && this.socket.isPaused()) this.socket.resume();
  }

  /** Answers the offending request when it can, then closes the connection, logging why. */
  private failConnection(error: unknown, request: { apiKey: number; correlationId: number } | null, code?: ErrorName): void {
    if (this.closing) return;
    const name: ErrorName = code ?? (isProtocolError(error) ? error.code : 'INVALID_REQUEST');
    const reason = (error as Error)?.message ?? String(error);
    if (request !== null) this.output.write(encodeErrorResponse(request.apiKey, request.correlationId, errorCodeOf(name), reason));
    this.options.logger.warn({ connection: this.connectionId, remote: this.remoteAddress, code: name, reason }, 'closing connection after bad input');
    this.close();
  }

  private scheduleHeartbeatCheck(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      const silentFor = this.options.clock.monotonic() - this.lastHeard;
      if (silentFor >= 3 * this.heartbeatMs) {
        this.options.logger.info({ connection: this.connectionId, silentMs: Math.round(silentFor) }, 'closing silent connection');
        this.close();
        return;
      }
      this.scheduleHeartbeatCheck();
    }, this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Ends the connection after flushing what was written. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.pause();
    this.output.end();
  }

  private onClose(): void {
    this.closing = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.output.closed();
    this.abort.abort();
    this.options.logger.info({ connection: this.connectionId, clientId: this.clientId }, 'connection closed');
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.inFlight === 0 && this.abort.signal.aborted) this.markFinished();
  }
}
