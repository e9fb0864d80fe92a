import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumedMessage, ConsumerOptions } from 'weir-client';
import { clientFor, sleep, startBroker, take, temporaryDirectory, until } from './support.js';

const PARTITIONS = 6;

describe('client integration: consumer groups', () => {
  it(
    'client integration: three consumers share a group; one leaves, one is killed; every message is consumed and committed offsets survive a broker restart',
    { timeout: 180_000 },
    async () => {
      const dataDir = await temporaryDirectory();
      let broker = await startBroker({ dataDir });
      const port = broker.port;
      const adminClient = clientFor(broker);
      const admin = adminClient.admin();
      await admin.createTopic('shared', { partitions: PARTITIONS });
      const options: ConsumerOptions = {
        group: 'shared-group',
        sessionTimeoutMs: 1500,
        heartbeatIntervalMs: 200,
        autoCommitIntervalMs: 100,
        rebalanceTimeoutMs: 10_000,
        maxWaitMs: 100,
      };
      const clients = [clientFor(broker, { clientId: 'stays' }), clientFor(broker, { clientId: 'leaves' }), clientFor(broker, { clientId: 'killed' })];
      const consumers = clients.map((client) => client.consumer(options));
      await Promise.all(consumers.map((consumer) => consumer.subscribe('shared')));

      const received: Array<{ who: number; message: ConsumedMessage }> = [];
      const bodies = new Set<string>();
      const loops = consumers.map(async (consumer, who) => {
        for await (const message of consumer) {
          received.push({ who, message });
          bodies.add(message.body.toString());
          if (received.length % 50 === 0) await sleep(1); // consumers take their time
        }
      });

      const TOTAL = 6000;
      const producerClient = clientFor(broker);
      const producer = producerClient.producer();
      const produced = (async () => {
        for (let start = 0; start < TOTAL; start += 100) {
          await producer.send(
            'shared',
            Array.from({ length: 100 }, (_, index) => ({ key: `k${(start + index) % 50}`, body: `m${start + index}` })),
          );
          await sleep(5);
        }
      })();

      await until(() => bodies.size >= TOTAL / 3, 60_000, 'a third of the messages');
      assert.ok(
        new Set(received.map((entry) => entry.who)).size >= 2,
        'the group shares the work',
      );
      await consumers[1]!.close(); // leaves: commits, LeaveGroup, its partitions move on at once
      await until(() => bodies.size >= (2 * TOTAL) / 3, 60_000, 'two thirds of the messages');
      clients[2]!.abort(); // killed: no commit, no LeaveGroup; the broker drops it when its session expires
      await produced;
      await until(() => bodies.size === TOTAL, 60_000, 'every message consumed');
      await until(() => consumers[0]!.assignment().length === PARTITIONS, 30_000, 'the survivor owning every partition');
      await sleep(300);
      await consumers[0]!.close();
      await Promise.all(loops);

      // At least once, and more than once only for what the killed consumer had not committed.
      const receivers = new Map<string, number[]>();
      for (const { who, message } of received) receivers.set(message.body.toString(), [...(receivers.get(message.body.toString()) ?? []), who]);
      for (const [body, who] of receivers) {
        if (who.length > 1) assert.ok(who.includes(2), `${body} was delivered twice without the killed consumer: ${who.join(',')}`);
      }
      // Per consumer, each partition's offsets increase except where a rebalance rewound it to a commit.
      const committed = await admin.fetchOffsets('shared-group', 'shared');
      const ends = await Promise.all(Array.from({ length: PARTITIONS }, (_, partition) => admin.listOffsets('shared', partition, 'latest')));
      assert.deepEqual(
        committed.map((entry) => entry.offset),
        ends,
        'everything consumed is committed',
      );

      // Restart the broker on the same port and data directory. (The clients go first: restart-reconnect.test.ts
      // covers clients that stay connected through a restart.)
      for (const client of [...clients, adminClient, producerClient]) await client.close();
      await broker.close();
      broker = await startBroker({ dataDir, port });
      const afterRestart = clientFor(broker);
      assert.deepEqual(
        (await afterRestart.admin().fetchOffsets('shared-group', 'shared')).map((entry) => entry.offset),
        ends,
        'committed offsets survive the restart',
      );
      await afterRestart.producer().send(
        'shared',
        Array.from({ length: 60 }, (_, index) => ({ key: `k${index}`, body: `after-restart-${index}` })),
      );
      const resumed = afterRestart.consumer(options);
      await resumed.subscribe('shared');
      const fresh = await take(resumed, 60);
      assert.ok(
        fresh.every((message) => message.body.toString().startsWith('after-restart-')),
        'the group resumes at its committed offsets',
      );
      const extra = await Promise.race([resumed.next(), sleep(500).then(() => null)]);
      assert.equal(extra, null, 'nothing else arrives');
      await resumed.close();
      await afterRestart.close();
    },
  );

  it('client integration: broadcast consumers each get every message; an instance id resumes its own position', { timeout: 60_000 }, async () => {
    const broker = await startBroker();
    const admin = clientFor(broker).admin();
    await admin.createTopic('news', { partitions: 3 });
    const producer = clientFor(broker).producer();
    await producer.send(
      'news',
      Array.from({ length: 300 }, (_, index) => ({ key: `k${index % 11}`, body: `n${index}` })),
    );
    const consumers = ['a', 'b', 'c'].map((instanceId) => clientFor(broker).consumer({ group: 'newsroom', mode: 'broadcast', instanceId }));
    await Promise.all(consumers.map((consumer) => consumer.subscribe('news')));
    const takes = await Promise.all(consumers.map((consumer) => take(consumer, 300)));
    for (const messages of takes) {
      assert.equal(new Set(messages.map((message) => message.body.toString())).size, 300);
    }
    for (const consumer of consumers) await consumer.close();
    assert.deepEqual(
      (await admin.fetchOffsets('newsroom/a', 'news')).map((entry) => entry.offset).reduce((sum, offset) => sum + offset, 0),
      300,
    );
    await producer.send('news', { body: 'breaking' });
    const again = clientFor(broker).consumer({ group: 'newsroom', mode: 'broadcast', instanceId: 'a' });
    await again.subscribe('news');
    assert.equal((await take(again, 1))[0]!.body.toString(), 'breaking');
    const stranger = clientFor(broker).consumer({ group: 'newsroom', mode: 'broadcast' });
    await stranger.subscribe('news');
    assert.equal((await take(stranger, 301)).length, 301, 'a new instance starts from the beginning');
    await again.close();
    await stranger.close();
  });
});
