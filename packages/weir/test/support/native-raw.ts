import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type ApiName, decodePush, decodeResponse, encodeRequest, FrameReader, type RequestOf } from 'weir-protocol';

export type Response = ReturnType<typeof decodeResponse>;

/**
 * A bare native-protocol speaker: what the broker must cope with when a client is not the official one, and a way to
 * misbehave as a hostile client would.
 */
export class RawNativeClient {
  private readonly reader = new FrameReader(64 * 1024 * 1024);
  private readonly waiting = new Map<number, (response: Response) => void>();
  private correlation = 1;
  /** Messages pushed in Deliver frames. */
  deliveries = 0;
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let frame = this.reader.next(); frame !== null; frame = this.reader.next()) {
        if (frame[0] === 2) {
          const push = decodePush(frame);
          if (push?.name === 'Deliver') this.deliveries += push.body.deliveries.length;
          continue;
        }
        const response = responseOf(frame);
        this.waiting.get(response.correlationId)?.(response);
        this.waiting.delete(response.correlationId);
      }
    });
    socket.on('error', () => {});
    // Not events.once: it would reject on a reset, which for these clients is just another way to be closed.
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async open(port: number): Promise<RawNativeClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawNativeClient(socket);
  }

  /** Encodes a request without sending it (to pipeline many in one write). */
  encode<N extends ApiName>(name: N, body: RequestOf<N>): Buffer {
    return encodeRequest(name, this.correlation++, body);
  }

  /** The response carrying `correlationId`, for a request written by hand. */
  answer(correlationId: number): Promise<Response> {
    return new Promise((resolve) => this.waiting.set(correlationId, resolve));
  }

  request<N extends ApiName>(name: N, body: RequestOf<N>): Promise<Response> {
    const correlationId = this.correlation++;
    const answered = this.answer(correlationId);
    this.socket.write(encodeRequest(name, correlationId, body));
    return answered;
  }

  /** Sends a Handshake and resolves with whatever the broker answers. */
  sendHandshake(options: Partial<RequestOf<'Handshake'>> = {}): Promise<Response> {
    return this.request('Handshake', { minVersion: 1, maxVersion: 1, clientId: 'raw', clientVersion: '0', maxFrameBytes: 0, heartbeatMs: 0, ...options });
  }

  /** A Handshake that must succeed. */
  async handshake(options: Partial<RequestOf<'Handshake'>> = {}): Promise<Response> {
    const response = await this.sendHandshake(options);
    assert.equal(response.errorCode, 0, response.errorMessage ?? '');
    return response;
  }
}

function responseOf(frame: Buffer): Response {
  try {
    return decodeResponse(frame);
  } catch {
    // A response to an API this decoder does not know: read the fixed header by hand.
    return { apiKey: frame.readInt16LE(1), correlationId: frame.readInt32LE(3), errorCode: frame.readInt16LE(7), errorMessage: null, body: null } as unknown as Response;
  }
}
