import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import amqp from 'amqplib';
import { WeirClient } from 'weir-client';
import { startBrokerProcess } from '../support/broker-process.js';
import { ensureDebianPackages } from '../support/debian-packages.js';
import { auditAcks, localPort } from './support/ack-audit.js';
import { attachStrace, type StraceSession } from './support/strace-process.js';
import { parseStrace } from './support/strace-trace.js';

/**
 * The durability promise seen from outside the process: a real broker runs under strace, producers publish with
 * durable acknowledgements (native acks 'durable', AMQP publisher confirms), and the trace must show every
 * acknowledgement written to its socket only after an fdatasync of the commit-log segment had returned, started after
 * the write of the bytes it acknowledges. See support/ack-audit.ts for how the trace is read.
 */
const SYSCALLS = ['fdatasync', 'fsync', 'pwrite64', 'pwritev', 'pwritev2', 'write', 'writev'];
const NATIVE_SENDERS = 4;
const NATIVE_PER_SENDER = 40;
const AMQP_MESSAGES = 120;

test('fsync audit: no durable acknowledgement leaves a socket before the fdatasync covering it', { timeout: 120_000 }, async (t) => {
  await ensureDebianPackages(['strace'], 'strace');
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-fsync-audit-'));
  const traceFile = `${dataDir}.strace`;
  const broker = await startBrokerProcess(dataDir);
  const client = new WeirClient({ brokers: [`127.0.0.1:${broker.port}`], clientId: 'fsync-audit', requestTimeoutMs: 20_000 });
  let connection: amqp.ChannelModel | null = null;
  let tracer: StraceSession | null = null;
  try {
    await client.admin().createTopic('audit', { partitions: 2 });
    connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}`);
    connection.on('error', () => {});
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue('audit-queue', { durable: true });
    const producer = client.producer({ lingerMs: 1 });
    // One message first, so the producer's connection and metadata exist before tracing starts.
    await producer.send('audit', { key: 'warm-up', body: 'warm-up' });

    tracer = await attachStrace(broker.child.pid!, traceFile, SYSCALLS);
    const run = randomBytes(4).toString('hex');
    const nativeResults = await Promise.all(
      Array.from({ length: NATIVE_SENDERS }, async (_, sender) => {
        const results: Array<{ partition: number; offset: number }> = [];
        for (let index = 0; index < NATIVE_PER_SENDER; index++) {
          results.push((await producer.send('audit', { key: `sender-${sender}`, body: `native-${run}-${sender}-${index}` })) as { partition: number; offset: number });
        }
        return results;
      }),
    );
    const amqpBodies = Array.from({ length: AMQP_MESSAGES }, (_, index) => Buffer.from(`amqp-${run}-${String(index).padStart(5, '0')}`));
    for (const body of amqpBodies) channel.sendToQueue('audit-queue', body, { persistent: true });
    await channel.waitForConfirms();
    await tracer.stop();
    tracer = null;

    const records = parseStrace(await readFile(traceFile, 'utf8'));
    const report = auditAcks(records, {
      segmentBase: (target) => {
        const match = /\/commitlog\/(\d{20})\.log$/.exec(target);
        return match === null ? null : Number(match[1]);
      },
      socketProtocol: (target) => (localPort(target) === broker.port ? 'native' : localPort(target) === broker.amqpPort ? 'amqp' : null),
      amqpBody: (_channel, tag) => amqpBodies[tag - 1],
    });
    t.diagnostic(`${report.acks.length} acknowledgements audited; ${report.logWrites} commit-log writes, ${report.syncs} syncs traced`);
    assert.deepEqual(report.violations, [], 'acknowledgements sent before their fdatasync');
    assert.ok(report.logWrites > 0 && report.syncs > 0, `the trace holds commit-log writes (${report.logWrites}) and syncs (${report.syncs})`);

    // The audit saw every acknowledgement the clients received: no ack escaped it by not being recognised.
    const amqpTags = new Set(report.acks.filter((ack) => ack.protocol === 'amqp').map((ack) => ack.what.match(/tag (\d+)/)![1]));
    assert.equal(amqpTags.size, AMQP_MESSAGES, 'every AMQP publish confirmed under audit');
    const nativeAcks = report.acks.filter((ack) => ack.protocol === 'native').map((ack) => ack.what.match(/partition (\d+) offset (\d+)/)!.slice(1).map(Number));
    for (const { partition, offset } of nativeResults.flat()) {
      assert.ok(
        nativeAcks.some(([ackPartition, base]) => ackPartition === partition && base! <= offset && offset - base! < NATIVE_SENDERS * NATIVE_PER_SENDER),
        `the produce acknowledging ${partition}/${offset} was audited`,
      );
    }
    assert.ok(report.acks.every((ack) => ack.coveredBy !== null));
  } finally {
    await tracer?.stop();
    await connection?.close().catch(() => {});
    await client.close();
    await broker.stop();
    await rm(dataDir, { recursive: true, force: true });
    if (process.env.WEIR_KEEP_TRACE === undefined) await rm(traceFile, { force: true });
  }
});
