import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WeirClient } from 'weir-client';
import { startBrokerProcess } from './support/broker-process.js';

/**
 * Delayed delivery across a clean restart of a real broker process, with the real client: 100,000 delayed messages
 * are published, the broker is stopped (SIGTERM) and started again while every one of them is still pending, and
 * then each fires exactly once, none before its deliverAt.
 */
const MESSAGES = 100_000;
const PARTITIONS = 4;
/** The due window opens this long after publishing starts: room to publish and restart on a slow, shared machine. */
const DUE_AFTER_MS = 15_000;
const DUE_WINDOW_MS = 3_000;
/** Once every message came, how long to wait for a duplicate before calling it exactly once. */
const QUIET_MS = 1_000;

function client(port: number, id: string): WeirClient {
  return new WeirClient({ brokers: [`127.0.0.1:${port}`], clientId: id });
}

test('broker: 100,000 delayed messages survive a clean restart and each fires once, none early', { timeout: 120_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-delayed-restart-'));
  let broker = await startBrokerProcess(dataDir);
  try {
    const dueStart = Date.now() + DUE_AFTER_MS;
    const deliverAt = new Float64Array(MESSAGES);
    const producerClient = client(broker.port, 'delayed-restart-producer');
    try {
      await producerClient.admin().createTopic('timers', { partitions: PARTITIONS });
      const producer = producerClient.producer({ idempotent: false });
      const sends: Array<Promise<unknown>> = [];
      for (let index = 0; index < MESSAGES; index++) {
        deliverAt[index] = dueStart + Math.floor(Math.random() * DUE_WINDOW_MS);
        sends.push(producer.send('timers', { key: `k${index % 1000}`, body: String(index), deliverAt: deliverAt[index]! }));
        // Bounded in flight, as an application would be.
        if (sends.length === 10_000) await Promise.all(sends.splice(0));
      }
      await Promise.all(sends);
      const topic = await producerClient.admin().describeTopic('timers');
      assert.equal(
        topic.partitions.reduce((sum, partition) => sum + partition.endOffset, 0),
        0,
        'nothing is in the partitions before its time',
      );
    } finally {
      await producerClient.close();
    }

    await broker.stop();
    t.diagnostic(`published and stopped ${((dueStart - Date.now()) / 1000).toFixed(1)} s before the first due time`);
    assert.ok(Date.now() < dueStart, `publishing and the stop took until ${Date.now() - dueStart} ms after the first due time`);
    broker = await startBrokerProcess(dataDir);

    const consumerClient = client(broker.port, 'delayed-restart-consumer');
    try {
      const consumer = consumerClient.queueConsumer({ group: 'timers', mode: 'shared', prefetch: 1000 });
      await consumer.subscribe('timers');
      const seen = new Uint8Array(MESSAGES);
      const early: string[] = [];
      const duplicates: number[] = [];
      let received = 0;
      let deliveries = 0;
      let redelivered = 0;
      const iterate = (async () => {
        for await (const message of consumer) {
          const now = Date.now();
          const index = Number(message.body.toString());
          assert.ok(Number.isInteger(index) && index >= 0 && index < MESSAGES, `unexpected body ${message.body.toString()}`);
          if (now < deliverAt[index]!) early.push(`${index} at ${now}, due ${deliverAt[index]}`);
          if (seen[index] === 1) duplicates.push(index);
          else received++;
          seen[index] = 1;
          deliveries++;
          if (message.redelivered) redelivered++;
          void message.ack();
        }
      })();
      const deadline = dueStart + DUE_WINDOW_MS + 30_000;
      while (received < MESSAGES && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      await consumer.close();
      await iterate;

      assert.equal(received, MESSAGES, `${MESSAGES - received} messages never fired`);
      assert.deepEqual(early.slice(0, 5), [], `${early.length} messages fired before their deliverAt`);
      assert.deepEqual(duplicates.slice(0, 5), [], `${duplicates.length} messages fired twice`);
      assert.equal(deliveries, MESSAGES, 'one delivery per message');
      assert.equal(redelivered, 0, 'no delivery is a redelivery');
    } finally {
      await consumerClient.close();
    }
  } finally {
    await broker.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
