import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { WeirClient, type Admin, type ConsumedMessage, type Consumer, type QueueConsumer, type QueueMessage, type WeirClientOptions } from 'weir-client';

/**
 * Cleanups run once the test file is done. Registered here, at the top level, because `after()` called inside a
 * `before` hook would run as soon as that hook ends.
 */
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The parts of the broker these tests use. */
export interface RunningBroker {
  readonly port: number;
  close(): Promise<void>;
}

/** Broker settings a test may shorten (docs/configuration.md). */
export interface BrokerSettings {
  dedupWindowMs?: number;
  /** 1 records the message trace (off by default). */
  trace?: number;
  transactionCheckAfterMs?: number;
  transactionCheckIntervalMs?: number;
  transactionMaxChecks?: number;
}

/**
 * A real broker in this process, on a free port (or `port`), with its data in `dataDir` (default a fresh temporary
 * directory, removed after the test file).
 */
export async function startBroker(options: { dataDir?: string; port?: number } & BrokerSettings = {}): Promise<RunningBroker & { dataDir: string }> {
  const { Broker } = await import('weir');
  const { dataDir: given, port, ...settings } = options;
  const dataDir = given ?? (await temporaryDirectory());
  const broker = await Broker.start({ dataDir, port: port ?? 0, amqpPort: 0, logLevel: 'silent', ...settings });
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => (closing ??= broker.close());
  // Runs after the clients made later were aborted, so a close still waiting for them finishes too.
  cleanups.push(close);
  return {
    dataDir,
    get port() {
      return broker.port;
    },
    close,
  };
}

export async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'weir-client-test-'));
  cleanups.push(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

/** A client for the broker, aborted after the test file if the test did not close it. */
export function clientFor(broker: { port: number }, options: WeirClientOptions = {}): WeirClient {
  const client = new WeirClient({ brokers: [`127.0.0.1:${broker.port}`], retry: { initialMs: 20, maxMs: 500, retries: 30 }, ...options });
  cleanups.push(() => client.abort());
  return client;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Takes `count` messages from a consumer, failing after `timeoutMs`. */
export async function take(consumer: Consumer, count: number, timeoutMs = 15_000): Promise<ConsumedMessage[]> {
  const out: ConsumedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    const remaining = deadline - Date.now();
    assert.ok(remaining > 0, `took ${out.length} of ${count} messages within ${timeoutMs} ms`);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([consumer.next(), new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), remaining)))]);
    clearTimeout(timer);
    assert.ok(result !== null, `took ${out.length} of ${count} messages within ${timeoutMs} ms`);
    if (result.done) break;
    out.push(result.value);
  }
  assert.equal(out.length, count);
  return out;
}

/** Takes `count` messages from a queue consumer, failing after `timeoutMs`. */
export async function takeQueue(consumer: QueueConsumer, count: number, timeoutMs = 15_000): Promise<QueueMessage[]> {
  const out: QueueMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count) {
    const remaining = deadline - Date.now();
    assert.ok(remaining > 0, `took ${out.length} of ${count} queue messages within ${timeoutMs} ms`);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([consumer.next(), new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), remaining)))]);
    clearTimeout(timer);
    assert.ok(result !== null, `took ${out.length} of ${count} queue messages within ${timeoutMs} ms`);
    if (result.done) break;
    out.push(result.value);
  }
  assert.equal(out.length, count);
  return out;
}

/** Waits for a topic the broker creates by itself (a dead-letter topic appears with its first dead letter). */
export async function waitForTopic(admin: Admin, topic: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await admin.describeTopic(topic);
      return;
    } catch (error) {
      assert.ok(Date.now() < deadline, `topic ${topic} did not appear within ${timeoutMs} ms: ${String(error)}`);
      await sleep(20);
    }
  }
}

/** Waits until `condition` holds, polling every 20 ms. */
export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Checks that within each partition the offsets of `messages` strictly increase. */
export function assertOffsetOrder(messages: readonly ConsumedMessage[]): void {
  const last = new Map<string, number>();
  for (const message of messages) {
    const key = `${message.topic}/${message.partition}`;
    const previous = last.get(key) ?? -1;
    assert.ok(message.offset > previous, `${key}: offset ${message.offset} after ${previous}`);
    last.set(key, message.offset);
  }
}

/**
 * A TCP proxy in front of the broker for fault injection: requests always pass; while `holdAnswers` is set, the
 * broker's answers are kept back, so `dropAll()` then loses answers to requests the broker has already processed.
 */
export class ChaosProxy {
  holdAnswers = false;
  private readonly pairs = new Set<{ client: Socket; broker: Socket }>();

  private constructor(private readonly server: Server) {}

  static async start(brokerPort: number): Promise<ChaosProxy> {
    const server = createServer({ noDelay: true });
    const proxy = new ChaosProxy(server);
    server.on('connection', (client) => {
      const broker = connect({ host: '127.0.0.1', port: brokerPort, noDelay: true });
      const pair = { client, broker };
      proxy.pairs.add(pair);
      const close = (): void => {
        proxy.pairs.delete(pair);
        client.destroy();
        broker.destroy();
      };
      client.on('error', close).on('close', close);
      broker.on('error', close).on('close', close);
      client.on('data', (chunk) => broker.write(chunk));
      broker.on('data', (chunk) => {
        if (!proxy.holdAnswers) client.write(chunk);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => proxy.close());
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get connections(): number {
    return this.pairs.size;
  }

  dropAll(): void {
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.broker.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
