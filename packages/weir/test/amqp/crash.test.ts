import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ChannelModel, connect, type Message } from 'amqplib';
import { WeirClient } from 'weir-client';
import { seededRandom } from '../../src/storage/io/fault-file-system.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';

/**
 * kill -9 of a broker process while amqplib publishes persistent messages to a durable queue with publisher confirms:
 * after a restart on the same data directory, every message whose basic.ack arrived is delivered. Messages delivered
 * without a confirm (the broker stored them but died before acking) and messages delivered twice (acks of an earlier
 * drain not yet written when the broker died) are allowed, and reported.
 *
 * Each cycle: publish with a window of unconfirmed messages, SIGKILL once a number of confirms drawn from a seeded
 * generator has arrived (a few thousand; the window keeps hundreds outstanding), restart, consume everything, check.
 * 3 cycles; WEIR_CHAOS: 20. WEIR_CRASH_SEED picks another seed.
 */

const CYCLES = process.env.WEIR_CHAOS ? 20 : 3;
const SEED = Number(process.env.WEIR_CRASH_SEED ?? 0x5eed);
const QUEUE = 'crash-amqp';
/** Publishes in flight (sent, not yet confirmed). */
const WINDOW = 400;
/** A drain that makes no progress for this long fails (it would otherwise hang). */
const STALL_MS = 10_000;

async function open(broker: BrokerProcess): Promise<ChannelModel> {
  const model = await connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}?heartbeat=0`);
  // After the kill the connection dies with an error; that is expected here.
  model.on('error', () => {});
  return model;
}

interface Publishing {
  published: number;
  confirmedThisCycle: number;
  outstandingAtKill: number;
  nacked: number;
}

/**
 * Publishes `<cycle>.<n>` messages (persistent, confirmed) with WINDOW in flight; when the `killAfter`-th confirm
 * arrives, SIGKILLs the broker, and resolves once the connection is gone (every callback called).
 */
async function publishUntilKilled(broker: BrokerProcess, cycle: number, killAfter: number, confirmed: Set<string>, published: Set<string>): Promise<Publishing> {
  const model = await open(broker);
  const channel = await model.createConfirmChannel();
  channel.on('error', () => {});
  await channel.assertQueue(QUEUE, { durable: true });
  const connectionGone = new Promise<void>((resolve) => model.once('close', () => resolve()));
  const result: Publishing = { published: 0, confirmedThisCycle: 0, outstandingAtKill: -1, nacked: 0 };
  let inflight = 0;
  let sequence = 0;
  let killed: Promise<void> | null = null;
  let waitingForDrain = false;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (killed === null && !waitingForDrain && inflight < WINDOW) {
        const id = `${cycle}.${sequence++}`;
        published.add(id);
        result.published++;
        inflight++;
        const writable = channel.sendToQueue(QUEUE, Buffer.from(id), { persistent: true, messageId: id }, (error: unknown) => {
          inflight--;
          if (error === null || error === undefined) {
            confirmed.add(id);
            result.confirmedThisCycle++;
            if (result.confirmedThisCycle === killAfter && killed === null) {
              result.outstandingAtKill = inflight;
              killed = broker.kill();
              killed.then(resolve, reject);
              return;
            }
          } else if (killed === null) {
            // basic.nack before the kill: the broker refused the message (counted and reported; none is expected here).
            result.nacked++;
          }
          pump();
        });
        if (!writable) {
          waitingForDrain = true;
          channel.once('drain', () => {
            waitingForDrain = false;
            pump();
          });
        }
      }
    };
    pump();
  });
  // The socket closes after the kill; amqplib then fails the callbacks still waiting.
  await connectionGone;
  return result;
}

/** The queue's shared group (in vhost '/' it is named as the queue) as DescribeSharedGroup shows it, for a failure. */
async function describeGroups(broker: BrokerProcess): Promise<string> {
  const client = new WeirClient({ brokers: [`127.0.0.1:${broker.port}`], clientId: 'crash-diagnostics', requestTimeoutMs: 5000 });
  try {
    return JSON.stringify(await client.admin().describeSharedGroup(QUEUE));
  } catch (error) {
    return `not available: ${String(error)}`;
  } finally {
    await client.close();
  }
}

interface Drain {
  /** What queue.declare-ok (passive) said the queue held, first thing after the restart. */
  counted: number;
  /** Deliveries in this drain (every one acked). */
  delivered: number;
}

/**
 * Consumes (acking) everything in the queue after a restart: until every confirmed message has come and
 * queue.declare-ok counts nothing left, then cancels; a basic.get must then find the queue empty. Fails, naming what
 * is missing, when deliveries stop for STALL_MS before that.
 */
async function drain(broker: BrokerProcess, deliveries: Map<string, number>, confirmed: Set<string>): Promise<Drain> {
  const model = await open(broker);
  try {
    const channel = await model.createChannel();
    const { messageCount: counted } = await channel.checkQueue(QUEUE);
    await channel.prefetch(1000);
    let delivered = 0;
    const missing = new Set([...confirmed].filter((id) => !deliveries.has(id)));
    let wake: (() => void) | null = null;
    const record = (message: Message): void => {
      const id = message.content.toString();
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
      missing.delete(id);
      delivered++;
      channel.ack(message);
      wake?.();
    };
    /** Resolves at the next delivery; rejects when none comes for STALL_MS. */
    const nextDelivery = (why: () => string): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          wake = null;
          reject(new Error(why()));
        }, STALL_MS);
        wake = () => {
          clearTimeout(timer);
          wake = null;
          resolve();
        };
      });
    const { consumerTag } = await channel.consume(QUEUE, (message) => {
      if (message !== null) record(message);
    });
    while (missing.size > 0) {
      await nextDelivery(
        () => `${missing.size} confirmed messages never delivered after the restart (nothing for ${STALL_MS} ms; ${delivered} delivered, queue.declare-ok counted ${counted}), e.g. ${[...missing].slice(0, 10).join(', ')}`,
      );
    }
    // Unconfirmed messages the broker kept may still be coming: until the queue counts none ready. A count is a snapshot:
    // the deliveries it counted may reach us before queue.declare-ok does, so it is taken again after any delivery.
    for (;;) {
      const before = delivered;
      const left = (await channel.checkQueue(QUEUE)).messageCount;
      if (left === 0) break;
      if (delivered > before) continue;
      try {
        await nextDelivery(() => `queue.declare-ok counts ${left} messages, but none is delivered (nothing for ${STALL_MS} ms; ${delivered} delivered)`);
      } catch (error) {
        throw new Error(`${(error as Error).message}; the broker's view: ${await describeGroups(broker)}; its log: ${broker.output.slice(-40).join('\n')}`);
      }
    }
    await channel.cancel(consumerTag);
    const straggler = await channel.get(QUEUE);
    if (straggler !== false) record(straggler);
    assert.equal(straggler, false, 'the queue counted no messages, yet basic.get found one');
    await channel.close();
    return { counted, delivered };
  } finally {
    await model.close().catch(() => {});
  }
}

test('AMQP: kill -9 during confirmed publishing loses no confirmed message', { timeout: CYCLES * 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-amqp-crash-'));
  // The same seed gives the same kill points on every run.
  const random = seededRandom(SEED);
  const published = new Set<string>();
  const confirmed = new Set<string>();
  const deliveries = new Map<string, number>();
  const miscounted: string[] = [];
  let broker: BrokerProcess | null = await startBrokerProcess(dataDir);
  let keep = false;
  t.diagnostic(`seed ${SEED}, ${CYCLES} cycles`);
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const killAfter = 2000 + Math.floor(random() * 3000);
      const publishing = await publishUntilKilled(broker, cycle, killAfter, confirmed, published);
      broker = null;
      assert.ok(publishing.outstandingAtKill > 0, `cycle ${cycle}: nothing was outstanding when the broker was killed`);
      broker = await startBrokerProcess(dataDir);
      const drained = await drain(broker, deliveries, confirmed);

      const unknown = [...deliveries.keys()].filter((id) => !published.has(id));
      const unconfirmedDelivered = [...deliveries.keys()].filter((id) => !confirmed.has(id)).length;
      const duplicates = [...deliveries.values()].filter((count) => count > 1).length;
      t.diagnostic(
        `cycle ${cycle}: killed after ${killAfter} confirms with ${publishing.outstandingAtKill} outstanding ` +
          `(${publishing.published} published, ${publishing.confirmedThisCycle} confirmed, ${publishing.nacked} nacked); ` +
          `after the restart queue.declare-ok counted ${drained.counted}, ${drained.delivered} were delivered; ` +
          `so far ${unconfirmedDelivered} delivered without a confirm, ${duplicates} delivered more than once`,
      );
      assert.deepEqual(unknown, [], `cycle ${cycle}: delivered messages that were never published`);
      assert.ok([...confirmed].every((id) => deliveries.has(id)), `cycle ${cycle}: a confirmed message was not delivered`);
      if (drained.counted !== drained.delivered) miscounted.push(`cycle ${cycle}: queue.declare-ok counted ${drained.counted} right after the restart, then ${drained.delivered} were delivered`);
    }
    // Checked last, so a miscount does not hide the cycles after it: the count after a restart is what the queue holds.
    assert.deepEqual(miscounted, [], 'queue.declare-ok after a kill -9 restart must count the messages the queue holds');
  } catch (error) {
    keep = true;
    throw error;
  } finally {
    await broker?.stop();
    // A failure keeps the data directory, to open it again and see what the broker saw.
    if (keep) t.diagnostic(`data directory kept: ${dataDir}`);
    else await rm(dataDir, { recursive: true, force: true });
  }
});

test('AMQP: right after a kill -9 restart, a durable queue counts and serves its confirmed messages', { timeout: 60_000 }, async () => {
  // The ack state is written every --ack-flush-interval-ms; a long interval makes sure none is on disk for the new
  // queue when the broker dies (as after any kill within a second of queue.declare with the default).
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-amqp-crash-'));
  let broker: BrokerProcess | null = await startBrokerProcess(dataDir, ['--ack-flush-interval-ms', '60000']);
  try {
    const publisher = await open(broker);
    const channel = await publisher.createConfirmChannel();
    channel.on('error', () => {});
    await channel.assertQueue('crash-fresh', { durable: true });
    for (let i = 0; i < 20; i++) channel.sendToQueue('crash-fresh', Buffer.from(`fresh-${i}`), { persistent: true });
    await channel.waitForConfirms();
    assert.equal((await channel.checkQueue('crash-fresh')).messageCount, 20);
    const gone = new Promise<void>((resolve) => publisher.once('close', () => resolve()));
    await broker.kill();
    await gone;
    broker = await startBrokerProcess(dataDir);
    const consumer = await open(broker);
    const reader = await consumer.createChannel();
    const { messageCount } = await reader.checkQueue('crash-fresh');
    const first = await reader.get('crash-fresh', { noAck: true });
    assert.deepEqual(
      { messageCount, first: first === false ? 'basic.get-empty' : first.content.toString() },
      { messageCount: 20, first: 'fresh-0' },
      'after the restart: queue.declare-ok count, and what the first basic.get returns',
    );
    await consumer.close();
  } finally {
    await broker?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
