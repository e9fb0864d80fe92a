import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import { BrokerCore } from '../broker/broker-core.js';
import { type Clock, systemClock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { type Admission, TcpListener } from '../net/tcp-listener.js';
import { nativeHandlers } from '../protocols/native/handlers.js';
import { NativeConnection, type RequestCounts } from '../protocols/native/native-connection.js';
import { DiskMessageStore } from '../storage/disk-message-store.js';
import type { MessageStore, RetentionReport } from '../storage/message-store.js';
import { MemoryMessageStore } from '../storage/memory-message-store.js';
import { type BrokerConfig, defaultConfig, resolveConfig } from './config.js';
import { createLogger } from './logger.js';
import { ResourceMonitor } from './resource-monitor.js';
import { STORED_PROPERTIES_ROOM_BYTES, VirtualHosts } from '../broker/vhost/virtual-hosts.js';
import { AmqpServer } from '../protocols/amqp/amqp-server.js';
import { formatDeadLetter } from '../protocols/amqp/amqp-message.js';
import { DirectReplyTo } from '../protocols/amqp/direct-reply-to.js';

export interface StartOptions extends Partial<BrokerConfig> {
  /** Keep everything in memory instead of `dataDir` (nothing survives a restart). */
  inMemory?: boolean;
  /** A logger of your own; otherwise pino at `logLevel`. */
  logger?: Logger;
  clock?: Clock;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * A running Weir broker: storage, the broker core and the native-protocol listener, composed. What `weir serve`
 * runs, and what applications embed in their own tests:
 *
 * ```ts
 * const broker = await Broker.start({ dataDir: './data', port: 0 });
 * console.log(broker.port);
 * await broker.close();
 * ```
 */
export class WeirServer {
  private readonly connections = new Set<NativeConnection>();
  /** Native-protocol requests handled, per API, since start. */
  readonly requestCounts: RequestCounts = new Map();
  private closing: Promise<void> | null = null;

  private constructor(
    readonly config: BrokerConfig,
    readonly logger: Logger,
    private readonly store: MessageStore,
    readonly core: BrokerCore,
    private readonly listener: TcpListener,
    readonly vhosts: VirtualHosts,
    readonly resources: ResourceMonitor,
    private readonly amqp: AmqpServer,
  ) {}

  static async start(options: StartOptions = {}): Promise<WeirServer> {
    const { inMemory, logger: givenLogger, clock: givenClock, ...flags } = options;
    const config = resolveConfig(flags, {});
    const logger = givenLogger ?? createLogger(config.logLevel);
    const clock = givenClock ?? systemClock;
    const dataDir = resolve(config.dataDir);
    // An AMQP body up to its limit must fit its queue's topic (config.ts keeps that within a commit-log batch).
    const maxStoredMessageBytes = config.amqpMaxMessageBytes + STORED_PROPERTIES_ROOM_BYTES;
    const store: MessageStore = inMemory
      ? new MemoryMessageStore(clock)
      : await DiskMessageStore.open({ dataDir, clock, logger, segmentBytes: config.segmentBytes });
    let core: BrokerCore;
    try {
      core = await BrokerCore.open({
        store,
        clock,
        logger,
        ackFlushIntervalMs: config.ackFlushIntervalMs,
        traceEnabled: config.trace === 1,
        traceRetentionMs: config.traceRetentionMs,
        dedupWindowMs: config.dedupWindowMs,
        transactionCheckAfterMs: config.transactionCheckAfterMs,
        transactionCheckIntervalMs: config.transactionCheckIntervalMs,
        transactionMaxChecks: config.transactionMaxChecks,
      });
    } catch (error) {
      await store.close();
      throw error;
    }
    const resources = new ResourceMonitor(inMemory ? null : dataDir, config, logger);
    const handlers = nativeHandlers(core, { blockedReason: () => resources.blockedReason, maxTopics: config.maxTopics });
    const servers: { current: WeirServer | null } = { current: null };
    let listener: TcpListener | null = null;
    let vhosts: VirtualHosts | null = null;
    let amqp: AmqpServer;
    try {
      vhosts = await VirtualHosts.open(core, logger, maxStoredMessageBytes);
      vhosts.setDeadLetterFormatter(formatDeadLetter);
      vhosts.setQueueLimit(config.maxQueuesPerVhost);
      const limits = { maxConnections: config.maxConnections, highWaterMarkBytes: config.outputHighWaterMarkBytes };
      listener = await TcpListener.listen({ host: config.host, port: config.port, ...limits }, logger, (socket: Socket, admission: Admission) => {
        if (servers.current === null) socket.destroy();
        else servers.current.accept(socket, admission, handlers, clock);
      });
      amqp = await AmqpServer.start(
        { host: config.host, port: config.amqpPort, ...limits },
        {
          core,
          vhosts,
          access: core.access,
          logger,
          version: VERSION,
          blockedReason: () => resources.blockedReason,
          replies: new DirectReplyTo(),
          settings: {
            frameMax: config.amqpFrameMax,
            channelMax: config.amqpChannelMax,
            heartbeatSeconds: config.amqpHeartbeatSeconds,
            maxMessageBytes: config.amqpMaxMessageBytes,
            handshakeTimeoutMs: config.handshakeTimeoutMs,
            maxOutputBytes: config.maxOutputBytesPerConnection,
          },
        },
        logger,
      );
    } catch (error) {
      await listener?.stopAccepting();
      vhosts?.close();
      await core.close();
      await store.close();
      throw error;
    }
    resources.onChange((reason) => amqp.flowChanged(reason));
    resources.start();
    const server = new WeirServer({ ...config, dataDir }, logger, store, core, listener, vhosts, resources, amqp);
    servers.current = server;
    logger.info({ port: listener.port, amqpPort: amqp.port, host: config.host, dataDir: inMemory ? null : dataDir, version: VERSION }, 'weir is listening');
    return server;
  }

  /** The native-protocol port (useful with `port: 0`). */
  get port(): number {
    return this.listener.port;
  }

  /** The AMQP 0-9-1 port (useful with `amqpPort: 0`). */
  get amqpPort(): number {
    return this.amqp.port;
  }

  get dataDir(): string {
    return this.config.dataDir;
  }

  /** Runs the retention pass now instead of waiting for its interval (what it removed, per queue). */
  enforceRetention(): Promise<RetentionReport> {
    return this.store.enforceRetention();
  }

  get version(): string {
    return VERSION;
  }

  private accept(socket: Socket, admission: Admission, handlers: ReturnType<typeof nativeHandlers>, clock: Clock): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new NativeConnection(socket, handlers, {
      maxFrameBytes: this.config.maxFrameBytes,
      requestCounts: this.requestCounts,
      heartbeatMs: this.config.heartbeatMs,
      maxInFlight: this.config.maxInFlightPerConnection,
      maxOutputBytes: this.config.maxOutputBytesPerConnection,
      handshakeTimeoutMs: this.config.handshakeTimeoutMs,
      refusal: admission.admitted ? null : admission.reason,
      brokerVersion: VERSION,
      clock,
      logger: this.logger,
    });
    this.connections.add(connection);
    void connection.finished.then(() => this.connections.delete(connection));
  }

  /**
   * Clean shutdown: stop accepting, let requests in flight finish (waiting fetches and joins are answered with
   * BROKER_SHUTTING_DOWN), close connections, make everything durable, close the files.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.logger.info({ connections: this.connections.size }, 'shutting down');
    await this.listener.stopAccepting();
    this.resources.stop();
    await this.amqp.close();
    this.vhosts.close();
    await this.core.close();
    const open = [...this.connections];
    for (const connection of open) connection.close();
    await Promise.race([Promise.all(open.map((connection) => connection.finished)), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await this.store.close();
    this.logger.info({}, 'weir stopped');
  }
}

export { defaultConfig };
