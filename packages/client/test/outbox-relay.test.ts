import assert from 'node:assert/strict';
import { once } from 'node:events';
import { before, describe, it } from 'node:test';
import { OutboxRelay, WeirClientError, type OutboxPublisher, type OutboxRow, type OutboxStore, type ProducerMessage, type WeirClient } from 'weir-client';
import { clientFor, startBroker, take, type RunningBroker } from './support.js';

/** The application's outbox table, in memory: rows in insertion order, a sent flag, and a switch to make markSent fail. */
class MemoryOutbox implements OutboxStore {
  readonly rows: Array<OutboxRow & { sent: boolean }> = [];
  /** markSent fails while this is set (the database is unreachable). */
  markSentFailure: Error | null = null;
  markSentCalls = 0;

  insert(row: OutboxRow): void {
    this.rows.push({ ...row, sent: false });
  }

  unsent(): number {
    return this.rows.filter((row) => !row.sent).length;
  }

  async fetchUnsent(limit: number): Promise<OutboxRow[]> {
    return this.rows.filter((row) => !row.sent).slice(0, limit);
  }

  async markSent(ids: ReadonlyArray<OutboxRow['id']>): Promise<void> {
    this.markSentCalls++;
    if (this.markSentFailure !== null) throw this.markSentFailure;
    const wanted = new Set(ids);
    for (const row of this.rows) if (wanted.has(row.id)) row.sent = true;
  }
}

async function stored(client: WeirClient, topic: string): Promise<number> {
  const info = await client.admin().describeTopic(topic);
  return info.partitions.reduce((sum, partition) => sum + partition.endOffset, 0);
}

const fastRetry = { initialMs: 5, maxMs: 20 };

describe('client integration: outbox relay', () => {
  let broker: RunningBroker;
  before(async () => {
    broker = await startBroker();
  });

  it('client integration: the relay publishes each row once, with its row id as message id, and marks it sent', async () => {
    const client = clientFor(broker);
    await client.admin().createTopic('outbox-orders', { partitions: 3 });
    await client.admin().createTopic('outbox-mail', { partitions: 1 });
    const outbox = new MemoryOutbox();
    for (let index = 0; index < 250; index++) {
      outbox.insert({ id: `row-${index}`, topic: index % 5 === 0 ? 'outbox-mail' : 'outbox-orders', key: `customer-${index % 7}`, headers: { seq: String(index) }, body: `event ${index}` });
    }
    const relay = new OutboxRelay({ store: outbox, producer: client.producer({ idempotent: false }), batchSize: 100, pollIntervalMs: 60_000, retry: fastRetry }).start();
    await relay.flush();
    assert.equal(outbox.unsent(), 0);
    assert.equal(relay.published, 250);
    assert.equal(relay.duplicates, 0);
    assert.equal(await stored(client, 'outbox-orders'), 200);
    assert.equal(await stored(client, 'outbox-mail'), 50);

    const consumer = client.consumer();
    await consumer.subscribe('outbox-mail');
    const mail = await take(consumer, 50);
    assert.deepEqual(
      mail.map((message) => message.id),
      outbox.rows.filter((row) => row.topic === 'outbox-mail').map((row) => Buffer.from(String(row.id)).toString('hex')),
      'one partition: in row order, with the row ids',
    );
    assert.equal(mail[0]!.headers.seq, '0');
    await consumer.close();

    // After the application commits new rows it wakes the relay instead of waiting for the next poll (a minute here).
    outbox.insert({ id: 'row-late', topic: 'outbox-mail', body: 'late' });
    const published = once(relay, 'published');
    relay.wake();
    const [batch] = (await published) as [{ rows: OutboxRow[] }];
    assert.deepEqual(
      batch.rows.map((row) => row.id),
      ['row-late'],
    );
    await relay.stop();
    await assert.rejects(relay.flush(), /stopped/);
    await client.close();
  });

  it('client integration: a failed publish is retried, the row stays unsent until the broker acknowledged it, and a lost answer is deduplicated', async () => {
    const client = clientFor(broker);
    await client.admin().createTopic('outbox-retry', { partitions: 1 });
    const producer = client.producer({ idempotent: false });
    const outbox = new MemoryOutbox();
    outbox.insert({ id: 'payment-1', topic: 'outbox-retry', body: 'charge' });
    const attempts: Array<{ unsentWhenSent: number }> = [];
    // First attempt: refused before reaching the broker. Second: stored, but the answer is lost. Third: a duplicate.
    const flaky: OutboxPublisher = {
      idempotent: false,
      async send(topic: string, messages: readonly ProducerMessage[]) {
        attempts.push({ unsentWhenSent: outbox.unsent() });
        if (attempts.length === 1) throw new WeirClientError('CONNECTION_CLOSED', 'connection lost before sending');
        const results = await producer.send(topic, messages);
        if (attempts.length === 2) throw new WeirClientError('CONNECTION_CLOSED', 'connection lost before the answer');
        return results;
      },
    };
    const errors: string[] = [];
    const relay = new OutboxRelay({ store: outbox, producer: flaky, pollIntervalMs: 60_000, retry: fastRetry });
    relay.on('error', (error, info) => errors.push(`${info.step}#${info.attempt}: ${error.message}`));
    relay.start();
    await relay.flush();
    assert.deepEqual(
      attempts.map((attempt) => attempt.unsentWhenSent),
      [1, 1, 1],
      'not marked sent before an attempt succeeded',
    );
    assert.deepEqual(errors, ['publish#0: connection lost before sending', 'publish#1: connection lost before the answer']);
    assert.equal(outbox.unsent(), 0);
    assert.equal(relay.duplicates, 1, 'the third attempt found the second one stored');
    assert.equal(await stored(client, 'outbox-retry'), 1, 'one copy');
    await relay.stop();
    await client.close();
  });

  it('client integration: a relay that dies between publish and markSent is restarted: it resends, and the broker keeps one copy', async () => {
    const admin = clientFor(broker);
    await admin.admin().createTopic('outbox-restart', { partitions: 2 });
    const outbox = new MemoryOutbox();
    for (let index = 0; index < 20; index++) outbox.insert({ id: `invoice-${index}`, topic: 'outbox-restart', key: `k${index % 4}`, body: `invoice ${index}` });

    // The first relay publishes, then cannot reach its database to mark the rows, and its process dies.
    outbox.markSentFailure = new Error('database connection lost');
    const firstClient = clientFor(broker);
    const first = new OutboxRelay({ store: outbox, producer: firstClient.producer({ idempotent: false }), pollIntervalMs: 60_000, retry: fastRetry });
    const markFailed = new Promise<void>((resolve) => first.on('error', (_error, info) => info.step === 'mark' && resolve()));
    first.start();
    await markFailed;
    assert.equal(await stored(admin, 'outbox-restart'), 20, 'published');
    await first.stop();
    firstClient.abort();
    assert.equal(outbox.unsent(), 20, 'never marked sent');

    // Restarted (a new process: a new client and producer), with the database back.
    outbox.markSentFailure = null;
    const secondClient = clientFor(broker);
    const second = new OutboxRelay({ store: outbox, producer: secondClient.producer({ idempotent: false }), pollIntervalMs: 60_000, retry: fastRetry }).start();
    await second.flush();
    assert.equal(outbox.unsent(), 0);
    assert.equal(second.published, 20);
    assert.equal(second.duplicates, 20, 'every resend recognised by its id');
    assert.equal(await stored(admin, 'outbox-restart'), 20, 'the broker kept one copy of each');
    await second.stop();
    await secondClient.close();
    await admin.close();
  });

  it('client integration: the relay refuses an idempotent producer (dedup by id does not apply to it)', () => {
    const client = clientFor(broker);
    assert.throws(() => new OutboxRelay({ store: new MemoryOutbox(), producer: client.producer() }), /idempotent: false/);
    client.abort();
  });
});
