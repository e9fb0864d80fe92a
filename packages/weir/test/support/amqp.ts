import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { WeirServer, type StartOptions } from '../../src/server/weir-server.js';

/** A broker in this process with AMQP on a free port, and amqplib connections that are closed with it. */
export interface AmqpBroker {
  server: WeirServer;
  url: string;
  dataDir: string;
  connect(options?: { heartbeat?: number }): Promise<amqp.ChannelModel>;
  /** Closes every connection made through `connect`, then the broker (the data directory stays for a restart). */
  stop(): Promise<void>;
  /** stop() and remove the data directory. */
  close(): Promise<void>;
}

export async function startAmqpBroker(options: StartOptions & { dataDir?: string } = {}): Promise<AmqpBroker> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'weir-amqp-')));
  const server = await WeirServer.start({ port: 0, amqpPort: 0, logLevel: 'silent', ...options, dataDir });
  const url = `amqp://guest:guest@127.0.0.1:${server.amqpPort}`;
  const connections: amqp.ChannelModel[] = [];
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await Promise.all(connections.map((connection) => connection.close().catch(() => {})));
      await server.close();
    })());
  return {
    server,
    url,
    dataDir,
    async connect(connectOptions = {}) {
      const connection = await amqp.connect(connectOptions.heartbeat === undefined ? url : `${url}?heartbeat=${connectOptions.heartbeat}`);
      connection.on('error', () => {});
      connections.push(connection);
      return connection;
    },
    stop,
    async close() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A confirm channel on a new connection, with `prefetch` set unless 0; channel errors are expected by the tests that
 * cause them, not thrown.
 */
export async function confirmChannel(broker: AmqpBroker, prefetch = 0): Promise<amqp.ConfirmChannel> {
  const connection = await broker.connect();
  const created = await connection.createConfirmChannel();
  created.on('error', () => {});
  if (prefetch > 0) await created.prefetch(prefetch);
  return created;
}

/** Resolves with the next `count` messages consumed from `queue` (acked unless noAck), then cancels. */
export async function consumeN(channel: amqp.Channel, queue: string, count: number, options: { noAck?: boolean } = {}): Promise<amqp.ConsumeMessage[]> {
  const messages: amqp.ConsumeMessage[] = [];
  let tag = '';
  await new Promise<void>((resolve, reject) => {
    channel
      .consume(
        queue,
        (message) => {
          if (message === null) return;
          if (messages.length === count) {
            // Beyond what was asked for: back to the queue for the next consumer.
            if (!options.noAck) channel.nack(message, false, true);
            return;
          }
          messages.push(message);
          if (!options.noAck) channel.ack(message);
          if (messages.length === count) resolve();
        },
        { noAck: options.noAck ?? false },
      )
      .then((ok) => {
        tag = ok.consumerTag;
        if (count === 0) resolve();
      }, reject);
  });
  await channel.cancel(tag);
  return messages;
}
