import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ApiName, decodePush, decodeResponse, encodeRequest, FrameReader, type RequestOf } from 'weir-protocol';
import type { LogEntry, Logger } from '../../src/core/logger.js';
import { WeirServer, type StartOptions } from '../../src/server/weir-server.js';

/** A logger that keeps what it is told and lets a test await a line. */
export class WatchingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  private readonly watchers: Array<{ pattern: RegExp; resolve: (entry: LogEntry) => void }> = [];
  debug(fields: object, message: string): void {
    this.add({ level: 'debug', fields, message });
  }
  info(fields: object, message: string): void {
    this.add({ level: 'info', fields, message });
  }
  warn(fields: object, message: string): void {
    this.add({ level: 'warn', fields, message });
  }
  error(fields: object, message: string): void {
    this.add({ level: 'error', fields, message });
  }
  private add(entry: LogEntry): void {
    this.entries.push(entry);
    for (const watcher of this.watchers.splice(0)) {
      if (watcher.pattern.test(entry.message)) watcher.resolve(entry);
      else this.watchers.push(watcher);
    }
  }
  /** Resolves with the first line (already logged or to come) whose message matches. */
  next(pattern: RegExp): Promise<LogEntry> {
    const seen = this.entries.find((entry) => pattern.test(entry.message));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.watchers.push({ pattern, resolve }));
  }
}

/** A broker in this process on free ports, in a temp directory, with a watching logger. */
export async function startBroker(options: StartOptions): Promise<{ server: WeirServer; logger: WatchingLogger; close(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-limits-'));
  const logger = new WatchingLogger();
  const server = await WeirServer.start({ port: 0, amqpPort: 0, ...options, dataDir, logger });
  return {
    server,
    logger,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

type Response = ReturnType<typeof decodeResponse>;

/** A bare native-protocol speaker, so a test can misbehave the way a hostile client would. */
export class RawNativeClient {
  private readonly reader = new FrameReader(64 * 1024 * 1024);
  private readonly waiting = new Map<number, (response: Response) => void>();
  private correlation = 1;
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
        const response = decodeResponse(frame);
        this.waiting.get(response.correlationId)?.(response);
        this.waiting.delete(response.correlationId);
      }
    });
    socket.on('error', () => {});
    this.closed = once(socket, 'close').then(() => undefined);
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

  request<N extends ApiName>(name: N, body: RequestOf<N>): Promise<Response> {
    const correlationId = this.correlation++;
    return new Promise((resolve) => {
      this.waiting.set(correlationId, resolve);
      this.socket.write(encodeRequest(name, correlationId, body));
    });
  }

  handshake(heartbeatMs = 0): Promise<Response> {
    return this.request('Handshake', { minVersion: 1, maxVersion: 1, clientId: 'limits', clientVersion: '0', maxFrameBytes: 0, heartbeatMs });
  }
}

export const topicConfig = { retentionMs: -1, retentionBytes: -1, flushPolicy: 'none', flushIntervalMs: 1000, maxMessageBytes: 1 << 20 };

export function message(body: Buffer): RequestOf<'Produce'>['messages'][number] {
  return { id: null, key: null, tag: null, headers: [], timestamp: -1, body };
}

/** Resolves once `condition` holds, checking on every turn of the event loop's timers (bounded by the test timeout). */
export async function until(condition: () => boolean | Promise<boolean>, everyMs = 20): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, everyMs));
}
