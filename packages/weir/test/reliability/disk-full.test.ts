import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { WeirClient } from 'weir-client';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';

/**
 * A full disk under a real broker process: the data directory is a small ext4 file system on a loop device (ext4,
 * not tmpfs, because its allocation on ENOSPC is what production disks do), filled with fallocate.
 *
 * - With the disk watermark off, appends meet ENOSPC itself: native produces fail with the retriable STORAGE_IO,
 *   AMQP publishes are nacked; nothing is acknowledged that is not stored, nothing refused is stored.
 * - With the watermark on (RabbitMQ's disk_free_limit), publishers are stopped before that: native produces get the
 *   retriable RESOURCE_ALARM, AMQP publishing connections get connection.blocked and are not read until it clears.
 * Either way the broker keeps running, everything acknowledged before is read back, and publishing resumes once the
 * filler is deleted, without a restart.
 */
const run = promisify(execFile);
const IMAGE_BYTES = 48 * 1024 * 1024;
const BODY = 'x'.repeat(16 * 1024);

interface SmallDisk {
  dataDir: string;
  filler: string;
  /** Fills the file system, leaving about `leaveBytes` free. */
  fill(leaveBytes: number): Promise<void>;
  free(): Promise<void>;
  unmount(): Promise<void>;
}

async function mountSmallExt4(): Promise<SmallDisk> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) throw new Error('the disk-full tests mount a loop device: they need Linux and root');
  const base = await mkdtemp(join(tmpdir(), 'weir-disk-full-'));
  const image = join(base, 'disk.img');
  const mountPoint = join(base, 'mnt');
  await mkdir(mountPoint);
  let mounted = false;
  const unmount = async (): Promise<void> => {
    if (mounted) await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
    mounted = false;
    await rm(base, { recursive: true, force: true });
  };
  try {
    await run('truncate', ['-s', String(IMAGE_BYTES), image]);
    // -m 0: no blocks reserved for root (the broker runs as root here and would otherwise write into them).
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
    await run('mount', ['-o', 'loop', image, mountPoint]);
    mounted = true;
  } catch (error) {
    await unmount();
    throw new Error(`could not set up a loop-mounted ext4 file system (mkfs.ext4, mount -o loop): ${(error as Error).message}`);
  }
  const dataDir = join(mountPoint, 'data');
  const filler = join(mountPoint, 'filler');
  return {
    dataDir,
    filler,
    async fill(leaveBytes) {
      const stats = await statfs(mountPoint);
      const size = stats.bavail * stats.bsize - leaveBytes;
      // fallocate cannot take the last blocks (its own extent tree needs some): take all but 1 MiB of what is to go,
      // then write the rest until the file system refuses.
      await run('fallocate', ['-l', String(Math.max(stats.bsize, size - (1 << 20))), filler]);
      if (leaveBytes === 0) await run('dd', ['if=/dev/zero', `of=${filler}-rest`, 'bs=4096', 'conv=fsync']).catch(() => {});
      else await run('fallocate', ['-l', String(1 << 20), `${filler}-rest`]);
    },
    async free() {
      await rm(filler, { force: true });
      await rm(`${filler}-rest`, { force: true });
    },
    unmount,
  };
}

function nativeClient(port: number): WeirClient {
  return new WeirClient({ brokers: [`127.0.0.1:${port}`], clientId: 'disk-full', retry: { initialMs: 20, maxMs: 100, retries: 2 }, requestTimeoutMs: 10_000 });
}

/** Every body in the topic, read from the earliest offset. */
async function readTopic(port: number, topic: string): Promise<string[]> {
  const client = nativeClient(port);
  try {
    const described = await client.admin().describeTopic(topic);
    const total = described.partitions.reduce((sum, partition) => sum + partition.endOffset - partition.startOffset, 0);
    const consumer = client.consumer({ from: 'earliest', maxWaitMs: 50 });
    await consumer.subscribe(topic);
    const bodies: string[] = [];
    while (bodies.length < total) {
      const next = await consumer.next();
      assert.ok(!next.done);
      bodies.push(next.value.body.toString());
    }
    await consumer.close();
    return bodies;
  } finally {
    await client.close();
  }
}

/** Every body in an AMQP queue, consumed (and acknowledged) until it is empty. */
async function drainQueue(channel: amqp.Channel, queue: string): Promise<string[]> {
  const bodies: string[] = [];
  for (let message = await channel.get(queue); message !== false; message = await channel.get(queue)) {
    bodies.push(message.content.toString());
    channel.ack(message);
  }
  return bodies;
}

function label(body: string): string {
  return body.split(':')[0]!;
}

/** Publishes with a confirm; resolves true when acked, false when nacked. */
function publishConfirmed(channel: amqp.ConfirmChannel, queue: string, body: string): Promise<boolean> {
  return new Promise((resolve) => channel.sendToQueue(queue, Buffer.from(body), { persistent: true }, (error) => resolve(error === null || error === undefined)));
}

async function withBroker(disk: SmallDisk, args: string[], body: (broker: BrokerProcess) => Promise<void>): Promise<void> {
  const broker = await startBrokerProcess(disk.dataDir, args);
  try {
    await body(broker);
    assert.equal(broker.child.exitCode, null, 'the broker is still running');
    await broker.stop();
  } catch (error) {
    await broker.kill();
    throw error;
  }
}

test('disk full: ENOSPC fails publishes without acknowledging them; acknowledged data survives; publishing resumes when space is freed', { timeout: 120_000 }, async () => {
  const disk = await mountSmallExt4();
  try {
    await withBroker(disk, ['--disk-free-limit-bytes', '0'], async (broker) => {
      const client = nativeClient(broker.port);
      const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}`);
      connection.on('error', () => {});
      try {
        await client.admin().createTopic('full', { partitions: 2 });
        const producer = client.producer({ lingerMs: 1 });
        const channel = await connection.createConfirmChannel();
        await channel.assertQueue('full-queue', { durable: true });
        const acknowledged = { native: [] as string[], amqp: [] as string[] };
        const refused = { native: [] as string[], amqp: [] as string[] };
        for (let index = 0; index < 20; index++) {
          await producer.send('full', { key: `k${index % 4}`, body: `before-${index}:${BODY}` });
          acknowledged.native.push(`before-${index}`);
          assert.ok(await publishConfirmed(channel, 'full-queue', `before-${index}:${BODY}`));
          acknowledged.amqp.push(`before-${index}`);
        }

        await disk.fill(0);
        // Blocks already allocated may take a few bytes more; a handful of 16 KiB messages cannot fit.
        let nativeError: { code?: string; retriable?: boolean } | null = null;
        for (let index = 0; index < 8 && nativeError === null; index++) {
          try {
            await producer.send('full', { key: 'k0', body: `full-${index}:${BODY}` });
            acknowledged.native.push(`full-${index}`);
          } catch (error) {
            nativeError = error as { code?: string; retriable?: boolean };
            refused.native.push(`full-${index}`);
          }
        }
        assert.ok(nativeError !== null, 'a produce failed on the full disk');
        assert.equal(nativeError.code, 'STORAGE_ERROR', `native error: ${String(nativeError)}`);
        assert.equal(nativeError.retriable, true);
        let nacked = false;
        for (let index = 0; index < 8 && !nacked; index++) {
          if (await publishConfirmed(channel, 'full-queue', `full-${index}:${BODY}`)) acknowledged.amqp.push(`full-${index}`);
          else (refused.amqp.push(`full-${index}`), (nacked = true));
        }
        assert.ok(nacked, 'an AMQP publish was nacked on the full disk');
        assert.equal(broker.child.exitCode, null);

        await disk.free();
        for (let index = 0; index < 10; index++) {
          await producer.send('full', { key: `k${index % 4}`, body: `after-${index}:${BODY}` });
          acknowledged.native.push(`after-${index}`);
          assert.ok(await publishConfirmed(channel, 'full-queue', `after-${index}:${BODY}`), 'publishing resumes once space is freed');
          acknowledged.amqp.push(`after-${index}`);
        }

        const nativeRead = (await readTopic(broker.port, 'full')).map(label);
        const amqpRead = (await drainQueue(channel, 'full-queue')).map(label);
        assert.deepEqual(new Set(nativeRead).size, nativeRead.length, 'no native message twice');
        assert.deepEqual([...nativeRead].sort(), [...acknowledged.native].sort(), 'native: exactly what was acknowledged is stored');
        assert.deepEqual(amqpRead, acknowledged.amqp, 'AMQP: exactly what was confirmed is stored, in publish order');
        for (const value of refused.native) assert.ok(!nativeRead.includes(value));
        for (const value of refused.amqp) assert.ok(!amqpRead.includes(value));
      } finally {
        await connection.close().catch(() => {});
        await client.close();
      }
    });
  } finally {
    await disk.unmount();
  }
});

test('disk full: the free-space watermark blocks publishers (RESOURCE_ALARM, connection.blocked) and releases them when space is freed', { timeout: 120_000 }, async () => {
  const disk = await mountSmallExt4();
  try {
    await withBroker(disk, ['--disk-free-limit-bytes', String(16 * 1024 * 1024)], async (broker) => {
      const client = nativeClient(broker.port);
      const connection = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}`);
      connection.on('error', () => {});
      const events: string[] = [];
      const blocked = new Promise<string>((resolve) => connection.on('blocked', (reason: string) => (events.push('blocked'), resolve(reason))));
      const unblocked = new Promise<void>((resolve) => connection.on('unblocked', () => (events.push('unblocked'), resolve())));
      try {
        await client.admin().createTopic('watermark', { partitions: 1 });
        const producer = client.producer({ lingerMs: 1 });
        const channel = await connection.createConfirmChannel();
        await channel.assertQueue('watermark-queue', { durable: true });
        for (let index = 0; index < 5; index++) {
          await producer.send('watermark', { body: `before-${index}:${BODY}` });
          assert.ok(await publishConfirmed(channel, 'watermark-queue', `before-${index}:${BODY}`));
        }

        await disk.fill(4 * 1024 * 1024);
        const reason = await blocked;
        assert.match(reason, /^disk: /);
        const refused = await producer.send('watermark', { body: `blocked:${BODY}` }).then(
          () => null,
          (error: unknown) => error as { code?: string; retriable?: boolean },
        );
        assert.equal(refused?.code, 'RESOURCE_ALARM');
        assert.equal(refused?.retriable, true);
        // A blocked connection is not read: this confirm can only come after connection.unblocked.
        const heldBack = publishConfirmed(channel, 'watermark-queue', `held:${BODY}`).then((ok) => (events.push('held confirmed'), ok));
        assert.equal(broker.child.exitCode, null);

        await disk.free();
        await unblocked;
        assert.ok(await heldBack);
        assert.deepEqual(events, ['blocked', 'unblocked', 'held confirmed']);
        await producer.send('watermark', { body: `after:${BODY}` });

        assert.deepEqual((await readTopic(broker.port, 'watermark')).map(label), ['before-0', 'before-1', 'before-2', 'before-3', 'before-4', 'after']);
        assert.deepEqual((await drainQueue(channel, 'watermark-queue')).map(label), ['before-0', 'before-1', 'before-2', 'before-3', 'before-4', 'held']);
      } finally {
        await connection.close().catch(() => {});
        await client.close();
      }
    });
  } finally {
    await disk.unmount();
  }
});
