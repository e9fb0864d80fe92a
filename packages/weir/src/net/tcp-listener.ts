import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../core/logger.js';

export interface ListenOptions {
  /** Address to bind; `::` (the default) accepts IPv6 and IPv4 connections. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Connections above this are refused at accept time. */
  maxConnections: number;
}

/**
 * A TCP listener that hands each accepted socket to `onConnection`, and can stop accepting without dropping the
 * connections it already has (for a clean shutdown: stop accepting, finish in-flight work, then close).
 */
export class TcpListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
  }

  static async listen(options: ListenOptions, logger: Logger, onConnection: (socket: Socket) => void): Promise<TcpListener> {
    const server = createServer({ noDelay: true });
    const listener = new TcpListener(server);
    server.maxConnections = options.maxConnections;
    server.on('connection', (socket) => {
      listener.sockets.add(socket);
      socket.once('close', () => listener.sockets.delete(socket));
      onConnection(socket);
    });
    server.on('drop', (data) => logger.warn({ remote: data?.remoteAddress, maxConnections: options.maxConnections }, 'connection refused: too many connections'));
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
