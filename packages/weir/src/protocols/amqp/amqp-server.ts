import type { Socket } from 'node:net';
import type { Logger } from '../../core/logger.js';
import { type Admission, TcpListener } from '../../net/tcp-listener.js';
import { AmqpConnection, type AmqpContext } from './amqp-connection.js';

/**
 * The AMQP 0-9-1 listener: accepts connections, applies the broker's flow-control state to them (connection.blocked),
 * and closes them with CONNECTION_FORCED on shutdown.
 */
export class AmqpServer {
  private readonly connections = new Set<AmqpConnection>();
  private closing = false;

  private constructor(
    private readonly listener: TcpListener,
    private readonly context: AmqpContext,
  ) {}

  static async start(options: { host: string; port: number; maxConnections: number; highWaterMarkBytes?: number }, context: AmqpContext, logger: Logger): Promise<AmqpServer> {
    const holder: { server: AmqpServer | null } = { server: null };
    const listener = await TcpListener.listen(options, logger, (socket, admission) => {
      if (holder.server === null) socket.destroy();
      else holder.server.accept(socket, admission);
    });
    holder.server = new AmqpServer(listener, context);
    return holder.server;
  }

  get port(): number {
    return this.listener.port;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private accept(socket: Socket, admission: Admission): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new AmqpConnection(socket, this.context, admission.admitted ? null : admission.reason);
    this.connections.add(connection);
    void connection.finished.then(() => this.connections.delete(connection));
  }

  /** The flow-control state changed: block publishing connections, or let them go on. */
  flowChanged(reason: string | null): void {
    for (const connection of this.connections) {
      if (reason === null) connection.unblock();
      else connection.block(reason);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.listener.stopAccepting();
    const open = [...this.connections];
    for (const connection of open) connection.close();
    await Promise.race([Promise.all(open.map((connection) => connection.finished)), new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
  }
}
