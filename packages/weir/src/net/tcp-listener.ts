import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../core/logger.js';

export interface ListenOptions {
  /** Address to bind; `::` (the default) accepts IPv6 and IPv4 connections. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Connections served at once; the next ones are handed over as refused (see `Admission`). */
  maxConnections: number;
  /** The sockets' write buffer high-water mark: `write` returns false and `writableNeedDrain` is set above it. */
  highWaterMarkBytes?: number;
}

/**
 * Whether an accepted connection is served, or only told why not: a refused socket is handed to the protocol so it
 * can answer with a reason the client understands (an error response, a connection.close) before closing it.
 */
export type Admission = { readonly admitted: true } | { readonly admitted: false; readonly reason: string };

/**
 * Refused connections waiting to be told why (each is closed by its protocol's handshake timeout at the latest). Past
 * this many, further sockets are closed at accept without a word, so a flood of connections costs next to nothing.
 */
export const MAX_REFUSING_CONNECTIONS = 64;

/**
 * A TCP listener that hands each accepted socket to `onConnection`, and can stop accepting without dropping the
 * connections it already has (for a clean shutdown: stop accepting, finish in-flight work, then close).
 */
export class TcpListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly refusing = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
  }

  static async listen(options: ListenOptions, logger: Logger, onConnection: (socket: Socket, admission: Admission) => void): Promise<TcpListener> {
    const server = createServer({ noDelay: true, ...(options.highWaterMarkBytes === undefined ? {} : { highWaterMark: options.highWaterMarkBytes }) });
    const listener = new TcpListener(server);
    // Node closes sockets past this at accept ('drop'): served plus refused-and-being-told.
    server.maxConnections = options.maxConnections + MAX_REFUSING_CONNECTIONS;
    const refusal: Admission = { admitted: false, reason: `the broker's connection limit (maxConnections ${options.maxConnections}) is reached` };
    const admitted: Admission = { admitted: true };
    server.on('connection', (socket) => {
      if (listener.sockets.size < options.maxConnections) {
        listener.sockets.add(socket);
        socket.once('close', () => listener.sockets.delete(socket));
        onConnection(socket, admitted);
        return;
      }
      listener.refusing.add(socket);
      socket.once('close', () => listener.refusing.delete(socket));
      logger.warn({ remote: socket.remoteAddress, maxConnections: options.maxConnections }, 'connection refused: too many connections');
      onConnection(socket, refusal);
    });
    server.on('drop', (data) => logger.warn({ remote: data?.remoteAddress, maxConnections: options.maxConnections }, 'connection dropped at accept: too many connections'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.host, port: options.port, ipv6Only: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => logger.error({ err: error }, 'listener error'));
    return listener;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  get host(): string {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.address : '';
  }

  /** Connections served (refused ones not counted). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /**
   * Stops accepting; existing connections stay open. Resolves at once: `net.Server#close` calls back only once every
   * connection has ended, which is the caller's next step, not a precondition.
   */
  stopAccepting(): Promise<void> {
    if (this.server.listening) this.server.close();
    return Promise.resolve();
  }
}
