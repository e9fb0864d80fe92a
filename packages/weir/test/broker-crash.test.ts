import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WeirClient } from 'weir-client';
import { startBrokerProcess } from './support/broker-process.js';

/**
 * kill -9 of a real broker process during produce, 20 times (WEIR_CHAOS: 200): every message acknowledged as durable
 * is there after the restart, at the offset it was acknowledged at; offsets are contiguous; no value twice.
 * Then a clean restart (SIGTERM) between produce and consume keeps everything too.
 */
const CYCLES = process.env.WEIR_CHAOS ? 200 : 20;
const PARTITIONS = 4;

function client(port: number): WeirClient {
  return new WeirClient({ brokers: [`127.0.0.1:${port}`], clientId: 'crash-test', retry: { initialMs: 10, maxMs: 50, retries: 2 }, requestTimeoutMs: 5000 });
}

async function readAll(port: number): Promise<Map<number, string[]>> {
  const reader = client(port);
  try {
    const admin = reader.admin();
    const topic = await admin.describeTopic('crash');
    const consumer = reader.consumer({ from: 'earliest', maxWaitMs: 50 });
    await consumer.subscribe('crash');
    const total = topic.partitions.reduce((sum, partition) => sum + partition.endOffset, 0);
    const byPartition = new Map<number, string[]>(topic.partitions.map((partition) => [partition.partition, []]));
    for (let read = 0; read < total; read++) {
      const next = await consumer.next();
      assert.ok(!next.done);
      const list = byPartition.get(next.value.partition)!;
      assert.equal(next.value.offset, list.length, `partition ${next.value.partition}: offsets contiguous from 0`);
      list.push(next.value.body.toString());
    }
    await consumer.close();
    return byPartition;
  } finally {
    await reader.close();
  }
}

test('broker: kill -9 during produce loses no acknowledged message', { timeout: CYCLES * 20_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-broker-crash-'));
  const acknowledged = new Map<string, { partition: number; offset: number }>();
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const broker = await startBrokerProcess(dataDir);
      const producerClient = client(broker.port);
      if (cycle === 0) await producerClient.admin().createTopic('crash', { partitions: PARTITIONS });
      const producer = producerClient.producer({ lingerMs: 1 });
      let stop = false;
      const senders = Array.from({ length: 4 }, async (_, worker) => {
        for (let sequence = 0; !stop; sequence++) {
          const value = `${cycle}.${worker}.${sequence}`;
          try {
            const result = (await producer.send('crash', { key: `w${worker}`, body: value })) as { partition: number; offset: number };
            acknowledged.set(value, { partition: result.partition, offset: result.offset });
          } catch {
            return;
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(Math.random() * 250)));
      await broker.kill();
      stop = true;
      producerClient.abort();
      await Promise.all(senders);
    }
    assert.ok(acknowledged.size > CYCLES * 10, `only ${acknowledged.size} acknowledged sends`);

    // Restart once more and check everything; then a clean restart, and check again.
    for (const restart of ['after kill -9', 'after SIGTERM']) {
      const broker = await startBrokerProcess(dataDir);
      const partitions = await readAll(broker.port);
      const seen = new Set<string>();
      for (const values of partitions.values()) {
        for (const value of values) {
          assert.ok(!seen.has(value), `${restart}: ${value} appears twice`);
          seen.add(value);
        }
      }
      for (const [value, where] of acknowledged) {
        assert.equal(partitions.get(where.partition)![where.offset], value, `${restart}: acknowledged ${value} at ${where.partition}/${where.offset}`);
      }
      await broker.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
