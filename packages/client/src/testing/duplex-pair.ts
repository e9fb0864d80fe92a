import { Duplex } from 'node:stream';
import {
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  errorCodeOf,
  FrameReader,
  type DecodedRequest,
  type ErrorName,
} from 'weir-protocol';

/**
 * One end of an in-memory connection: what it writes, its peer reads. Counts the writes that reach it (`writeCalls`:
 * one per `_writev`, so corked frames count once) and can hold its write callbacks to simulate a full socket.
 */
export class PairEnd extends Duplex {
  peer!: PairEnd;
  writeCalls = 0;
  framesWritten = 0;
  /** While true, write callbacks are withheld (the "socket" does not drain). */
  hold = false;
  private held: Array<() => void> = [];

  override _read(): void {}

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeCalls++;
    this.framesWritten += chunks.length;
    const data = Buffer.concat(chunks.map((entry) => entry.chunk));
    if (!this.peer.destroyed) this.peer.push(data);
    if (this.hold) this.held.push(() => callback());
    else callback();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.destroy();
    callback(error);
  }

  /** Lets the held writes complete. */
  release(): void {
    this.hold = false;
    const held = this.held;
    this.held = [];
    for (const done of held) done();
  }
}

/** Two connected ends. `writableHighWaterMark` applies to both. */
export function duplexPair(writableHighWaterMark = 16 * 1024): [PairEnd, PairEnd] {
  const a = new PairEnd({ writableHighWaterMark });
  const b = new PairEnd({ writableHighWaterMark });
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export interface ProtocolPeerOptions {
  heartbeatMs?: number;
  maxFrameBytes?: number;
  /** Answer Handshake with this error instead. */
  handshakeError?: ErrorName;
}

/**
 * The broker side of a pair for connection tests: answers Handshake itself and hands every other request to the test,
 * which answers with `reply`/`fail` in any order (or never).
 */
export class ProtocolPeer {
  readonly requests: DecodedRequest[] = [];
  private readonly reader = new FrameReader(16 << 20);
  private waiters: Array<() => void> = [];
  /** Answer Pings by itself (default true). */
  answerPings = true;

  constructor(
    readonly end: PairEnd,
    private readonly options: ProtocolPeerOptions = {},
  ) {
    end.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let payload = this.reader.next(); payload !== null; payload = this.reader.next()) this.onRequest(decodeRequest(payload));
    });
    end.on('error', () => {});
    // Like a socket without half-open support: when the client ends, this side ends too.
    end.on('end', () => end.end());
  }

  /** Resolves once `count` requests (other than Handshake and auto-answered Pings) have arrived. */
  async received(count: number): Promise<DecodedRequest[]> {
    while (this.requests.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.requests.slice(0, count);
  }

  reply(request: DecodedRequest, body: unknown): void {
    this.end.write(encodeResponse(request.name, request.correlationId, body as never));
  }

  fail(request: DecodedRequest, error: ErrorName, message: string): void {
    this.end.write(encodeErrorResponse(request.apiKey, request.correlationId, errorCodeOf(error), message));
  }

  private onRequest(request: DecodedRequest): void {
    if (request.name === 'Handshake') {
      if (this.options.handshakeError !== undefined) {
        this.fail(request, this.options.handshakeError, `handshake refused: ${this.options.handshakeError}`);
        return;
      }
      this.reply(request, {
        version: 1,
        brokerVersion: 'test',
        maxFrameBytes: Math.min(request.body.maxFrameBytes, this.options.maxFrameBytes ?? 16 << 20),
        heartbeatMs: this.options.heartbeatMs ?? 0,
        connectionId: 'test-connection',
      });
      return;
    }
    if (request.name === 'Ping' && this.answerPings) {
      this.reply(request, {});
      return;
    }
    this.requests.push(request);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
