import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import amqp from 'amqplib';
import { WeirClient } from 'weir-client';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { DiskMessageStore } from '../../src/storage/disk-message-store.js';
import { startBrokerProcess } from '../support/broker-process.js';
import { ensureDebianPackages } from '../support/debian-packages.js';

/**
 * Wall-clock steps under a real broker: libfaketime (LD_PRELOAD) moves the broker's wall clock by rewriting its
 * timestamp file at run time (`-1h`, `+1h` from the real time); the monotonic clock is left alone
 * (DONT_FAKE_MONOTONIC=1), as an NTP step or an operator's `date -s` would leave it. docs/reliability.md, "Clock
 * jumps", is the contract tested here:
 * - leases (ack timeouts), long-poll waits and AMQP heartbeats run on the monotonic clock: a step either way neither
 *   fires them early nor stalls them;
 * - TTL (a message's own and a group's messageTtlMs) and retention are wall time, as in RabbitMQ and Kafka: a step
 *   back postpones expiry by the step, a step forward expires what is due at the new time, nothing else.
 */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const HOUR = 3_600_000;
const LEASE_MS = 2000;

async function withFakedBroker(body: (context: { jump: (offset: string) => Promise<void>; port: number; amqpPort: number }) => Promise<void>): Promise<void> {
  await ensureDebianPackages(['faketime'], 'faketime');
  assert.ok(existsSync(LIBFAKETIME), `${LIBFAKETIME} is installed by the Debian package libfaketime (a dependency of faketime)`);
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-clock-'));
  const timestampFile = `${dataDir}.faketime`;
  await writeFile(timestampFile, '+0\n');
  const broker = await startBrokerProcess(dataDir, [], {
    LD_PRELOAD: LIBFAKETIME,
    FAKETIME_TIMESTAMP_FILE: timestampFile,
    FAKETIME_NO_CACHE: '1',
    DONT_FAKE_MONOTONIC: '1',
  });
  try {
    await body({ jump: (offset) => writeFile(timestampFile, `${offset}\n`), port: broker.port, amqpPort: broker.amqpPort });
    assert.equal(broker.child.exitCode, null, 'the broker is still running');
    await broker.stop();
  } catch (error) {
    await broker.kill();
    throw error;
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await rm(timestampFile, { force: true });
  }
}

function client(port: number): WeirClient {
  return new WeirClient({ brokers: [`127.0.0.1:${port}`], clientId: 'clock', requestTimeoutMs: 30_000 });
}

/** Milliseconds of this (unfaked) process's monotonic clock that `work` took. */
async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

/** An AMQP connection with 1 s heartbeats; `alive()` is false once it closed for any reason. */
async function heartbeatingConnection(amqpPort: number): Promise<{ connection: amqp.ChannelModel; alive: () => boolean; closedBecause: () => string }> {
  const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${amqpPort}?heartbeat=1`);
  let closed = '';
  connection.on('error', (error: Error) => (closed ||= error.message));
  connection.on('close', () => (closed ||= 'closed'));
  return { connection, alive: () => closed === '', closedBecause: () => closed };
}

/**
 * Runs `steps` with a native client while an AMQP connection with 1 s heartbeats stays open across them, then checks
 * that connection is still alive and still gets a publish to `queue` confirmed.
 */
async function withClients(port: number, amqpPort: number, queue: string, steps: (weir: WeirClient) => Promise<void>): Promise<void> {
  const weir = client(port);
  const amqpClient = await heartbeatingConnection(amqpPort);
  try {
    await steps(weir);
    assert.ok(amqpClient.alive(), `AMQP connection with 1 s heartbeats: ${amqpClient.closedBecause()}`);
    const channel = await amqpClient.connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    channel.sendToQueue(queue, Buffer.from('after the step'), { persistent: true });
    await channel.waitForConfirms();
  } finally {
    await amqpClient.connection.close().catch(() => {});
    await weir.close();
  }
}

/** Lease and long poll across a step, which the step must not move (the lease is taken before it). */
async function checkMonotonicTimers(weir: WeirClient, jump: () => Promise<void>, group: string): Promise<void> {
  const workers = weir.queueConsumer({ group, settings: { ackTimeoutMs: LEASE_MS } });
  await weir.producer().send(`${group}-jobs`, { body: 'job' });
  const [leased] = await workers.receive({ topic: `${group}-jobs`, waitMs: 5000 });
  assert.equal(leased?.body.toString(), 'job');
  const leasedAt = performance.now();
  await jump();
  // Not settled: the lease ends LEASE_MS after the delivery, by the monotonic clock.
  const [again] = await workers.receive({ topic: `${group}-jobs`, waitMs: 20_000 });
  const leaseMs = performance.now() - leasedAt;
  assert.equal(again?.body.toString(), 'job');
  assert.ok(again!.redelivered);
  assert.ok(leaseMs >= LEASE_MS - 200 && leaseMs < LEASE_MS + 3000, `lease of ${LEASE_MS} ms ended after ${leaseMs.toFixed(0)} ms`);
  await again!.ack();
  // A long poll on an empty topic answers when its wait is over, not an hour early or late.
  const poll = await timed(() => workers.receive({ topic: `${group}-empty`, waitMs: 1500 }));
  assert.deepEqual(poll.value, []);
  assert.ok(poll.ms >= 1300 && poll.ms < 4500, `a 1500 ms long poll took ${poll.ms.toFixed(0)} ms`);
  await workers.close();
}

test('clock jumps: a step back stalls no lease, long poll or heartbeat, and expires nothing early', { timeout: 90_000 }, async () => {
  await withFakedBroker(({ jump, port, amqpPort }) =>
    withClients(port, amqpPort, 'back-queue', async (weir) => {
      const admin = weir.admin();
      for (const topic of ['back-jobs', 'back-empty', 'back-ttl']) await admin.createTopic(topic, { partitions: 1 });
      const producer = weir.producer();
      // Expire 3 s after they were produced by the wall clock: after a step back of an hour, not for an hour.
      await producer.send('back-ttl', { body: 'own-ttl', ttlMs: 3000 });
      const grouped = weir.queueConsumer({ group: 'back-ttl-group', settings: { messageTtlMs: 3000 } });
      const sentAt = performance.now();

      await checkMonotonicTimers(weir, () => jump('-1h'), 'back');
      assert.ok(performance.now() - sentAt > 3000, 'more than the TTL has passed on the monotonic clock');
      const received = await grouped.receive({ topic: 'back-ttl', waitMs: 5000 });
      assert.deepEqual(
        received.map((message) => message.body.toString()),
        ['own-ttl'],
        'the wall clock says 3 s have not passed: not expired (expiry is postponed by the step)',
      );
      await received[0]!.ack();
      await grouped.close();
    }),
  );
});

test('clock jumps: a step forward fires no lease, long poll or heartbeat early, and expires exactly what is due at the new time', { timeout: 90_000 }, async () => {
  await withFakedBroker(({ jump, port, amqpPort }) =>
    withClients(port, amqpPort, 'forward-queue', async (weir) => {
      const admin = weir.admin();
      for (const topic of ['forward-jobs', 'forward-empty', 'forward-ttl']) await admin.createTopic(topic, { partitions: 1 });
      const producer = weir.producer();
      await producer.send('forward-ttl', { body: 'ttl-30min', ttlMs: HOUR / 2 });
      await producer.send('forward-ttl', { body: 'ttl-2h', ttlMs: 2 * HOUR });
      await producer.send('forward-ttl', { body: 'no-ttl' });

      await checkMonotonicTimers(weir, () => jump('+1h'), 'forward');

      // Own TTLs: 30 min is past at the new wall time, 2 h is not.
      const own = weir.queueConsumer({ group: 'forward-own' });
      const ownReceived = await own.receive({ topic: 'forward-ttl', maxMessages: 10, waitMs: 3000 });
      assert.deepEqual(ownReceived.map((message) => message.body.toString()), ['ttl-2h', 'no-ttl']);
      // Group TTLs count from the store time: 30 min expires everything, 90 min nothing the messages' own TTLs spare.
      const short = weir.queueConsumer({ group: 'forward-group-30min', settings: { messageTtlMs: HOUR / 2 } });
      assert.deepEqual(await short.receive({ topic: 'forward-ttl', maxMessages: 10, waitMs: 1000 }), []);
      const long = weir.queueConsumer({ group: 'forward-group-90min', settings: { messageTtlMs: 1.5 * HOUR } });
      const longReceived = await long.receive({ topic: 'forward-ttl', maxMessages: 10, waitMs: 3000 });
      assert.deepEqual(longReceived.map((message) => message.body.toString()), ['ttl-2h', 'no-ttl']);
      for (const message of [...ownReceived, ...longReceived]) await message.ack();
      for (const consumer of [own, short, long]) await consumer.close();
    }),
  );
});

test('clock jumps: retention by age follows store time, which a step back never lowers', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-clock-retention-'));
  const clock = new ManualClock();
  const store = await DiskMessageStore.open({ dataDir, clock, logger: silentLogger, retentionIntervalMs: 0 });
  try {
    const queue = await store.createQueue('kept-90min', { retentionMs: 1.5 * HOUR });
    const old = await store.append(queue.id, [{ body: 'stored at T' }]);
    clock.jumpWall(-HOUR);
    const later = await store.append(queue.id, [{ body: 'stored after the step back' }]);
    assert.equal(later.storeTimestamp, old.storeTimestamp, 'store time holds at its last value rather than going back');
    clock.advance(HOUR);
    await store.enforceRetention();
    assert.equal(store.queueById(queue.id)!.startOffset, 0, 'nothing is older than 90 min by store time');
    // A step forward of an hour, 31 min later by the monotonic clock: both messages are 91 min old by store time.
    clock.advance(31 * 60_000);
    clock.jumpWall(HOUR);
    await store.enforceRetention();
    assert.equal(store.queueById(queue.id)!.startOffset, 2, 'a step forward deletes what is past retention at the new time');
  } finally {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
